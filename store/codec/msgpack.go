package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// JSON <-> MessagePack conversion for the msgpack format.
//
// Preserved: object key order (and duplicate keys), every value, and the
// exact text of every number. An integer written plainly that fits int64 or
// uint64 (9007199254740993 included) becomes a MessagePack int; a number
// that float64 formats back to the same text (1.5, 0.1, 1e-7) becomes a
// float64; any other number (1.0, -0, 1E5, 123456789012345678901234)
// becomes extension type extJSONNumber holding its text verbatim, so no
// digit is ever rounded away.
//
// Not preserved: whitespace (output is compact), and how strings were
// escaped: "\u00e9" and "\/" come back as "é" and "/", output escapes only
// '"', '\' and control characters, and a lone UTF-16 surrogate escape
// becomes U+FFFD, as in encoding/json. Invalid UTF-8 passes through as is.
//
// The JSON side is a single-pass scanner of our own: encoding/json's Token
// API allocates per token. vmihailenco/msgpack encodes the scalars and
// reads everything back; map, array and string headers are written here
// because their length is only known after the contents (see reserved).
// Decoding also accepts MessagePack from other writers (any int width,
// float32) as long as map keys are strings and there is no bin or foreign
// extension type, since those have no JSON form.

// extJSONNumber is the MessagePack extension type for number text.
const extJSONNumber int8 = 1

// maxDepth bounds nesting both ways, as encoding/json does, so neither a
// payload nor a stored value can exhaust the stack.
const maxDepth = 10000

var errTooDeep = errors.New("nested too deeply")

// msgpackConv holds the state of one conversion; pooled by the codec so the
// library's encoder and decoder are not rebuilt per value.
type msgpackConv struct {
	// limit bounds the JSON text toJSON writes (the decode limit): a body
	// of a few bytes per element writes several times more (a nil becomes
	// "null", a control character "\u0001"), so a stored value within the
	// decompression limit could otherwise convert to gigabytes.
	limit int
	src   []byte
	pos   int // JSON read position
	depth int
	out   appendWriter
	slots []int            // offsets in out of the header slots reserved, in order
	enc   *msgpack.Encoder // writes into out
	dec   *msgpack.Decoder // reads from rd
	rd    bytes.Reader
}

func newMsgpackConv() *msgpackConv {
	c := &msgpackConv{}
	c.enc = msgpack.NewEncoder(&c.out)
	c.dec = msgpack.NewDecoder(&c.rd)
	return c
}

// fromJSON appends the MessagePack form of the JSON text src, which the
// caller has validated, to dst.
func (c *msgpackConv) fromJSON(dst, src []byte) ([]byte, error) {
	c.src, c.pos, c.depth, c.out.b, c.slots = src, 0, 0, dst, c.slots[:0]
	defer func() {
		c.src, c.out.b = nil, nil
		if cap(c.slots) > maxPooledSlots {
			c.slots = nil
		}
	}()
	if err := c.value(); err != nil {
		return nil, err
	}
	c.skipSpace()
	if c.pos != len(c.src) {
		return nil, c.syntaxError()
	}
	c.compact()
	return c.out.b, nil
}

func (c *msgpackConv) syntaxError() error {
	return fmt.Errorf("invalid JSON at offset %d", c.pos)
}

func (c *msgpackConv) peek() byte {
	if c.pos < len(c.src) {
		return c.src[c.pos]
	}
	return 0
}

func (c *msgpackConv) skipSpace() {
	i := c.pos
	for i < len(c.src) && (c.src[i] == ' ' || c.src[i] == '\n' || c.src[i] == '\t' || c.src[i] == '\r') {
		i++
	}
	c.pos = i
}

func (c *msgpackConv) value() error {
	c.skipSpace()
	switch ch := c.peek(); {
	case ch == '{':
		return c.object()
	case ch == '[':
		return c.array()
	case ch == '"':
		return c.string()
	case ch == 't' && c.literal("true"):
		return c.enc.EncodeBool(true)
	case ch == 'f' && c.literal("false"):
		return c.enc.EncodeBool(false)
	case ch == 'n' && c.literal("null"):
		return c.enc.EncodeNil()
	case ch == '-' || '0' <= ch && ch <= '9':
		return c.number()
	}
	return c.syntaxError()
}

