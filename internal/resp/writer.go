// Package resp encodes Redis protocol replies into a byte buffer.
//
// The proxy answers a pipelined batch out of order of completion (connection
// commands at once, upstream commands after the batch's round trip), so each
// command writes into its own Writer and the proxy sends the buffers in
// request order. Proto is the client's protocol (2 or 3, after HELLO 3); the
// RESP3 encodings hang off the same methods, so handlers never care which
// protocol the client speaks.
package resp

import (
	"fmt"
	"math"
	"strconv"
)

// Writer appends RESP replies to Buf.
type Writer struct {
	Buf   []byte
	Proto int // 2 or 3; default: 2
	// Limit bounds what this writer and the others sharing it append;
	// nil: no bound.
	Limit *Limit
}

// Limit is a number of bytes that the Writers sharing it may append
// between them: a client's replies held at once
// (server.max_client_reply_bytes). A reply is judged as it is built, not
// once it is whole: a command can build a reply many times its request
// and its upstream reply (one field of a session named a thousand times),
// which, judged afterwards, would have been held whole first. Past the
// limit every Writer sharing it drops what it is given; the caller sees
// Over and answers the limit's error instead.
type Limit struct {
	left int64 // negative: over
}

// Reset lets the writers sharing l append n bytes from now on.
func (l *Limit) Reset(n int64) { l.left = n }

// Over says whether the writers sharing l were given more than it allows.
func (l *Limit) Over() bool { return l.left < 0 }

// room takes n bytes from the writer's limit and says whether they fit.
// Once over, nothing fits: a reply is never left with a hole in it.
func (w *Writer) room(n int) bool {
	if w.Limit == nil {
		return true
	}
	w.Limit.left -= int64(n)
	return w.Limit.left >= 0
}

// Room is how many more bytes the writer may append before its limit
// (none left once over); the largest int64 without a limit.
func (w *Writer) Room() int64 {
	if w.Limit == nil {
		return math.MaxInt64
	}
	return max(w.Limit.left, 0)
}

// Over says whether the writer's limit has been passed: what it is given
// is dropped, so a handler writing many elements may stop.
func (w *Writer) Over() bool { return w.Limit != nil && w.Limit.left < 0 }

// Exceed puts the writer over its limit: a value for its reply did not
// fit in what the limit left and was not even read
// (store.ErrReplyTooLarge).
func (w *Writer) Exceed() {
	if w.Limit != nil && w.Limit.left >= 0 {
		w.Limit.left = -1
	}
}

// Reset empties the buffer and keeps its memory and its limit.
func (w *Writer) Reset(proto int) {
	w.Buf = w.Buf[:0]
	w.Proto = proto
}

// Simple writes a status reply such as +OK.
func (w *Writer) Simple(s string) {
	if !w.room(len(s) + 3) {
		return
	}
	w.Buf = append(w.Buf, '+')
	w.Buf = appendLine(w.Buf, s)
}

// OK writes +OK.
func (w *Writer) OK() {
	if !w.room(5) {
		return
	}
	w.Buf = append(w.Buf, "+OK\r\n"...)
}

// Error writes an error reply. msg starts with the error code (ERR,
// NOAUTH, TOMBSTONE…), as Redis's own replies do.
func (w *Writer) Error(msg string) {
	if !w.room(len(msg) + 3) {
		return
	}
	w.Buf = append(w.Buf, '-')
	w.Buf = appendLine(w.Buf, msg)
}

// Int writes an integer reply.
func (w *Writer) Int(n int64) {
	if !w.room(intLen(n) + 3) {
		return
	}
	w.Buf = append(w.Buf, ':')
	w.Buf = strconv.AppendInt(w.Buf, n, 10)
	w.Buf = append(w.Buf, '\r', '\n')
}

// Bulk writes a bulk string.
func (w *Writer) Bulk(b []byte) {
	if !w.room(intLen(int64(len(b))) + len(b) + 5) {
		return
	}
	w.Buf = append(w.Buf, '$')
	w.Buf = strconv.AppendInt(w.Buf, int64(len(b)), 10)
	w.Buf = append(w.Buf, '\r', '\n')
	w.Buf = append(w.Buf, b...)
	w.Buf = append(w.Buf, '\r', '\n')
}

