// Package codec turns the session payload a client sends into the bytes
// stored in Redis and back.
//
// With the default options the stored value is the payload itself, byte
// for byte, as connect-redis stores it. Other options store a small header
// (see header.go) in front of a MessagePack, compressed and/or encrypted
// body. Every codec decodes every format, so changing the options migrates
// stored sessions lazily, as they are rewritten.
package codec

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Format names (Options.Format).
const (
	FormatJSON    = "json"
	FormatMsgpack = "msgpack"
	FormatRaw     = "raw"
)

// Compression names (Options.Compress).
const (
	CompressNone = "none"
	CompressZstd = "zstd"
	CompressGzip = "gzip"
)

// DefaultCompressMinBytes is the compression threshold when
// Options.CompressMinBytes is 0 (compress_min_bytes in SPEC §6).
const DefaultCompressMinBytes = 1024

// Options select the stored format. The zero value stores validated JSON
// as given, with no header.
type Options struct {
	// Format of client payloads and of the stored body: "json" (one JSON
	// object, stored as sent), "msgpack" (one JSON object, stored as
	// MessagePack, returned as JSON) or "raw" (any bytes). Default: "json".
	Format string
	// Compress is "none", "zstd" or "gzip". Default: "none".
	Compress string
	// CompressMinBytes: compress only payloads (as the client sent them) of
	// at least this many bytes; -1 compresses every payload. A body that
	// compression would not shrink is stored uncompressed. Default (0):
	// DefaultCompressMinBytes.
	CompressMinBytes int
	// EncryptKeys are "id:base64-of-32-bytes" entries for AES-256-GCM; the
	// first encrypts, all decrypt. Ids are 1..16 of [A-Za-z0-9_-].
	// Default: none, no encryption.
	EncryptKeys []string
	// MaxPayloadBytes refuses larger payloads with ErrTooLarge. Default
	// (0): no limit.
	MaxPayloadBytes int
	// Envelope writes the header on every value, even plain JSON, so the
	// creation time is kept (ttl.absolute needs it). Default: false.
	Envelope bool
}

// Meta is what the header records besides the payload.
type Meta struct {
	// Created is when the session was created; zero when unknown (a value
	// without header, or a header without the created field).
	Created time.Time
}

// Codec validates and encodes session payloads. It is safe for concurrent
// use.
type Codec interface {
	// Encode validates payload and returns the bytes to store. A refused
	// payload gives an error whose message is the reason, meant for the
	// client. m.Created is recorded when non-zero and a header is written.
	// With no header the result is payload itself, not a copy.
	Encode(payload []byte, m Meta) ([]byte, error)
	// Validate checks payload as Encode does (size, and one JSON object
	// for json and msgpack) without encoding it.
	Validate(payload []byte) error
	// Decode accepts every format any codec writes, whatever this codec's
	// options, and returns the client's payload (JSON text for json and
	// msgpack, the original bytes for raw) and the meta. A value that cannot
	// be decoded gives an error wrapping ErrUndecodable. When nothing had to
	// be undone the result shares memory with stored.
	Decode(stored []byte) ([]byte, Meta, error)
	// JSON reports whether payloads are JSON (json, msgpack), so the TTL
	// policy may read fields from them.
	JSON() bool
	// Envelope reports whether Encode always writes a header, so every
	// value records its creation time.
	Envelope() bool
	// AsGiven reports whether Encode stores payloads as given: no
	// MessagePack, compression, encryption or envelope. Only a raw payload
	// that starts with the header magic is still wrapped, which a writer
	// bypassing Encode (a script) must refuse.
	AsGiven() bool
}

var (
	// ErrTooLarge is returned for a payload over MaxPayloadBytes.
	ErrTooLarge = errors.New("payload too large")
	// ErrNotJSON and ErrNotObject refuse payloads of the json and msgpack
	// formats.
	ErrNotJSON   = errors.New("not valid JSON")
	ErrNotObject = errors.New("not a JSON object")
	// ErrUndecodable is wrapped by every Decode error: unknown key id,
	// failed authentication, corrupt compression, truncated header.
	ErrUndecodable = errors.New("stored value cannot be decoded")
)

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUndecodable}, args...)...)
}