func (c *msgpackConv) literal(word string) bool {
	if !bytes.HasPrefix(c.src[c.pos:], []byte(word)) {
		return false
	}
	c.pos += len(word)
	return true
}

func (c *msgpackConv) object() error {
	if c.depth++; c.depth > maxDepth {
		return errTooDeep
	}
	c.pos++ // '{'
	start := c.reserve()
	n := 0
	c.skipSpace()
	if c.peek() == '}' {
		c.pos++
	} else {
		for {
			c.skipSpace()
			if c.peek() != '"' {
				return c.syntaxError()
			}
			if err := c.string(); err != nil {
				return err
			}
			c.skipSpace()
			if c.peek() != ':' {
				return c.syntaxError()
			}
			c.pos++
			if err := c.value(); err != nil {
				return err
			}
			n++
			if done, err := c.next('}'); err != nil {
				return err
			} else if done {
				break
			}
		}
	}
	c.patch(start, n, kindMap)
	c.depth--
	return nil
}

func (c *msgpackConv) array() error {
	if c.depth++; c.depth > maxDepth {
		return errTooDeep
	}
	c.pos++ // '['
	start := c.reserve()
	n := 0
	c.skipSpace()
	if c.peek() == ']' {
		c.pos++
	} else {
		for {
			if err := c.value(); err != nil {
				return err
			}
			n++
			if done, err := c.next(']'); err != nil {
				return err
			} else if done {
				break
			}
		}
	}
	c.patch(start, n, kindArray)
	c.depth--
	return nil
}

// next consumes the ',' before another element, or the closing byte.
func (c *msgpackConv) next(closing byte) (done bool, err error) {
	c.skipSpace()
	switch c.peek() {
	case ',':
		c.pos++
		return false, nil
	case closing:
		c.pos++
		return true, nil
	}
	return true, c.syntaxError()
}

// string converts the JSON string at c.pos.
func (c *msgpackConv) string() error {
	// Locals, not fields, in this loop over every byte of every string.
	src, i := c.src, c.pos+1
	start, escaped := i, false
	for ; i < len(src) && src[i] != '"'; i++ {
		if src[i] == '\\' {
			escaped = true
			i++
		}
	}
	if i >= len(src) {
		c.pos = i
		return c.syntaxError()
	}
	text := src[start:i]
	c.pos = i + 1
	if !escaped {
		c.out.b = appendLen(c.out.b, len(text), kindStr)
		c.out.b = append(c.out.b, text...)
		return nil
	}
	// The unescaped length is known only after unescaping: write it in
	// place and fix the header afterwards.
	hdr := c.reserve()
	var ok bool
	if c.out.b, ok = appendUnescaped(c.out.b, text); !ok {
		return c.syntaxError()
	}
	c.patch(hdr, len(c.out.b)-hdr-reserved, kindStr)
	return nil
}

func (c *msgpackConv) number() error {
	start := c.pos
	for c.pos < len(c.src) && isNumberByte(c.src[c.pos]) {
		c.pos++
	}
	text := c.src[start:c.pos]
	if !isJSONNumber(text) {
		return c.syntaxError()
	}
	// string(text) below does not allocate for short numbers: strconv does
	// not keep its argument, so the conversion stays on the stack.
	if isCanonicalInt(text) {
		if text[0] == '-' {
			if v, err := strconv.ParseInt(string(text), 10, 64); err == nil {
				return c.enc.EncodeInt(v)
			}
		} else if v, err := strconv.ParseUint(string(text), 10, 64); err == nil {
			return c.enc.EncodeUint(v)
		}
	} else if f, err := strconv.ParseFloat(string(text), 64); err == nil {
		var buf [32]byte
		if bytes.Equal(appendJSONFloat(buf[:0], f), text) {
			return c.enc.EncodeFloat64(f)
		}
	}
	if err := c.enc.EncodeExtHeader(extJSONNumber, len(text)); err != nil {
		return err
	}
	c.out.b = append(c.out.b, text...)
	return nil
}

