package proxy

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// chunkConn is a client connection that brings one chunk per Read.
type chunkConn struct {
	net.Conn
	chunks []string
}

func (c *chunkConn) Read(b []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// readerOver reads chunks as a goroutine's client's requests.
func readerOver(chunks ...string) *requestReader {
	return newRequestReader(&guardedConn{
		Conn:     &chunkConn{chunks: chunks},
		scanner:  requestScanner{max: 8 << 20, trackEnds: true},
		draining: new(atomic.Bool),
	})
}

// commandsOf writes each command's arguments, space-separated, one a line.
func commandsOf(cmds [][][]byte) string {
	var b strings.Builder
	for _, cmd := range cmds {
		for i, a := range cmd {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.Write(a)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func bulk(args ...string) string {
	s := "*" + strconv.Itoa(len(args)) + "\r\n"
	for _, a := range args {
		s += "$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n"
	}
	return s
}

// Each read gives the commands that ended in it, whatever the chunks.
func TestReaderCutsWhatEachReadBrings(t *testing.T) {
	large := strings.Repeat("v", 100<<10)
	tests := []struct {
		name   string
		chunks []string
		want   []string // per read
	}{
		{"one command a read", []string{bulk("GET", "a"), bulk("GET", "b")}, []string{"GET a\n", "GET b\n"}},
		{"a pipeline in one read", []string{bulk("GET", "a") + bulk("GET", "b")}, []string{"GET a\nGET b\n"}},
		{"a command split across reads", []string{"*2\r\n$3\r\nGE", "T\r\n$1\r", "\na\r\n"}, []string{"GET a\n"}},
		{"inline commands, empty lines skipped", []string{"PING\r\n\r\n  \nECHO 'x y'\n"}, []string{"PING\nECHO x y\n"}},
		{"counts below 1 skipped, as Redis does", []string{"*0\r\n" + bulk("GET", "a") + "*-1\r\n*-9223372036854775808\r\n" + bulk("GET", "b")}, []string{"GET a\nGET b\n"}},
		{"a count of 0 split across reads", []string{"*", "0\r", "\n" + bulk("GET", "a")}, []string{"GET a\n"}},
		{"a large request, then a small one", []string{bulk("SET", "k", large), bulk("GET", "k")}, []string{"SET k " + large + "\n", "GET k\n"}},
		{"a large request and the start of the next", []string{bulk("SET", "k", large) + "*2\r\n$3\r\nGET\r\n", "$1\r\nk\r\n"}, []string{"SET k " + large + "\n", "GET k\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd := readerOver(tt.chunks...)
			for i, want := range tt.want {
				cmds, err := rd.read(nil)
				if err != nil {
					t.Fatalf("read %d: %v", i, err)
				}
				if got := commandsOf(cmds); got != want {
					t.Fatalf("read %d: %.80q, want %.80q", i, got, want)
				}
			}
			if cmds, err := rd.read(nil); err != io.EOF {
				t.Fatalf("after the last: %.80q, %v; want io.EOF", commandsOf(cmds), err)
			}
		})
	}
}

// connState.hold keeps the commands it holds without copying them: the
// commands of one read must keep their bytes through the next reads. And
// a client whose large request has been read reads on into a small buffer:
// redcon's reader kept one of twice its largest request until it left.
func TestReaderArgsOutliveTheNextRead(t *testing.T) {
	large := strings.Repeat("v", 1<<20)
	rd := readerOver(bulk("GET", "first"), bulk("SET", "large", large), bulk("SET", "xxxxx"), bulk("SET", "yyyyy"))
	var kept [][][]byte
	for range 4 {
		cmds, err := rd.read(nil)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, cmds...)
	}
	if got, want := commandsOf(kept), fmt.Sprintf("GET first\nSET large %s\nSET xxxxx\nSET yyyyy\n", large); got != want {
		t.Fatalf("after four reads the commands read %.80q, want %.80q", got, want)
	}
	if cap(rd.buf) != readBufferBytes {
		t.Fatalf("after a request of 1 MiB the read buffer holds %d bytes, want %d", cap(rd.buf), readBufferBytes)
	}
}

// An inline request with unbalanced quotes is refused with redcon's (and
// Redis's) words, after the commands before it, which are given with the
// refusal to be answered first (Server.readFailed); the reader itself
// writes nothing.
func TestReaderRefusesUnbalancedQuotes(t *testing.T) {
	var written strings.Builder
	rd := newRequestReader(&guardedConn{
		Conn:     &chunkConn{Conn: &writeConn{w: &written}, chunks: []string{bulk("GET", "a") + "ECHO \"x\n" + bulk("GET", "b")}},
		scanner:  requestScanner{max: 8 << 20, trackEnds: true},
		draining: new(atomic.Bool),
	})
	cmds, err := rd.read(nil)
	if commandsOf(cmds) != "GET a\n" || err == nil || err.Error() != "ERR Protocol error: unbalanced quotes in request" {
		t.Fatalf("read: %q, %v; want GET a and the refusal", commandsOf(cmds), err)
	}
	if written.Len() > 0 {
		t.Fatalf("the reader wrote %q", written.String())
	}
}

// writeConn is a connection whose writes go to w.
type writeConn struct {
	net.Conn
	w io.Writer
}

func (c *writeConn) Write(b []byte) (int, error) { return c.w.Write(b) }

// eofConn brings all its data in one Read together with io.EOF, as
// crypto/tls does when a close_notify alert follows the last record.
type eofConn struct {
	net.Conn
	data string
}

func (c *eofConn) Read(b []byte) (int, error) {
	if c.data == "" {
		return 0, io.EOF
	}
	n := copy(b, c.data)
	c.data = c.data[n:]
	if c.data == "" {
		return n, io.EOF
	}
	return n, nil
}

// A whole command that arrives in the same Read as io.EOF is handed out
// (Redis runs it); the reader dropped it, as redcon's did.
func TestReaderKeepsCommandsThatCameWithEOF(t *testing.T) {
	rd := newRequestReader(&guardedConn{
		Conn:     &eofConn{data: bulk("SET", "sess:x", "{}")},
		scanner:  requestScanner{max: 8 << 20, trackEnds: true},
		draining: new(atomic.Bool),
	})
	cmds, err := rd.read(nil)
	if got := commandsOf(cmds); got != "SET sess:x {}\n" {
		t.Fatalf("read gave %q, %v; want the SET (and io.EOF with it or next)", got, err)
	}
}
