package store

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/integration/redistest"
)

// exec runs one operation queued on a fresh batch of s.
func exec(t *testing.T, s *Store, queue func(b *Batch) func() error) error {
	t.Helper()
	b := s.NewBatch()
	res := queue(b)
	if err := b.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	return res()
}

// Every operation sees a tombstone of either format, whichever format the
// writer uses and whether its writes are native: writes are refused, reads
// see nothing.
func TestTombstoneFormatsAreSeenByEveryOperation(t *testing.T) {
	writes := map[string]func(b *Batch, native bool) func() error{
		"common write": func(b *Batch, native bool) func() error {
			r := b.Write("sess:a", Write{Value: []byte(`{}`), TTL: time.Hour, Native: native, Grace: time.Minute})
			return func() error { _, _, err := r.Result(); return err }
		},
		"expired write": func(b *Batch, native bool) func() error {
			r := b.Write("sess:a", Write{Value: []byte(`{}`), Native: native})
			return func() error { _, _, err := r.Result(); return err }
		},
		"NX write": func(b *Batch, _ bool) func() error {
			r := b.Write("sess:a", Write{Value: []byte(`{}`), TTL: time.Hour, Cond: NX})
			return func() error { _, _, err := r.Result(); return err }
		},
		"GET write": func(b *Batch, _ bool) func() error {
			r := b.Write("sess:a", Write{Value: []byte(`{}`), TTL: time.Hour, ReturnOld: true})
			return func() error { _, _, err := r.Result(); return err }
		},
		"KEEPTTL write": func(b *Batch, _ bool) func() error {
			r := b.Write("sess:a", Write{Value: []byte(`{}`), TTL: time.Hour, KeepTTL: true, MaxTTL: time.Hour})
			return func() error { _, _, err := r.Result(); return err }
		},
		"expire": func(b *Batch, _ bool) func() error {
			r := b.Expire("sess:a", Expiry{TTL: time.Hour})
			return func() error { _, _, err := r.Result(); return err }
		},
		"GETEX": func(b *Batch, _ bool) func() error {
			r := b.Expire("sess:a", Expiry{TTL: time.Hour, ReturnValue: true})
			return func() error { _, _, err := r.Result(); return err }
		},
		"compare and swap": func(b *Batch, _ bool) func() error {
			r := b.CompareAndSwap("sess:a", nil, []byte(`{}`), time.Hour, 0)
			return func() error { _, err := r.Result(); return err }
		},
		"stored read": func(b *Batch, _ bool) func() error {
			r := b.GetStored("sess:a")
			return func() error { _, err := r.Result(); return err }
		},
		"hash write": func(b *Batch, _ bool) func() error {
			r := b.HashWrite("sess:a", HashWrite{Cmd: "HSET", Args: [][]byte{[]byte("f"), []byte("v")}, TTL: time.Hour})
			return func() error { _, _, err := r.Result(); return err }
		},
	}
	for _, format := range []TombstoneFormat{TombstoneString, TombstoneTyped} {
		for _, native := range []bool{false, true} {
			for name, write := range writes {
				t.Run(string(format)+"/"+name, func(t *testing.T) {
					s, m := openMini(t)
					m.Set("sess:a", `{"v":1}`)
					if err := exec(t, s, func(b *Batch) func() error {
						r := b.Destroy("sess:a", time.Minute, format)
						return func() error { _, _, err := r.Result(); return err }
					}); err != nil {
						t.Fatal(err)
					}
					if err := exec(t, s, func(b *Batch) func() error { return write(b, native) }); !errors.Is(err, ErrTombstoned) {
						t.Errorf("native %v: %v, want ErrTombstoned", native, err)
					}
					want := format
					if native && name == "common write" {
						want = TombstoneTyped // put back, typed, over the write that met a string one
					}
					wantTombstone(t, m, "sess:a", want)
				})
			}
		}
	}
}

func wantTombstone(t *testing.T, m interface {
	Type(string) string
	Get(string) (string, error)
	IsMember(string, string) (bool, error)
}, key string, format TombstoneFormat) {
	t.Helper()
	switch format {
	case TombstoneString:
		if v, err := m.Get(key); err != nil || v != Tombstone {
			t.Errorf("%s holds %q (%v), want the string tombstone", key, v, err)
		}
	case TombstoneTyped:
		if ok, err := m.IsMember(key, Tombstone); m.Type(key) != "set" || !ok || err != nil {
			t.Errorf("%s is a %s, want the typed tombstone", key, m.Type(key))
		}
	}
}

