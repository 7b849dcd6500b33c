package commands

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// step is one command of a scenario and the reply it must get; a want
// ending in "*" is a prefix (error wordings miniredis does not share).
type step struct{ cmd, want string }

func runSteps(t *testing.T, f *fixture, steps []step) {
	t.Helper()
	for _, s := range steps {
		if prefix, ok := strings.CutSuffix(s.want, "*"); ok {
			if got := f.one(s.cmd); !strings.HasPrefix(got, prefix) {
				t.Fatalf("%s = %q, want %q…", s.cmd, got, prefix)
			}
			continue
		}
		f.expect(s.cmd, s.want)
	}
}

func TestHashCommands(t *testing.T) {
	tests := []struct {
		name  string
		tweak func(*Options)
		steps []step
	}{
		{"fields round-trip and reads of a missing hash answer like Redis", nil, []step{
			{"HGET sess:h a", "nil"},
			{"HMGET sess:h a b", "[nil nil]"},
			{"HGETALL sess:h", "[]"},
			{"HLEN sess:h", ":0"},
			{"HKEYS sess:h", "[]"},
			{"HSCAN sess:h 0", "[$0 []]"},
			{"HSET sess:h a 1 b two", ":2"},
			{"HSET sess:h a 3", ":0"},
			{"HSETNX sess:h a 9", ":0"},
			{"HSETNX sess:h c 9", ":1"},
			{"HMSET sess:h d 4", "+OK"},
			{"HGET sess:h a", "$3"},
			{"HMGET sess:h a x b", "[$3 nil $two]"},
			{"HEXISTS sess:h b", ":1"},
			{"HEXISTS sess:h x", ":0"},
			{"HLEN sess:h", ":4"},
			{"HSTRLEN sess:h b", ":3"},
			{"HINCRBY sess:h a 2", ":5"},
			{"HINCRBYFLOAT sess:h a 0.5", "$5.5"},
			{"HINCRBY sess:h b 1", "-ERR *"},
			{"HINCRBY sess:h a x", "-" + msgNotInteger},
			{"HINCRBYFLOAT sess:h a x", "-" + msgNotFloat},
			{"HDEL sess:h c d x", ":2"},
			{"HKEYS sess:h", "[$a $b]"},
			{"HVALS sess:h", "[$5.5 $two]"},
			{"TYPE sess:h", "+hash"},
			{"EXISTS sess:h", ":1"},
			{"SESS.EXISTS h", ":1"},
			{"SESS.GET h", `${"a":"5.5","b":"two"}`},
			{"HDEL sess:h a b", ":2"},
			{"EXISTS sess:h", ":0"},
		}},
		{"wrong types answer WRONGTYPE both ways", nil, []step{
			{"SET sess:s {}", "+OK"},
			{"HGET sess:s a", "-" + msgWrongType},
			{"HSET sess:s a 1", "-" + msgWrongType},
			{"HDEL sess:s a", "-" + msgWrongType},
			{"HSET sess:h a 1", ":1"},
			{"GET sess:h", "-" + msgWrongType},
			{"STRLEN sess:h", "-" + msgWrongType},
			{"MGET sess:h sess:s", "[nil ${}]"},
		}},
		{"a destroyed hash session leaves a tombstone that refuses writes", nil, []step{
			{"HSET sess:h a 1", ":1"},
			{"DEL sess:h", ":1"},
			{"TYPE sess:h", "+none"},
			{"HGET sess:h a", "nil"},
			{"HGETALL sess:h", "[]"},
			{"HSET sess:h a 1", "-" + errTombstoned("h")},
			{"HMSET sess:h a 1", "-" + errTombstoned("h")},
			{"HSETNX sess:h a 1", "-" + errTombstoned("h")},
			{"HDEL sess:h a", "-" + errTombstoned("h")},
			{"HINCRBY sess:h a 1", "-" + errTombstoned("h")},
			{"HINCRBYFLOAT sess:h a 1", "-" + errTombstoned("h")},
			{"SESS.GET h", "nil"},
		}},
		{"tombstone.on_write = ignore answers success and writes nothing", func(o *Options) { o.OnWrite = OnWriteIgnore }, []step{
			{"HSET sess:h a 1", ":1"},
			{"SESS.DESTROY h", ":1"},
			{"HSET sess:h a 1", ":0"},
			{"HMSET sess:h a 1", "+OK"},
			{"HINCRBY sess:h a 3", ":3"},
			{"HINCRBYFLOAT sess:h a 1.5", "$1.5"},
			{"HGET sess:h a", "nil"},
			{"TYPE sess:h", "+none"},
		}},
		{"a write past max_payload_bytes is refused and writes nothing", func(o *Options) { o.MaxHashBytes = 10 }, []step{
			{"HSET sess:h a 12345678", ":1"}, // 9 bytes
			{"HSET sess:h b 1", "-" + errHashTooLarge("h", 10)},
			{"HSET sess:h a 1234567890", "-" + errHashTooLarge("h", 10)},
			{"HINCRBY sess:h a 1000000000", "-" + errHashTooLarge("h", 10)},
			{"HGETALL sess:h", "[$a $12345678]"},
			{"HSET sess:new abcdefghijk 1", "-" + errHashTooLarge("new", 10)},
			{"EXISTS sess:new", ":0"},
			{"HSET sess:h a 1 b 2", ":1"},
		}},
		{"a write past max_hash_fields is refused and writes nothing", func(o *Options) { o.MaxHashFields = 2 }, []step{
			{"HSET sess:h a 1 b 2", ":2"},
			{"HSET sess:h c 3", "-" + errHashTooManyFields("h", 2)},
			{"HSETNX sess:h c 3", "-" + errHashTooManyFields("h", 2)},
			{"HINCRBY sess:h c 1", "-" + errHashTooManyFields("h", 2)},
			{"HSET sess:h a 9 c 3", "-" + errHashTooManyFields("h", 2)},
			{"HGETALL sess:h", "[$a $1 $b $2]"},
			{"HSET sess:h a 9", ":0"},
			{"HSET sess:new a 1 b 2 c 3", "-" + errHashTooManyFields("new", 2)},
			{"EXISTS sess:new", ":0"},
			{"HDEL sess:h b", ":1"},
			{"HSET sess:h c 3", ":1"},
		}},
		{"the field bound is checked before the byte bound", func(o *Options) { o.MaxHashBytes, o.MaxHashFields = 4, 1 }, []step{
			{"HSET sess:h a 1", ":1"},
			{"HSET sess:h bbbbbbbb 2", "-" + errHashTooManyFields("h", 1)},
			{"HSET sess:h a 12345", "-" + errHashTooLarge("h", 4)},
		}},
		{"keys outside the prefix are refused by default", nil, []step{
			{"HSET other a 1", "-" + errOutsidePrefix("other")},
			{"HGET other a", "-" + errOutsidePrefix("other")},
			{"HSCAN other 0", "-" + errOutsidePrefix("other")},
		}},
		{"keys outside the prefix pass through", func(o *Options) { o.OutsidePrefix = OutsidePassthrough }, []step{
			{"HSET other a 1", ":1"},
			{"HMSET other b 2", "+OK"},
			{"HGETALL other", "[$a $1 $b $2]"},
			{"TTL other", ":-1"},
		}},
		{"argument errors", nil, []step{
			{"HSET sess:h a", "-" + errArity("hset")},
			{"HSET sess:h a 1 b", "-" + errArity("hset")},
			{"HMSET sess:h a 1 b", "-" + errArity("hmset")},
			{"HSCAN sess:h x", "-" + msgInvalidCursor},
			{"HGET sess:h", "-" + errArity("hget")},
			{"HMGET sess:h" + strings.Repeat(" f", maxHashArgs+1), "-" + errHashArgs("hmget", maxHashArgs)},
			{"HSET sess:h" + strings.Repeat(" f v", maxHashArgs/2+1), "-" + errHashArgs("hset", maxHashArgs)},
		}},
		{"SESS.* commands see hash sessions", nil, []step{
			{"HSET sess:h1 a 1", ":1"},
			{"SESS.SET s1 {}", "+OK"},
			{"SESS.LENGTH", ":2"},
			{"SESS.ALL", `[$h1 ${"a":"1"} $s1 ${}]`},
			{"SESS.TOUCH h1", ":1"},
			{"SESS.TTL h1", ":86400"},
			{"SESS.CLEAR", ":2"},
			{"HSET sess:h1 a 1", "-" + errTombstoned("h1")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.tweak)
			runSteps(t, f, tt.steps)
		})
	}
}

