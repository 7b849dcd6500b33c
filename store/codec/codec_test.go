package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// testKey returns an encrypt_keys entry whose key is 32 copies of b.
func testKey(id string, b byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, keySize))
}

var (
	keyA = testKey("A", 'a')
	keyB = testKey("B", 'b')
	keyC = testKey("C", 'c')
)

func mustNew(t testing.TB, o Options) Codec {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	return c
}

// bigSession is a compressible JSON object of about n bytes.
func bigSession(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"cookie":{"path":"/","httpOnly":true},"items":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%06d","qty":%d,"price":%d.5}`, i*7919%1000000, i%5+1, i%90+1)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func TestJSONValidation(t *testing.T) {
	tests := []struct {
		payload string
		wantErr string
	}{
		{`{"cookie":{"path":"/"},"n":1}`, ""},
		{` {"a":[1,2,3]} `, ""},
		{`{}`, ""},
		{`[1,2]`, "not a JSON object"},
		{`"str"`, "not a JSON object"},
		{`{"a":`, "not valid JSON"},
		{`TOMBSTONE`, "not valid JSON"},
		{"\x00SP1\x00{}", "not valid JSON"},
		{``, "not valid JSON"},
	}
	for _, format := range []string{FormatJSON, FormatMsgpack} {
		c := mustNew(t, Options{Format: format, MaxPayloadBytes: 64})
		for _, tt := range tests {
			got, err := c.Encode([]byte(tt.payload), Meta{})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("%s: Encode(%q): %v", format, tt.payload, err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("%s: Encode(%q) error = %v, want %q", format, tt.payload, err, tt.wantErr)
			case tt.wantErr == "" && format == FormatJSON && string(got) != tt.payload:
				t.Errorf("Encode(%q) = %q: json stores the payload as sent", tt.payload, got)
			}
		}
	}
}

// TestDefaultIsConnectRedis: with the zero Options the stored value is the
// session JSON byte for byte, also when large (no compression by default)
// and when a creation time is given.
func TestDefaultIsConnectRedis(t *testing.T) {
	for _, c := range []Codec{Plain(), mustNew(t, Options{})} {
		for _, p := range [][]byte{[]byte(`{"cookie":{"expires":null}}`), bigSession(8 << 10)} {
			got, err := c.Encode(p, Meta{Created: time.Now()})
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("Encode = %.40q, %v; want the payload itself", got, err)
			}
			back, meta, err := c.Decode(got)
			if err != nil || !bytes.Equal(back, p) || !meta.Created.IsZero() {
				t.Fatalf("Decode = %.40q, %+v, %v", back, meta, err)
			}
		}
		if !c.JSON() || c.Envelope() {
			t.Fatalf("JSON() = %v, Envelope() = %v; want true, false", c.JSON(), c.Envelope())
		}
	}
}

func TestMaxPayloadBytes(t *testing.T) {
	exact := []byte(`{"a":"` + strings.Repeat("x", 56) + `"}`) // 64 bytes
	big := []byte(`{"a":"` + strings.Repeat("x", 100) + `"}`)
	for _, format := range []string{FormatJSON, FormatMsgpack, FormatRaw} {
		c := mustNew(t, Options{Format: format, MaxPayloadBytes: 64})
		if _, err := c.Encode(big, Meta{}); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: error = %v, want ErrTooLarge", format, err)
		}
		if _, err := c.Encode(exact, Meta{}); err != nil {
			t.Errorf("%s: payload of exactly max_payload_bytes: %v", format, err)
		}
	}
}

func TestRawAcceptsAnyBytes(t *testing.T) {
	c := mustNew(t, Options{Format: FormatRaw})
	for _, p := range []string{"user|s:5:\"alice\";", "", "\x00\xff", "{"} {
		got, err := c.Encode([]byte(p), Meta{})
		if err != nil || string(got) != p {
			t.Fatalf("Encode(%q) = %q, %v: raw stores the payload as sent", p, got, err)
		}
	}
	if c.JSON() {
		t.Fatal("raw codec claims JSON payloads")
	}
}

