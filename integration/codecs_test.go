package integration

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store/codec"
)

// testKey is an encrypt_keys entry: id and 32 bytes of b, base64.
func testKey(id string, b byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
}

// Header flags (docs/codecs.md).
const (
	hdrMsgpack   = 0x01
	hdrZstd      = 0x01 << 2
	hdrGzip      = 0x02 << 2
	hdrEncrypted = 0x10
	noHeader     = -1
)

// bigSession is a compressible express-session payload of about 4 KB,
// above the default compress_min_bytes (1024).
func bigSession(user string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"cookie":{"originalMaxAge":86400000,"httpOnly":true,"path":"/"},"user":%q,"cart":[`, user)
	for i := 0; i < 60; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"item-%04d","qty":%d,"price":19.5,"gift":false}`, i, i%3+1)
	}
	b.WriteString(`]}`)
	return b.String()
}

// smallSession is below compress_min_bytes.
func smallSession(user string) string {
	return fmt.Sprintf(`{"cookie":{"path":"/"},"user":%q,"n":-1.5e3}`, user)
}

// wantHeader checks the stored value at key: the JSON itself when flags is
// noHeader, else the header with exactly those flags, not the JSON, and
// with keyID in it when encrypted.
func (p *proxyHandle) wantHeader(t *testing.T, key, payload string, flags int, keyID string) {
	t.Helper()
	v := mustStored(t, p, key)
	if flags == noHeader {
		if v != payload {
			t.Errorf("upstream: %s = %q, want the JSON as sent", key, clip(v))
		}
		return
	}
	if !strings.HasPrefix(v, "\x00SP1") || len(v) < 5 || int(v[4]) != flags {
		t.Errorf("upstream: %s = %q, want header \\x00SP1 with flags %#x", key, clip(v), flags)
		return
	}
	if v == payload || strings.Contains(v, payload) {
		t.Errorf("upstream: %s holds the JSON as sent, want it encoded", key)
	}
	if flags&(hdrZstd|hdrGzip) != 0 && len(v) >= len(payload) {
		t.Errorf("upstream: %s is %d bytes compressed, want fewer than the JSON's %d", key, len(v), len(payload))
	}
	if flags&hdrEncrypted != 0 {
		if id := v[6 : 6+int(v[5])]; id != keyID {
			t.Errorf("upstream: %s encrypted with key %q, want %q", key, id, keyID)
		}
		if strings.Contains(v, "item-0001") || strings.Contains(v, `"cookie"`) || strings.Contains(v, "user") {
			t.Errorf("upstream: %s = %q shows plaintext", key, clip(v))
		}
	}
}

func testCodecs(t *testing.T, up *upstream) {
	k1 := testKey("k1", 1)
	tests := []struct {
		name       string
		opts       codec.Options
		big, small int // header flags stored for bigSession and smallSession
	}{
		{"msgpack", codec.Options{Format: codec.FormatMsgpack}, hdrMsgpack, hdrMsgpack},
		{"zstd", codec.Options{Compress: codec.CompressZstd}, hdrZstd, noHeader},
		{"gzip", codec.Options{Compress: codec.CompressGzip}, hdrGzip, noHeader},
		{"aes", codec.Options{EncryptKeys: []string{k1}}, hdrEncrypted, hdrEncrypted},
		{"msgpack+zstd+aes", codec.Options{Format: codec.FormatMsgpack, Compress: codec.CompressZstd, EncryptKeys: []string{k1}},
			hdrMsgpack | hdrZstd | hdrEncrypted, hdrMsgpack | hdrEncrypted},
		// compress_min_bytes -1 compresses every payload, except those
		// gzip cannot shrink (smallSession): they are stored as sent.
		{"gzip always", codec.Options{Compress: codec.CompressGzip, CompressMinBytes: -1}, hdrGzip, noHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.Codec = newCodec(t, tt.opts) })
			c := p.client(t)
			big, small := bigSession("big"), smallSession("small")

			// Through SESS.SET and plain SET alike.
			wantReply(t, c, "OK", "SESS.SET", "big", big)
			wantReply(t, c, "OK", "SET", "sess:small", small, "EX", "3600")
			p.wantHeader(t, "sess:big", big, tt.big, "k1")
			p.wantHeader(t, "sess:small", small, tt.small, "k1")
			p.wantTTL(t, "sess:big", defaultTTL)
			p.wantTTL(t, "sess:small", time.Hour)

			// Every read returns the JSON as the client sent it.
			wantReply(t, c, big, "SESS.GET", "big")
			wantReply(t, c, big, "GET", "sess:big")
			wantReply(t, c, small, "SESS.GET", "small")
			wantReply(t, c, small, "GET", "sess:small")
			wantReply(t, c, []interface{}{big, nil, small}, "MGET", "sess:big", "sess:none", "sess:small")
			wantReply(t, c, `"small"`, "SESS.FGET", "small", "user")
			wantReply(t, c, []interface{}{"-1.5e3"}, "SESS.FMGET", "small", "n")
			all := mustStrings(t, c, "SESS.ALL")
			if len(all) != 4 {
				t.Fatalf("SESS.ALL = %q, want two sessions", all)
			}
			for i := 0; i < 4; i += 2 {
				if want := map[string]string{"big": big, "small": small}[all[i]]; all[i+1] != want {
					t.Errorf("SESS.ALL %s = %q, want %q", all[i], clip(all[i+1]), clip(want))
				}
			}

			// A field write keeps the codec.
			wantReply(t, c, 1, "SESS.FSET", "big", "user", `"changed"`)
			p.wantHeader(t, "sess:big", strings.Replace(big, `"big"`, `"changed"`, 1), tt.big, "k1")
			wantReply(t, c, strings.Replace(big, `"big"`, `"changed"`, 1), "SESS.GET", "big")
		})
	}
}

