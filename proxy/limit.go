package proxy

import (
	"errors"
	"math"
	"net"
	"sync/atomic"
	"time"
)

// requestScanner follows the RESP request stream as bytes arrive and fails
// as soon as one request breaks a limit or the protocol.
//
// The proxy buffers a request until it is complete and grows its buffer to
// fit, so the limits have to be enforced here, before those bytes are read
// into memory: a header like $999999999999 is refused on sight. And redcon
// trusts what it parses: `i+size+2` overflows for a size near 2^63 (an
// index panic that kills the process) and it loops once per announced
// argument on every read, data or not (*9223372036854775807 spins a
// goroutine for ever). So the scanner accepts only requests redcon parses
// correctly: every byte redcon sees has passed it, every count and length
// in them is positive and bounded, and anything redcon would refuse is
// refused here first, so the two never disagree about where a request
// ends. It refuses what Redis refuses, in Redis's words, where redcon is
// laxer ("*+1", "$04"); and it passes a request whose count is below 1
// (*0, *-1), which Redis skips and redcon would refuse, but redcon never
// sees (parseRequest).
//
// Every check is written so it cannot overflow: an announced number is
// compared against what is left of the limit, never added or multiplied
// first.
type requestScanner struct {
	max int64 // max_request_bytes, > 0

	state    scanState
	size     int64 // bytes of the current request so far
	args     int64 // bulk strings still expected in the current request
	bulkLeft int64 // payload bytes still to skip in the current bulk
	line     []byte
	// begun counts the requests begun so far; guardedConn compares it
	// across a read to date the request in progress (request_timeout).
	begun uint64
	// ends, when trackEnds, gets the offset in the scanned bytes just past
	// each request that ends in them: the event loop and requestReader cut
	// their requests there.
	ends      []int
	trackEnds bool
	// spans, when trackSpans (with trackEnds), gets each argument whose
	// bytes begin in the scanned bytes: its offset there and its length;
	// spanEnds, beside ends, how many spans there were when each request
	// ended. The event loop takes a request's arguments from them rather
	// than parsing the request a second time (loop.cut); requestReader,
	// which keeps its scratch per client rather than per loop, parses.
	spans      []argSpan
	spanEnds   []int
	trackSpans bool
}

// argSpan is where one argument's bytes lie in the bytes scanned.
type argSpan struct{ at, n int }

type scanState uint8

const (
	scanStart    scanState = iota // first byte of a request
	scanCount                     // *<count>\r\n
	scanBulkHead                  // $<len>\r\n
	scanBulkBody                  // payload bytes
	scanBulkCR                    // the \r after a payload
	scanBulkLF                    // the \n after a payload
	scanInline                    // an inline command, up to \n
)

const (
	// maxHeaderLine bounds a *count or $len line; real ones are a few
	// digits.
	maxHeaderLine = 32
	// maxRequestArgs bounds a request's argument count: Redis's own bound
	// until 6.2 (beyond it, "invalid multibulk length"; 7.0 waits for up
	// to 2^31-1 arguments, each in memory as it comes). It holds for
	// clients before AUTH too: the scanner reads ahead of dispatch, so a
	// pipelined AUTH and the command after it are scanned before AUTH has
	// run, and a tighter pre-AUTH bound would refuse that command.
	maxRequestArgs = 1024 * 1024
	// maxInlineBytes bounds an inline (telnet) request. redcon's inline
	// parser gives every argument a buffer the size of the rest of the
	// line, so its memory grows with the square of the line: 4 KiB keeps
	// the worst case (about 4 MiB) below what one RESP request may hold.
	// Redis allows 64 KiB; no client library sends inline requests.
	maxInlineBytes = 4 << 10
	// hardMaxRequestBytes caps max_request_bytes itself (Redis's largest
	// bulk string is 512 MB).
	hardMaxRequestBytes = 1 << 30
)

// limitError is a request refused by the scanner; tooLarge: for its size
// (max_request_bytes), else for breaking the protocol.
type limitError struct {
	msg      string
	tooLarge bool
}

func (e *limitError) Error() string { return e.msg }

