package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// minDecodedLimit bounds what one stored value may decompress to, so a
// hostile value in Redis (a zip bomb) cannot exhaust memory. It is not tied
// to max_payload_bytes alone: lowering that limit must not make values
// written under the old one unreadable.
const minDecodedLimit = 64 << 20

// gzipLevel is the library default (level 5 in klauspost/compress), as for
// zstd: the spec offers no level knob, so use what each library tunes for.
const gzipLevel = gzip.DefaultCompression

// maxDeflateRatio is the most deflate can expand its input.
const maxDeflateRatio = 1032

// compressor compresses bodies with the configured algorithm and
// decompresses either algorithm, whatever the configuration.
type compressor struct {
	kind     byte // compressNone, compressZstd or compressGzip
	minBytes int  // compress payloads of at least this many bytes
	limit    int  // largest decompressed body accepted

	// zstd encoders and decoders are expensive to build and safe for
	// concurrent EncodeAll/DecodeAll, so each codec builds one of each.
	zenc *zstd.Encoder // nil unless kind is compressZstd
	zdec *zstd.Decoder

	// gzip writers and readers carry large windows and are not safe for
	// concurrent use, so they are pooled.
	gzWriters sync.Pool // *gzipWriter
	gzReaders sync.Pool // *gzipReader
}

func newCompressor(kind byte, minBytes, limit int) (*compressor, error) {
	c := &compressor{kind: kind, minBytes: minBytes, limit: limit}
	var err error
	if kind == compressZstd {
		c.zenc, err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			return nil, fmt.Errorf("zstd encoder: %w", err)
		}
	}
	// DecodeAll blocks once more calls run than the decoder's concurrency,
	// and the library default caps that at 4: use every CPU instead.
	c.zdec, err = zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(uint64(limit)))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return c, nil
}

// wants reports whether a payload of n bytes should be compressed.
func (c *compressor) wants(n int) bool {
	return c.kind != compressNone && n >= c.minBytes
}

// compress appends the compressed src to dst.
func (c *compressor) compress(dst, src []byte) ([]byte, error) {
	switch c.kind {
	case compressZstd:
		return c.zenc.EncodeAll(src, dst), nil
	case compressGzip:
		w, _ := c.gzWriters.Get().(*gzipWriter)
		if w == nil {
			zw, err := gzip.NewWriterLevel(nil, gzipLevel)
			if err != nil {
				return nil, fmt.Errorf("gzip writer: %w", err)
			}
			w = &gzipWriter{zw: zw}
		}
		w.out.b = dst
		w.zw.Reset(&w.out)
		_, err := w.zw.Write(src)
		if err == nil {
			err = w.zw.Close()
		}
		out := w.out.b
		w.out.b = nil
		c.gzWriters.Put(w)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return out, nil
	}
	return append(dst, src...), nil
}

// decompress appends the decompressed src to dst.
func (c *compressor) decompress(dst, src []byte, kind byte) ([]byte, error) {
	if len(src) == 0 {
		// zstd would decode nothing as an empty value; a compressed
		// body is never empty, so this one was cut short.
		return nil, corrupt("compressed body is empty")
	}
	switch kind {
	case compressZstd:
		out, err := c.zdec.DecodeAll(src, dst)
		if err != nil {
			return nil, corrupt("zstd: %w", err)
		}
		return out, nil
	case compressGzip:
		out, err := c.gunzip(dst, src)
		if err != nil {
			return nil, corrupt("gzip: %w", err)
		}
		return out, nil
	}
	return append(dst, src...), nil
}

func (c *compressor) gunzip(dst, src []byte) ([]byte, error) {
	r, _ := c.gzReaders.Get().(*gzipReader)
	if r == nil {
		r = new(gzipReader)
	}
	defer func() {
		r.src.Reset(nil)
		c.gzReaders.Put(r)
	}()
	r.src.Reset(src)
	if err := r.zr.Reset(&r.src); err != nil {
		return nil, err
	}
	// The trailer's ISIZE is the decompressed size (mod 2^32) of the last
	// member. It only sizes the first allocation, within what deflate can
	// expand to (1032:1), so a forged one cannot make us allocate much.
	if len(src) >= 4 {
		n := int(binary.LittleEndian.Uint32(src[len(src)-4:]))
		if n <= c.limit && n <= maxDeflateRatio*len(src) {
			dst = slices.Grow(dst, n+1)
		}
	}
	return readAllLimit(dst, &r.zr, c.limit)
}

var errDecodedTooLarge = errors.New("decompressed body too large")

// readAllLimit appends everything r yields to dst, refusing more than limit
// bytes.
func readAllLimit(dst []byte, r io.Reader, limit int) ([]byte, error) {
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, max(512, len(dst)-start))
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			return nil, fmt.Errorf("%w: more than %d bytes", errDecodedTooLarge, limit)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

type gzipWriter struct {
	zw  *gzip.Writer
	out appendWriter
}

type gzipReader struct {
	zr  gzip.Reader
	src bytes.Reader
}
