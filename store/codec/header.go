package codec

import (
	"bytes"
	"fmt"
	"time"
)

// The stored header. Its layout is a contract with the Lua scripts in
// store/, which read and splice the created digits by fixed offset
// (string.sub(v, 6, 18)), so none of these offsets may move:
//
//	byte 0      0x00: never the first byte of JSON text, nor of "TOMBSTONE"
//	bytes 1-2   'S' 'P'
//	byte 3      version '1'
//	byte 4      flags (see flag*)
//	bytes 5-17  created, 13 ASCII digits of Unix milliseconds (if flagCreated)
//	then, if flagEncrypted:
//	            1 byte key id length N (1..16), N bytes key id,
//	            12-byte nonce, AES-256-GCM ciphertext and tag of the body
//	else:       the body
//
// The body is the payload in its stored format, compressed if the flags
// say so.
const (
	magic         = "\x00SP"
	version       = '1'
	offFlags      = 4
	offCreated    = 5
	createdDigits = 13
	createdEnd    = offCreated + createdDigits

	// maxCreatedMillis is the largest time 13 digits hold (year 2286).
	maxCreatedMillis = 9_999_999_999_999
)

// Flag bits of byte 4.
const (
	flagFormatMask   = 0x03 // bits 0-1: formatJSON, formatMsgpack, formatRaw
	flagCompressMask = 0x0c // bits 2-3: compressNone, compressZstd, compressGzip
	flagCompressBit  = 2
	flagEncrypted    = 0x10
	flagCreated      = 0x20
	flagUnknown      = 0xc0 // reserved: a reader that meets them cannot know the layout
)

// Payload format codes in the flags.
const (
	formatJSON    byte = 0
	formatMsgpack byte = 1
	formatRaw     byte = 2
)

// Compression codes in the flags.
const (
	compressNone byte = 0
	compressZstd byte = 1
	compressGzip byte = 2
)

// header is a parsed stored header. Its slices alias the stored value.
type header struct {
	format   byte
	compress byte
	created  time.Time // zero when the created field is absent
	keyID    []byte    // nil unless encrypted
	nonce    []byte
	// aad is what GCM authenticates besides the ciphertext: the header up to
	// and including the nonce, minus the created digits. aadHead is the part
	// before the digits, aadTail the part after them.
	aadHead, aadTail []byte
	body             []byte // ciphertext when encrypted
}

// hasHeader reports whether stored starts with the header magic. Anything
// else is a plain value written without a header.
func hasHeader(stored []byte) bool {
	return bytes.HasPrefix(stored, []byte(magic))
}

// appendHeader appends the magic, version, flags and, when createdMillis is
// not negative, the created digits.
func appendHeader(dst []byte, flags byte, createdMillis int64) []byte {
	dst = append(dst, magic...)
	dst = append(dst, version, flags)
	if createdMillis < 0 {
		return dst
	}
	var digits [createdDigits]byte
	for i := createdDigits - 1; i >= 0; i-- {
		digits[i] = '0' + byte(createdMillis%10)
		createdMillis /= 10
	}
	return append(dst, digits[:]...)
}

// parseHeader splits a value that hasHeader into its parts, checking only
// the layout: whether the key is known and the body intact is for the
// later stages to find out.
func parseHeader(stored []byte) (header, error) {
	var h header
	if len(stored) <= offFlags {
		return h, corrupt("truncated header")
	}
	if stored[3] != version {
		return h, corrupt("unsupported header version %q", stored[3])
	}
	flags := stored[offFlags]
	h.format = flags & flagFormatMask
	h.compress = (flags & flagCompressMask) >> flagCompressBit
	if flags&flagUnknown != 0 || h.format > formatRaw || h.compress > compressGzip {
		return h, corrupt("unknown header flags 0x%02x", flags)
	}
	rest := offCreated
	if flags&flagCreated != 0 {
		if len(stored) < createdEnd {
			return h, corrupt("truncated header: created field")
		}
		ms, ok := parseDigits(stored[offCreated:createdEnd])
		if !ok {
			return h, corrupt("created field %q is not %d digits", stored[offCreated:createdEnd], createdDigits)
		}
		h.created = time.UnixMilli(ms)
		rest = createdEnd
	}
	if flags&flagEncrypted == 0 {
		h.body = stored[rest:]
		return h, nil
	}

	if len(stored) <= rest {
		return h, corrupt("truncated header: key id")
	}
	n := int(stored[rest])
	if n < 1 || n > maxKeyIDLen {
		return h, corrupt("key id length %d out of range 1..%d", n, maxKeyIDLen)
	}
	idStart := rest + 1
	nonceStart := idStart + n
	nonceEnd := nonceStart + nonceSize
	if len(stored) < nonceEnd+tagSize {
		return h, corrupt("truncated encrypted value")
	}
	h.keyID = stored[idStart:nonceStart]
	h.nonce = stored[nonceStart:nonceEnd]
	h.aadHead = stored[:offCreated]
	h.aadTail = stored[rest:nonceEnd]
	h.body = stored[nonceEnd:]
	return h, nil
}

// parseDigits reads ASCII decimal digits; it refuses anything else,
// including signs and spaces that strconv would accept or explain.
func parseDigits(b []byte) (int64, bool) {
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// createdMillis returns t as the header's created field, or -1 for the
// zero time (no field).
func createdMillis(t time.Time) (int64, error) {
	if t.IsZero() {
		return -1, nil
	}
	ms := t.UnixMilli()
	if ms < 0 || ms > maxCreatedMillis {
		return 0, fmt.Errorf("created time %s does not fit %d digits of Unix milliseconds", t.Format(time.RFC3339), createdDigits)
	}
	return ms, nil
}
