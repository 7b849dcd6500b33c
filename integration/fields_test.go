package integration

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store/codec"
)

// wantStoredJSON checks the upstream value at key is JSON equal to want.
func (p *proxyHandle) wantStoredJSON(t *testing.T, key, want string) {
	t.Helper()
	v, ok := p.stored(t, key)
	if !ok {
		t.Errorf("upstream: %s missing, want %s", key, clip(want))
		return
	}
	if !jsonEqual(t, v, want) {
		t.Errorf("upstream: %s = %s, want JSON equal to %s", key, clip(v), clip(want))
	}
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb interface{}
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		return false
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("bad JSON in test: %s: %v", b, err)
	}
	return fmt.Sprint(va) == fmt.Sprint(vb)
}

func testFields(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	wantReply(t, c, "OK", "SESS.SET", "f1", `{"cookie":{"path":"/"},"user":{"name":"ann"},"n":1}`)

	// FGET and FMGET: the raw JSON of top-level fields; the name is taken
	// literally, never as a path.
	tests := []struct {
		args []interface{}
		want interface{}
	}{
		{[]interface{}{"SESS.FGET", "f1", "user"}, `{"name":"ann"}`},
		{[]interface{}{"SESS.FGET", "f1", "n"}, "1"},
		{[]interface{}{"SESS.FGET", "f1", "cookie"}, `{"path":"/"}`},
		{[]interface{}{"SESS.FGET", "f1", "nope"}, nil},
		{[]interface{}{"SESS.FGET", "f1", "user.name"}, nil}, // no field named "user.name"
		{[]interface{}{"SESS.FGET", "missing", "n"}, nil},
		{[]interface{}{"SESS.FMGET", "f1", "n", "nope", "user"}, []interface{}{"1", nil, `{"name":"ann"}`}},
		{[]interface{}{"SESS.FMGET", "missing", "n", "user"}, []interface{}{nil, nil}},
	}
	for _, tt := range tests {
		wantReply(t, c, tt.want, tt.args...)
	}

	// FSET: :N fields set, others kept, the TTL recomputed from the new
	// payload (here its cookie.expires).
	wantReply(t, c, 3, "SESS.FSET", "f1", "n", "2", "cart", `[1,{"sku":"x"}]`, "user.name", `"literal"`)
	p.wantStoredJSON(t, "sess:f1", `{"cookie":{"path":"/"},"user":{"name":"ann"},"n":2,"cart":[1,{"sku":"x"}],"user.name":"literal"}`)
	wantReply(t, c, `"literal"`, "SESS.FGET", "f1", "user.name")
	cookie := fmt.Sprintf(`{"expires":%q}`, time.Now().Add(2*time.Hour).UTC().Format(time.RFC3339))
	wantReply(t, c, 1, "SESS.FSET", "f1", "cookie", cookie)
	p.wantTTL(t, "sess:f1", 2*time.Hour)

	// FDEL: :N fields removed.
	wantReply(t, c, 2, "SESS.FDEL", "f1", "cart", "nope", "user.name")
	p.wantStoredJSON(t, "sess:f1", `{"cookie":`+cookie+`,"user":{"name":"ann"},"n":2}`)
	wantReply(t, c, []interface{}{nil, "2"}, "SESS.FMGET", "f1", "cart", "n")
	wantReply(t, c, 0, "SESS.FDEL", "f1", "nope")
	wantReply(t, c, 0, "SESS.FDEL", "missing", "n")
	p.wantMissing(t, "sess:missing")

	// FSET creates a missing session, with the policy TTL.
	wantReply(t, c, 2, "SESS.FSET", "f2", "a", `"x"`, "b", "null")
	p.wantStoredJSON(t, "sess:f2", `{"a":"x","b":null}`)
	p.wantTTL(t, "sess:f2", defaultTTL)
	wantReply(t, c, "null", "SESS.FGET", "f2", "b")

	// Mistakes leave the session as it was.
	wantErr(t, c, "ERR invalid session payload: field 'a' is not valid JSON", "SESS.FSET", "f2", "a", "{nope")
	wantErr(t, c, "ERR wrong number of arguments for 'sess.fset' command", "SESS.FSET", "f2", "a", `1`, "b")
	wantErr(t, c, "ERR wrong number of arguments for 'sess.fset' command", "SESS.FSET", "f2", "a")
	wantErr(t, c, "ERR wrong number of arguments for 'sess.fget' command", "SESS.FGET", "f2")
	wantErr(t, c, "ERR wrong number of arguments for 'sess.fdel' command", "SESS.FDEL", "f2")
	p.wantStoredJSON(t, "sess:f2", `{"a":"x","b":null}`)

	// A tombstoned session: reads see nothing, writes are refused.
	wantReply(t, c, 1, "SESS.DESTROY", "f1")
	wantReply(t, c, nil, "SESS.FGET", "f1", "n")
	wantReply(t, c, []interface{}{nil}, "SESS.FMGET", "f1", "n")
	wantErr(t, c, destroyedError("f1"), "SESS.FSET", "f1", "n", "3")
	wantErr(t, c, destroyedError("f1"), "SESS.FDEL", "f1", "n")
	wantReply(t, c, 0, "SESS.DESTROY", "never")
	wantErr(t, c, destroyedError("never"), "SESS.FSET", "never", "n", "1")
	p.wantTombstone(t, "sess:f1")
	p.wantTombstone(t, "sess:never")
}

