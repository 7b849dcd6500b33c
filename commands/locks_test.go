package commands

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands/ttl"
)

// wantTTL checks the TTL miniredis holds for key.
func (f *fixture) wantTTL(key string, want time.Duration) {
	f.t.Helper()
	if got := f.m.TTL(key); got != want {
		f.t.Fatalf("TTL of %s = %v, want %v", key, got, want)
	}
}

// wantRaw checks key holds value, as sent (or is missing when value is "").
func (f *fixture) wantRaw(key, value string) {
	f.t.Helper()
	got, err := f.m.Get(key)
	if value == "" {
		if f.m.Exists(key) {
			f.t.Fatalf("%s = %q, want it gone", key, got)
		}
		return
	}
	if err != nil || got != value {
		f.t.Fatalf("%s = %q (%v), want %q", key, got, err, value)
	}
}

func TestLocksArePlainRedisWithABoundedTTL(t *testing.T) {
	const lock = "sess:abc_LOCK"
	lockMax := 5 * time.Minute
	in := func(d time.Duration) string { return strconv.FormatInt(time.Now().Add(d).Unix(), 10) }
	tests := []struct {
		name  string
		tweak func(*Options)
		run   func(*fixture)
	}{
		{"SET NX PX acquires, a second NX fails, DEL releases without a tombstone", nil, func(f *fixture) {
			f.expect("SET "+lock+" tok-1 NX PX 30000", "+OK")
			f.wantRaw(lock, "tok-1") // no codec: a token is not JSON
			f.wantTTL(lock, 30*time.Second)
			f.expect("SET "+lock+" tok-2 NX PX 30000", "nil")
			f.expect("GET "+lock, "$tok-1")
			f.expect("EXISTS "+lock, ":1")
			f.expect("TYPE "+lock, "+string")
			f.expect("STRLEN "+lock, ":5")
			f.expect("PTTL "+lock, ":30000")
			f.expect("DEL "+lock, ":1")
			f.wantRaw(lock, "")
			f.expect("SET "+lock+" tok-2 NX PX 30000", "+OK")
			f.expect("GETDEL "+lock, "$tok-2")
			f.wantRaw(lock, "")
			f.expect("SET "+lock+" tok-3 XX", "nil")
		}},
		{"a lock expires with its TTL", nil, func(f *fixture) {
			f.expect("SET "+lock+" tok NX EX 30", "+OK")
			f.m.FastForward(30 * time.Second)
			f.expect("GET "+lock, "nil")
			f.expect("SET "+lock+" tok NX", "+OK")
			f.m.FastForward(lockMax)
			f.expect("EXISTS "+lock, ":0")
		}},
		{"every write without a TTL gives lock_max, and a longer TTL is lowered to it", nil, func(f *fixture) {
			for _, tt := range []struct{ cmd, want string }{
				{"SET " + lock + " t", "+OK"},
				{"SET " + lock + " t EX 86400", "+OK"},
				{"SET " + lock + " t PX 86400000", "+OK"},
				{"SET " + lock + " t EXAT " + in(24*time.Hour), "+OK"},
				{"SETEX " + lock + " 86400 t", "+OK"},
				{"PSETEX " + lock + " 86400000 t", "+OK"},
				{"GETSET " + lock + " t", "$t"},
				{"SET " + lock + " t GET EX 86400", "$t"},
				{"MSET sess:s {} " + lock + " t", "+OK"},
				{"EXPIRE " + lock + " 86400", ":1"},
				{"PEXPIRE " + lock + " 86400000", ":1"},
				{"EXPIREAT " + lock + " " + in(24*time.Hour), ":1"},
				{"GETEX " + lock + " EX 86400", "$t"},
			} {
				f.m.Set(lock, "t") // no TTL: each write must give one
				f.expect(tt.cmd, tt.want)
				if got := f.m.TTL(lock); got != lockMax {
					t.Errorf("%s: TTL %v, want lock_max %v", tt.cmd, got, lockMax)
				}
			}
			f.expect("SETNX sess:new_LOCK t", ":1")
			f.wantTTL("sess:new_LOCK", lockMax)
			f.expect("SETNX sess:new_LOCK t", ":0")
		}},
		{"a TTL within lock_max is kept as asked, with no floor of ttl.min", nil, func(f *fixture) {
			f.expect("SET "+lock+" t PX 500", "+OK")
			f.wantTTL(lock, 500*time.Millisecond)
			f.expect("PEXPIRE "+lock+" 200", ":1")
			f.wantTTL(lock, 200*time.Millisecond)
			f.expect("EXPIRE "+lock+" 60 GT", ":1")
			f.wantTTL(lock, time.Minute)
			f.expect("EXPIRE "+lock+" 30 GT", ":0")
			f.expect("GETEX "+lock+" PX 1500", "$t")
			f.wantTTL(lock, 1500*time.Millisecond)
			f.expect("EXPIRE sess:gone_LOCK 10", ":0")
		}},
		{"EXPIRE to 0 or a past time deletes the lock, as in Redis", nil, func(f *fixture) {
			f.expect("SET "+lock+" t", "+OK")
			f.expect("EXPIRE "+lock+" 0", ":1")
			f.wantRaw(lock, "")
			f.expect("SET "+lock+" t", "+OK")
			f.expect("PEXPIREAT "+lock+" 1000", ":1")
			f.wantRaw(lock, "")
		}},
		{"SET KEEPTTL keeps a lock's TTL and never leaves one without", nil, func(f *fixture) {
			f.expect("SET "+lock+" t KEEPTTL", "+OK")
			f.wantTTL(lock, lockMax)
			f.expect("PEXPIRE "+lock+" 10000", ":1")
			f.expect("SET "+lock+" u KEEPTTL GET", "$t")
			f.wantTTL(lock, 10*time.Second)
			f.expect("SET "+lock+" v NX KEEPTTL", "nil")
			f.wantRaw(lock, "u")
			f.m.Set(lock, "w") // written behind the proxy's back, no TTL
			f.expect("SET "+lock+" x XX KEEPTTL", "+OK")
			f.wantTTL(lock, lockMax)
		}},
		{"PERSIST on a lock is refused under ttl.persist = deny", nil, func(f *fixture) {
			f.expect("SET "+lock+" t PX 30000", "+OK")
			f.expect("PERSIST "+lock, "-"+msgLockPersist)
			f.expect("GETEX "+lock+" PERSIST", "-"+msgLockPersist)
			f.wantTTL(lock, 30*time.Second)
		}},
		{"PERSIST on a lock sets lock_max under ttl.persist = clamp", func(o *Options) { o.Policy.Persist = ttl.PersistClamp }, func(f *fixture) {
			f.expect("SET "+lock+" t PX 30000", "+OK")
			f.expect("PERSIST "+lock, ":1")
			f.wantTTL(lock, lockMax)
			f.expect("PEXPIRE "+lock+" 1000", ":1")
			f.expect("GETEX "+lock+" PERSIST", "$t")
			f.wantTTL(lock, lockMax)
			f.expect("PERSIST sess:gone_LOCK", ":0")
		}},
		{"a destroyed session's tombstone does not concern its lock", nil, func(f *fixture) {
			f.expect(`SESS.SET abc {"a":1}`, "+OK")
			f.expect("SESS.DESTROY abc", ":1")
			f.expect("SET "+lock+" tok NX PX 30000", "+OK")
			f.expect("DEL "+lock, ":1")
			f.wantRaw(lock, "")
			f.wantRaw("sess:abc", "TOMBSTONE")
			f.expect(`SET sess:abc {"a":2}`, "-TOMBSTONE session abc was destroyed")
		}},
		{"SESS.* refuse a lock's id", nil, func(f *fixture) {
			want := "-" + errLockID("_LOCK")
			for _, cmd := range []string{"SESS.SET abc_LOCK {}", "SESS.GET abc_LOCK", "SESS.DESTROY abc abc_LOCK", "SESS.TTL abc_LOCK", "SESS.EXISTS abc_LOCK", "SESS.TOUCH abc_LOCK", "SESS.FGET abc_LOCK a"} {
				f.expect(cmd, want)
			}
		}},
		{"the part of a lock before its suffix is a session id", nil, func(f *fixture) {
			f.expect("SET sess:_LOCK t", "-"+errSessionID("empty"))
			f.expect("SET sess:"+strings.Repeat("a", 257)+"_LOCK t", "-"+errSessionID("longer than 256 bytes"))
		}},
		{"hash commands are refused on a lock", nil, func(f *fixture) {
			f.expect("HSET "+lock+" a 1", "-"+msgLockHash)
			f.expect("HGET "+lock+" a", "-"+msgLockHash)
			f.expect("HGETALL "+lock, "-"+msgLockHash)
		}},
		{"MGET reads a lock as it was written, next to a session", nil, func(f *fixture) {
			f.expect(`SESS.SET abc {"a":1}`, "+OK")
			f.expect("SET "+lock+" tok", "+OK")
			f.expect("MGET sess:abc "+lock+" sess:x_LOCK", `[${"a":1} $tok nil]`)
		}},
		{"lock_suffixes empty: a _LOCK key is a session", func(o *Options) { o.LockSuffixes = nil }, func(f *fixture) {
			runSteps(f.t, f, []step{{"SET " + lock + " tok", "-ERR invalid session payload: *"}})
		}},
		{"several suffixes", func(o *Options) { o.LockSuffixes = []string{"_LOCK", ".lock"} }, func(f *fixture) {
			f.expect("SET sess:abc.lock tok NX", "+OK")
			f.wantTTL("sess:abc.lock", lockMax)
		}},
		{"hash_ids: a lock is stored under the hashed id and its suffix", func(o *Options) { o.HashIDs = true }, func(f *fixture) {
			f.expect("SET "+lock+" tok NX PX 30000", "+OK")
			key := f.e.spaces[0].storageKey("abc") + "_LOCK"
			f.wantRaw(key, "tok")
			f.wantRaw(lock, "")
			f.expect("GET "+lock, "$tok")
			f.expect("PTTL "+lock, ":30000")
			f.expect("SESS.LENGTH", ":0")
			f.expect("DEL "+lock, ":1")
			f.wantRaw(key, "")
		}},
		{"a reload changes lock_max", nil, func(f *fixture) {
			opts := defaultOptions()
			opts.Policy.LockMax = time.Minute
			f.e.Reload(opts)
			f.expect("SET "+lock+" t EX 86400", "+OK")
			f.wantTTL(lock, time.Minute)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(newFixture(t, tt.tweak))
		})
	}
}