func TestTypedTombstoneReadsAsAbsent(t *testing.T) {
	s, m := openMini(t)
	if err := exec(t, s, func(b *Batch) func() error {
		r := b.Destroy("sess:a", time.Minute, TombstoneTyped)
		return func() error { _, _, err := r.Result(); return err }
	}); err != nil {
		t.Fatal(err)
	}
	if ttl := m.TTL("sess:a"); ttl != time.Minute {
		t.Errorf("tombstone TTL %v, want the grace", ttl)
	}
	b := s.NewBatch()
	get, alone := b.Get("sess:a"), GetResult{}
	sliding := b.GetSliding("sess:a", time.Hour, 0)
	exists, typ, pttl := b.Exists("sess:a"), b.Type("sess:a"), b.PTTL("sess:a")
	mget := b.MGet([]string{"sess:a"})
	hash := b.HashRead("sess:a", 0, "HGETALL")
	if err := b.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	b2 := s.NewBatch()
	alone = b2.Get("sess:a") // a batch of one read: a GET on its own, WRONGTYPE upstream
	if err := b2.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]GetResult{"GET": get, "GET alone": alone, "sliding GET": sliding} {
		if _, err := r.Result(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	if _, err := mget.Session(0); !errors.Is(err, ErrNotFound) {
		t.Errorf("MGET: %v, want ErrNotFound", err)
	}
	if n, _ := exists.Result(); n != 0 {
		t.Errorf("EXISTS %d", n)
	}
	if v, _ := typ.Result(); v != "none" {
		t.Errorf("TYPE %s", v)
	}
	if n, _ := pttl.Result(); n != -2 {
		t.Errorf("PTTL %d", n)
	}
	if _, found, err := hash.Result(); found || err != nil {
		t.Errorf("HGETALL found %v, %v", found, err)
	}
	if n, err := s.CountLive(context.Background(), "sess:", func(string) bool { return false }); n != 0 || err != nil {
		t.Errorf("CountLive %d, %v", n, err)
	}
}

// A native write is SET … PX … GET; a hash session answers Redis's own
// WRONGTYPE, and a string tombstone it met after all is put back, typed.
func TestNativeWrites(t *testing.T) {
	s, m := openMini(t)
	write := func(key string) error {
		return exec(t, s, func(b *Batch) func() error {
			r := b.Write(key, Write{Value: []byte(`{"v":2}`), TTL: time.Hour, Native: true, Grace: time.Minute})
			return func() error {
				o, _, err := r.Result()
				if err == nil && o != Applied {
					t.Errorf("%s: outcome %v", key, o)
				}
				return err
			}
		})
	}
	if err := write("sess:new"); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Get("sess:new"); v != `{"v":2}` || m.TTL("sess:new") != time.Hour {
		t.Errorf("sess:new = %q, TTL %v", v, m.TTL("sess:new"))
	}
	m.HSet("sess:hash", "f", "v")
	if err := write("sess:hash"); !IsWrongType(err) {
		t.Errorf("hash session: %v, want WRONGTYPE", err)
	}
	m.Set("sess:late", Tombstone)
	if err := write("sess:late"); !errors.Is(err, ErrTombstoned) {
		t.Errorf("string tombstone: %v, want ErrTombstoned", err)
	}
	wantTombstone(t, m, "sess:late", TombstoneTyped)
}

func TestAtLeast(t *testing.T) {
	tests := []struct {
		version string
		want    bool
	}{
		{"7.0.15", true}, {"6.2.0", true}, {"6.0.16", false}, {"5.0.7", false}, {"10.0.0", true}, {"", false}, {"7", false},
	}
	for _, tt := range tests {
		if got := atLeast(tt.version, 6, 2); got != tt.want {
			t.Errorf("atLeast(%q, 6, 2) = %v, want %v", tt.version, got, tt.want)
		}
	}
	if v := infoField("# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:0\r\n", "redis_version"); v != "7.0.15" {
		t.Errorf("infoField = %q", v)
	}
}

// previousReply takes a reply as go-redis's RawWriteToCmd hands it over:
// the first line and its CRLF by Write, a bulk string's bytes and CRLF by
// io.CopyN (ReadFrom). It keeps the line, the size and enough of the value
// to tell a string tombstone, whatever the value's length, and a second
// reply (go-redis sending the command again) starts over.
func TestPreviousReply(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		reply      string
		wantErr    string // settle's error: "" none, "nil" for redis.Nil
		stringTomb bool
	}{
		{reply: "$-1\r\n", wantErr: "nil"},
		{reply: "$9\r\nTOMBSTONE\r\n", stringTomb: true},
		{reply: "$10\r\nTOMBSTONEx\r\n"},
		{reply: "$4\r\nTOMB\r\n"},
		{reply: "$0\r\n\r\n"},
		{reply: "$5000\r\n" + long + "\r\n"},
		{reply: "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", wantErr: "WRONGTYPE Operation against a key holding the wrong kind of value"},
		{reply: "-READONLY You can't write against a read only replica. " + long + "\r\n", wantErr: "READONLY You can't write against a read only replica. " + long},
		{reply: "+OK\r\n", wantErr: `unexpected reply to SET … GET: "+"`},
	}
	for _, tt := range tests {
		for _, buffered := range []bool{true, false} {
			n := &nativeSet{}
			n.raw.init([]interface{}{"set", "k", "v", "get"})
			// A first reply cut short, as a broken connection leaves it,
			// then the whole reply of the command sent again.
			for _, reply := range []string{"$5000\r\nxxx", tt.reply} {
				line, rest, _ := strings.Cut(reply, "\r\n")
				n.raw.SetErr(nil) // as go-redis reads each reply
				if _, err := n.raw.reply.Write([]byte(line)); err != nil {
					n.raw.SetErr(err) // an error reply: go-redis stops there
					continue
				}
				_, _ = n.raw.reply.Write([]byte("\r\n"))
				if line[0] == '$' && line != "$-1" {
					size, _ := strconv.Atoi(line[1:])
					var r io.Reader = strings.NewReader(rest)
					if buffered { // go-redis's reader: Discard skips the value
						r = bufio.NewReaderSize(r, 16)
					}
					_, _ = io.CopyN(&n.raw.reply, r, int64(size)+2)
				}
			}
			n.raw.settle()
			stringTomb, err := n.reply()
			switch {
			case tt.wantErr == "nil" && err != redis.Nil,
				tt.wantErr == "" && err != nil,
				tt.wantErr != "" && tt.wantErr != "nil" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("%.20q (buffered %v): error %.80v, want %.80q", tt.reply, buffered, err, tt.wantErr)
			case stringTomb != tt.stringTomb:
				t.Errorf("%.20q (buffered %v): string tombstone %v", tt.reply, buffered, stringTomb)
			}
			if strings.HasPrefix(tt.reply, "-") && !UpstreamReply(err) {
				t.Errorf("%.20q: %v is not an upstream reply", tt.reply, err)
			}
		}
	}
	// A batch that never ran has no result.
	n := &nativeSet{}
	n.raw.init([]interface{}{"set", "k", "v", "get"})
	if _, err := n.reply(); err != errNoResult {
		t.Errorf("unsent: %v, want errNoResult", err)
	}
}

