package proxy

import (
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// requestScanner follows the RESP request stream as bytes arrive and fails
// as soon as one request is larger than the limit, however it is declared.
// redcon buffers a request until it is complete and grows its buffer to fit,
// so the limit has to be enforced here, before those bytes are read into
// memory: a header like $999999999999 is refused on sight.
type requestScanner struct {
	max int64

	state    scanState
	size     int64 // bytes of the current request so far
	args     int64 // bulk strings still expected in the current request
	bulkLeft int64 // bytes (payload + CRLF) still to skip in the current bulk
	line     []byte
}

type scanState uint8

const (
	scanStart    scanState = iota // first byte of a request
	scanCount                     // *<count>\r\n
	scanBulkHead                  // $<len>\r\n
	scanBulkBody                  // payload bytes
	scanInline                    // an inline command, up to \n
)

// maxHeaderLine bounds a *count or $len line; real ones are a few digits.
const maxHeaderLine = 32

type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// scan consumes b and returns an error for the client when a limit is hit.
func (s *requestScanner) scan(b []byte) error {
	for i := 0; i < len(b); {
		switch s.state {
		case scanStart:
			s.size, s.line = 0, s.line[:0]
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
					break
				}
				if s.size > s.max {
					return s.tooLarge()
				}
			}
		case scanCount, scanBulkHead:
			for ; i < len(b) && b[i] != '\n'; i++ {
				s.line = append(s.line, b[i])
				if len(s.line) > maxHeaderLine {
					return &limitError{msgBadHeader}
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
		case scanBulkBody:
			n := min(int64(len(b)-i), s.bulkLeft)
			i += int(n)
			s.bulkLeft -= n
			if s.bulkLeft == 0 {
				s.nextArg()
			}
		}
	}
	return nil
}

// header interprets a completed *count or $len line.
func (s *requestScanner) header() error {
	line := s.line
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	s.line = s.line[:0]
	if s.state == scanCount {
		n, err := strconv.ParseInt(string(line), 10, 64)
		if err != nil {
			// Let redcon answer the protocol error itself.
			s.state = scanStart
			return nil
		}
		// Every argument costs at least "$0\r\n\r\n".
		if n*6 > s.max {
			return s.tooLarge()
		}
		s.args = n
		s.nextArg()
		return nil
	}
	if len(line) == 0 || line[0] != '$' {
		s.state = scanStart
		return nil
	}
	n, err := strconv.ParseInt(string(line[1:]), 10, 64)
	if err != nil || n < 0 {
		s.state = scanStart
		return nil
	}
	if s.size+n+2 > s.max {
		return s.tooLarge()
	}
	s.size += n + 2
	s.bulkLeft = n + 2
	s.state = scanBulkBody
	if s.bulkLeft == 0 {
		s.nextArg()
	}
	return nil
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
	return &limitError{errTooLarge(s.max)}
}

// guardedConn is a client connection as the proxy sees it: reads pass the
// request scanner and the idle timeout, and shutdown can wake a blocked
// read.
type guardedConn struct {
	net.Conn
	scanner  requestScanner
	idle     time.Duration
	draining *atomic.Bool
	// partial: the bytes read so far end part-way through a request. Atomic
	// only so that a test can watch it from another goroutine.
	partial atomic.Bool
}

// drainFinishRequest is how long a draining server waits for a client to
// finish sending a command it has begun.
const drainFinishRequest = time.Second

// midRequest says whether the bytes read so far end part-way through a
// request: the client has begun sending another command. Always false
// without a request-size limit, which turns the scanner off.
func (c *guardedConn) midRequest() bool { return c.partial.Load() }

// Write skips empty writes: redcon flushes after every batch, and Go makes
// a system call even for nothing (a batch that handle held back).
func (c *guardedConn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return c.Conn.Write(b)
}

// Read reads from the client. On a limit violation it answers the client
// itself (redcon would not) and fails, which makes redcon close the
// connection.
func (c *guardedConn) Read(b []byte) (int, error) {
	if c.idle > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	// Checked after setting the idle deadline, so a Shutdown that set its
	// wake-up deadline in between is never overwritten unnoticed. A client
	// part-way through a command gets a moment to finish it: the commands
	// before it are held back for it (connState.held) and then answered.
	if c.draining.Load() {
		if !c.midRequest() {
			return 0, errDraining
		}
		_ = c.Conn.SetReadDeadline(time.Now().Add(drainFinishRequest))
	}
	n, err := c.Conn.Read(b)
	var timeout net.Error
	if n == 0 && errors.As(err, &timeout) && timeout.Timeout() && c.draining.Load() && c.midRequest() {
		// Shutdown's wake-up met a read waiting for the rest of a command.
		_ = c.Conn.SetReadDeadline(time.Now().Add(drainFinishRequest))
		n, err = c.Conn.Read(b)
	}
	if n > 0 && c.scanner.max > 0 {
		if lerr := c.scanner.scan(b[:n]); lerr != nil {
			_, _ = c.Conn.Write([]byte("-" + lerr.Error() + "\r\n"))
			return 0, lerr
		}
		c.partial.Store(c.scanner.state != scanStart)
	}
	return n, err
}