func TestHashWritesKeepAPolicyTTL(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("HSET sess:h a 1", ":1")
	if got := f.m.TTL("sess:h"); got != 24*time.Hour {
		t.Fatalf("TTL after the creating HSET = %v, want the default 24h", got)
	}
	// Later writes leave a TTL alone (no ttl.idle)…
	f.expect("EXPIRE sess:h 600", ":1")
	f.expect("HSET sess:h b 2", ":1")
	if got := f.m.TTL("sess:h"); got != 10*time.Minute {
		t.Fatalf("TTL after HSET = %v, want the 10m EXPIRE set", got)
	}
	// … but give one back to a key that lost it behind the proxy.
	direct := redis.NewClient(&redis.Options{Addr: f.m.Addr()})
	defer direct.Close()
	if err := direct.Persist(context.Background(), "sess:h").Err(); err != nil {
		t.Fatal(err)
	}
	f.expect("HDEL sess:h b", ":1")
	if got := f.m.TTL("sess:h"); got != 24*time.Hour {
		t.Fatalf("TTL after HDEL of a key without one = %v, want 24h", got)
	}
	f.expect("PERSIST sess:h", "-"+msgPersistDenied)
	f.expect("EXPIRE sess:h 100000000", ":1")
	if got := f.m.TTL("sess:h"); got != 30*24*time.Hour {
		t.Fatalf("TTL after a long EXPIRE = %v, want it clamped to 30d", got)
	}
	f.expect("TTL sess:h", ":2592000")
}