// Containers and escaped strings get a 5-byte header slot (the largest
// header) while their contents are written; patch writes the real header
// at the slot's start once the length is known, and compact closes every
// slot's gap in one pass at the end. Closing each gap as its container
// ended moved the container's contents, so a value nested d deep was
// moved d times: a string 9,990 arrays deep in 8 MiB took 6.8 s.
const reserved = 5

// maxPooledSlots keeps a pooled converter from pinning the slot list of a
// rare value of millions of containers.
const maxPooledSlots = 1 << 16

type lenKind int

const (
	kindMap lenKind = iota
	kindArray
	kindStr
)

func (c *msgpackConv) reserve() int {
	at := len(c.out.b)
	c.out.b = append(c.out.b, make([]byte, reserved)...)
	c.slots = append(c.slots, at)
	return at
}

func (c *msgpackConv) patch(at, n int, kind lenKind) {
	var hdr [reserved]byte
	copy(c.out.b[at:], appendLen(hdr[:0], n, kind))
}

// compact moves everything after each slot back over the slot's unused
// bytes, each byte once.
func (c *msgpackConv) compact() {
	if len(c.slots) == 0 {
		return
	}
	b := c.out.b
	w := c.slots[0]
	for i, at := range c.slots {
		end := len(b)
		if i+1 < len(c.slots) {
			end = c.slots[i+1]
		}
		w += copy(b[w:], b[at:at+headerLen(b[at])])
		w += copy(b[w:], b[at+reserved:end])
	}
	c.out.b = b[:w]
}

// headerLen is the length of a header appendLen wrote, from its first byte.
func headerLen(code byte) int {
	switch code {
	case msgpcode.Str8:
		return 2
	case msgpcode.Map16, msgpcode.Array16, msgpcode.Str16:
		return 3
	case msgpcode.Map32, msgpcode.Array32, msgpcode.Str32:
		return 5
	}
	return 1 // fixmap, fixarray, fixstr
}

