package proxy

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/store"
)

// A client past its reply limit still has its writes decided on what is
// stored: SESS.TOUCH reads the session for its cookie.expires. When reads
// were not decoded for such a client (to spare a value that decompresses
// to megabytes), the TTL came from no payload, the default, and the
// session outlived its cookie.
func TestTouchPastReplyLimitKeepsCookieTTL(t *testing.T) {
	rs := redistest.Standalone(t)
	st, err := store.Open(context.Background(), store.Options{Mode: store.ModeStandalone, Addrs: []string{rs.Addr}, AutoPipeline: true, Combine: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := commands.New(st, commands.Options{Policy: ttl.Policy{Default: time.Hour, Min: time.Second, Max: 2 * time.Hour, FromCookie: true, Touch: true}})
	srv := New(eng, testOpts(Options{Listen: "127.0.0.1:0", MaxClientReplyBytes: 1 << 20, MaxInflightBytes: 256 << 20}))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	addr := srv.Addr().String()
	c, r := dial(t, "tcp", addr)
	exp := time.Now().Add(10 * time.Minute).UTC().Format("2006-01-02T15:04:05.000Z")
	if got := roundTrip(t, c, r, encodeRESP("SET", "sess:t", `{"cookie":{"expires":"`+exp+`"}}`, "EX", "100")); got != "+OK" {
		t.Fatalf("SET: %q", got)
	}
	greedy, greedyR := dial(t, "tcp", addr)
	// 31 COMMAND DOCS (35 KB each) pass 1 MiB of replies; the TOUCH after
	// them in the same batch still runs.
	if _, err := io.WriteString(greedy, strings.Repeat(encodeRESP("COMMAND", "DOCS"), 31)+encodeRESP("SESS.TOUCH", "t")); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(greedyR)
	t.Logf("greedy got %d bytes: %.100q", len(out), out)
	got := roundTrip(t, c, r, encodeRESP("TTL", "sess:t"))
	t.Logf("TTL %s", got)
	if n, err := strconv.Atoi(strings.TrimPrefix(got, ":")); err != nil || n < 500 || n > 600 {
		t.Fatalf("TTL after a TOUCH by a client over its reply limit: %s, want about 600 (cookie.expires)", got)
	}
}
