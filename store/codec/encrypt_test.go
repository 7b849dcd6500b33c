package codec

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestKeyRotation(t *testing.T) {
	payload := []byte(`{"user":{"id":42},"cookie":{"path":"/"}}`)
	encode := func(keys ...string) []byte {
		t.Helper()
		stored, err := mustNew(t, Options{EncryptKeys: keys}).Encode(payload, Meta{})
		if err != nil {
			t.Fatal(err)
		}
		return stored
	}
	tests := []struct {
		name    string
		written []byte
		readers [][]string
		wantErr string // empty: readable
	}{
		{"old key still decrypts after a new one is put first", encode(keyA), [][]string{{keyB, keyA}, {keyA}}, ""},
		{"the first key encrypts", encode(keyB, keyA), [][]string{{keyB, keyA}, {keyA, keyB}, {keyB}}, ""},
		{"key removed", encode(keyA), [][]string{{keyC}, {keyB, keyC}, nil}, `encrypted with key id "A", which is not in encrypt_keys`},
		{"new key unknown to an old reader", encode(keyB, keyA), [][]string{{keyA}}, `key id "B"`},
		{"same id, other key", encode(keyA), [][]string{{testKey("A", 'x')}}, `decrypt with key id "A"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, keys := range tt.readers {
				got, _, err := mustNew(t, Options{EncryptKeys: keys}).Decode(tt.written)
				if tt.wantErr == "" {
					if err != nil || !bytes.Equal(got, payload) {
						t.Fatalf("keys %d: Decode = %q, %v", len(keys), got, err)
					}
					continue
				}
				if err == nil || !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("keys %d: Decode error = %v, want ErrUndecodable mentioning %q", len(keys), err, tt.wantErr)
				}
			}
		})
	}
	if stored := encode(keyB, keyA); stored[5] != 1 || stored[6] != 'B' {
		t.Fatalf("stored key id %q, want B", stored[5:7])
	}
}

// TestNonceIsFresh: two encodings of one payload differ, so equal sessions
// are not recognisable in a dump.
func TestNonceIsFresh(t *testing.T) {
	c := mustNew(t, Options{EncryptKeys: []string{keyA}})
	a, _ := c.Encode([]byte(`{}`), Meta{})
	b, _ := c.Encode([]byte(`{}`), Meta{})
	if bytes.Equal(a, b) {
		t.Fatal("two encryptions of one payload are identical")
	}
}

func TestCorruption(t *testing.T) {
	created := time.UnixMilli(1_700_000_000_000)
	enc := func(o Options, p []byte) []byte {
		t.Helper()
		stored, err := mustNew(t, o).Encode(p, Meta{Created: created})
		if err != nil {
			t.Fatal(err)
		}
		return stored
	}
	big := bigSession(4096)
	aes := enc(Options{EncryptKeys: []string{keyA}}, []byte(`{"a":1}`))
	aesZstd := enc(Options{Format: FormatMsgpack, Compress: CompressZstd, EncryptKeys: []string{keyA}}, big)
	zstd := enc(Options{Compress: CompressZstd}, big)
	gzip := enc(Options{Compress: CompressGzip}, big)
	mp := enc(Options{Format: FormatMsgpack}, []byte(`{"a":[1,2,3],"b":"text"}`))

	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 0x01
		return b
	}
	setFlags := func(b []byte, f func(byte) byte) []byte {
		b = bytes.Clone(b)
		b[offFlags] = f(b[offFlags])
		return b
	}
	tests := []struct {
		name    string
		stored  []byte
		wantErr string
	}{
		{"flipped ciphertext byte", flip(aes, -20), "message authentication failed"},
		{"flipped tag byte", flip(aes, -1), "message authentication failed"},
		{"flipped nonce byte", flip(aes, createdEnd+3), "message authentication failed"},
		{"flipped key id", flip(aes, createdEnd+1), `key id "@"`},
		{"flags: format json -> msgpack", setFlags(aes, func(f byte) byte { return f | formatMsgpack }), "message authentication failed"},
		{"flags: compression added", setFlags(aes, func(f byte) byte { return f | compressGzip<<flagCompressBit }), "message authentication failed"},
		{"flags: compression removed", setFlags(aesZstd, func(f byte) byte { return f &^ flagCompressMask }), "message authentication failed"},
		{"flags: created removed", setFlags(aes, func(f byte) byte { return f &^ flagCreated }), ""},
		{"flags: reserved bit", setFlags(zstd, func(f byte) byte { return f | 0x40 }), "unknown header flags 0x64"},
		{"flags: format 3", setFlags(zstd, func(f byte) byte { return f | 3 }), "unknown header flags"},
		{"flags: compression 3", setFlags(zstd, func(f byte) byte { return f | 3<<flagCompressBit }), "unknown header flags"},
		{"version 2", append([]byte("\x00SP2"), aes[4:]...), `unsupported header version '2'`},
		{"magic only", []byte("\x00SP"), "truncated header"},
		{"no flags", []byte("\x00SP1"), "truncated header"},
		{"truncated created", aes[:10], "truncated header: created field"},
		{"created not digits", append(append([]byte("\x00SP1\x20"), "17000000000x0"...), '{', '}'), "is not 13 digits"},
		{"truncated before key id", aes[:createdEnd], "truncated header: key id"},
		{"key id length 0", append(bytes.Clone(aes[:createdEnd]), append([]byte{0}, aes[createdEnd+1:]...)...), "key id length 0"},
		{"key id length 17", append(bytes.Clone(aes[:createdEnd]), append([]byte{17}, aes[createdEnd+1:]...)...), "key id length 17"},
		{"truncated nonce", aes[:createdEnd+2+5], "truncated encrypted value"},
		{"ciphertext shorter than tag", aes[:createdEnd+2+nonceSize+tagSize-1], "truncated encrypted value"},
		{"truncated ciphertext", aes[:len(aes)-1], "message authentication failed"},
		{"corrupt zstd", flip(zstd, len(zstd)/2), "zstd"},
		{"truncated zstd", zstd[:len(zstd)-10], "zstd"},
		{"empty zstd", zstd[:createdEnd], "compressed body is empty"},
		{"corrupt gzip", flip(gzip, len(gzip)/2), "gzip"},
		{"truncated gzip", gzip[:len(gzip)-10], "gzip"},
		{"gzip checksum", flip(gzip, -6), "gzip"},
		{"not gzip at all", append(bytes.Clone(gzip[:createdEnd]), "hello"...), "gzip"},
		{"truncated msgpack", mp[:len(mp)-2], "unexpected EOF"},
		{"msgpack trailing bytes", append(bytes.Clone(mp), 0xc0), "1 trailing bytes"},
		{"msgpack not a map", append(bytes.Clone(mp[:createdEnd]), 0x93, 1, 2, 3), "not a map"},
		{"msgpack bin", append(bytes.Clone(mp[:createdEnd]), 0x81, 0xa1, 'a', 0xc4, 1, 'x'), "unsupported type code 0xc4"},
		{"msgpack int key", append(bytes.Clone(mp[:createdEnd]), 0x81, 0x01, 0x01), "not a string"},
		{"msgpack NaN", append(bytes.Clone(mp[:createdEnd]), 0x81, 0xa1, 'a', 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1), "no JSON form"},
		{"msgpack huge string", append(bytes.Clone(mp[:createdEnd]), 0x81, 0xa1, 'a', 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'), "unexpected EOF"},
		{"msgpack huge map", append(bytes.Clone(mp[:createdEnd]), 0xdf, 0xff, 0xff, 0xff, 0xff), "unexpected EOF"},
		{"msgpack other ext", append(bytes.Clone(mp[:createdEnd]), 0x81, 0xa1, 'a', 0xd4, 2, '1'), "unsupported extension type 2"},
		{"msgpack number ext not a number", append(bytes.Clone(mp[:createdEnd]), 0x81, 0xa1, 'a', 0xd5, 1, '1', ','), "not a JSON number"},
	}
	c := mustNew(t, Options{EncryptKeys: []string{keyA}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := c.Decode(tt.stored)
			if tt.wantErr == "" {
				// Dropping the created flag shifts every offset after
				// it; the only acceptable outcome is an error.
				if err == nil {
					t.Fatalf("Decode = %q, want an error", got)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Decode = %.30q, %v; want ErrUndecodable mentioning %q", got, err, tt.wantErr)
			}
		})
	}
}

// TestSplicedCreated: a Lua script may overwrite the 13 created digits in
// place without breaking authentication.
func TestSplicedCreated(t *testing.T) {
	payload := []byte(`{"user":"alice"}`)
	for _, cfg := range matrix() {
		c := mustNew(t, cfg.o)
		stored, err := c.Encode(payload, Meta{Created: time.UnixMilli(1_600_000_000_000)})
		if err != nil {
			t.Fatal(err)
		}
		if !hasHeader(stored) {
			continue
		}
		spliced := bytes.Clone(stored)
		copy(spliced[5:18], "1800000000042") // string.sub(v, 1, 5) .. digits .. string.sub(v, 19)
		got, meta, err := c.Decode(spliced)
		if err != nil {
			t.Fatalf("%s: spliced value: %v", cfg, err)
		}
		if want := time.UnixMilli(1_800_000_000_042); !meta.Created.Equal(want) {
			t.Errorf("%s: Created = %v, want %v", cfg, meta.Created, want)
		}
		checkPayload(t, got, payload, cfg.o.Format == FormatMsgpack)
	}
}