func TestHashIdleSlidesOnReadsAndWrites(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Policy.Idle = 300 * time.Second })
	f.expect("HSET sess:h a 1", ":1")
	for _, cmd := range []string{"HGET sess:h a", "HMGET sess:h a", "HGETALL sess:h", "HEXISTS sess:h a",
		"HLEN sess:h", "HKEYS sess:h", "HVALS sess:h", "HSTRLEN sess:h a", "HSCAN sess:h 0", "SESS.GET h",
		"HSET sess:h b 2", "HINCRBY sess:h c 1", "HDEL sess:h c"} {
		f.m.SetTTL("sess:h", time.Minute)
		f.one(cmd)
		if got := f.m.TTL("sess:h"); got != 300*time.Second {
			t.Fatalf("%s: TTL = %v, want it slid back to 300s", cmd, got)
		}
	}
	f.expect("GET sess:h", "-"+msgWrongType)
	f.expect("MGET sess:h", "[nil]")
}

func TestStringCommandsOnAHashSession(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("HSET sess:h a 1", ":1")
	runSteps(t, f, []step{
		{"GETEX sess:h", "-" + msgWrongType},
		{"GETEX sess:h EX 60", "-" + msgWrongType},
		{"SESS.FGET h a", "-" + msgWrongType},
		{"SESS.FMGET h a", "-" + msgWrongType},
		{"SET sess:h {}", "-WRONGTYPE*"},
		{"GETSET sess:h {}", "-WRONGTYPE*"},
		{"HGETALL sess:h", "[$a $1]"},
		{"SESS.GET nope", "nil"},
		{"GET sess:nope", "nil"},
	})
}