// A native write's error reply, read raw, is the write's error and counts
// as a reply from Redis, not as a failure to reach it; and go-redis sees it
// as it would any reply: a connection that answered READONLY (a demoted
// master behind a name that moved) is closed, the next write dials anew.
func TestNativeWriteErrorReply(t *testing.T) {
	s, m := openMini(t)
	write := func() error {
		return exec(t, s, func(b *Batch) func() error {
			r := b.Write("sess:a", Write{Value: []byte(`{}`), TTL: time.Hour, Native: true})
			return func() error { _, _, err := r.Result(); return err }
		})
	}
	if err := write(); err != nil {
		t.Fatal(err)
	}
	dialed := m.TotalConnectionCount()
	m.SetError("READONLY You can't write against a read only replica.")
	if err := write(); !UpstreamReply(err) || !strings.HasPrefix(err.Error(), "READONLY ") {
		t.Fatalf("%v, want the READONLY reply", err)
	}
	m.SetError("")
	if err := write(); err != nil {
		t.Fatal(err)
	}
	if n := m.TotalConnectionCount() - dialed; n != 1 {
		t.Errorf("%d connections dialed after READONLY, want 1 (the one that answered it closed)", n)
	}
}

// Redis 7 makes the Lua libraries read-only; before it, a script's
// changes to them stay for the scripts after it. MutableScriptLibraries
// names a master older than 7.0, so the proxy can warn at start.
func TestMutableScriptLibraries(t *testing.T) {
	srv := redistest.Standalone(t)
	s, err := Open(context.Background(), Options{Mode: ModeStandalone, Addrs: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if node, version, err := s.MutableScriptLibraries(context.Background()); err != nil || node != "" {
		t.Errorf("redis-server 7.0: %q %q %v, want none", node, version, err)
	}
	for version, want := range map[string]bool{"7.0.15": true, "6.2.14": false, "6.0.16": false, "8.0.0": true} {
		if got := atLeast(version, 7, 0); got != want {
			t.Errorf("atLeast(%q, 7, 0) = %v, want %v", version, got, want)
		}
	}
}