// scan consumes b and returns an error for the client when a limit or the
// protocol is broken.
func (s *requestScanner) scan(b []byte) error {
	for i := 0; i < len(b); {
		switch s.state {
		case scanStart:
			s.size, s.line = 0, s.line[:0]
			s.begun++
			if b[i] == '*' {
				s.state = scanCount
				i++
				s.size++
			} else {
				s.state = scanInline
			}
		case scanInline:
			for ; i < len(b); i++ {
				s.size++
				if b[i] == '\n' {
					s.state = scanStart
					i++
					s.ended(i)
					break
				}
				if s.size > s.max {
					return s.tooLarge()
				}
				if s.size > maxInlineBytes {
					return &limitError{msg: msgInlineTooBig}
				}
			}
		case scanBulkHead:
			// redcon refuses anything but '$' on sight; so does Redis.
			if len(s.line) == 0 && b[i] != '$' {
				return &limitError{msg: errExpectedDollar(b[i])}
			}
			fallthrough
		case scanCount:
			for ; i < len(b) && b[i] != '\n'; i++ {
				s.line = append(s.line, b[i])
				if len(s.line) > maxHeaderLine {
					// No number Redis reads is this long: once the line
					// ends, Redis refuses it in these words.
					return s.invalidHeader()
				}
			}
			if i == len(b) {
				break
			}
			i++ // the '\n'
			s.size += int64(len(s.line)) + 1
			if err := s.header(); err != nil {
				return err
			}
			s.ended(i) // a count below 1 ends its request here
			if s.trackSpans && (s.state == scanBulkBody || s.state == scanBulkCR) {
				s.spans = append(s.spans, argSpan{at: i, n: int(s.bulkLeft)})
			}
		case scanBulkBody:
			n := min(int64(len(b)-i), s.bulkLeft)
			i += int(n)
			s.bulkLeft -= n
			if s.bulkLeft == 0 {
				s.state = scanBulkCR
			}
		case scanBulkCR, scanBulkLF:
			want := byte('\r')
			if s.state == scanBulkLF {
				want = '\n'
			}
			if b[i] != want {
				return &limitError{msg: msgInvalidBulkLength}
			}
			i++
			if s.state == scanBulkCR {
				s.state = scanBulkLF
			} else {
				s.nextArg()
				s.ended(i)
			}
		}
	}
	return nil
}

// header interprets a completed *count or $len line: a number after the
// '*' (already consumed) or the '$', then \r. The number is read as Redis
// reads it (headerInt), and only ever compared with what is left of a
// limit.
func (s *requestScanner) header() error {
	line := s.line
	s.line = s.line[:0]
	if s.state == scanCount {
		if len(line) == 0 || line[len(line)-1] != '\r' {
			return &limitError{msg: msgInvalidMultibulkLength}
		}
		n, ok := headerInt(line[:len(line)-1])
		if !ok || n > maxRequestArgs {
			return &limitError{msg: msgInvalidMultibulkLength}
		}
		if n <= 0 {
			// Redis skips a request whose count is below 1 (*0, *-1),
			// as it skips an empty inline line: it ends here, with no
			// arguments, and nothing runs.
			s.state = scanStart
			return nil
		}
		// Every argument costs at least "$0\r\n\r\n".
		if n > (s.max-s.size)/6 {
			return s.tooLarge()
		}
		s.args = n
		s.nextArg()
		return nil
	}
	if len(line) < 2 || line[len(line)-1] != '\r' {
		return &limitError{msg: msgInvalidBulkLength}
	}
	n, ok := headerInt(line[1 : len(line)-1])
	if !ok || n < 0 {
		return &limitError{msg: msgInvalidBulkLength}
	}
	if n > s.max-s.size-2 {
		return s.tooLarge()
	}
	s.size += n + 2
	s.bulkLeft = n
	s.state = scanBulkBody
	if n == 0 {
		s.state = scanBulkCR
	}
	return nil
}

// invalidHeader is Redis's refusal of the header line being read.
func (s *requestScanner) invalidHeader() error {
	if s.state == scanCount {
		return &limitError{msg: msgInvalidMultibulkLength}
	}
	return &limitError{msg: msgInvalidBulkLength}
}

// headerInt reads a count or a length as Redis's string2ll does: an
// optional '-', then digits, within int64; no '+', no leading zero but
// "0" itself, no "-0" — exactly the numbers strconv.FormatInt writes
// (TestHeaderIntIsRedisString2ll). redcon, and strconv.ParseInt, also
// take "+5" and "007": Redis refuses those requests, so the proxy does.
// Hand-written rather than ParseInt and a comparison: ParseInt was a
// twentieth of the proxy's CPU under SET -P 16, four header lines a
// command (docs/performance.md, session 16).
func headerInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || b[0] == '0' && (len(b) > 1 || neg) {
		return 0, false
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // -2^63
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' || n > math.MaxInt64/10 {
			return 0, false
		}
		if n = n*10 + uint64(c-'0'); n > limit {
			return 0, false
		}
	}
	if neg {
		return -int64(n), true // -2^63 wraps to itself
	}
	return int64(n), true
}

