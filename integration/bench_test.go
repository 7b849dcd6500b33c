package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/metrics"
	"github.com/sessproxy/sessproxy/store"
	"github.com/sessproxy/sessproxy/store/codec"
)

// BenchmarkPipeline measures the proxy's per-command path — dispatch,
// policy, codec, the upstream round trip through the auto-pipeliner, the
// reply — without the client's socket: one connection's Pipeline.Run
// against the real standalone redis-server, configured as shipped (metrics
// on). ns/op,
// B/op and allocs/op are per batch of depth commands (allocations of
// go-redis's goroutines included); ns/cmd and allocs/cmd divide by depth.
//
//	go test -run '^$' -bench Pipeline -benchmem ./integration/
func BenchmarkPipeline(b *testing.B) {
	ctx := context.Background()
	reg := metrics.NewRegistry()
	st, err := store.Open(ctx, store.Options{Mode: standaloneUp.mode, Addrs: standaloneUp.addrs, AutoPipeline: true, Combine: true, Metrics: reg})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	cdc, err := codec.New(codec.Options{MaxPayloadBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	eng := commands.New(st, commands.Options{
		Prefix:     "sess:",
		Policy:     ttl.Policy{Default: defaultTTL, Min: time.Second, Max: maxTTL, FromCookie: true, Touch: true},
		Tombstones: true, Grace: grace, OnWrite: commands.OnWriteError,
		// The shipped format, past its transition: writes are SET … GET.
		TombstoneFormat: store.TombstoneTyped, TombstoneTransition: -1,
		Codec: cdc, Metrics: reg,
	})
	small := `{"cookie":{"originalMaxAge":86400000,"httpOnly":true,"path":"/"},"n":1}`
	session := bigSession("bench") // about 3.5 KB of express-session JSON
	workloads := []struct {
		name string
		cmd  func(id string) []string
	}{
		{"GET", func(id string) []string { return []string{"GET", "sess:" + id} }},
		{"SET", func(id string) []string { return []string{"SET", "sess:" + id, small} }},
		{"SET_EX", func(id string) []string { return []string{"SET", "sess:" + id, small, "EX", "86400"} }},
		{"SESS.GET", func(id string) []string { return []string{"SESS.GET", id} }},
		{"SESS.SET", func(id string) []string { return []string{"SESS.SET", id, session} }},
	}
	for _, w := range workloads {
		for _, depth := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/depth=%d", w.name, depth), func(b *testing.B) {
				p := eng.NewPipeline(eng.Connect("bench", "bench"))
				cmds := make([][][]byte, depth)
				for i := range cmds {
					id := fmt.Sprintf("bench-%02d", i)
					if err := standaloneUp.direct.Set(ctx, "sess:"+id, small, time.Hour).Err(); err != nil {
						b.Fatal(err)
					}
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
				perBatch := float64(b.N)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/perBatch/float64(depth), "ns/cmd")
				b.ReportMetric(testing.AllocsPerRun(100, func() { p.Run(ctx, cmds, write) })/float64(depth), "allocs/cmd")
			})
		}
	}
}