// appendLen appends the most compact MessagePack header for a map, array
// or string of n elements or bytes.
func appendLen(dst []byte, n int, kind lenKind) []byte {
	var fix, fixLimit, c16, c32 byte
	switch kind {
	case kindMap:
		fix, fixLimit, c16, c32 = msgpcode.FixedMapLow, 16, msgpcode.Map16, msgpcode.Map32
	case kindArray:
		fix, fixLimit, c16, c32 = msgpcode.FixedArrayLow, 16, msgpcode.Array16, msgpcode.Array32
	default:
		fix, fixLimit, c16, c32 = msgpcode.FixedStrLow, 32, msgpcode.Str16, msgpcode.Str32
		if n >= 32 && n <= math.MaxUint8 {
			return append(dst, msgpcode.Str8, byte(n))
		}
	}
	switch {
	case n < int(fixLimit):
		return append(dst, fix|byte(n))
	case n <= math.MaxUint16:
		return append(dst, c16, byte(n>>8), byte(n))
	default:
		return append(dst, c32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// appendUnescaped appends the value of the JSON string body s (without
// quotes), decoding escapes the way encoding/json does.
func appendUnescaped(dst, s []byte) ([]byte, bool) {
	for i := 0; i < len(s); {
		j := bytes.IndexByte(s[i:], '\\')
		if j < 0 {
			return append(dst, s[i:]...), true
		}
		dst = append(dst, s[i:i+j]...)
		i += j
		if i+1 >= len(s) {
			return dst, false
		}
		esc := s[i+1]
		i += 2
		switch esc {
		case '"', '\\', '/':
			dst = append(dst, esc)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s[i:])
			if !ok {
				return dst, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2, ok = hex4(s[i+2:])
				}
				if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, false
		}
	}
	return dst, true
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func isNumberByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// isJSONNumber checks the JSON number grammar:
// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func isJSONNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = skipDigits(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		if j := skipDigits(s, i+1); j > i+1 {
			i = j
		} else {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if j := skipDigits(s, i); j > i {
			i = j
		} else {
			return false
		}
	}
	return i == len(s)
}

func skipDigits(s []byte, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

// isCanonicalInt reports whether the JSON number s is an integer that
// strconv formats back to exactly s: digits only, and not "-0".
func isCanonicalInt(s []byte) bool {
	digits := s
	if len(s) > 0 && s[0] == '-' {
		digits = s[1:]
		if len(digits) == 1 && digits[0] == '0' {
			return false
		}
	}
	return len(digits) > 0 && skipDigits(digits, 0) == len(digits)
}

// appendJSONFloat formats f as encoding/json and JavaScript do: plain
// decimal between 1e-6 and 1e21, exponent form outside, shortest digits.
func appendJSONFloat(dst []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 -> 1e-7, as JavaScript writes it
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// errConvertedTooLarge: the JSON text of a MessagePack body would pass
// the decode limit.
var errConvertedTooLarge = errors.New("converts to more than the decode limit")

// toJSON appends the JSON text of the MessagePack map src to dst, at most
// limit bytes of it.
func (c *msgpackConv) toJSON(dst, src []byte, limit int) ([]byte, error) {
	c.src, c.depth, c.out.b, c.limit = src, 0, dst, limit
	c.rd.Reset(src)
	c.dec.Reset(&c.rd)
	defer func() {
		c.src, c.out.b = nil, nil
		c.rd.Reset(nil)
	}()
	code, err := c.dec.PeekCode()
	if err != nil || !msgpcode.IsFixedMap(code) && code != msgpcode.Map16 && code != msgpcode.Map32 {
		return nil, corrupt("msgpack body is not a map")
	}
	if err := c.mpValue(); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, corrupt("msgpack: %w", err)
	}
	if c.rd.Len() != 0 {
		return nil, corrupt("msgpack: %d trailing bytes", c.rd.Len())
	}
	return c.out.b, nil
}

func (c *msgpackConv) mpValue() error {
	// Every value but a string writes a few bytes before the next check.
	if len(c.out.b) > c.limit {
		return errConvertedTooLarge
	}
	code, err := c.dec.PeekCode()
	if err != nil {
		return err
	}
	switch {
	case code == msgpcode.Nil:
		if err := c.dec.DecodeNil(); err != nil {
			return err
		}
		c.out.b = append(c.out.b, "null"...)
	case code == msgpcode.True || code == msgpcode.False:
		v, err := c.dec.DecodeBool()
		if err != nil {
			return err
		}
		c.out.b = strconv.AppendBool(c.out.b, v)
	case code == msgpcode.Uint64:
		v, err := c.dec.DecodeUint64()
		if err != nil {
			return err
		}
		c.out.b = strconv.AppendUint(c.out.b, v, 10)
	case msgpcode.IsFixedNum(code) || msgpcode.Uint8 <= code && code <= msgpcode.Int64:
		v, err := c.dec.DecodeInt64()
		if err != nil {
			return err
		}
		c.out.b = strconv.AppendInt(c.out.b, v, 10)
	case code == msgpcode.Float || code == msgpcode.Double:
		f, err := c.dec.DecodeFloat64()
		if err != nil {
			return err
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%v has no JSON form", f)
		}
		c.out.b = appendJSONFloat(c.out.b, f)
	case msgpcode.IsString(code):
		s, err := c.mpString()
		if err != nil {
			return err
		}
		if err := c.appendString(s); err != nil {
			return err
		}
	case msgpcode.IsFixedMap(code) || code == msgpcode.Map16 || code == msgpcode.Map32:
		return c.mpMap()
	case msgpcode.IsFixedArray(code) || code == msgpcode.Array16 || code == msgpcode.Array32:
		return c.mpArray()
	case msgpcode.IsExt(code):
		return c.mpNumber()
	default:
		return fmt.Errorf("unsupported type code 0x%02x", code)
	}
	return nil
}

func (c *msgpackConv) mpMap() error {
	if c.depth++; c.depth > maxDepth {
		return errTooDeep
	}
	n, err := c.dec.DecodeMapLen()
	if err != nil {
		return err
	}
	c.out.b = append(c.out.b, '{')
	for i := 0; i < n; i++ {
		if i > 0 {
			c.out.b = append(c.out.b, ',')
		}
		code, err := c.dec.PeekCode()
		if err != nil {
			return err
		}
		if !msgpcode.IsString(code) {
			return fmt.Errorf("map key of type code 0x%02x is not a string", code)
		}
		k, err := c.mpString()
		if err != nil {
			return err
		}
		if err := c.appendString(k); err != nil {
			return err
		}
		c.out.b = append(c.out.b, ':')
		if err := c.mpValue(); err != nil {
			return err
		}
	}
	c.out.b = append(c.out.b, '}')
	c.depth--
	return nil
}

func (c *msgpackConv) mpArray() error {
	if c.depth++; c.depth > maxDepth {
		return errTooDeep
	}
	n, err := c.dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	c.out.b = append(c.out.b, '[')
	for i := 0; i < n; i++ {
		if i > 0 {
			c.out.b = append(c.out.b, ',')
		}
		if err := c.mpValue(); err != nil {
			return err
		}
	}
	c.out.b = append(c.out.b, ']')
	c.depth--
	return nil
}

// mpString returns the bytes of the string at the read position, sliced
// from src rather than copied.
func (c *msgpackConv) mpString() ([]byte, error) {
	n, err := c.dec.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	return c.take(n)
}

// mpNumber converts an extJSONNumber: number text stored verbatim.
func (c *msgpackConv) mpNumber() error {
	id, n, err := c.dec.DecodeExtHeader()
	if err != nil {
		return err
	}
	if id != extJSONNumber {
		return fmt.Errorf("unsupported extension type %d", id)
	}
	text, err := c.take(n)
	if err != nil {
		return err
	}
	if !isJSONNumber(text) {
		return fmt.Errorf("number extension %q is not a JSON number", text)
	}
	c.out.b = append(c.out.b, text...)
	return nil
}

// take returns the next n bytes of src and skips them. Checking n against
// what is left first means a forged length cannot cause an allocation.
func (c *msgpackConv) take(n int) ([]byte, error) {
	if n < 0 || n > c.rd.Len() {
		return nil, io.ErrUnexpectedEOF
	}
	at := len(c.src) - c.rd.Len()
	if _, err := c.rd.Seek(int64(n), io.SeekCurrent); err != nil {
		return nil, err
	}
	return c.src[at : at+n], nil
}

// mustEscape marks the bytes a JSON string cannot hold as they are.
var mustEscape = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// appendString writes s as a JSON string, unless that passes the limit.
func (c *msgpackConv) appendString(s []byte) error {
	// Escapes write at most six bytes for one; only a string that could
	// pass the limit is measured first.
	if len(c.out.b)+6*len(s)+2 > c.limit && len(c.out.b)+jsonStringLen(s) > c.limit {
		return errConvertedTooLarge
	}
	c.out.b = appendJSONString(c.out.b, s)
	return nil
}

// jsonStringLen is the length of appendJSONString's text of s.
func jsonStringLen(s []byte) int {
	n := len(s) + 2
	for _, ch := range s {
		switch {
		case !mustEscape[ch]:
		case ch == '"' || ch == '\\' || ch == '\n' || ch == '\r' || ch == '\t' || ch == '\b' || ch == '\f':
			n++
		default:
			n += 5
		}
	}
	return n
}

// appendJSONString appends s as a JSON string, escaping only what JSON
// requires.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i, ch := range s {
		if !mustEscape[ch] {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch ch {
		case '"', '\\':
			dst = append(dst, '\\', ch)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[ch>>4], hex[ch&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
