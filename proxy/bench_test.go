package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/store"
)

// BenchmarkServer measures a whole request through the proxy: one client
// on a TCP connection sends depth commands at once and reads their
// replies, the proxy runs them against a real redis-server (skipped
// without one). ns/op, B/op and allocs/op are per batch, the client's own
// reading included; allocs/cmd divides by depth.
//
//	go test -run '^$' -bench Server -benchmem ./proxy/
func BenchmarkServer(b *testing.B) {
	ctx := context.Background()
	up := redistest.Standalone(b)
	st, err := store.Open(ctx, store.Options{Mode: store.ModeStandalone, Addrs: []string{up.Addr}, AutoPipeline: true, Combine: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	// The shipped config's tombstones: typed, past their transition, so
	// writes are Redis's own SET … GET as in make bench.
	eng := commands.New(st, commands.Options{Policy: ttl.Policy{Default: time.Hour, Min: time.Second, Max: 48 * time.Hour, FromCookie: true, Touch: true},
		Tombstones: true, Grace: 5 * time.Minute, TombstoneFormat: store.TombstoneTyped, TombstoneTransition: -1})
	srv := New(eng, testOpts(Options{Listen: "127.0.0.1:0"}))
	if err := srv.Listen(); err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	session := `{"cookie":{"originalMaxAge":86400000,"httpOnly":true,"path":"/"},"token":"` + strings.Repeat("x", 950) + `"}`
	small := `{"cookie":{"originalMaxAge":86400000,"httpOnly":true,"path":"/"},"n":1}`
	workloads := []struct {
		name   string
		stored string
		cmd    func(id string) []string
	}{
		{"GET", small, func(id string) []string { return []string{"GET", "sess:" + id} }},
		{"SET", small, func(id string) []string { return []string{"SET", "sess:" + id, small} }},
		{"SESS.GET", session, func(id string) []string { return []string{"SESS.GET", id} }},
		{"SESS.SET", small, func(id string) []string { return []string{"SESS.SET", id, session} }},
	}
	for _, w := range workloads {
		for _, depth := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/depth=%d", w.name, depth), func(b *testing.B) {
				conn, err := net.Dial("tcp", srv.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				r := bufio.NewReaderSize(conn, 64<<10)
				var req []byte
				for i := range depth {
					id := fmt.Sprintf("bench-%02d", i)
					req = appendCommand(req, w.cmd(id)...)
					if _, err := conn.Write(appendCommand(nil, "SET", "sess:"+id, w.stored, "EX", "3600")); err != nil {
						b.Fatal(err)
					}
					if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
						b.Fatalf("SET: %q %v", line, err)
					}
				}
				batch := func() {
					if _, err := conn.Write(req); err != nil {
						b.Fatal(err)
					}
					for range depth {
						if err := readBenchReply(r); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportAllocs()
				for b.Loop() {
					batch()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(depth), "ns/cmd")
				b.ReportMetric(testing.AllocsPerRun(100, batch)/float64(depth), "allocs/cmd")
			})
		}
	}
}

func appendCommand(b []byte, args ...string) []byte {
	b = fmt.Appendf(b, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b
}

// readBenchReply reads one simple reply (status, error, integer, bulk or null)
// without allocating, and fails on an error reply.
func readBenchReply(r *bufio.Reader) error {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	switch line[0] {
	case '-':
		return fmt.Errorf("error reply %q", line)
	case '$':
		n := 0
		for _, ch := range line[1 : len(line)-2] {
			if ch == '-' {
				return nil // null
			}
			n = n*10 + int(ch-'0')
		}
		_, err = r.Discard(n + 2)
	}
	return err
}
