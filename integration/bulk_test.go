package integration

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store"
)

// bulkSessions is how many sessions the bulk tests write: enough for every
// cluster master to hold a hundred, so SCAN pages and per-node batches are
// exercised for real.
const bulkSessions = 330

// outsideKeys are written directly in the upstream, next to the sessions:
// none of them is under the prefix "sess:", though some look close.
var outsideKeys = []string{"plain:1", "plain:2", "session:1", "sess", "Sess:x", "xsess:1", "sess-1", "{sess:}"}

// seedOutside writes outsideKeys directly in the upstream, half of them
// without a TTL, and returns what each holds.
func seedOutside(t *testing.T, up *upstream) map[string]string {
	t.Helper()
	values := map[string]string{}
	for i, k := range outsideKeys {
		v := "outside-" + strconv.Itoa(i)
		ttl := time.Duration(0)
		if i%2 == 0 {
			ttl = time.Hour
		}
		if err := up.direct.Set(bg, k, v, ttl).Err(); err != nil {
			t.Fatalf("seed %s: %v", k, err)
		}
		values[k] = v
	}
	return values
}

// wantOutsideUntouched checks the keys seedOutside wrote hold the same
// values, with (about) the same TTLs.
func wantOutsideUntouched(t *testing.T, p *proxyHandle, values map[string]string) {
	t.Helper()
	for i, k := range outsideKeys {
		p.wantStored(t, k, values[k])
		if i%2 == 0 {
			p.wantTTL(t, k, time.Hour)
		} else if d := p.pttl(t, k); d != -time.Millisecond {
			t.Errorf("upstream: PTTL %s = %v, want no TTL (untouched)", k, d)
		}
	}
}

// writeSessions writes sid → payload through the proxy in one pipeline.
func writeSessions(t *testing.T, c *redis.Client, sessions map[string]string) {
	t.Helper()
	pipe := c.Pipeline()
	for sid, payload := range sessions {
		pipe.Do(bg, "SESS.SET", sid, payload)
	}
	cmds, err := pipe.Exec(bg)
	if err != nil {
		t.Fatalf("pipelined SESS.SET of %d sessions: %v", len(sessions), err)
	}
	for _, cmd := range cmds {
		if v, _ := cmd.(*redis.Cmd).Result(); v != "OK" {
			t.Fatalf("%v = %v, want OK", cmd.Args(), v)
		}
	}
}

// bulkFixture is a proxy with bulkSessions sessions spread over every
// master, some of them destroyed, and keys outside the prefix.
type bulkFixture struct {
	p         *proxyHandle
	live      map[string]string // sid → payload
	destroyed []string          // sids holding tombstones
	outside   map[string]string
}

func newBulkFixture(t *testing.T, up *upstream, c *redis.Client, p *proxyHandle) *bulkFixture {
	t.Helper()
	f := &bulkFixture{p: p, live: map[string]string{}}
	all := map[string]string{}
	var keys []string
	for i := 0; i < bulkSessions; i++ {
		sid := fmt.Sprintf("bulk-%d", i)
		all[sid] = fmt.Sprintf(`{"n":%d,"user":"u%d"}`, i, i%7)
		keys = append(keys, "sess:"+sid)
	}
	all["bulk-nine"] = `{"a":123}` // nine bytes, like a tombstone
	up.wantAllMasters(t, keys)
	writeSessions(t, c, all)

	// Destroy every eleventh session, and two ids that never existed.
	args := []interface{}{"SESS.DESTROY"}
	for i := 0; i < bulkSessions; i += 11 {
		sid := fmt.Sprintf("bulk-%d", i)
		f.destroyed = append(f.destroyed, sid)
		args = append(args, sid)
		delete(all, sid)
	}
	wantReply(t, c, len(f.destroyed), args...)
	wantReply(t, c, 0, "SESS.DESTROY", "ghost-1", "ghost-2")
	f.destroyed = append(f.destroyed, "ghost-1", "ghost-2")
	f.live = all
	f.outside = seedOutside(t, up)
	return f
}

// liveIDs are the fixture's live session ids, sorted.
func (f *bulkFixture) liveIDs() []string {
	ids := make([]string, 0, len(f.live))
	for sid := range f.live {
		ids = append(ids, sid)
	}
	sort.Strings(ids)
	return ids
}

// liveKeys are the upstream keys of the live sessions, sorted.
func (f *bulkFixture) liveKeys() []string {
	ids := f.liveIDs()
	for i := range ids {
		ids[i] = "sess:" + ids[i]
	}
	return ids
}

