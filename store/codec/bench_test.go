package codec

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	kpgzip "github.com/klauspost/compress/gzip"
)

// benchSessions are express-session JSON documents of about 1 KB and 64 KB.
var benchSessions = []struct {
	name string
	size int
}{
	{"1KB", 1 << 10},
	{"64KB", 64 << 10},
}

// benchCodecs are the configurations the docs compare.
var benchCodecs = []config{
	{"json", Options{}},
	{"msgpack", Options{Format: FormatMsgpack}},
	{"json+zstd", Options{Compress: CompressZstd}},
	{"json+gzip", Options{Compress: CompressGzip}},
	{"msgpack+zstd", Options{Format: FormatMsgpack, Compress: CompressZstd}},
	{"json+aes", Options{EncryptKeys: []string{keyA}}},
	{"msgpack+zstd+aes", Options{Format: FormatMsgpack, Compress: CompressZstd, EncryptKeys: []string{keyA}}},
}

// expressSession builds a deterministic session of at least size bytes, as
// express-session with passport and a shop would store it: the cookie, the
// user, a cart whose items make up the bulk, flash messages and a history
// of visited pages. Ids and tokens are random, the rest repeats the way
// real sessions do, so it compresses realistically rather than perfectly.
func expressSession(size int) []byte {
	type cookie struct {
		OriginalMaxAge int64  `json:"originalMaxAge"`
		Expires        string `json:"expires"`
		Secure         bool   `json:"secure"`
		HTTPOnly       bool   `json:"httpOnly"`
		Path           string `json:"path"`
		SameSite       string `json:"sameSite"`
	}
	type user struct {
		ID        int64    `json:"id"`
		Email     string   `json:"email"`
		Name      string   `json:"name"`
		Roles     []string `json:"roles"`
		Locale    string   `json:"locale"`
		LastLogin string   `json:"lastLogin"`
	}
	type item struct {
		SKU      string            `json:"sku"`
		Name     string            `json:"name"`
		Qty      int               `json:"qty"`
		Price    float64           `json:"price"`
		Currency string            `json:"currency"`
		AddedAt  int64             `json:"addedAt"`
		Options  map[string]string `json:"options"`
	}
	type session struct {
		Cookie     cookie              `json:"cookie"`
		Passport   map[string]string   `json:"passport"`
		CSRFSecret string              `json:"csrfSecret"`
		User       user                `json:"user"`
		Cart       []item              `json:"cart"`
		Flash      map[string][]string `json:"flash"`
		History    []string            `json:"history"`
	}
	rng := rand.New(rand.NewPCG(1, 2))
	token := func(n int) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	products := []string{"Espresso beans 1kg", "Ceramic pour-over dripper", "Paper filters (100)", "Burr grinder", "Milk jug 600ml", "Gift card", "Travel mug, stainless steel", "Decaf sampler"}
	colours := []string{"black", "white", "sage", "terracotta"}
	start := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	s := session{
		Cookie:     cookie{86_400_000, start.Add(24 * time.Hour).Format("2006-01-02T15:04:05.000Z"), true, true, "/", "lax"},
		Passport:   map[string]string{"user": "usr_" + token(12)},
		CSRFSecret: token(24),
		User: user{ID: 48_213, Email: "alice.example@example.com", Name: "Alice Example", Roles: []string{"customer", "beta"},
			Locale: "en-GB", LastLogin: start.Format(time.RFC3339)},
		Flash: map[string][]string{"info": {"Item added to your cart."}},
	}
	for i := 0; ; i++ {
		b, err := json.Marshal(s)
		if err != nil {
			panic(err)
		}
		if len(b) >= size {
			return b
		}
		if i%4 == 3 {
			s.History = append(s.History, fmt.Sprintf("/products/%d?ref=%s", rng.IntN(5000), token(6)))
			continue
		}
		s.Cart = append(s.Cart, item{
			SKU:      fmt.Sprintf("SKU-%06d", rng.IntN(1_000_000)),
			Name:     products[rng.IntN(len(products))],
			Qty:      1 + rng.IntN(3),
			Price:    float64(rng.IntN(10_000)) / 100,
			Currency: "EUR",
			AddedAt:  start.Add(time.Duration(i) * time.Minute).UnixMilli(),
			Options:  map[string]string{"colour": colours[rng.IntN(len(colours))], "gift": fmt.Sprint(rng.IntN(4) == 0)},
		})
	}
}

// BenchmarkCodecs: go test -run '^$' -bench Codecs -benchmem ./store/codec/
func BenchmarkCodecs(b *testing.B) {
	created := Meta{Created: time.UnixMilli(1_741_944_413_000)}
	for _, sz := range benchSessions {
		payload := expressSession(sz.size)
		for _, cfg := range benchCodecs {
			c := mustNew(b, cfg.o)
			stored, err := c.Encode(payload, created)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(sz.name+"/"+cfg.name+"/encode", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(payload)))
				for b.Loop() {
					if _, err := c.Encode(payload, created); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(stored)), "stored-bytes")
			})
			b.Run(sz.name+"/"+cfg.name+"/decode", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(payload)))
				for b.Loop() {
					if _, _, err := c.Decode(stored); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(stored)), "stored-bytes")
			})
		}
	}
}

// BenchmarkGzipLibraries backs the choice of klauspost/compress/gzip over
// compress/gzip: both at their default level, writers and readers reused.
func BenchmarkGzipLibraries(b *testing.B) {
	type gzipImpl struct {
		name    string
		writer  func(io.Writer) io.WriteCloser
		reset   func(io.WriteCloser, io.Writer)
		readAll func(*bytes.Reader) ([]byte, error)
	}
	var stdR stdgzip.Reader
	var kpR kpgzip.Reader
	impls := []gzipImpl{
		{"stdlib",
			func(w io.Writer) io.WriteCloser { return stdgzip.NewWriter(w) },
			func(z io.WriteCloser, w io.Writer) { z.(*stdgzip.Writer).Reset(w) },
			func(r *bytes.Reader) ([]byte, error) {
				if err := stdR.Reset(r); err != nil {
					return nil, err
				}
				return io.ReadAll(&stdR)
			}},
		{"klauspost",
			func(w io.Writer) io.WriteCloser { return kpgzip.NewWriter(w) },
			func(z io.WriteCloser, w io.Writer) { z.(*kpgzip.Writer).Reset(w) },
			func(r *bytes.Reader) ([]byte, error) {
				if err := kpR.Reset(r); err != nil {
					return nil, err
				}
				return io.ReadAll(&kpR)
			}},
	}
	for _, sz := range benchSessions {
		payload := expressSession(sz.size)
		for _, impl := range impls {
			var buf bytes.Buffer
			z := impl.writer(&buf)
			compress := func() {
				buf.Reset()
				impl.reset(z, &buf)
				if _, err := z.Write(payload); err != nil {
					b.Fatal(err)
				}
				if err := z.Close(); err != nil {
					b.Fatal(err)
				}
			}
			compress()
			compressed := bytes.Clone(buf.Bytes())
			b.Run(sz.name+"/"+impl.name+"/compress", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(payload)))
				for b.Loop() {
					compress()
				}
				b.ReportMetric(float64(len(compressed)), "stored-bytes")
			})
			b.Run(sz.name+"/"+impl.name+"/decompress", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(payload)))
				var r bytes.Reader
				for b.Loop() {
					r.Reset(compressed)
					if _, err := impl.readAll(&r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