// TestRawHeaderGuard: a raw payload that would be misread when stored plain
// gets a header, and comes back as sent.
func TestRawHeaderGuard(t *testing.T) {
	c := mustNew(t, Options{Format: FormatRaw})
	for _, p := range []string{"\x00SP", "\x00SP1\x00hello", "\x00SPxyz", "TOMBSTONE"} {
		stored, err := c.Encode([]byte(p), Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(stored, []byte("\x00SP1")) || stored[offFlags] != formatRaw {
			t.Errorf("Encode(%q) = %q, want a raw header", p, stored)
		}
		got, _, err := Plain().Decode(stored)
		if err != nil || string(got) != p {
			t.Errorf("Decode(Encode(%q)) = %q, %v", p, got, err)
		}
	}
	// Only the exact three-byte magic is ambiguous.
	for _, p := range []string{"\x00S", "\x00sp", "TOMBSTONE2"} {
		if stored, _ := c.Encode([]byte(p), Meta{}); string(stored) != p {
			t.Errorf("Encode(%q) = %q, want it plain", p, stored)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"format", Options{Format: "xml"}, `format: unknown format "xml"`},
		{"compress", Options{Compress: "lz4"}, `compress: unknown compression "lz4"`},
		{"min bytes", Options{CompressMinBytes: -2}, "compress_min_bytes: must be >= -1"},
		{"max payload", Options{MaxPayloadBytes: -1}, "max_payload_bytes: must be >= 0"},
		{"no colon", Options{EncryptKeys: []string{"abc"}}, `encrypt_keys[0]: want "id:base64-key"`},
		{"empty id", Options{EncryptKeys: []string{testKey("", 'a')}}, `encrypt_keys[0]: key id "" must be 1..16 characters`},
		{"long id", Options{EncryptKeys: []string{testKey(strings.Repeat("k", 17), 'a')}}, "encrypt_keys[0]: key id"},
		{"bad id char", Options{EncryptKeys: []string{keyA, testKey("a b", 'a')}}, `encrypt_keys[1]: key id "a b"`},
		{"base64", Options{EncryptKeys: []string{"k:not base64!"}}, "encrypt_keys[0]: key is not valid base64"},
		{"short key", Options{EncryptKeys: []string{keyA, "k:" + base64.StdEncoding.EncodeToString(make([]byte, 16))}},
			"encrypt_keys[1]: key must be 32 bytes after base64 decoding, got 16"},
		{"duplicate", Options{EncryptKeys: []string{keyA, keyB, testKey("A", 'z')}}, `encrypt_keys[2]: duplicate key id "A" (also encrypt_keys[0])`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.o)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want prefix %q", err, tt.want)
			}
			if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'z'}, keySize))) {
				t.Fatalf("error %q repeats key material", err)
			}
		})
	}
	// Every base64 flavour of a 32-byte key is accepted.
	raw := bytes.Repeat([]byte{0xfb}, keySize)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if _, err := New(Options{EncryptKeys: []string{"k_1-x:" + enc.EncodeToString(raw)}}); err != nil {
			t.Errorf("New: %v", err)
		}
	}
}

// config is one codec configuration of the test matrix.
type config struct {
	name string
	o    Options
}

func (c config) String() string { return c.name }

// matrix is every format × compression × encryption, with and without
// envelope. CompressMinBytes is the default throughout.
func matrix() []config {
	var cs []config
	for _, format := range []string{FormatJSON, FormatMsgpack, FormatRaw} {
		for _, comp := range []string{CompressNone, CompressZstd, CompressGzip} {
			for _, enc := range []bool{false, true} {
				for _, env := range []bool{false, true} {
					o := Options{Format: format, Compress: comp, Envelope: env}
					name := format + "+" + comp
					if enc {
						o.EncryptKeys = []string{keyA}
						name += "+aes"
					}
					if env {
						name += "+envelope"
					}
					cs = append(cs, config{name, o})
				}
			}
		}
	}
	return cs
}

