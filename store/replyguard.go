package store

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// An upstream's reply is read by go-redis, which allocates what a header
// announces before the bytes arrive: `$1099511627776` made it ask for a
// terabyte and the Go runtime end the whole proxy ("fatal error: runtime:
// out of memory", which no recover catches), and `*N` asks for N elements
// the same way. Redis never sends such a header, but a corrupted stream, a
// middlebox or something else listening on the upstream's port can. So
// every upstream connection is read through a scanner that follows the
// replies' framing and fails the connection, before go-redis sees the
// header, when an item announces more than maxReplyItemBytes: the commands
// on it get the error (answered `-ERR upstream error: …`, logged and
// counted as any upstream failure) and go-redis dials afresh for the next.

// maxReplyItemBytes bounds what one reply item may make the proxy hold
// before it is whole: a bulk string's length, an aggregate's elements at
// 16 bytes each (go-redis's slot per element; a map's or attribute's
// pairs count twice), a line's length. 512 MiB is Redis's own default
// proto-max-bulk-len, the largest string it stores.
const maxReplyItemBytes = 512 << 20

// replyElemBytes is what go-redis holds per announced aggregate element
// (an interface or a string header) before reading it.
const replyElemBytes = 16

// errReplyPastBound is the scanner's error for a header past the bound:
// what kind of item it announced.
type errReplyPastBound string

func (e errReplyPastBound) Error() string {
	return fmt.Sprintf("reply announced %s past sessproxy's bound of %d bytes per reply item (docs/limits.md): connection closed",
		string(e), maxReplyItemBytes)
}

// errMalformedReply: a byte where a reply's type or length was due that
// no RESP reply has; go-redis would fail the connection on it too.
type errMalformedReply byte

func (e errMalformedReply) Error() string {
	return "malformed reply: unexpected byte " + strconv.QuoteRune(rune(e)) + ": connection closed"
}

// guardedDialer wraps base's connections in a replyScanner.
func guardedDialer(base func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := base(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		g := &guardedConn{Conn: c}
		if _, ok := c.(syscall.Conn); ok {
			// go-redis checks an idle connection's socket before using it
			// (a restarted Redis closed it); it asks for syscall.Conn.
			return &guardedSysConn{g}, nil
		}
		return g, nil
	}
}

// upstreamDialer is go-redis's own dialer for these options, guarded.
func (s *Store) upstreamDialer() func(context.Context, string, string) (net.Conn, error) {
	return guardedDialer(redis.NewDialer(&redis.Options{DialTimeout: s.opts.DialTimeout, TLSConfig: s.opts.TLS}))
}

// guardedConn is an upstream connection whose replies are scanned as they
// are read. One goroutine reads it at a time, as go-redis does.
type guardedConn struct {
	net.Conn
	scan replyScanner
	err  error // once set, every read answers it
}

func (c *guardedConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if k, serr := c.scan.scan(p[:n]); serr != nil {
		// Only what came before the item goes on: go-redis must never
		// parse its header.
		c.err = serr
		return k, serr
	}
	return n, err
}

// NetConn is the connection underneath, for go-redis's health checks.
func (c *guardedConn) NetConn() net.Conn { return c.Conn }

// guardedSysConn is a guardedConn over a socket. The scanner buffers
// nothing, so a peek at the socket sees what go-redis would read next.
type guardedSysConn struct{ *guardedConn }

func (c *guardedSysConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// replyScanner follows RESP2 and RESP3 replies byte by byte across reads,
// keeping no more than a few counters: a line's type and length, a
// header's number, the bytes of a bulk string left to skip. Aggregates
// need no stack: their elements are items that follow in order.
type replyScanner struct {
	state   replyState
	kind    byte  // the current line's type byte
	num     int64 // a length or count line's number so far
	neg     bool  // it began with '-'
	lineLen int64 // bytes of a simple line so far
	skip    int64 // a bulk string's bytes (and CRLF) left
}

type replyState uint8

const (
	replyType   replyState = iota // at an item's type byte
	replyNumber                   // in a length or count line
	replyLine                     // in a simple line (+ - : , # _ ( )
	replyBulk                     // skipping a bulk string's bytes
)

// scan follows b. On a header past the bound, or a malformed one, it
// answers the offset in b where that item began (0 when it began in an
// earlier read) and the error.
func (s *replyScanner) scan(b []byte) (int, error) {
	start := 0 // where the current item began in b
	for i := 0; i < len(b); {
		switch s.state {
		case replyBulk:
			k := int64(len(b) - i)
			if k >= s.skip {
				i += int(s.skip)
				s.skip, s.state = 0, replyType
				start = i
				continue
			}
			s.skip -= k
			return 0, nil
		case replyType:
			start = i
			s.kind, s.num, s.neg, s.lineLen = b[i], 0, false, 0
			switch s.kind {
			case '$', '!', '=', '*', '%', '~', '>', '|':
				s.state = replyNumber
			case '+', '-', ':', ',', '#', '_', '(':
				s.state = replyLine
			default:
				return start, errMalformedReply(s.kind)
			}
			i++
		case replyLine:
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				s.lineLen += int64(len(b) - i)
				if s.lineLen > maxReplyItemBytes {
					return start, errReplyPastBound("a line")
				}
				return 0, nil
			}
			i += j + 1
			s.state = replyType
		case replyNumber:
			c := b[i]
			i++
			switch {
			case c >= '0' && c <= '9':
				s.num = s.num*10 + int64(c-'0')
				if err := s.bound(); err != nil {
					return start, err
				}
			case c == '-' && s.num == 0 && !s.neg:
				s.neg = true
			case c == '\r':
			case c == '\n':
				s.state = replyType
				if !s.neg && isBulkType(s.kind) {
					s.skip, s.state = s.num+2, replyBulk
				}
			default:
				return start, errMalformedReply(c)
			}
		}
	}
	return 0, nil
}

// bound checks the number read so far against maxReplyItemBytes: it only
// grows, so it is checked as each digit arrives and never overflows.
func (s *replyScanner) bound() error {
	if s.neg {
		return nil
	}
	switch s.kind {
	case '$', '!', '=':
		if s.num > maxReplyItemBytes {
			return errReplyPastBound("a bulk string")
		}
	case '%', '|':
		if s.num > maxReplyItemBytes/replyElemBytes/2 {
			return errReplyPastBound("a map")
		}
	default:
		if s.num > maxReplyItemBytes/replyElemBytes {
			return errReplyPastBound("an aggregate")
		}
	}
	return nil
}

func isBulkType(kind byte) bool { return kind == '$' || kind == '!' || kind == '=' }
