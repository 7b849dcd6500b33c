package commands

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/store"
)

// BenchmarkEngine measures the engine's per-command path — dispatch,
// namespace and tracking checks, policy, codec, one upstream round trip,
// the reply — for the commands bench/bench.sh runs (GET of its 71-byte
// value, SET EX and SESS.SET of a 1 KB session, SESS.GET of one), without a socket on
// the client's side: one client's Pipeline.Run against a real
// redis-server (skipped without one), auto-pipelined as shipped, metrics
// off. B/op and allocs/op are per batch of depth commands, go-redis's
// own goroutines included; allocs/cmd divides by depth.
//
//	go test -run '^$' -bench Engine -benchmem ./commands/
func BenchmarkEngine(b *testing.B) {
	ctx := context.Background()
	srv := redistest.Standalone(b)
	st, err := store.Open(ctx, store.Options{Mode: store.ModeStandalone, Addrs: []string{srv.Addr}, AutoPipeline: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	e := New(st, defaultOptions())
	small := `{"cookie":{"originalMaxAge":86400000,"httpOnly":true,"path":"/"},"n":1}`
	session := benchSession(1024)
	workloads := []struct {
		name   string
		stored string // what the keys hold before the run
		cmd    func(id string) []string
	}{
		{"GET", small, func(id string) []string { return []string{"GET", "sess:" + id} }},
		{"SET_EX", small, func(id string) []string { return []string{"SET", "sess:" + id, session, "EX", "86400"} }},
		{"SESS.GET", session, func(id string) []string { return []string{"SESS.GET", id} }},
		{"SESS.SET", small, func(id string) []string { return []string{"SESS.SET", id, session} }},
	}
	for _, w := range workloads {
		for _, depth := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/depth=%d", w.name, depth), func(b *testing.B) {
				c := e.Connect("127.0.0.1:1", "127.0.0.1:6380")
				defer e.Disconnect(c)
				p := e.NewPipeline(c)
				cmds := make([][][]byte, depth)
				for i := range cmds {
					id := fmt.Sprintf("bench-%02d", i)
					p.Run(ctx, [][][]byte{{[]byte("SET"), []byte("sess:" + id), []byte(w.stored), []byte("EX"), []byte("3600")}}, func([]byte) {})
					for _, a := range w.cmd(id) {
						cmds[i] = append(cmds[i], []byte(a))
					}
				}
				var failed []byte
				write := func(reply []byte) {
					if reply[0] == '-' && failed == nil {
						failed = append([]byte(nil), reply...)
					}
				}
				b.ReportAllocs()
				for b.Loop() {
					p.Run(ctx, cmds, write)
				}
				if failed != nil {
					b.Fatalf("%s replied %q", w.name, failed)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(depth), "ns/cmd")
				b.ReportMetric(testing.AllocsPerRun(100, func() { p.Run(ctx, cmds, write) })/float64(depth), "allocs/cmd")
			})
		}
	}
}

// benchSession is an express-session JSON object of size bytes, as
// bench/bench.sh writes: a cookie, a user, and a token filling the rest.
func benchSession(size int) string {
	head := `{"cookie":{"originalMaxAge":86400000,"secure":true,"httpOnly":true,"path":"/","sameSite":"lax"},` +
		`"passport":{"user":"6f1c2a9e-3b7d-4e21-9c55-8a0d4f7b1e23"},"views":17,"csrfSecret":"`
	tail := `"}`
	return head + strings.Repeat("Qm9vdHN0cmFw", size)[:size-len(head)-len(tail)] + tail
}
