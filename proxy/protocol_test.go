package proxy

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/integration/redistest"
)

// Redis's words for a refused request, each followed by the close.
const (
	redisUnbalanced = "-ERR Protocol error: unbalanced quotes in request\r\n"
	redisMultibulk  = "-ERR Protocol error: invalid multibulk length\r\n"
	redisBulk       = "-ERR Protocol error: invalid bulk length\r\n"
	redisInlineBig  = "-ERR Protocol error: too big inline request\r\n"
)

// protocolCases are what one client sends at once and what Redis 7.0
// answers: its replies, then whether it closes the connection.
// TestProtocolAnswersAsRedis holds a real redis-server and the proxy to
// them, TestReaderRefusesAsRedis the request reader. Only PING, ECHO and
// MULTI run, which the proxy answers in Redis's words.
var protocolCases = []struct {
	name   string
	send   string
	reply  string
	closed bool
}{
	// A refused request is answered after every request before it, in
	// order, then the client is closed and nothing after it runs.
	{"unbalanced quotes after an inline command", "PING\r\nSET \"a b\r\n", "+PONG\r\n" + redisUnbalanced, true},
	{"unbalanced quotes after a multibulk command", "*1\r\n$4\r\nPING\r\nGET \"x\r\n", "+PONG\r\n" + redisUnbalanced, true},
	{"unbalanced quotes between commands", "PING\r\nECHO \"a b\"\r\nGET \"x\r\nPING\r\n", "+PONG\r\n$3\r\na b\r\n" + redisUnbalanced, true},
	{"unbalanced quotes after a transaction begins", "*1\r\n$5\r\nMULTI\r\nGET \"x\r\n", "+OK\r\n" + redisUnbalanced, true},
	{"unbalanced quotes after QUIT", "*1\r\n$4\r\nQUIT\r\nGET \"x\r\n", "+OK\r\n", true},
	{"a count not a number after a command", "PING\r\n*abc\r\n", "+PONG\r\n" + redisMultibulk, true},
	{"a length not a number after a command", "PING\r\n*1\r\n$abc\r\n", "+PONG\r\n" + redisBulk, true},
	{"no '$' after a command", "PING\r\n*1\r\nx\r\n", "+PONG\r\n-ERR Protocol error: expected '$', got 'x'\r\n", true},
	{"a too big inline request after a command", "PING\r\n" + strings.Repeat("a", 70000), "+PONG\r\n" + redisInlineBig, true},
	{"a count with a sign after a command", "PING\r\n*+1\r\n$4\r\nPING\r\n", "+PONG\r\n" + redisMultibulk, true},
	{"a length with a leading zero after a command", "PING\r\n*1\r\n$04\r\nPING\r\n", "+PONG\r\n" + redisBulk, true},

	// Counts and lengths are read as Redis's string2ll reads them: digits
	// and a '-', written as Redis writes numbers, within int64.
	{"a count with a sign", "*+1\r\n$4\r\nPING\r\n", redisMultibulk, true},
	{"a count with a leading zero", "*01\r\n$4\r\nPING\r\n", redisMultibulk, true},
	{"a count of +0", "*+0\r\nPING\r\n", redisMultibulk, true},
	{"a count of -0", "*-0\r\nPING\r\n", redisMultibulk, true},
	{"a count of 00", "*00\r\nPING\r\n", redisMultibulk, true},
	{"a count after a space", "* 1\r\n$4\r\nPING\r\n", redisMultibulk, true},
	{"a count before a space", "*1 \r\n$4\r\nPING\r\n", redisMultibulk, true},
	{"a count in hex", "*0x1\r\n$4\r\nPING\r\n", redisMultibulk, true},
	{"no count", "*\r\nPING\r\n", redisMultibulk, true},
	{"a count of a sign alone", "*-\r\nPING\r\n", redisMultibulk, true},
	{"a count below int64", "*-9223372036854775809\r\nPING\r\n", redisMultibulk, true},
	{"a count of 40 digits", "*" + strings.Repeat("0", 39) + "1\r\n$4\r\nPING\r\n", redisMultibulk, true},
	{"a length with a sign", "*1\r\n$+4\r\nPING\r\n", redisBulk, true},
	{"a length with a leading zero", "*1\r\n$04\r\nPING\r\n", redisBulk, true},
	{"a length of 00", "*2\r\n$4\r\nECHO\r\n$00\r\n\r\nPING\r\n", redisBulk, true},
	{"a length of +0", "*2\r\n$4\r\nECHO\r\n$+0\r\n\r\nPING\r\n", redisBulk, true},
	{"a length of -0", "*2\r\n$4\r\nECHO\r\n$-0\r\n\r\nPING\r\n", redisBulk, true},
	{"a length of -1", "*1\r\n$-1\r\nPING\r\n", redisBulk, true},
	{"a length after a space", "*1\r\n$ 4\r\nPING\r\n", redisBulk, true},
	{"a length before a space", "*1\r\n$4 \r\nPING\r\n", redisBulk, true},
	{"a length with an underscore", "*1\r\n$1_0\r\nPING\r\n", redisBulk, true},
	{"no length", "*1\r\n$\r\nPING\r\n", redisBulk, true},
	{"a length past int64", "*2\r\n$4\r\nECHO\r\n$9223372036854775808\r\n", redisBulk, true},
	{"a length of 22 digits", "*2\r\n$4\r\nECHO\r\n$9999999999999999999999\r\n", redisBulk, true},
	{"a length of 40 digits", "*1\r\n$" + strings.Repeat("0", 39) + "4\r\nPING\r\n", redisBulk, true},
	{"a length of 0", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", "$0\r\n\r\n", false},
	// Redis skips a request whose count is below 1, as an empty line.
	{"a count of 0", "*0\r\nPING\r\n", "+PONG\r\n", false},
	{"a count of -1", "*-1\r\nPING\r\n", "+PONG\r\n", false},
	{"a count of -5", "*-5\r\nPING\r\n", "+PONG\r\n", false},
	{"a count of -2^63", "*-9223372036854775808\r\nPING\r\n", "+PONG\r\n", false},
	{"counts of 0 and empty lines between commands", "ECHO \"a b\"\r\n*0\r\n\r\n*-1\r\nPING\r\n", "$3\r\na b\r\n+PONG\r\n", false},
}

// exchange sends send to addr at once and reads n bytes of replies (fewer
// if the connection ends first), then says whether the connection is
// closed: a PING sent after them gets no +PONG. Whatever else comes back
// is added to the replies.
func exchange(t *testing.T, addr, send string, n int) (replies string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// Written from a goroutine: a server that refuses the request may stop
	// reading it, and the write fails then (ignored: only the replies
	// count).
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		_, _ = io.WriteString(c, send)
	}()
	got := make([]byte, n)
	k, err := io.ReadFull(c, got)
	<-sent
	if err != nil {
		return string(got[:k]), true
	}
	_, _ = io.WriteString(c, "PING\r\n")
	after := make([]byte, len("+PONG\r\n"))
	k, err = io.ReadFull(c, after)
	switch {
	case string(after) == "+PONG\r\n":
		return string(got), false
	case k == 0 && err != nil:
		var timeout net.Error
		if errors.As(err, &timeout) && timeout.Timeout() {
			t.Fatalf("%q: neither a reply to PING nor a close after %q", send, got)
		}
		return string(got), true
	}
	return string(got) + string(after[:k]), false
}

