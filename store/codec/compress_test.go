package codec

import (
	"bytes"
	"errors"
	"testing"
)

// TestDecompressLimit: a small stored value that expands beyond the limit
// (a zip bomb planted in Redis) is refused, not decoded into memory.
func TestDecompressLimit(t *testing.T) {
	const limit = 4096
	zeros := make([]byte, limit+1)
	for _, kind := range []byte{compressZstd, compressGzip} {
		w, err := newCompressor(kind, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		bomb, err := w.compress(nil, zeros)
		if err != nil {
			t.Fatal(err)
		}
		r, err := newCompressor(compressNone, 0, limit)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.decompress(nil, bomb, kind); !errors.Is(err, ErrUndecodable) {
			t.Errorf("kind %d: %d bytes expanding to %d: error = %v, want ErrUndecodable", kind, len(bomb), len(zeros), err)
		}
		got, err := r.decompress(nil, mustCompress(t, w, zeros[:limit]), kind)
		if err != nil || !bytes.Equal(got, zeros[:limit]) {
			t.Errorf("kind %d: exactly the limit: %d bytes, %v", kind, len(got), err)
		}
	}
}

func mustCompress(t *testing.T, c *compressor, b []byte) []byte {
	t.Helper()
	z, err := c.compress(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	return z
}
