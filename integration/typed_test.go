package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store"
)

// testTypedTombstoneListings: a typed tombstone is a set upstream, and no
// listing or count sees it, SCAN … TYPE set included.
func testTypedTombstoneListings(t *testing.T, up *upstream) {
	p := startProxy(t, up, typedTombstones)
	c := p.client(t)
	keys := up.spreadKeys(t, "sess:list-", 4)
	for _, k := range keys {
		wantReply(t, c, "OK", "SET", k, `{}`)
	}
	wantReply(t, c, 2, "DEL", keys[0], keys[2])
	p.wantTombstone(t, keys[0])
	p.wantTombstone(t, keys[2])
	wantStrings(t, "KEYS *", mustStrings(t, c, "KEYS", "*"), []string{keys[1], keys[3]})
	wantReply(t, c, 2, "SESS.LENGTH")
	wantReply(t, c, 2, "DBSIZE")
	for _, typ := range []string{"", "set", "string"} {
		var got []string
		var iter *redis.ScanIterator
		if typ == "" {
			iter = c.Scan(bg, 0, "*", 100).Iterator()
		} else {
			iter = c.ScanType(bg, 0, "*", 100, typ).Iterator()
		}
		for iter.Next(bg) {
			got = append(got, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Fatalf("SCAN TYPE %q: %v", typ, err)
		}
		want := []string{keys[1], keys[3]}
		if typ == "set" {
			want = nil
		}
		wantStrings(t, "SCAN TYPE "+typ, got, want)
	}
}

// testTypedTombstoneHashSession: a native write's WRONGTYPE from a hash
// session stays Redis's own error; a destroyed hash session becomes a
// typed tombstone that refuses hash writes and reads as missing.
func testTypedTombstoneHashSession(t *testing.T, up *upstream) {
	p := startProxy(t, up, typedTombstones)
	c := p.client(t)
	const key = "sess:hashed"
	wantReply(t, c, 1, "HSET", key, "f", "v")
	wantErrPrefix(t, c, "WRONGTYPE ", "SET", key, `{}`, "EX", "60")
	wantErrPrefix(t, c, "WRONGTYPE ", "SESS.SET", "hashed", `{}`)
	wantReply(t, c, "v", "HGET", key, "f")
	wantReply(t, c, 1, "DEL", key)
	p.wantTombstone(t, key)
	for _, args := range [][]interface{}{{"HSET", key, "f", "v"}, {"EXPIRE", key, "60"}, {"SET", key, `{}`, "EX", "60"}} {
		wantErr(t, c, destroyedError("hashed"), args...)
	}
	wantReply(t, c, nil, "HGET", key, "f")
	wantReply(t, c, 0, "HLEN", key)
	wantReply(t, c, "none", "TYPE", key)
	p.wantTombstone(t, key)
}

// lateWrites are the writes a tombstone of sid must refuse in the
// switching tests.
func lateWrites(sid string) [][]interface{} {
	key := "sess:" + sid
	return [][]interface{}{
		{"SESS.SET", sid, `{"late":1}`},
		{"SET", key, `{"late":1}`, "EX", "60"},
		{"SETEX", key, "60", `{"late":1}`},
		{"MSET", key, `{"late":1}`},
		{"HSET", key, "f", "v"},
		{"EXPIRE", key, "60"},
		{"EVAL", "return redis.pcall('set', KEYS[1], '{}')", 1, key},
	}
}

// testTombstoneSwitchStringToTyped: string tombstones written before a
// switch to "typed" refuse a typed proxy's writes; within its transition
// (the grace, by default) it leaves them untouched.
func testTombstoneSwitchStringToTyped(t *testing.T, up *upstream) {
	before := startProxy(t, up, nil)
	c := before.client(t)
	wantReply(t, c, "OK", "SESS.SET", "switched", `{}`)
	wantReply(t, c, 1, "SESS.DESTROY", "switched")
	before.wantTombstone(t, "sess:switched")

	after := startSibling(t, up, typedInTransition)
	ac := after.client(t)
	for _, args := range lateWrites("switched") {
		wantErr(t, ac, destroyedError("switched"), args...)
	}
	wantReply(t, ac, nil, "GET", "sess:switched")
	wantReply(t, ac, 0, "EXISTS", "sess:switched")
	before.wantTombstone(t, "sess:switched") // still the string, never overwritten
	// Its own destroys write typed tombstones.
	wantReply(t, ac, "OK", "SESS.SET", "fresh", `{}`)
	wantReply(t, ac, 1, "SESS.DESTROY", "fresh")
	after.wantTombstone(t, "sess:fresh")
}

// testTombstoneSwitchTypedToString: typed tombstones refuse the writes of
// a proxy switched back to "string", at once.
func testTombstoneSwitchTypedToString(t *testing.T, up *upstream) {
	before := startProxy(t, up, typedTombstones)
	c := before.client(t)
	wantReply(t, c, "OK", "SESS.SET", "switched", `{}`)
	wantReply(t, c, 1, "SESS.DESTROY", "switched")
	before.wantTombstone(t, "sess:switched")

	after := startSibling(t, up, nil)
	if after.format != store.TombstoneString {
		t.Fatalf("sibling format %q", after.format)
	}
	ac := after.client(t)
	for _, args := range lateWrites("switched") {
		wantErr(t, ac, destroyedError("switched"), args...)
	}
	wantReply(t, ac, nil, "GET", "sess:switched")
	wantReply(t, ac, 0, "EXISTS", "sess:switched")
	wantReply(t, ac, 0, "SESS.DESTROY", "switched") // nothing live: now its own format
	after.wantTombstone(t, "sess:switched")
}

// testTypedTombstoneRace: the tombstone race of testRaceSetDestroy and
// testRacePlainSetDel, with typed tombstones and native writes.
func testTypedTombstoneRace(t *testing.T, up *upstream) {
	shape := raceShape{rounds: 1, workers: 20, iters: 50, waitAt: 40, destroyAt: 300}
	t.Run("SESS", func(t *testing.T) { raceRounds(t, up, typedTombstones, shape, raceSessSet, raceSessDestroy) })
	t.Run("plain", func(t *testing.T) { raceRounds(t, up, typedTombstones, shape, racePlainSet, racePlainDel) })
}

// commandCalls sums INFO commandstats' calls of each command over the
// upstream's masters.
func commandCalls(t *testing.T, up *upstream) map[string]int64 {
	t.Helper()
	var mu sync.Mutex
	calls := map[string]int64{}
	err := up.forEachMaster(bg, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest+",", ',')], 10, 64)
			mu.Lock()
			calls[name] += n
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	return calls
}