// withCodec sets the codec of a proxy under test.
func withCodec(t *testing.T, o codec.Options) func(*commands.Options, *proxy.Options) {
	t.Helper()
	cdc := newCodec(t, o)
	return func(co *commands.Options, _ *proxy.Options) { co.Codec = cdc }
}

// testCodecMigration: proxies with different codec options on one
// upstream read each other's sessions and plain JSON written directly, and
// a rewrite moves a session to the writer's format.
func testCodecMigration(t *testing.T, up *upstream) {
	plain := startProxy(t, up, nil) // flushes; default codec
	packed := startSibling(t, up, withCodec(t, codec.Options{Format: codec.FormatMsgpack, Compress: codec.CompressZstd, CompressMinBytes: -1}))
	sealed := startSibling(t, up, withCodec(t, codec.Options{Compress: codec.CompressGzip, EncryptKeys: []string{testKey("k1", 1)}}))
	pc, mc, sc := plain.client(t), packed.client(t), sealed.client(t)

	sessions := map[string]string{
		"legacy": smallSession("legacy"), // connect-redis wrote it, before any proxy
		"plain":  smallSession("plain"),
		"packed": bigSession("packed"),
		"sealed": bigSession("sealed"),
	}
	if err := up.direct.Set(bg, "sess:legacy", sessions["legacy"], time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	wantReply(t, pc, "OK", "SESS.SET", "plain", sessions["plain"])
	wantReply(t, mc, "OK", "SET", "sess:packed", sessions["packed"])
	wantReply(t, sc, "OK", "SESS.SET", "sealed", sessions["sealed"])
	plain.wantHeader(t, "sess:plain", sessions["plain"], noHeader, "")
	plain.wantHeader(t, "sess:packed", sessions["packed"], hdrMsgpack|hdrZstd, "")
	plain.wantHeader(t, "sess:sealed", sessions["sealed"], hdrGzip|hdrEncrypted, "k1")

	// Every proxy reads every format it has the keys for.
	reads := []struct {
		name string
		c    doer
		sids []string
	}{
		{"plain", pc, []string{"legacy", "plain", "packed"}},
		{"msgpack+zstd", mc, []string{"legacy", "plain", "packed"}},
		{"gzip+aes", sc, []string{"legacy", "plain", "packed", "sealed"}},
	}
	for _, r := range reads {
		for _, sid := range r.sids {
			wantReply(t, r.c, sessions[sid], "SESS.GET", sid)
			wantReply(t, r.c, sessions[sid], "GET", "sess:"+sid)
		}
	}
	wantErrPrefix(t, pc, "ERR session sealed cannot be decoded: ", "SESS.GET", "sealed")

	// A rewrite stores the writer's format: lazy migration, both ways.
	wantReply(t, sc, 1, "SESS.FSET", "legacy", "n", "1")
	migrated := strings.Replace(sessions["legacy"], "-1.5e3", "1", 1)
	plain.wantHeader(t, "sess:legacy", migrated, hdrEncrypted, "k1") // small: not compressed
	wantReply(t, sc, migrated, "GET", "sess:legacy")
	wantReply(t, mc, "OK", "SESS.SET", "plain", sessions["plain"])
	plain.wantHeader(t, "sess:plain", sessions["plain"], hdrMsgpack, "") // msgpack even when small
	wantReply(t, pc, "OK", "SET", "sess:packed", sessions["packed"])
	plain.wantHeader(t, "sess:packed", sessions["packed"], noHeader, "")
	for _, c := range []doer{pc, mc, sc} {
		wantReply(t, c, sessions["plain"], "SESS.GET", "plain")
		wantReply(t, c, sessions["packed"], "SESS.GET", "packed")
	}
}

// testCodecKeyRotation: sessions encrypted with k1 stay readable by a
// proxy whose keys are [k2, k1], which encrypts with k2; a proxy without
// the key answers an error naming the session, and keeps serving.
func testCodecKeyRotation(t *testing.T, up *upstream) {
	k1, k2, k3 := testKey("k1", 1), testKey("k2", 2), testKey("k3", 3)
	old := startProxy(t, up, withCodec(t, codec.Options{EncryptKeys: []string{k1}}))
	rotated := startSibling(t, up, withCodec(t, codec.Options{EncryptKeys: []string{k2, k1}}))
	stranger := startSibling(t, up, withCodec(t, codec.Options{EncryptKeys: []string{k3}}))
	oc, rc := old.client(t), rotated.client(t)

	r1, r2 := smallSession("r1"), bigSession("r2")
	wantReply(t, oc, "OK", "SESS.SET", "r1", r1)
	old.wantHeader(t, "sess:r1", r1, hdrEncrypted, "k1")

	// The rotated proxy reads k1's sessions and writes with k2.
	wantReply(t, rc, r1, "SESS.GET", "r1")
	wantReply(t, rc, r1, "GET", "sess:r1")
	wantReply(t, rc, "OK", "SESS.SET", "r2", r2)
	old.wantHeader(t, "sess:r2", r2, hdrEncrypted, "k2")
	wantReply(t, rc, "OK", "SET", "sess:r1", r1)
	old.wantHeader(t, "sess:r1", r1, hdrEncrypted, "k2")
	wantReply(t, oc, "OK", "SESS.SET", "r3", r1) // still k1 from the old proxy
	wantReply(t, rc, []interface{}{r1, r2, r1}, "MGET", "sess:r1", "sess:r2", "sess:r3")

	// The old proxy cannot read k2: an error naming the session.
	wantErrPrefix(t, oc, "ERR session r2 cannot be decoded: ", "SESS.GET", "r2")
	if err := up.direct.Set(bg, "sess:plain", smallSession("plain"), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}

	// A proxy with only k3: every read of an undecodable session is an
	// error naming it, never an empty reply nor a crash; the connection
	// keeps working, and so do sessions it can read.
	c := stranger.raw(t)
	for _, args := range [][]string{
		{"SESS.GET", "r1"},
		{"GET", "sess:r1"},
		{"MGET", "sess:plain", "sess:r1"},
		{"SESS.FGET", "r1", "user"},
		{"SESS.FMGET", "r1", "user", "n"},
		{"SESS.FSET", "r1", "n", "1"},
		{"SESS.FDEL", "r1", "n"},
		{"SESS.TOUCH", "r1"},
		{"GETEX", "sess:r1"},
	} {
		wantRawErrPrefix(t, c, "ERR session r1 cannot be decoded: ", args...)
		wantRaw(t, c, status("PONG"), "PING")
	}

	// The commands that answer the previous value leave an undecodable one
	// alone, value and TTL: their error reply means nothing was done. The
	// rotated proxy, which can decode it, then does them.
	wantReply(t, oc, "OK", "SESS.SET", "r4", r1)
	before := up.direct.Get(bg, "sess:r4").Val()
	for _, args := range [][]string{
		{"GETSET", "sess:r4", r2},
		{"SET", "sess:r4", r2, "GET"},
		{"GETEX", "sess:r4", "EX", "100"},
		{"GETDEL", "sess:r4"},
	} {
		wantRawErrPrefix(t, c, "ERR session r4 cannot be decoded: ", args...)
		if now, ttl := up.direct.Get(bg, "sess:r4").Val(), up.direct.TTL(bg, "sess:r4").Val(); now != before || ttl <= 100*time.Second {
			t.Fatalf("%v answered an error but changed the key (TTL %v)", args, ttl)
		}
	}
	wantReply(t, rc, r1, "GETSET", "sess:r4", r2)
	wantReply(t, rc, r2, "GETDEL", "sess:r4")
	old.wantTombstone(t, "sess:r4")
	got := c.do("SESS.ALL")
	if e, ok := got.(respError); !ok || !strings.HasPrefix(string(e), "ERR session r") || !strings.Contains(string(e), " cannot be decoded: ") {
		t.Errorf("SESS.ALL through a proxy without the key = %#v, want an error naming a session", got)
	}
	for _, secret := range []string{k1, k2, k3} {
		_, key, _ := strings.Cut(secret, ":")
		if e, _ := got.(respError); strings.Contains(string(e), key) {
			t.Errorf("error reply %q shows key material", e)
		}
	}
	wantRaw(t, c, smallSession("plain"), "SESS.GET", "plain")
	wantRaw(t, c, status("OK"), "SESS.SET", "mine", smallSession("mine"))
	wantRaw(t, c, smallSession("mine"), "GET", "sess:mine")
	stranger.wantHeader(t, "sess:mine", smallSession("mine"), hdrEncrypted, "k3")
	// Undecodable sessions are untouched (the refused FSET wrote nothing)
	// and still readable with the right key.
	wantReply(t, rc, r1, "SESS.GET", "r1")
	wantReply(t, oc, r1, "SESS.GET", "r3")
	wantRaw(t, c, int64(1), "SESS.DESTROY", "r1") // destroying needs no key
	stranger.wantTombstone(t, "sess:r1")
}