func testBulkReads(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	f := newBulkFixture(t, up, c, p)
	up.resetStats(t)

	// SESS.IDS, SESS.LENGTH, DBSIZE: live sessions only, every master.
	wantStrings(t, "SESS.IDS", mustStrings(t, c, "SESS.IDS"), f.liveIDs())
	wantReply(t, c, len(f.live), "SESS.LENGTH")
	wantReply(t, c, len(f.live), "DBSIZE")

	// SESS.ALL: id payload id payload …
	all, err := c.Do(bg, "SESS.ALL").StringSlice()
	if err != nil {
		t.Fatalf("SESS.ALL: %v", err)
	}
	if len(all)%2 != 0 {
		t.Fatalf("SESS.ALL returned %d elements, want id/payload pairs", len(all))
	}
	got := map[string]string{}
	var ids []string
	for i := 0; i < len(all); i += 2 {
		got[all[i]] = all[i+1]
		ids = append(ids, all[i])
	}
	wantStrings(t, "SESS.ALL ids", ids, f.liveIDs())
	for sid, payload := range f.live {
		if got[sid] != payload {
			t.Errorf("SESS.ALL %s = %q, want %q", sid, got[sid], payload)
		}
	}

	// In RESP3 it is a map.
	c3 := p.client(t, func(o *redis.Options) { o.Protocol = 3 })
	if m, err := c3.Do(bg, "SESS.ALL").Result(); err != nil {
		t.Errorf("RESP3 SESS.ALL: %v", err)
	} else if m, ok := m.(map[interface{}]interface{}); !ok || len(m) != len(f.live) || m["bulk-nine"] != f.live["bulk-nine"] {
		t.Errorf("RESP3 SESS.ALL = %s, want a map of the %d live sessions", clip(fmt.Sprintf("%#v", m)), len(f.live))
	}

	// SESS.SCAN with a small COUNT: each live id exactly once, the masters
	// walked one after the other.
	pages := scanPages(t, c, "SESS.SCAN", 7)
	var scanned []string
	var masters []string // the master of each page, runs collapsed
	for _, page := range pages {
		pageMaster := ""
		for _, sid := range page {
			m := up.masterOf(t, "sess:"+sid)
			if pageMaster != "" && m != pageMaster {
				t.Errorf("SESS.SCAN page %q mixes masters %s and %s", page, pageMaster, m)
			}
			pageMaster = m
		}
		if pageMaster != "" && (len(masters) == 0 || masters[len(masters)-1] != pageMaster) {
			masters = append(masters, pageMaster)
		}
		scanned = append(scanned, page...)
	}
	wantStrings(t, "SESS.SCAN ids", scanned, f.liveIDs())
	if want := up.masterCount(t); len(masters) != want || len(uniq(masters)) != want {
		t.Errorf("SESS.SCAN visited masters in the order %q, want each of the %d masters once", masters, want)
	}
	wantErr(t, c, "ERR invalid cursor", "SESS.SCAN", "abc")
	wantErr(t, c, "ERR invalid cursor", "SESS.SCAN", "5") // names master #5, there is none
	wantErr(t, c, "ERR value is not an integer or out of range", "SESS.SCAN", "0", "COUNT", "0")
	wantErr(t, c, "ERR syntax error", "SESS.SCAN", "0", "MATCH", "*")

	// Plain SCAN and KEYS: confined to the prefix, tombstones filtered.
	var keys []string
	for _, page := range scanPages(t, c, "SCAN", 10) {
		keys = append(keys, page...)
	}
	wantStrings(t, "SCAN 0 COUNT 10", keys, f.liveKeys())
	wantStrings(t, "KEYS *", mustStrings(t, c, "KEYS", "*"), f.liveKeys())
	for _, pattern := range []string{
		"sess:bulk-1*", // starts with the prefix: sent to Redis as it is
		"sess:bulk-?",
		"*-2?",   // applied by the proxy over the prefix
		"sess*",  // every session, never the key "sess" itself
		"plain*", // outside the prefix: nothing
		"*:1",
		"session:*",
		"sess:nope*",
	} {
		var want []string
		for _, k := range f.liveKeys() {
			if ok, _ := path.Match(pattern, k); ok {
				want = append(want, k)
			}
		}
		keys = keys[:0]
		for _, page := range scanPages(t, c, "SCAN", 10, "MATCH", pattern) {
			keys = append(keys, page...)
		}
		wantStrings(t, "SCAN MATCH "+pattern, keys, want)
		wantStrings(t, "KEYS "+pattern, mustStrings(t, c, "KEYS", pattern), want)
	}

	// Nothing above ran KEYS, MGET or DEL upstream, nor hit CROSSSLOT: SCAN
	// on every master and per-node pipelines of single-key commands.
	up.wantBatchedPerNode(t)

	for _, sid := range f.destroyed {
		wantReply(t, c, nil, "SESS.GET", sid)
	}
	wantOutsideUntouched(t, p, f.outside)
}