func TestListingsNeverShowLocksAsSessions(t *testing.T) {
	f := newFixture(t, nil)
	f.expect(`SESS.SET a {"a":1}`, "+OK")
	f.expect(`SESS.SET b {"b":1}`, "+OK")
	f.expect("SET sess:a_LOCK tok NX PX 30000", "+OK")
	f.expect("SESS.LENGTH", ":2")
	f.expect("DBSIZE", ":2")
	for _, cmd := range []string{"SESS.IDS", "SESS.ALL", "SESS.SCAN 0 COUNT 100"} {
		if got := f.one(cmd); strings.Contains(got, "LOCK") || !strings.Contains(got, "$a") || !strings.Contains(got, "$b") {
			t.Errorf("%s = %s, want sessions a and b and no lock", cmd, got)
		}
	}
	// SCAN and KEYS list keys, and a lock is a key under the prefix.
	for _, cmd := range []string{"KEYS *", "SCAN 0 COUNT 100"} {
		if got := f.one(cmd); !strings.Contains(got, "$sess:a_LOCK") {
			t.Errorf("%s = %s, want the lock key listed", cmd, got)
		}
	}
	f.expect("SESS.CLEAR", ":2")
	f.wantRaw("sess:a_LOCK", "") // deleted, not tombstoned, not counted
	f.wantRaw("sess:a", "TOMBSTONE")
}

func TestSweepBoundsLocksByLockMax(t *testing.T) {
	f := newFixture(t, nil)
	f.m.Set("sess:old_LOCK", "tok") // no TTL
	f.m.Set("sess:long_LOCK", "tok")
	f.m.SetTTL("sess:long_LOCK", 24*time.Hour)
	f.m.Set("sess:short_LOCK", "tok")
	f.m.SetTTL("sess:short_LOCK", time.Minute)
	f.expect("SESS.SWEEP DRYRUN", ":2")
	f.expect("SESS.SWEEP", ":2")
	f.wantTTL("sess:old_LOCK", 5*time.Minute)
	f.wantTTL("sess:long_LOCK", 5*time.Minute)
	f.wantTTL("sess:short_LOCK", time.Minute)
	f.wantRaw("sess:old_LOCK", "tok") // a lock's value is not judged
}