// ended records a request's end at i, if that is where one ended.
func (s *requestScanner) ended(i int) {
	if s.trackEnds && s.state == scanStart {
		s.ends = append(s.ends, i)
		if s.trackSpans {
			s.spanEnds = append(s.spanEnds, len(s.spans))
		}
	}
}

func (s *requestScanner) nextArg() {
	if s.args <= 0 {
		s.state = scanStart
		return
	}
	s.args--
	s.state = scanBulkHead
}

func (s *requestScanner) tooLarge() error {
	return &limitError{msg: errTooLarge(s.max), tooLarge: true}
}

// guardedConn is a client connection as the proxy sees it: reads pass the
// request scanner, the idle timeout and the request timeout, and shutdown
// can wake a blocked read.
type guardedConn struct {
	net.Conn
	scanner        requestScanner
	idle           time.Duration // between requests; 0 never
	requestTimeout time.Duration // from a request's first byte to its last; 0 never
	// writeTimeout bounds each write to the client (request_timeout; 0
	// never): a client that stops reading its replies would otherwise hold
	// its batch's share of the budget, and its connection, for ever.
	writeTimeout time.Duration
	draining     *atomic.Bool
	// partial: the bytes read so far end part-way through a request. Atomic
	// only so that a test can watch it from another goroutine.
	partial atomic.Bool
	// requestStart is when the read that brought the first byte of the
	// request in progress returned.
	requestStart time.Time
	// large are the server's slots for reading large requests; holdsLarge:
	// this client holds one (see largeReads).
	large      largeReads
	holdsLarge bool
	// unfinished is the server's bound on unfinished requests; this
	// client's is charged unfinishedHeld, and holdsTurn: it may read on
	// while that bound is full (see unfinishedBytes).
	unfinished     *unfinishedBytes
	unfinishedHeld int64
	holdsTurn      bool
	// prefix is what an event loop had read from the client and not run
	// when it handed the client over (loop.handOver), from a request's
	// first byte; handedOver is the client's state, for Server.accept.
	prefix     []byte
	handedOver *connState
	// refused is the loop's refusal of the request that followed prefix
	// (loop.refuse): Read fails with it once prefix is read.
	refused error
}

// waitLarge takes a slot for reading a large request, if the request in
// progress has become one. The wait is the proxy's, not the client's, so
// it does not count against request_timeout.
func (c *guardedConn) waitLarge(mid bool) {
	if !mid || c.holdsLarge || c.large == nil || c.scanner.size < largeRequestBytes {
		return
	}
	start := time.Now()
	c.large <- struct{}{}
	c.holdsLarge = true
	c.requestStart = c.requestStart.Add(time.Since(start))
}

// releaseLarge gives back this client's slot for reading a large request.
func (c *guardedConn) releaseLarge() {
	if c.holdsLarge {
		c.holdsLarge = false
		<-c.large
	}
}

// holdUnfinished makes n the bytes charged for this client's unfinished
// request: bytes in memory already, none up to clientMemory. 0 when it
// has gone.
func (c *guardedConn) holdUnfinished(n int) {
	if c.unfinished == nil {
		return
	}
	if n <= clientMemory {
		n = 0
	}
	c.unfinished.change(int64(n) - c.unfinishedHeld)
	c.unfinishedHeld = int64(n)
}

// releaseTurn gives back the turn to read on past the bound on
// unfinished requests, once the request it was taken for is whole.
func (c *guardedConn) releaseTurn() {
	if c.holdsTurn {
		c.holdsTurn = false
		c.unfinished.releaseTurn()
	}
}

// awaitUnfinished waits, before the buffer of the request in progress
// grows past clientMemory, until the bound on unfinished requests has
// room, or this client has the turn to read on past it, or holds a large
// read's slot. Unlike the wait for a slot, this wait counts against
// request_timeout: a client that stopped part-way is closed by it, and
// gives its bytes back.
func (c *guardedConn) awaitUnfinished() error {
	if c.unfinished == nil || c.holdsLarge || c.holdsTurn {
		return nil
	}
	var timer *time.Timer
	for c.unfinished.full() && !c.holdsTurn {
		if c.draining.Load() {
			return errDraining
		}
		// A moment at most, to see a drain.
		wait := 100 * time.Millisecond
		if c.requestTimeout > 0 {
			left := time.Until(c.requestStart.Add(c.requestTimeout))
			if left <= 0 {
				return errRequestTimeout
			}
			wait = min(wait, left)
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case c.unfinished.turn <- struct{}{}:
			c.holdsTurn = true
		case <-c.unfinished.roomCh():
		case <-timer.C:
		}
	}
	return nil
}