// mustStored is the upstream value at key; the test fails when missing.
func mustStored(t *testing.T, p *proxyHandle, key string) string {
	t.Helper()
	v, ok := p.stored(t, key)
	if !ok {
		t.Fatalf("upstream: %s missing", key)
	}
	return v
}

// testFieldsConcurrent: 10 clients, each on its own connection, set 50
// different fields of one session at once; every field survives, with
// the default codec and with one that compresses and encrypts (where the
// read-modify-write has to happen in the proxy).
func testFieldsConcurrent(t *testing.T, up *upstream) {
	const writers, perWriter = 10, 5
	codecs := []struct {
		name string
		opts codec.Options
	}{
		{"json", codec.Options{}},
		{"msgpack+zstd+aes", codec.Options{Format: codec.FormatMsgpack, Compress: codec.CompressZstd, CompressMinBytes: -1,
			EncryptKeys: []string{testKey("k1", 1)}}},
	}
	for _, cc := range codecs {
		t.Run(cc.name, func(t *testing.T) {
			cdc := newCodec(t, cc.opts)
			p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.Codec = cdc })
			start := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, writers*perWriter)
			for w := 0; w < writers; w++ {
				c := p.client(t) // its own connection
				if err := c.Ping(bg).Err(); err != nil {
					t.Fatalf("PING: %v", err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for i := 0; i < perWriter; i++ {
						field := fmt.Sprintf("w%d_f%d", w, i)
						n, err := c.Do(bg, "SESS.FSET", "race", field, fmt.Sprintf(`{"by":%d,"i":%d}`, w, i)).Int64()
						if err != nil || n != 1 {
							errs <- fmt.Errorf("SESS.FSET race %s = %d, %v; want 1", field, n, err)
						}
					}
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}

			// Read the upstream directly: one session holding every field.
			stored := mustStored(t, p, "sess:race")
			payload, _, err := cdc.Decode([]byte(stored))
			if err != nil {
				t.Fatalf("decode the stored session: %v", err)
			}
			var fields map[string]struct{ By, I int }
			if err := json.Unmarshal(payload, &fields); err != nil {
				t.Fatalf("stored session %s: %v", clip(string(payload)), err)
			}
			if len(fields) != writers*perWriter {
				t.Errorf("stored session has %d fields, want %d: %s", len(fields), writers*perWriter, clip(string(payload)))
			}
			for w := 0; w < writers; w++ {
				for i := 0; i < perWriter; i++ {
					field := fmt.Sprintf("w%d_f%d", w, i)
					if got, ok := fields[field]; !ok || got.By != w || got.I != i {
						t.Errorf("field %s = %+v (present %v), want by %d, i %d", field, got, ok, w, i)
					}
				}
			}
			p.wantTTL(t, "sess:race", defaultTTL)
		})
	}
}