// wantHeader reports whether Encode must write a header.
func wantHeader(o Options, compressed bool) bool {
	return o.Format == FormatMsgpack || compressed || len(o.EncryptKeys) > 0 || o.Envelope
}

func TestRoundTripMatrix(t *testing.T) {
	created := time.UnixMilli(1_700_000_000_123)
	payloads := []struct {
		name       string
		p          []byte
		compressed bool // above the default threshold and compressible
	}{
		{"small", []byte(`{"cookie":{"path":"/","expires":"2030-01-01T00:00:00.000Z"},"n":1}`), false},
		{"large", bigSession(4 << 10), true},
		{"empty object", []byte(`{}`), false},
	}
	for _, cfg := range matrix() {
		c := mustNew(t, cfg.o)
		for _, pl := range payloads {
			t.Run(cfg.name+"/"+pl.name, func(t *testing.T) {
				compressed := pl.compressed && cfg.o.Compress != CompressNone
				for _, m := range []Meta{{}, {Created: created}} {
					stored, err := c.Encode(pl.p, m)
					if err != nil {
						t.Fatal(err)
					}
					checkLayout(t, stored, cfg.o, compressed, m)
					got, meta, err := c.Decode(stored)
					if err != nil {
						t.Fatal(err)
					}
					if !meta.Created.Equal(m.Created) && wantHeader(cfg.o, compressed) {
						t.Errorf("Created = %v, want %v", meta.Created, m.Created)
					}
					checkPayload(t, got, pl.p, cfg.o.Format == FormatMsgpack)
				}
			})
		}
	}
}

// checkLayout checks stored against the documented header layout.
func checkLayout(t *testing.T, stored []byte, o Options, compressed bool, m Meta) {
	t.Helper()
	if !wantHeader(o, compressed) {
		if hasHeader(stored) {
			t.Fatalf("stored %.20q has a header, want the plain payload", stored)
		}
		return
	}
	if !bytes.HasPrefix(stored, []byte{0x00, 'S', 'P', '1'}) {
		t.Fatalf("stored %.20q does not start with 00 'S' 'P' '1'", stored)
	}
	flags := stored[4]
	wantFormat := map[string]byte{FormatJSON: 0, FormatMsgpack: 1, FormatRaw: 2}[o.Format]
	wantComp := byte(0)
	if compressed {
		wantComp = map[string]byte{CompressZstd: 1, CompressGzip: 2}[o.Compress]
	}
	encrypted := len(o.EncryptKeys) > 0
	if got := flags & 3; got != wantFormat {
		t.Errorf("format bits = %d, want %d", got, wantFormat)
	}
	if got := flags >> 2 & 3; got != wantComp {
		t.Errorf("compression bits = %d, want %d", got, wantComp)
	}
	if got := flags&0x10 != 0; got != encrypted {
		t.Errorf("encrypted bit = %v, want %v", got, encrypted)
	}
	if got := flags&0x20 != 0; got != !m.Created.IsZero() {
		t.Errorf("created bit = %v, want %v", got, !m.Created.IsZero())
	}
	if flags&0xc0 != 0 {
		t.Errorf("reserved bits set in flags 0x%02x", flags)
	}
	rest := stored[5:]
	if !m.Created.IsZero() {
		if got, want := string(stored[5:18]), fmt.Sprintf("%013d", m.Created.UnixMilli()); got != want {
			t.Errorf("created digits = %q, want %q", got, want)
		}
		rest = stored[18:]
	}
	if encrypted {
		if int(rest[0]) != 1 || rest[1] != 'A' {
			t.Fatalf("key id = %q, want length 1, \"A\"", rest[:2])
		}
		if len(rest) < 2+nonceSize+tagSize {
			t.Fatalf("encrypted part of %d bytes is too short", len(rest))
		}
		return
	}
	switch {
	case wantComp == 1 && !bytes.HasPrefix(rest, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		t.Errorf("body %.8x is not a zstd frame", rest)
	case wantComp == 2 && !bytes.HasPrefix(rest, []byte{0x1f, 0x8b}):
		t.Errorf("body %.8x is not a gzip stream", rest)
	case wantComp == 0 && wantFormat == formatMsgpack && rest[0]&0xf0 != 0x80 && rest[0] != 0xde && rest[0] != 0xdf:
		t.Errorf("body %.8x is not a msgpack map", rest)
	}
}

// checkPayload compares a decoded payload with the one sent: byte for byte,
// or as equivalent JSON for msgpack.
func checkPayload(t *testing.T, got, want []byte, equivalent bool) {
	t.Helper()
	if !equivalent {
		if !bytes.Equal(got, want) {
			t.Fatalf("Decode = %.60q, want %.60q", got, want)
		}
		return
	}
	g, err := jsonTokens(got)
	if err != nil {
		t.Fatalf("Decode returned invalid JSON %.60q: %v", got, err)
	}
	w, err := jsonTokens(want)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%#v", g) != fmt.Sprintf("%#v", w) {
		t.Fatalf("Decode = %s\nwant JSON equivalent to %s", got, want)
	}
}