// New returns the codec for o. Its errors name the option at fault.
func New(o Options) (Codec, error) {
	c := &codec{maxBytes: o.MaxPayloadBytes, envelope: o.Envelope}
	switch o.Format {
	case FormatJSON, "":
		c.format = formatJSON
	case FormatMsgpack:
		c.format = formatMsgpack
	case FormatRaw:
		c.format = formatRaw
	default:
		return nil, fmt.Errorf(`format: unknown format %q (want "json", "msgpack" or "raw")`, o.Format)
	}
	kind := compressNone
	switch o.Compress {
	case CompressNone, "":
	case CompressZstd:
		kind = compressZstd
	case CompressGzip:
		kind = compressGzip
	default:
		return nil, fmt.Errorf(`compress: unknown compression %q (want "none", "zstd" or "gzip")`, o.Compress)
	}
	minBytes := o.CompressMinBytes
	switch {
	case minBytes == 0:
		minBytes = DefaultCompressMinBytes
	case minBytes == -1:
		minBytes = 0
	case minBytes < -1:
		return nil, fmt.Errorf("compress_min_bytes: must be >= -1 (-1: always), got %d", o.CompressMinBytes)
	}
	if o.MaxPayloadBytes < 0 {
		return nil, fmt.Errorf("max_payload_bytes: must be >= 0 (0: no limit), got %d", o.MaxPayloadBytes)
	}
	var err error
	if c.keys, err = parseKeys(o.EncryptKeys); err != nil {
		return nil, err
	}
	if c.comp, err = newCompressor(kind, minBytes, max(minDecodedLimit, o.MaxPayloadBytes)); err != nil {
		return nil, err
	}
	return c, nil
}

// Plain returns the default codec: JSON objects stored as sent.
func Plain() Codec {
	c, err := New(Options{})
	if err != nil {
		panic("codec: default options refused: " + err.Error()) // a bug, not an input
	}
	return c
}

type codec struct {
	format   byte
	maxBytes int
	envelope bool
	keys     keyring // empty: no encryption
	comp     *compressor

	bufs  bufPool   // scratch for intermediate bodies
	convs sync.Pool // *msgpackConv
}

var _ Codec = (*codec)(nil)

func (c *codec) JSON() bool { return c.format != formatRaw }

func (c *codec) AsGiven() bool {
	return c.format != formatMsgpack && !c.envelope && len(c.keys) == 0 && c.comp.kind == compressNone
}

func (c *codec) Envelope() bool {
	return c.envelope || c.format == formatMsgpack || len(c.keys) > 0
}

func (c *codec) Encode(payload []byte, m Meta) ([]byte, error) {
	if err := c.Validate(payload); err != nil {
		return nil, err
	}

	body := payload
	if c.format == formatMsgpack {
		buf := c.bufs.get()
		defer c.bufs.put(buf)
		conv := c.conv()
		mp, err := conv.fromJSON((*buf)[:0], payload)
		c.convs.Put(conv)
		if err != nil {
			return nil, fmt.Errorf("convert to msgpack: %w", err)
		}
		*buf, body = mp, mp
	}

	compress := compressNone
	if c.comp.wants(len(payload)) {
		buf := c.bufs.get()
		defer c.bufs.put(buf)
		z, err := c.comp.compress((*buf)[:0], body)
		if err != nil {
			return nil, err
		}
		*buf = z
		// Incompressible data (already compressed, random tokens) is
		// stored as it is rather than grown.
		if len(z) < len(body) {
			body, compress = z, c.comp.kind
		}
	}

	if c.format != formatMsgpack && compress == compressNone && len(c.keys) == 0 &&
		!c.envelope && !(c.format == formatRaw && rawNeedsHeader(payload)) {
		return payload, nil
	}

	created, err := createdMillis(m.Created)
	if err != nil {
		return nil, err
	}
	flags := c.format | compress<<flagCompressBit
	if created >= 0 {
		flags |= flagCreated
	}
	size := createdEnd + len(body)
	if len(c.keys) > 0 {
		flags |= flagEncrypted
		size += 1 + maxKeyIDLen + nonceSize + tagSize
	}
	out := appendHeader(make([]byte, 0, size), flags, created)
	if len(c.keys) > 0 {
		return c.keys.seal(out, body)
	}
	return append(out, body...), nil
}