// drainFinishRequest is how long a draining server waits for a client to
// finish sending a command it has begun.
const drainFinishRequest = time.Second

// errRequestTimeout closes a client that began a request and did not finish
// it within request_timeout.
var errRequestTimeout = errors.New("request not completed within request_timeout")

// midRequest says whether the bytes read so far end part-way through a
// request: the client has begun sending another command.
func (c *guardedConn) midRequest() bool { return c.partial.Load() }

// errWriteTimeout closes a client that did not take a piece of its replies
// within request_timeout.
var errWriteTimeout = errors.New("replies not taken within request_timeout")

// Write writes to the client within writeTimeout; a client that does not
// take the bytes in time fails the write with errWriteTimeout. It skips
// empty writes: redcon flushes after every batch, and Go makes a system
// call even for nothing (a batch that handle held back).
func (c *guardedConn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if c.writeTimeout > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	n, err := c.Conn.Write(b)
	if err != nil && isTimeout(err) {
		err = errWriteTimeout
	}
	return n, err
}

// isTimeout reports whether err is a deadline's. Called only for an
// error: its errors.As target escapes, an allocation per call, and Read
// and Write run for every batch.
func isTimeout(err error) bool {
	var timeout net.Error
	return errors.As(err, &timeout) && timeout.Timeout()
}

// Read reads from the client. On a limit violation it fails with the
// *limitError, and with the bytes read: the requests that ended in them
// before the refused one (the scanner's ends) are the client's, answered
// before the refusal (Server.readFailed). Once a handed-over client's
// prefix is read, the loop's refusal of what followed it, if any.
func (c *guardedConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		// It passed the loop's scanner, limits and timeouts already; this
		// scan finds where its requests end (requestReader) and leaves the
		// scanner where the loop's was.
		n := copy(b, c.prefix)
		if c.prefix = c.prefix[n:]; len(c.prefix) == 0 {
			c.prefix = nil // an empty tail would keep the whole array
		}
		if lerr := c.scanner.scan(b[:n]); lerr != nil {
			return n, lerr
		}
		return n, nil
	}
	if c.refused != nil {
		return 0, c.refused
	}
	mid := c.midRequest()
	c.waitLarge(mid)
	if c.idle > 0 || c.requestTimeout > 0 {
		// idle_timeout alone would let a client that sends one byte a
		// little more often than that hold its connection for ever; a
		// request it has begun is due by requestStart+request_timeout.
		var deadline time.Time
		if c.idle > 0 {
			deadline = time.Now().Add(c.idle)
		}
		if mid && c.requestTimeout > 0 {
			if due := c.requestStart.Add(c.requestTimeout); deadline.IsZero() || due.Before(deadline) {
				deadline = due
			}
		}
		_ = c.Conn.SetReadDeadline(deadline)
	}
	// Checked after setting the deadline, so a Shutdown that set its
	// wake-up deadline in between is never overwritten unnoticed. A client
	// part-way through a command gets a moment to finish it: the commands
	// before it are held back for it (connState.held) and then answered.
	if c.draining.Load() {
		if !mid {
			return 0, errDraining
		}
		_ = c.Conn.SetReadDeadline(time.Now().Add(drainFinishRequest))
	}
	n, err := c.Conn.Read(b)
	if n == 0 && err != nil && isTimeout(err) {
		if mid && c.requestTimeout > 0 && time.Since(c.requestStart) >= c.requestTimeout {
			return 0, errRequestTimeout
		}
		if c.draining.Load() && mid {
			// Shutdown's wake-up met a read waiting for the rest of a command.
			_ = c.Conn.SetReadDeadline(time.Now().Add(drainFinishRequest))
			n, err = c.Conn.Read(b)
		}
	}
	if n > 0 {
		begun := c.scanner.begun
		if lerr := c.scanner.scan(b[:n]); lerr != nil {
			return n, lerr
		}
		mid = c.scanner.state != scanStart
		if mid && c.scanner.begun != begun {
			c.requestStart = time.Now()
		}
		c.partial.Store(mid)
	}
	return n, err
}
