package store

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync/atomic"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// ErrReplyTooLarge: a read's value did not fit in what its client may
// still be answered (Room), so it was not kept. The client is past its
// reply limit (server.max_client_reply_bytes).
var ErrReplyTooLarge = errors.New("value larger than the client's reply room")

// Room is what the values a client's reads bring back may take: its reply
// limit less what it has not been sent yet. A plain GET's or MGET's reply
// is read raw (rawRead), each value charged to its client's room before it
// is read; one that does not fit is skipped rather than held, and its read
// gets ErrReplyTooLarge. Without it, 300 pipelined GETs of one 1 MB
// session held 300 MB for a client allowed 1 MiB of replies before any
// limit was consulted. Charged from the goroutines reading replies, so
// atomic.
type Room struct{ left atomic.Int64 }

// Reset gives the room n bytes.
func (r *Room) Reset(n int64) { r.left.Store(n) }

// take charges n bytes; false once the room is spent (a nil room has no
// bound). What did not fit stays charged: a read after it does not fit
// either.
func (r *Room) take(n int) bool {
	return r == nil || r.left.Add(-int64(n)) >= 0
}

// SetRoom says that the reads queued next, until the next SetRoom, whose
// value is the client's reply (GetReply, MGet) are bounded by room (nil:
// not bounded). Each keeps the room it was queued with, also when the
// read combiner merges it with other clients'.
func (b *Batch) SetRoom(room *Room) { b.room = room }

// rawRead is a plain read's GET or MGET (plan.closeRun), whose reply is
// read raw into its operations' result slots (readScanner) rather than
// into go-redis's strings. An error reply to it (MOVED, ASK…) is the
// command's error, as rawSet's. One allocation holds the command, its
// arguments and its scanner.
type rawRead struct {
	redis.RawWriteToCmd
	scan readScanner
	get  [2]interface{} // a GET's arguments
}

// newRawRead is the GET (one key) or MGET of keys, serving ops[idx[i]]
// for keys[i].
func newRawRead(ops []op, idx []int, keys []string) *rawRead {
	r := &rawRead{scan: readScanner{ops: ops, idx: idx}}
	var args []interface{}
	if len(keys) == 1 {
		r.get = [2]interface{}{"get", &keys[0]}
		args = r.get[:]
	} else {
		args = keysArgs("mget", keys)
	}
	r.RawWriteToCmd = *redis.NewRawWriteToCmd(context.Background(), &r.scan, args...)
	return r
}

// deliver gives the operations the call's failure, or errNoResult where
// the reply was cut short; the others have theirs already.
func (r *rawRead) deliver() {
	err := r.Err()
	if err == nil && !r.scan.complete {
		err = errNoResult
	}
	if err == nil {
		if len(r.scan.idx) == 1 { // a GET: its nil is no key at all
			res := r.scan.ops[r.scan.idx[0]].res
			res.absent = res.err == redis.Nil
		}
		return
	}
	for _, i := range r.scan.idx {
		r.scan.ops[i].res.err = err
	}
}

// readScanner follows a GET's or an MGET's reply as go-redis streams it
// (Write: each line, then its CRLF; ReadFrom: a bulk string's bytes and
// CRLF, under an io.LimitedReader), and gives the operation of each value
// its result: the value, read into a slice of its own once its room has
// taken its size; redis.Nil for a nil; ErrReplyTooLarge, the bytes
// skipped, where the room is spent. An error reply to the whole command
// is given back as the Write's error, which go-redis makes the command's
// (as previousReply). It also takes chunks cut anywhere.
type readScanner struct {
	replyFrames
	ops []op
	idx []int // the operation of each element
	// elem is the element being read (-1: the reply's first line).
	elem int
	// elems: how many the reply has (1 for a GET's bulk string).
	elems int
	// received is the memory the values hold (Batch.TakeReplyBytes).
	received int64
	complete bool
}

// replyFrames follows a reply's framing as go-redis streams it raw
// (Write: each line, then its CRLF; ReadFrom: a bulk string's bytes and
// CRLF, under an io.LimitedReader), in chunks cut anywhere: lines up to
// their CRLF, a value's bytes into data, bytes to skip. What the lines and
// values mean is its scanner's (replyItems): readScanner's and
// valueScanner's.
type replyFrames struct {
	state scanState
	line  []byte // the line so far; nil before a reply's first
	buf   [24]byte
	cr    bool   // the line's CR has been seen
	data  []byte // the value being read
	pos   int
	skip  int // bytes to skip: a value past its room, then the CRLF
}

type scanState uint8

const (
	scanLine scanState = iota // reading a line up to its CRLF
	scanData                  // reading a value into data
	scanSkip                  // skipping skip bytes
)

// replyItems is what a scanner does at each step of replyFrames.
type replyItems interface {
	begin()                 // a new reply starts
	endLine(l []byte) error // l is a whole line, without its CRLF
	endData()               // data is whole: its CRLF is to skip
	endSkip()               // the bytes to skip are past
}