func testBulkClear(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) {
		o.Users = []commands.User{
			{Name: "adm", Password: "admpw", Role: commands.RoleAdmin},
			{Name: "app", Password: "apppw", Role: commands.RoleApp},
		}
	})
	adm := p.client(t, asUser("adm", "admpw"))
	app := p.client(t, asUser("app", "apppw"))
	f := newBulkFixture(t, up, adm, p)

	wantErr(t, app, "NOPERM this user has no permissions to run the 'sess.clear' command", "SESS.CLEAR")
	wantReply(t, app, len(f.live), "SESS.LENGTH")

	up.resetStats(t)
	wantReply(t, adm, len(f.live), "SESS.CLEAR")
	up.wantBatchedPerNode(t)

	// Every session, live or already destroyed, is a tombstone now.
	for sid := range f.live {
		p.wantTombstone(t, "sess:"+sid)
	}
	for _, sid := range f.destroyed {
		p.wantStored(t, "sess:"+sid, "TOMBSTONE")
	}
	wantOutsideUntouched(t, p, f.outside)
	if n := len(p.allKeys(t)); n != bulkSessions+3+len(outsideKeys) {
		t.Errorf("upstream holds %d keys after SESS.CLEAR, want %d (every session a tombstone, the rest untouched)",
			n, bulkSessions+3+len(outsideKeys))
	}

	wantReply(t, app, 0, "SESS.LENGTH")
	wantReply(t, app, 0, "DBSIZE")
	wantStrings(t, "SESS.IDS", mustStrings(t, app, "SESS.IDS"), nil)
	wantStrings(t, "KEYS *", mustStrings(t, app, "KEYS", "*"), nil)
	wantErr(t, app, destroyedError("bulk-1"), "SESS.SET", "bulk-1", `{}`)
	wantReply(t, adm, 0, "SESS.CLEAR")
}

// --- helpers ----------------------------------------------------------------

// asUser authenticates a client as user.
func asUser(user, pass string) func(*redis.Options) {
	return func(o *redis.Options) { o.Username, o.Password = user, pass }
}

// mustStrings runs a command whose reply is an array of bulk strings.
func mustStrings(t *testing.T, c doer, args ...interface{}) []string {
	t.Helper()
	v, err := c.Do(bg, args...).StringSlice()
	if err != nil {
		t.Fatalf("%s: %v", show(args), err)
	}
	return v
}

// wantStrings checks got holds exactly the strings of want, each once, in
// any order.
func wantStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	counts := map[string]int{}
	for _, s := range got {
		counts[s]++
	}
	var dups, extra, missing []string
	for s, n := range counts {
		if n > 1 {
			dups = append(dups, s)
		}
	}
	wanted := map[string]bool{}
	for _, s := range want {
		wanted[s] = true
		if counts[s] == 0 {
			missing = append(missing, s)
		}
	}
	for s := range counts {
		if !wanted[s] {
			extra = append(extra, s)
		}
	}
	if len(dups)+len(extra)+len(missing) > 0 {
		sort.Strings(dups)
		sort.Strings(extra)
		sort.Strings(missing)
		t.Errorf("%s: %d results, want %d; repeated %s, unexpected %s, missing %s",
			what, len(got), len(want), clip(fmt.Sprint(dups)), clip(fmt.Sprint(extra)), clip(fmt.Sprint(missing)))
	}
}

// uniq is the distinct strings of s.
func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// scanPages iterates a SCAN-like command (cmd cursor COUNT n extra…) from
// cursor 0 back to 0 and returns each page's elements.
func scanPages(t *testing.T, c doer, cmd string, count int, extra ...interface{}) [][]string {
	t.Helper()
	var pages [][]string
	cursor := "0"
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatalf("%s: no end after %d calls", cmd, i)
		}
		args := append([]interface{}{cmd, cursor, "COUNT", count}, extra...)
		v, err := c.Do(bg, args...).Slice()
		if err != nil || len(v) != 2 {
			t.Fatalf("%s = %#v, %v; want [cursor, [elements]]", show(args), v, err)
		}
		next, ok := v[0].(string)
		if _, perr := strconv.ParseUint(next, 10, 64); !ok || perr != nil {
			t.Fatalf("%s: cursor %#v is not a number", show(args), v[0])
		}
		elems, ok := v[1].([]interface{})
		if !ok {
			t.Fatalf("%s: elements %#v are not an array", show(args), v[1])
		}
		page := make([]string, len(elems))
		for j, e := range elems {
			page[j], _ = e.(string)
		}
		pages = append(pages, page)
		if next == "0" {
			return pages
		}
		cursor = next
	}
}

