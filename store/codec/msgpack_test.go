package codec

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func TestMsgpackRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		json string
		want string // compact form expected back; empty: the input itself
	}{
		{"nested", `{"a":{"b":{"c":{"d":[1,[2,[3,{}]]]}}}}`, ""},
		{"empty containers", `{"o":{},"a":[],"s":""}`, ""},
		{"key order kept", `{"z":1,"a":2,"m":3,"b":{"y":1,"x":2}}`, ""},
		{"duplicate keys kept", `{"a":1,"a":2}`, ""},
		{"literals", `{"t":true,"f":false,"n":null}`, ""},
		{"ints", `{"zero":0,"neg":-1,"fix":127,"u8":255,"i16":-32768,"big":9007199254740993,"maxu":18446744073709551615,"mini":-9223372036854775808}`, ""},
		{"beyond 64 bits", `{"n":123456789012345678901234567890,"m":-18446744073709551616}`, ""},
		{"floats", `{"a":1.5,"b":-0.1,"c":3.141592653589793,"d":1e-7,"e":1e+21,"f":5e-324,"g":1.7976931348623157e+308}`, ""},
		{"number text kept", `{"a":1.0,"b":-0,"c":1E5,"d":1e5,"e":0.10,"f":-0.0,"g":1e400,"h":1.00000000000000000001}`, ""},
		{"unicode", `{"jp":"日本語","emoji":"🎉","mixed":"é-ü-ß","key ✓":1}`, ""},
		{"escapes", `{"q":"say \"hi\"","bs":"a\\b","nl":"l1\nl2","tab":"\t","ctl":"\u0001\u001f","del":"\u007f"}`,
			`{"q":"say \"hi\"","bs":"a\\b","nl":"l1\nl2","tab":"\t","ctl":"\u0001\u001f","del":"` + "\x7f" + `"}`},
		{"escapes normalised", `{"u":"\u00e9\u65e5","slash":"\/","pair":"\ud83c\udf89","\u0041":1}`, `{"u":"é日","slash":"/","pair":"🎉","A":1}`},
		{"lone surrogate", `{"s":"\ud800x","t":"\udc00"}`, `{"s":"` + "\uFFFD" + `x","t":"` + "\uFFFD" + `"}`},
		{"whitespace dropped", " {\n\t\"a\" : [ 1 , 2 ] ,\r\n \"b\":{ } } ", `{"a":[1,2],"b":{}}`},
		{"long string", `{"s":"` + strings.Repeat("x", 70000) + `","t":"` + strings.Repeat("é", 100) + `\n"}`, ""},
		{"many keys", manyKeys(70000), ""},
		{"html not escaped", `{"h":"<a href='x'>&amp;</a>"}`, ""},
	}
	c := mustNew(t, Options{Format: FormatMsgpack})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored, err := c.Encode([]byte(tt.json), Meta{})
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := c.Decode(stored)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "" {
				want = tt.json
			}
			if string(got) != want {
				t.Fatalf("Decode(Encode(x)) =\n%.200s\nwant\n%.200s", got, want)
			}
			checkPayload(t, got, []byte(tt.json), true)
		})
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k`)
		b.WriteString(strings.Repeat("x", i%3))
		b.WriteString(`":[]`)
	}
	b.WriteByte('}')
	return b.String()
}