// jsonTokens lists the tokens of a JSON text: equal lists mean equal
// values, key order and number text.
func jsonTokens(b []byte) ([]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var toks []any
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return toks, nil
		}
		if err != nil {
			return nil, err
		}
		toks = append(toks, tok)
	}
}

func TestCompressMinBytes(t *testing.T) {
	p := bigSession(2000) // compressible, a little over 2000 bytes
	tests := []struct {
		min  int
		want bool
	}{
		{0, true},           // default 1024
		{len(p), true},      // at least this many bytes
		{len(p) + 1, false}, // below the threshold
		{-1, true},          // always
		{1 << 20, false},    // never in practice
		{DefaultCompressMinBytes, true},
	}
	for _, comp := range []string{CompressZstd, CompressGzip} {
		for _, tt := range tests {
			c := mustNew(t, Options{Compress: comp, CompressMinBytes: tt.min})
			stored, err := c.Encode(p, Meta{})
			if err != nil {
				t.Fatal(err)
			}
			if got := hasHeader(stored); got != tt.want {
				t.Errorf("%s min=%d: compressed = %v, want %v", comp, tt.min, got, tt.want)
			}
		}
	}
	// -1 compresses even tiny values when that saves space, but never
	// stores a compressed body larger than the plain one.
	c := mustNew(t, Options{Compress: CompressZstd, CompressMinBytes: -1})
	tiny := []byte(`{"a":1}`)
	if stored, _ := c.Encode(tiny, Meta{}); !bytes.Equal(stored, tiny) {
		t.Errorf("Encode(%q) = %q: compression that grows the value is skipped", tiny, stored)
	}
}

// TestCrossRead: a value written by any configuration decodes with any
// other, so changing the codec migrates lazily.
func TestCrossRead(t *testing.T) {
	created := time.UnixMilli(1_650_000_000_000)
	jsonPayloads := [][]byte{[]byte(`{"a":[1,2.5,"x"],"b":{"c":null}}`), bigSession(3000)}
	rawPayloads := [][]byte{[]byte("a|s:1:\"b\";"), bytes.Repeat([]byte("php-session|"), 300)}
	cs := matrix()
	// Encrypting readers hold a newer key first and the writers' key second.
	readers := make([]Codec, len(cs))
	for i, cfg := range cs {
		o := cfg.o
		if len(o.EncryptKeys) > 0 {
			o.EncryptKeys = []string{keyB, keyA}
		}
		readers[i] = mustNew(t, o)
	}
	// What connect-redis or the proxy wrote before any codec options.
	legacy := map[string][]byte{}
	for _, p := range append(jsonPayloads, rawPayloads...) {
		legacy[string(p)] = p
	}
	for _, w := range cs {
		wc := mustNew(t, w.o)
		payloads := jsonPayloads
		if w.o.Format == FormatRaw {
			payloads = rawPayloads
		}
		for _, p := range payloads {
			stored, err := wc.Encode(p, Meta{Created: created})
			if err != nil {
				t.Fatal(err)
			}
			for i, rc := range readers {
				got, _, err := rc.Decode(stored)
				if len(w.o.EncryptKeys) > 0 && len(cs[i].o.EncryptKeys) == 0 {
					// Reading encrypted values needs the key, whatever
					// else the reader is configured to write.
					if !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), `key id "A"`) {
						t.Fatalf("written by %s, read by %s without keys: %v, want an error naming key A", w, cs[i], err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("written by %s, read by %s: %v", w, cs[i], err)
				}
				checkPayload(t, got, p, w.o.Format == FormatMsgpack)
			}
		}
	}
	for _, p := range legacy {
		for i, rc := range readers {
			got, meta, err := rc.Decode(p)
			if err != nil || !bytes.Equal(got, p) || !meta.Created.IsZero() {
				t.Fatalf("legacy plain value read by %s: %.30q, %+v, %v", cs[i], got, meta, err)
			}
		}
	}
}