// write follows b, telling it each step.
func (f *replyFrames) write(it replyItems, b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		switch f.state {
		case scanLine:
			if f.line == nil { // a new reply
				f.line = f.buf[:0]
				it.begin()
			}
			c := b[0]
			b = b[1:]
			switch {
			case f.cr && c == '\n':
				f.cr = false
				line := f.line
				f.line = f.buf[:0]
				if len(line) == 0 {
					return n - len(b), errors.New("empty reply line")
				}
				if err := it.endLine(line); err != nil {
					return n - len(b), err
				}
			case f.cr:
				return n - len(b), errors.New("malformed reply line")
			case c == '\r':
				f.cr = true
			default:
				f.line = append(f.line, c)
			}
		case scanData:
			k := copy(f.data[f.pos:], b)
			f.pos += k
			b = b[k:]
			if f.pos == len(f.data) {
				it.endData()
			}
		case scanSkip:
			k := min(f.skip, len(b))
			f.skip -= k
			b = b[k:]
			if f.skip == 0 {
				it.endSkip()
			}
		}
	}
	return n, nil
}

// readFrom reads a value's bytes straight into data, and skips with the
// reader's Discard (go-redis's bufio.Reader under io.CopyN) what is not
// kept, neither copied nor allocated.
func (f *replyFrames) readFrom(it replyItems, r io.Reader) (int64, error) {
	var total int64
	for {
		var n int
		var err error
		switch {
		case f.state == scanData:
			n, err = r.Read(f.data[f.pos:])
			f.pos += n
			if f.pos == len(f.data) {
				it.endData()
			}
		case f.state == scanSkip && discards(r):
			lr := r.(*io.LimitedReader)
			d := lr.R.(interface{ Discard(int) (int, error) })
			n, err = d.Discard(min(f.skip, int(lr.N)))
			lr.N -= int64(n)
			if f.skip -= n; f.skip == 0 {
				it.endSkip()
			}
		default: // a line, or a skip without Discard: a few bytes at a time
			var scratch [64]byte
			n, err = r.Read(scratch[:])
			if _, werr := f.write(it, scratch[:n]); werr != nil && err == nil {
				err = werr
			}
		}
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// empty is the value of an empty string: not nil, which would read as
// missing.
var empty = []byte{}

func (s *readScanner) Write(b []byte) (int, error) { return s.write(s, b) }

func (s *readScanner) ReadFrom(r io.Reader) (int64, error) { return s.readFrom(s, r) }

func (s *readScanner) begin() { s.elem, s.elems, s.complete, s.received = -1, 0, false, 0 }

func (s *readScanner) endData() { s.setValue(s.data) }

func (s *readScanner) endSkip() { s.next() }

// discards reports whether r is an io.LimitedReader over a reader that can
// Discard.
func discards(r io.Reader) bool {
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		return false
	}
	_, ok = lr.R.(interface{ Discard(int) (int, error) })
	return ok
}

// endLine acts on the line just read.
func (s *readScanner) endLine(line []byte) error {
	if s.elem < 0 { // the reply's first line
		switch line[0] {
		case '-':
			s.line, s.complete = nil, true
			return replyError(line[1:])
		case '*':
			n, err := strconv.Atoi(string(line[1:]))
			if err != nil || n != len(s.idx) {
				return errors.New("unexpected reply to MGET: " + strconv.Quote(string(line)))
			}
			s.elems, s.elem = n, 0
			if n == 0 {
				s.done()
			}
			return nil
		}
		s.elems, s.elem = 1, 0 // a GET's one value
	}
	switch line[0] {
	case '$':
		size, err := strconv.Atoi(string(line[1:]))
		switch {
		case err != nil:
			return errors.New("malformed bulk string length")
		case size < 0:
			s.setResult(nil, redis.Nil)
		case !s.ops[s.idx[s.elem]].room.take(size):
			s.state, s.skip = scanSkip, size+2 // before setResult: not next yet
			s.setResult(nil, ErrReplyTooLarge)
		case size == 0:
			s.data, s.pos = empty, 0
			s.setValue(empty)
		default:
			s.data, s.pos, s.state = make([]byte, size), 0, scanData
		}
	case '_':
		s.setResult(nil, redis.Nil)
	default:
		return errors.New("unexpected reply to GET or MGET: " + strconv.Quote(string(line[:1])))
	}
	return nil
}

// setValue ends reading a value: its CRLF is skipped next.
func (s *readScanner) setValue(v []byte) {
	res := s.ops[s.idx[s.elem]].res
	res.data, res.err = v, nil
	s.received += 32 + int64(len(v))
	s.data, s.state, s.skip = nil, scanSkip, 2
}

// setResult gives the element's operation a result without a value
// (a nil, or ErrReplyTooLarge while its bytes are skipped).
func (s *readScanner) setResult(v []byte, err error) {
	res := s.ops[s.idx[s.elem]].res
	res.data, res.err = v, err
	if s.state != scanSkip {
		s.next()
	}
}

// next moves on to the next element's line, or ends the reply.
func (s *readScanner) next() {
	s.state = scanLine
	if s.elem++; s.elem >= s.elems {
		s.done()
	}
}

func (s *readScanner) done() {
	s.line, s.complete = nil, true
}

// valueScanner reads any reply raw, as readScanner reads a GET's, into
// the value go-redis would give (string, int64, nil, []interface{}),
// charging each bulk string to room before it is read (its bytes and
// valueStringBytes), and each array its elements' slots (replyElemBytes
// each): once one does not fit,
// tooLarge is set and nothing more is kept or allocated. For a script's
// reply whose values are the client's (a hash session's reads,
// HashReadReply; a client's script, Eval).
type valueScanner struct {
	replyFrames
	room *Room
	open []frame // the arrays being filled, innermost last
	// value is the reply once complete; received, the memory it holds.
	value              interface{}
	received           int64
	tooLarge, complete bool
}

// valueStringBytes is what a string of a valueScanner's value holds
// besides its bytes (its header, boxed in an interface), charged to the
// room with them: millions of two-byte strings hold 20 times their bytes.
const valueStringBytes = 32

// frame is an array of a reply being read, and how many elements it
// still lacks.
type frame struct {
	vals []interface{}
	left int
}

func (s *valueScanner) Write(b []byte) (int, error) { return s.write(s, b) }

func (s *valueScanner) ReadFrom(r io.Reader) (int64, error) { return s.readFrom(s, r) }

// begin starts a reply over (a script's, sent again after NOSCRIPT).
func (s *valueScanner) begin() {
	s.open, s.value, s.received, s.tooLarge, s.complete = s.open[:0], nil, 0, false, false
}

func (s *valueScanner) endSkip() { s.state = scanLine }

// endLine acts on the line just read.
func (s *valueScanner) endLine(line []byte) error {
	switch line[0] {
	case '-':
		if len(s.open) == 0 { // the reply is an error: the command's
			s.line, s.complete = nil, true
			return replyError(line[1:])
		}
		s.add(replyError(line[1:]))
	case '+':
		s.add(string(line[1:]))
	case ':':
		v, err := strconv.ParseInt(string(line[1:]), 10, 64)
		if err != nil {
			return errors.New("malformed integer reply")
		}
		s.add(v)
	case '_':
		s.add(nil)
	case '$':
		size, err := strconv.Atoi(string(line[1:]))
		switch {
		case err != nil:
			return errors.New("malformed bulk string length")
		case size < 0:
			s.add(nil)
		case !s.room.take(valueStringBytes + size):
			s.tooLarge = true
			s.state, s.skip = scanSkip, size+2
			s.add(nil)
		default:
			s.data, s.pos, s.state = make([]byte, size), 0, scanData
			if size == 0 {
				s.endData()
			}
		}
	case '*':
		n, err := strconv.Atoi(string(line[1:]))
		switch {
		case err != nil:
			return errors.New("malformed array length")
		case n < 0:
			s.add(nil)
		case n == 0:
			s.add([]interface{}{})
		default:
			// Each element takes a slot of the array, charged with the
			// header: a script's reply can be millions of small elements,
			// whose bytes alone the room would hardly see. Past the room
			// nothing more is kept; the reply is only followed to its end.
			if !s.tooLarge && !s.room.take(min(n, maxReplyItemBytes)*replyElemBytes) {
				s.tooLarge = true
			}
			var vals []interface{}
			if !s.tooLarge {
				// Its elements are lines of at least 3 bytes: a count the
				// reply does not hold is not allocated up front.
				vals = make([]interface{}, 0, min(n, 1024))
			}
			s.open = append(s.open, frame{vals: vals, left: n})
			s.received += 24
		}
	default:
		return errors.New("unexpected reply type " + strconv.Quote(string(line[:1])))
	}
	return nil
}

// endData ends reading a bulk string: its CRLF is skipped next.
func (s *valueScanner) endData() {
	// go-redis gives strings; data is this one's alone, so it is not
	// copied into one.
	v := unsafe.String(unsafe.SliceData(s.data), len(s.data))
	s.data, s.state, s.skip = nil, scanSkip, 2
	s.add(v)
}

// add places a value in the array being filled, closing those it
// completes, or makes it the reply.
func (s *valueScanner) add(v interface{}) {
	for {
		if str, ok := v.(string); ok {
			s.received += 32 + int64(len(str))
		} else if _, ok := v.([]interface{}); !ok {
			s.received += 16
		}
		if len(s.open) == 0 {
			s.value, s.complete, s.line = v, true, nil
			return
		}
		top := &s.open[len(s.open)-1]
		if !s.tooLarge { // else the reply is ErrReplyTooLarge: keep nothing
			top.vals = append(top.vals, v)
		}
		if top.left--; top.left > 0 {
			return
		}
		v = top.vals
		s.open = s.open[:len(s.open)-1]
	}
}