// BulkString writes a bulk string.
func (w *Writer) BulkString(s string) {
	if !w.room(intLen(int64(len(s))) + len(s) + 5) {
		return
	}
	w.Buf = append(w.Buf, '$')
	w.Buf = strconv.AppendInt(w.Buf, int64(len(s)), 10)
	w.Buf = append(w.Buf, '\r', '\n')
	w.Buf = append(w.Buf, s...)
	w.Buf = append(w.Buf, '\r', '\n')
}

// Verbatim writes text as a verbatim string (=len txt:…) in RESP3, where
// Redis 7 uses one for INFO and CLIENT INFO/LIST, and as a bulk string in
// RESP2.
func (w *Writer) Verbatim(text string) {
	if w.Proto != 3 {
		w.BulkString(text)
		return
	}
	if !w.room(intLen(int64(len(text)+4)) + len(text) + 9) {
		return
	}
	w.Buf = append(w.Buf, '=')
	w.Buf = strconv.AppendInt(w.Buf, int64(len(text)+4), 10)
	w.Buf = append(w.Buf, "\r\ntxt:"...)
	w.Buf = append(w.Buf, text...)
	w.Buf = append(w.Buf, '\r', '\n')
}

// Null writes the null reply: $-1 in RESP2, _ in RESP3.
func (w *Writer) Null() {
	if w.Proto == 3 {
		w.nil3()
		return
	}
	if !w.room(5) {
		return
	}
	w.Buf = append(w.Buf, "$-1\r\n"...)
}

// NullArray writes the null array: *-1 in RESP2, _ in RESP3.
func (w *Writer) NullArray() {
	if w.Proto == 3 {
		w.nil3()
		return
	}
	if !w.room(5) {
		return
	}
	w.Buf = append(w.Buf, "*-1\r\n"...)
}

// nil3 writes RESP3's null.
func (w *Writer) nil3() {
	if !w.room(3) {
		return
	}
	w.Buf = append(w.Buf, "_\r\n"...)
}

// Array writes an array header; n elements must follow.
func (w *Writer) Array(n int) { w.header('*', n) }

// header writes an aggregate's header: kind, then n.
func (w *Writer) header(kind byte, n int) {
	if !w.room(intLen(int64(n)) + 3) {
		return
	}
	w.Buf = append(w.Buf, kind)
	w.Buf = strconv.AppendInt(w.Buf, int64(n), 10)
	w.Buf = append(w.Buf, '\r', '\n')
}

// Map writes a map header of n pairs; 2n elements must follow. RESP2 has no
// maps, so it becomes a flat array there, as Redis does.
func (w *Writer) Map(n int) {
	if w.Proto == 3 {
		w.header('%', n)
		return
	}
	w.Array(2 * n)
}

// Set writes a set header of n elements (an array in RESP2).
func (w *Writer) Set(n int) {
	if w.Proto == 3 {
		w.header('~', n)
		return
	}
	w.Array(n)
}

// Value writes a reply decoded by go-redis (string, int64, []interface{},
// nil, error) back in RESP. Used for passthrough commands, whose reply shape
// the proxy does not know in advance.
func (w *Writer) Value(v interface{}) {
	switch v := v.(type) {
	case nil:
		w.Null()
	case string:
		w.BulkString(v)
	case []byte:
		w.Bulk(v)
	case int64:
		w.Int(v)
	case bool:
		if v {
			w.Int(1)
		} else {
			w.Int(0)
		}
	case []interface{}:
		w.Array(len(v))
		for _, e := range v {
			if w.Over() {
				return
			}
			w.Value(e)
		}
	case map[interface{}]interface{}:
		w.Map(len(v))
		for k, e := range v {
			if w.Over() {
				return
			}
			w.Value(k)
			w.Value(e)
		}
	case error:
		w.Error(v.Error())
	default:
		w.BulkString(fmt.Sprint(v))
	}
}

// appendLine appends s with CR and LF replaced by spaces, then CRLF: a
// simple string or error must stay on one line or it corrupts the stream.
func appendLine(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, '\r', '\n')
}

// intLen is the length of n in decimal.
func intLen(n int64) int {
	l := 1
	if n < 0 {
		l++
		if n == -n { // the smallest int64
			return 20
		}
		n = -n
	}
	for ; n >= 10; n /= 10 {
		l++
	}
	return l
}