func TestEnvelopeAndJSONReports(t *testing.T) {
	tests := []struct {
		o              Options
		json, envelope bool
	}{
		{Options{}, true, false},
		{Options{Envelope: true}, true, true},
		{Options{Format: FormatMsgpack}, true, true},
		{Options{Format: FormatRaw}, false, false},
		{Options{Format: FormatRaw, EncryptKeys: []string{keyA}}, false, true},
		{Options{Compress: CompressZstd}, true, false}, // small values stay plain
	}
	for _, tt := range tests {
		c := mustNew(t, tt.o)
		if c.JSON() != tt.json || c.Envelope() != tt.envelope {
			t.Errorf("%+v: JSON() = %v, Envelope() = %v; want %v, %v", tt.o, c.JSON(), c.Envelope(), tt.json, tt.envelope)
		}
	}
}

func TestCreatedRange(t *testing.T) {
	c := mustNew(t, Options{Envelope: true})
	for _, tm := range []time.Time{time.UnixMilli(-1), time.UnixMilli(maxCreatedMillis + 1)} {
		if _, err := c.Encode([]byte(`{}`), Meta{Created: tm}); err == nil {
			t.Errorf("Encode with Created %v succeeded", tm)
		}
	}
	for _, ms := range []int64{0, 1, maxCreatedMillis} {
		stored, err := c.Encode([]byte(`{}`), Meta{Created: time.UnixMilli(ms)})
		if err != nil {
			t.Fatal(err)
		}
		_, meta, err := c.Decode(stored)
		if err != nil || meta.Created.UnixMilli() != ms {
			t.Errorf("Created %d ms came back as %v, %v", ms, meta.Created, err)
		}
	}
}

// TestConcurrentUse: one codec serves many connections; run with -race.
// Each result must stay intact while other calls reuse pooled buffers.
func TestConcurrentUse(t *testing.T) {
	cfgs := []Options{
		{Format: FormatMsgpack, Compress: CompressZstd, EncryptKeys: []string{keyA}},
		{Compress: CompressGzip},
		{Format: FormatMsgpack, Compress: CompressGzip},
	}
	for _, o := range cfgs {
		c := mustNew(t, o)
		done := make(chan error)
		for g := 0; g < 8; g++ {
			go func() {
				var err error
				var kept [][]byte
				var want [][]byte
				for i := 0; i < 50 && err == nil; i++ {
					p := bigSession(1500 + 100*g + i)
					var stored, got []byte
					if stored, err = c.Encode(p, Meta{}); err == nil {
						got, _, err = c.Decode(stored)
					}
					kept, want = append(kept, got), append(want, p)
				}
				for i := range kept {
					if err == nil && !bytes.Equal(kept[i], want[i]) {
						err = fmt.Errorf("result %d changed after later calls", i)
					}
				}
				done <- err
			}()
		}
		for g := 0; g < 8; g++ {
			if err := <-done; err != nil {
				t.Fatalf("%+v: %v", o, err)
			}
		}
	}
}
