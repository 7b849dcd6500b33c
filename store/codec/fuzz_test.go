package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzDecode: Decode never panics, and whatever it accepts as msgpack comes
// back as a JSON object. `go test` runs the seeds only; explore with
// go test -run '^$' -fuzz FuzzDecode ./store/codec/
func FuzzDecode(f *testing.F) {
	created := Meta{Created: time.UnixMilli(1_700_000_000_000)}
	payloads := [][]byte{
		[]byte(`{"a":1}`),
		[]byte(`{"a":[1,2.5,-3,"x\n",{"b":null,"c":true}],"n":12345678901234567890123}`),
		bigSession(2048),
	}
	for _, cfg := range matrix() {
		c := mustNew(f, cfg.o)
		for _, p := range payloads {
			for _, m := range []Meta{{}, created} {
				if stored, err := c.Encode(p, m); err == nil {
					f.Add(stored)
				}
			}
		}
	}
	for _, s := range []string{"", "\x00", "\x00SP", "\x00SP1", "\x00SP1\x3f", "\x00SP1\x10\x01A", "\x00SP1\x01\xdf\xff\xff\xff\xff", "TOMBSTONE", "{}"} {
		f.Add([]byte(s))
	}
	readers := []Codec{mustNew(f, Options{}), mustNew(f, Options{Format: FormatMsgpack, EncryptKeys: []string{keyB, keyA}})}
	f.Fuzz(func(t *testing.T, stored []byte) {
		for _, c := range readers {
			got, _, err := c.Decode(stored)
			if err != nil {
				if !errors.Is(err, ErrUndecodable) {
					t.Fatalf("error %v does not wrap ErrUndecodable", err)
				}
				continue
			}
			if !hasHeader(stored) {
				if !bytes.Equal(got, stored) {
					t.Fatalf("plain value changed: %q -> %q", stored, got)
				}
				continue
			}
			if stored[offFlags]&flagFormatMask == formatMsgpack {
				var v map[string]any
				if err := json.Unmarshal(got, &v); err != nil {
					t.Fatalf("msgpack decoded to invalid JSON object %q: %v", got, err)
				}
			}
		}
	})
}

// FuzzMsgpackRoundTrip: every JSON object the msgpack codec accepts comes
// back with the same tokens (values, key order, number text).
func FuzzMsgpackRoundTrip(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":[1,{"b":"c"}],"d":-0.0,"e":1e400}`, `{"s":"\ud83c\udf89\u0000"}`, string(bigSession(1500)),
	} {
		f.Add([]byte(s))
	}
	c := mustNew(f, Options{Format: FormatMsgpack, Compress: CompressZstd})
	f.Fuzz(func(t *testing.T, payload []byte) {
		stored, err := c.Encode(payload, Meta{})
		if err != nil {
			return
		}
		got, _, err := c.Decode(stored)
		if err != nil {
			t.Fatalf("Decode(Encode(%q)): %v", payload, err)
		}
		// encoding/json rejects what gjson tolerates (invalid UTF-8 is
		// replaced, not refused), so compare only when it parses.
		if _, err := jsonTokens(payload); err == nil && json.Valid(payload) {
			checkPayload(t, got, payload, true)
		}
	})
}

// FuzzValidate: the json codec accepts a payload exactly when the standard
// library's encoding/json.Valid does and it is an object. Validate uses
// gjson's validator, several times faster than the standard library's on a
// 1 KB session, where the payload has few brackets (ValidJSON); this holds
// the two to the same verdict. `go test` runs the seeds only; explore with
// go test -run '^$' -fuzz FuzzValidate ./store/codec/
func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		`{}`, ` {"a":true} `, `{"a":"\u00e9"}`, `{"a":"\ud800"}`, `{"a":1e5}`, `{"a":-0}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":tru}`, `{"a":null,}`, `{"a" : [ ] }`,
		"{\"a\":\"\x01\"}", `{"a":"\x"}`, "{\"a\":\"\xff\"}", `[1,2]`, `"s"`, ``, `{"a":1}{}`,
	} {
		f.Add([]byte(s))
	}
	f.Add(bigSession(2048))
	c := mustNew(f, Options{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		want := json.Valid(payload) && bytes.HasPrefix(bytes.TrimLeft(payload, " \t\r\n"), []byte("{"))
		if got := c.Validate(payload) == nil; got != want {
			t.Fatalf("Validate(%q) accepts: %v, want %v", payload, got, want)
		}
	})
}