// TestMsgpackIsStandard: the stored body is plain MessagePack that any
// library reads, with ints and floats as native types.
func TestMsgpackIsStandard(t *testing.T) {
	c := mustNew(t, Options{Format: FormatMsgpack})
	stored, err := c.Encode([]byte(`{"id":42,"neg":-7,"ratio":0.25,"name":"x","tags":["a"],"ok":true,"none":null}`), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(stored[offCreated:], &m); err != nil {
		t.Fatal(err)
	}
	if m["id"] != int8(42) || m["neg"] != int8(-7) || m["ratio"] != 0.25 || m["name"] != "x" || m["ok"] != true || m["none"] != nil {
		t.Fatalf("msgpack.Unmarshal = %#v", m)
	}
}

// TestMsgpackFromOtherWriters: bodies written by the msgpack library
// itself (other compact forms, float32) decode too.
func TestMsgpackFromOtherWriters(t *testing.T) {
	body, err := msgpack.Marshal(map[string]any{"f32": float32(0.5), "u64": uint64(1) << 63, "i": int64(-300), "s": strings.Repeat("y", 300)})
	if err != nil {
		t.Fatal(err)
	}
	stored := append([]byte{0, 'S', 'P', '1', formatMsgpack}, body...)
	got, _, err := Plain().Decode(stored)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"f32":0.5`, `"u64":9223372036854775808`, `"i":-300`} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("Decode = %s, missing %s", got, want)
		}
	}
}

func TestMsgpackDepthLimit(t *testing.T) {
	c := mustNew(t, Options{Format: FormatMsgpack})
	deep := `{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`
	// Validation refuses it first, as encoding/json does (ValidJSON); the
	// converter's own bound stays for whoever calls it without.
	if _, err := c.Encode([]byte(deep), Meta{}); err != ErrNotJSON {
		t.Fatalf("Encode of %d-deep JSON: %v, want %v", maxDepth+1, err, ErrNotJSON)
	}
	if _, err := newMsgpackConv().fromJSON(nil, []byte(deep)); err != errTooDeep {
		t.Fatalf("fromJSON of %d-deep JSON: %v, want %v", maxDepth+1, err, errTooDeep)
	}
	body := append([]byte{0x81, 0xa1, 'a'}, bytes.Repeat([]byte{0x91}, maxDepth+1)...)
	body = append(body, 0xc0)
	if _, _, err := c.Decode(append([]byte{0, 'S', 'P', '1', formatMsgpack}, body...)); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
		t.Fatalf("Decode of %d-deep msgpack: %v, want nested too deeply", maxDepth+2, err)
	}
}

func TestIsJSONNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-12", "1.5", "0.0", "1e5", "1E+5", "1e-5", "-0.5e10"} {
		if !isJSONNumber([]byte(s)) {
			t.Errorf("isJSONNumber(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1.5.5", "0x10", "NaN", "1,"} {
		if isJSONNumber([]byte(s)) {
			t.Errorf("isJSONNumber(%q) = true", s)
		}
	}
}

// TestMsgpackOutputUnchanged: the converter writes exactly the bytes it
// wrote before headers were compacted in one pass at the end (digests of
// the earlier converter's output), so stored values read the same both
// ways and the stored size is unchanged.
func TestMsgpackOutputUnchanged(t *testing.T) {
	want := map[string]struct {
		size   int
		digest string
	}{
		"deep":    {24311, "5890625ae5f8bc2fb3ff9911ece86e817659a3e275fcfdfceec1de8a13bf33ee"},
		"empty":   {4, "3281bc7801820b176542b15787745baf7730f91cef9c1a6ff368325068f2d564"},
		"n=15":    {136, "9eed0427137f669c55b217412f4c54b7911f2776eb7a2d0012a73e06c571a2b9"},
		"n=16":    {148, "25a6b72290c1a76c46f9f680cb6e12a73b0f4185b3225782febed54af9219fcc"},
		"n=255":   {2217, "17f82991fa16065b3d71880da1cda8e120f5562332cbf71d2af6195875e29921"},
		"n=256":   {2228, "091e85ce19966835ce714b93eecd936435d0a9901947557ae45fec2aae7df0d6"},
		"n=31":    {268, "4af3cebf1b2ffe04034290d7c36a7cfc66a539baef36b8bec0d341aa695e2d28"},
		"n=32":    {278, "79c5bcc499fc7f6d40c1dc7e90b78ebd462373492e292369fba8c3f7f00c88e5"},
		"n=65535": {709809, "8aac06de124ed7265f323be1b5efd7419f8eeebcf864f19a0bc69dc48b1e8e8d"},
		"n=65536": {709828, "bc9807bbc758a79f403b4ad6a24123a702114ed83ebbaae8a0e0bef6b46d0862"},
		"session": {1298, "d971a90c02446871e7ebbc7b9420a6bf303a27cb506fb09dfbc72a5ed6191309"},
	}
	conv := newMsgpackConv()
	for name, payload := range msgpackShapes() {
		out, err := conv.fromJSON([]byte("hdr"), []byte(payload))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(out)); len(out) != want[name].size || got != want[name].digest {
			t.Errorf("%s: %d bytes, sha256 %s; want %d, %s", name, len(out), got, want[name].size, want[name].digest)
		}
		if len(payload) > 64<<10 {
			continue // the largest shapes only for their digests
		}
		back, err := conv.toJSON(nil, out[len("hdr"):], minDecodedLimit)
		if err != nil {
			t.Fatalf("%s: toJSON: %v", name, err)
		}
		checkPayload(t, back, []byte(payload), true)
	}
}

// A string nested thousands of arrays deep was moved once per level (each
// container's contents moved back over its reserved header): 9,990 deep
// in 8 MiB took 6.8 s. Conversion is linear in the payload now.
func TestMsgpackDeepNestingIsLinear(t *testing.T) {
	const size, depth = 2 << 20, 9000
	nested := func(depth int) []byte {
		return []byte(`{"a":` + strings.Repeat("[", depth) + `"` + strings.Repeat("x", size-2*depth-16) + `"` + strings.Repeat("]", depth) + `}`)
	}
	conv := newMsgpackConv()
	best := func(payload []byte) time.Duration {
		var min time.Duration
		for i := 0; i < 3; i++ {
			start := time.Now()
			if _, err := conv.fromJSON(nil, payload); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); i == 0 || took < min {
				min = took
			}
		}
		return min
	}
	flat, deep := best(nested(1)), best(nested(depth))
	t.Logf("2 MiB string: %v unnested, %v nested %d deep", flat, deep, depth)
	if limit := 10*flat + 50*time.Millisecond; deep > limit {
		t.Errorf("converting a 2 MiB string nested %d deep took %v, %v unnested; want under %v", depth, deep, flat, limit)
	}
}

// msgpackShapes are JSON payloads whose containers and escaped strings
// cross every MessagePack header width: fix, 8-, 16- and 32-bit lengths.
func msgpackShapes() map[string]string {
	shapes := map[string]string{
		"session": string(bigSession(1500)),
		"empty":   `{}`,
		"deep":    `{"a":` + strings.Repeat(`[{"k":"\n","v":`, 3000) + `"x\"` + strings.Repeat("y", 300) + `"` + strings.Repeat("}]", 3000) + `}`,
	}
	for _, n := range []int{15, 16, 31, 32, 255, 256, 65535, 65536} {
		arr := `[` + strings.Repeat(`1,`, n-1) + `1]`
		var obj strings.Builder
		obj.WriteByte('{')
		for i := 0; i < n; i++ {
			if i > 0 {
				obj.WriteByte(',')
			}
			fmt.Fprintf(&obj, `"k%d":[]`, i)
		}
		obj.WriteByte('}')
		esc := `"` + strings.Repeat("x", n-1) + `\n"`
		shapes[fmt.Sprint("n=", n)] = `{"arr":` + arr + `,"obj":` + obj.String() + `,"esc":` + esc + `,"plain":"` + strings.Repeat("p", n) + `"}`
	}
	return shapes
}

// TestMsgpackConversionIsBounded: MessagePack converts to JSON up to six
// times its size (a control byte in a string becomes \u00XX, a nil
// "null"), so the conversion has a bound of its own, the decode limit. A
// stored value of 2 KB (zstd over 64 MiB of 0x01 in one string) converted
// to 384 MiB and grew the proxy by 1.6 GB before the bound.
func TestMsgpackConversionIsBounded(t *testing.T) {
	conv := newMsgpackConv()
	// {"a": "\x01" × 100}: 100 bytes of string convert to 600.
	body := append([]byte{0x81, 0xa1, 'a', 0xd9, 100}, bytes.Repeat([]byte{1}, 100)...)
	if _, err := conv.toJSON(nil, body, 600); !errors.Is(err, errConvertedTooLarge) {
		t.Errorf("600 bytes of escapes under a 600-byte limit: %v, want %v", err, errConvertedTooLarge)
	}
	out, err := conv.toJSON(nil, body, 608)
	if err != nil || len(out) != 608 {
		t.Errorf("the same under 608 bytes, its exact size: %d bytes, %v", len(out), err)
	}
	// {"a": [nil × 1000]}: one byte each, five in JSON.
	nils := append([]byte{0x81, 0xa1, 'a', 0xdc, 0x03, 0xe8}, bytes.Repeat([]byte{0xc0}, 1000)...)
	if _, err := conv.toJSON(nil, nils, 4000); !errors.Is(err, errConvertedTooLarge) {
		t.Errorf("1000 nulls under a 4000-byte limit: %v, want %v", err, errConvertedTooLarge)
	}

	// Through Decode: a stored msgpack|zstd value within the decompression
	// limit whose JSON is past it is refused, and costs no more than the
	// limit to find out.
	c := mustNew(t, Options{Format: FormatMsgpack, Compress: CompressZstd})
	c.(*codec).comp.limit = 1 << 20 // as 64 MiB, in less time
	n := 256 << 10                  // of 0x01: 1.5 MiB of JSON
	big := make([]byte, 0, n+8)
	big = append(big, 0x81, 0xa1, 'a', 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	big = append(big, bytes.Repeat([]byte{1}, n)...)
	stored := appendHeader(nil, formatMsgpack|compressZstd<<flagCompressBit, -1)
	stored = c.(*codec).comp.zenc.EncodeAll(big, stored)
	t.Logf("stored value: %d bytes", len(stored))
	if _, _, err := c.Decode(stored); !errors.Is(err, errConvertedTooLarge) {
		t.Errorf("Decode of %d bytes converting to %d KiB: %v, want %v", len(stored), 6*n>>10, err, errConvertedTooLarge)
	}
}