// testTypedTombstoneNativeWrites: once its transition is over, a typed
// proxy's common writes are Redis's own SET, not scripts; within it, and
// under the string format, they are script calls.
func testTypedTombstoneNativeWrites(t *testing.T, up *upstream) {
	const n = 200
	modes := []struct {
		name   string
		tweak  func(*commands.Options, *proxy.Options)
		native bool
	}{
		{"typed", typedTombstones, true},
		{"typed in transition", typedInTransition, false},
		{"string", nil, false},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			p := startProxy(t, up, m.tweak)
			c := p.client(t)
			info, err := c.Info(bg, "sessions").Result()
			if want := map[bool]string{true: "native", false: "scripted"}[m.native]; err != nil || !strings.Contains(info, "tombstone_writes:"+want+"\r\n") {
				t.Errorf("INFO sessions (%v) lacks tombstone_writes:%s:\n%s", err, want, info)
			}
			before := commandCalls(t, up)
			for i := range n {
				wantReply(t, c, "OK", "SESS.SET", fmt.Sprintf("native-%d", i), `{"n":1}`)
			}
			after := commandCalls(t, up)
			set, scripts := after["set"]-before["set"], after["evalsha"]-before["evalsha"]
			t.Logf("%s, %d SESS.SET: upstream SET %d, EVALSHA %d", m.name, n, set, scripts)
			if m.native && (set < n || scripts != 0) {
				t.Errorf("native writes: SET %d, EVALSHA %d, want %d and 0", set, scripts, n)
			}
			// Redis counts a script's own redis.call('SET') as a SET too.
			if !m.native && scripts == 0 {
				t.Errorf("scripted writes: SET %d, EVALSHA %d, want script calls", set, scripts)
			}
		})
	}
}
