//go:build !race

package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A BCAST client's prefixes stay for as long as it does, outside
// max_inflight_bytes. They had no bound: 8 clients that each sent 4
// requests of 200,000 prefixes (24 MB) grew the proxy's RSS by 1736 MiB,
// held until they left. All clients' prefixes together now stay within
// the tracking table's 64 MiB (counted at 256 bytes a prefix besides its
// own bytes), and what passes it is refused: +91 MiB, +75 MiB with a
// goroutine per client.
func TestMemoryTrackingPrefixesAreBounded(t *testing.T) {
	const (
		clients = 8
		calls   = 4
		per     = 200000 // a request of 6 MB
	)
	srv := startServer(t, Options{})
	refused := 0
	grown := idleGrowth(t, srv, clients, func(i int, c net.Conn, r *bufio.Reader) {
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		if got := roundTrip(t, c, r, "HELLO 3\r\n"); !strings.HasPrefix(got, "%") {
			t.Fatalf("HELLO 3: %q", got)
		}
		for r.Buffered() > 0 { // the rest of HELLO's map
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		for k := range calls {
			switch got := roundTrip(t, c, r, trackingPrefixes((i*calls+k)*per, per)); {
			case got == "+OK":
			case strings.HasPrefix(got, "-ERR too many tracking prefixes"):
				refused++
			default:
				t.Fatalf("client %d, request %d: %q", i, k, got)
			}
		}
	})
	t.Logf("%d clients × %d requests of %d BCAST prefixes: %d refused, proxy RSS grew by %d MiB", clients, calls, per, refused, grown>>20)
	if grown > 128<<20 {
		t.Fatalf("%d clients' BCAST prefixes hold %d MiB", clients, grown>>20)
	}
}

// trackingPrefixes is a CLIENT TRACKING ON BCAST of n prefixes, numbered
// from first.
func trackingPrefixes(first, n int) string {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(4+2*n) + "\r\n$6\r\nCLIENT\r\n$8\r\nTRACKING\r\n$2\r\nON\r\n$5\r\nBCAST\r\n")
	for i := first; i < first+n; i++ {
		p := fmt.Sprintf("sess:%09d", i)
		b.WriteString("$6\r\nPREFIX\r\n$" + strconv.Itoa(len(p)) + "\r\n" + p + "\r\n")
	}
	return b.String()
}