// rawNeedsHeader reports whether a raw payload stored plain would be
// misread: as a header, or as a tombstone by the store.
// Validate checks payload as Encode does, without encoding it.
func (c *codec) Validate(payload []byte) error {
	if c.maxBytes > 0 && len(payload) > c.maxBytes {
		return fmt.Errorf("%w: %d bytes, max_payload_bytes is %d", ErrTooLarge, len(payload), c.maxBytes)
	}
	if c.format != formatRaw {
		if !ValidJSON(payload) {
			return ErrNotJSON
		}
		// Valid JSON is an object exactly when it opens with '{'; asking
		// gjson.ParseBytes would copy the payload into a string.
		if t := bytes.TrimLeft(payload, " \t\r\n"); len(t) == 0 || t[0] != '{' {
			return ErrNotObject
		}
	}
	return nil
}

func rawNeedsHeader(payload []byte) bool {
	return hasHeader(payload) || string(payload) == "TOMBSTONE"
}

func (c *codec) Decode(stored []byte) ([]byte, Meta, error) {
	if !hasHeader(stored) {
		return stored, Meta{}, nil
	}
	h, err := parseHeader(stored)
	if err != nil {
		return nil, Meta{}, err
	}
	meta := Meta{Created: h.created}

	// Each stage writes into pooled scratch except the last, whose output
	// is returned and so must be freshly allocated.
	var scratch [2]*[]byte
	defer func() {
		for _, b := range scratch {
			if b != nil {
				c.bufs.put(b)
			}
		}
	}()
	body := h.body
	if h.keyID != nil {
		var dst []byte
		if h.compress != compressNone || h.format == formatMsgpack {
			scratch[0] = c.bufs.get()
			dst = (*scratch[0])[:0]
		}
		if body, err = c.keys.open(dst, h); err != nil {
			return nil, Meta{}, err
		}
		if scratch[0] != nil {
			*scratch[0] = body // keep the capacity it grew to
		}
	}
	if h.compress != compressNone {
		var dst []byte
		if h.format == formatMsgpack {
			scratch[1] = c.bufs.get()
			dst = (*scratch[1])[:0]
		}
		if body, err = c.comp.decompress(dst, body, h.compress); err != nil {
			return nil, Meta{}, err
		}
		if scratch[1] != nil {
			*scratch[1] = body
		}
	}
	if h.format == formatMsgpack {
		conv := c.conv()
		defer c.convs.Put(conv)
		// JSON text runs up to about 1.5x its MessagePack size.
		out := make([]byte, 0, min(len(body)*3/2+16, c.comp.limit))
		if body, err = conv.toJSON(out, body, c.comp.limit); err != nil {
			return nil, Meta{}, err
		}
	}
	return body, meta, nil
}

func (c *codec) conv() *msgpackConv {
	if v, ok := c.convs.Get().(*msgpackConv); ok {
		return v
	}
	return newMsgpackConv()
}

// appendWriter is an io.Writer appending to a slice, so compressed and
// MessagePack output lands directly in the caller's buffer. WriteByte
// spares the msgpack encoder an allocation per byte written.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

// maxPooledBuf keeps the pool from pinning the memory of a rare huge value.
const maxPooledBuf = 4 << 20

// bufPool recycles scratch buffers for intermediate bodies.
type bufPool struct{ p sync.Pool }

func (p *bufPool) get() *[]byte {
	if b, ok := p.p.Get().(*[]byte); ok {
		return b
	}
	return new([]byte)
}

func (p *bufPool) put(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	p.p.Put(b)
}