// The proxy answers each case as redis-server does, byte for byte, and
// closes where it closes. Before, a refusal came first and alone (the
// commands before it ran unanswered, or not at all when they came in the
// same read), "*+1" and "$04" were taken, "*0" and "*-1" refused, and a
// header line over 32 bytes was "invalid request header".
func TestProtocolAnswersAsRedis(t *testing.T) {
	redis := redistest.Standalone(t)
	srv := startServer(t, Options{})
	for _, tt := range protocolCases {
		t.Run(tt.name, func(t *testing.T) {
			for _, server := range []struct{ name, addr string }{{"redis-server", redis.Addr}, {"proxy", srv.Addr().String()}} {
				got, closed := exchange(t, server.addr, tt.send, len(tt.reply))
				if got != tt.reply || closed != tt.closed {
					t.Errorf("%s answered %q, closed %v; want %q, closed %v", server.name, got, closed, tt.reply, tt.closed)
				}
			}
		})
	}
}

// The request reader stops at the request Redis refuses, with Redis's
// words, having given every command before it; and reads to the end
// where Redis refuses nothing.
func TestReaderRefusesAsRedis(t *testing.T) {
	for _, tt := range protocolCases {
		t.Run(tt.name, func(t *testing.T) {
			lines := strings.SplitAfter(tt.reply, "\r\n")
			last := strings.TrimSuffix(strings.TrimPrefix(lines[max(len(lines)-2, 0)], "-"), "\r\n")
			want := io.EOF
			switch {
			case strings.HasPrefix(last, "ERR Protocol error: "):
				want = &limitError{msg: last}
			case tt.closed:
				return // closed by a command (QUIT), which the reader knows nothing of
			}
			rd := readerOver(tt.send)
			var err error
			for err == nil {
				_, err = rd.read(nil)
			}
			if err.Error() != want.Error() {
				t.Fatalf("read ends with %v, want %v", err, want)
			}
		})
	}
}

// Commands held for the rest of a pipeline the client was sending are
// answered before the refusal of the request that follows them, as Redis
// answers them; they used to run unanswered.
func TestHeldCommandsAreAnsweredBeforeARefusal(t *testing.T) {
	srv := startServer(t, Options{})
	c, _ := dial(t, "tcp", srv.Addr().String())
	if _, err := io.WriteString(c, "PING\r\n*1\r\n$4\r\nPI"); err != nil {
		t.Fatal(err)
	}
	for !srv.anyMidRequest() {
		time.Sleep(time.Millisecond)
	}
	if _, err := io.WriteString(c, "NG\r\nGET \"x\r\n"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if want := "+PONG\r\n+PONG\r\n" + redisUnbalanced; string(got) != want || err != nil {
		t.Fatalf("answered %q, %v; want %q and the close", got, err, want)
	}
}
