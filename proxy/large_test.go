package proxy

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitSlots polls until n slots for reading large requests are taken.
func waitSlots(t *testing.T, srv *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(srv.large) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d slots for large requests taken, want %d", len(srv.large), n)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// echoHeader is the start of an ECHO of size bytes, up to its payload.
func echoHeader(size int) string {
	return "*2\r\n$4\r\nECHO\r\n$" + strconv.Itoa(size) + "\r\n"
}

// readEcho reads an ECHO's bulk reply and returns its length.
func readEcho(t *testing.T, c net.Conn, r *bufio.Reader) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "$") {
		t.Fatalf("ECHO reply %q, %v", line, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
	if _, err := io.CopyN(io.Discard, r, int64(n)+2); err != nil {
		t.Fatal(err)
	}
	return n
}

// A client reading a large request holds one of the server's slots until
// its batch has run; another large request waits unread meanwhile and is
// answered once the slot is free. A client that leaves part-way gives its
// slot back.
func TestLargeRequestsAreReadOneSlotAtATime(t *testing.T) {
	const size = 3 << 20
	srv := startServer(t, Options{MaxRequestBytes: 4 << 20, MaxInflightBytes: 1 << 20})
	if cap(srv.large) != 1 {
		t.Fatalf("%d slots, want 1 (the budget holds no request of max_request_bytes)", cap(srv.large))
	}
	payload := strings.Repeat("x", size)

	first, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := io.WriteString(first, echoHeader(size)+payload[:2<<20]); err != nil {
		t.Fatal(err)
	}
	waitSlots(t, srv, 1)

	second, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	secondR := bufio.NewReader(second)
	go func() { _, _ = io.WriteString(second, echoHeader(size)+payload+"\r\n") }()
	// The second request cannot be answered while the first holds the
	// only slot; nothing but the absence of a reply can show that.
	_ = second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := secondR.Peek(1); err == nil {
		t.Fatal("a second large request was answered while the first held the only slot")
	}

	if _, err := io.WriteString(first, payload[2<<20:]+"\r\n"); err != nil {
		t.Fatal(err)
	}
	if n := readEcho(t, first, bufio.NewReader(first)); n != size {
		t.Fatalf("first ECHO answered %d bytes, want %d", n, size)
	}
	if n := readEcho(t, second, secondR); n != size {
		t.Fatalf("second ECHO answered %d bytes, want %d", n, size)
	}
	waitSlots(t, srv, 0)

	// A client gone part-way through a large request frees its slot.
	third, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(third, echoHeader(size)+payload[:2<<20]); err != nil {
		t.Fatal(err)
	}
	waitSlots(t, srv, 1)
	third.Close()
	waitSlots(t, srv, 0)
}
