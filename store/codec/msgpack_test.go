package codec

import (
	"bytes"
	"strings"
	"testing"

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