// masterOf is the address of the master holding key.
func (u *upstream) masterOf(t *testing.T, key string) string {
	t.Helper()
	switch u.mode {
	case store.ModeStandalone:
		return u.addrs[0]
	case store.ModeSentinel:
		return u.master
	}
	m, err := u.direct.(*redis.ClusterClient).MasterForKey(bg, key)
	if err != nil {
		t.Fatalf("master for %s: %v", key, err)
	}
	return m.Options().Addr
}

// masterCount is the number of masters: 1 standalone or sentinel, 3 cluster.
func (u *upstream) masterCount(t *testing.T) int {
	t.Helper()
	var mu sync.Mutex
	n := 0
	err := u.forEachMaster(bg, func(context.Context, *redis.Client) error {
		mu.Lock()
		n++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatalf("list masters: %v", err)
	}
	return n
}

// wantAllMasters checks keys are spread over every master, so a test over
// them exercises every node.
func (u *upstream) wantAllMasters(t *testing.T, keys []string) {
	t.Helper()
	per := map[string]int{}
	for _, k := range keys {
		per[u.masterOf(t, k)]++
	}
	if want := u.masterCount(t); len(per) != want {
		t.Fatalf("keys reach %d masters (%v), want %d", len(per), per, want)
	}
}

// resetStats zeroes INFO commandstats and errorstats on every master.
func (u *upstream) resetStats(t *testing.T) {
	t.Helper()
	err := u.forEachMaster(bg, func(ctx context.Context, c *redis.Client) error {
		return c.ConfigResetStat(ctx).Err()
	})
	if err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
}

// nodeStats are one master's INFO commandstats (calls by command name) and
// errorstats (count by error code).
type nodeStats struct {
	calls, errors map[string]int64
}

// stats reads every master's commandstats and errorstats.
func (u *upstream) stats(t *testing.T) map[string]nodeStats {
	t.Helper()
	var mu sync.Mutex
	out := map[string]nodeStats{}
	err := u.forEachMaster(bg, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "commandstats", "errorstats").Result()
		if err != nil {
			return err
		}
		s := nodeStats{calls: map[string]int64{}, errors: map[string]int64{}}
		for _, line := range strings.Split(info, "\r\n") {
			name, rest, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			field, _, _ := strings.Cut(rest, ",")
			_, num, _ := strings.Cut(field, "=")
			n, _ := strconv.ParseInt(num, 10, 64)
			if cmd, ok := strings.CutPrefix(name, "cmdstat_"); ok {
				s.calls[cmd] = n
			} else if code, ok := strings.CutPrefix(name, "errorstat_"); ok {
				s.errors[code] = n
			}
		}
		mu.Lock()
		out[c.Options().Addr] = s
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatalf("INFO commandstats errorstats: %v", err)
	}
	return out
}

// wantBatchedPerNode checks, since resetStats, that every master was
// walked with SCAN, that no master ran KEYS, DEL, UNLINK or MSET, and that
// none answered an error (CROSSSLOT, MOVED…; NOSCRIPT is the proxy loading
// its scripts, and allowed). MGET is allowed: a page's reads of one slot go
// as one, and a CROSSSLOT would show in the errors.
func (u *upstream) wantBatchedPerNode(t *testing.T) {
	t.Helper()
	for addr, s := range u.stats(t) {
		if s.calls["scan"] == 0 {
			t.Errorf("master %s: no SCAN calls, want every master walked (commandstats %v)", addr, s.calls)
		}
		for _, cmd := range []string{"keys", "del", "unlink", "mset"} {
			if n := s.calls[cmd]; n != 0 {
				t.Errorf("master %s: %d %s calls, want none (commandstats %v)", addr, n, strings.ToUpper(cmd), s.calls)
			}
		}
		for code, n := range s.errors {
			if code != "NOSCRIPT" {
				t.Errorf("master %s: %d %s errors, want none", addr, n, code)
			}
		}
	}
}
