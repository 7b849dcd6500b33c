package commands

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestBulkCommandsSkipTombstonesAndStayInThePrefix(t *testing.T) {
	f := newFixture(t, nil)
	f.m.Set("other:key", "x")
	for i := 0; i < 25; i++ {
		f.expect(fmt.Sprintf(`SESS.SET id%02d {"i":%d}`, i, i), "+OK")
	}
	f.expect("SESS.DESTROY id00 id01", ":2")
	f.expect("SESS.LENGTH", ":23")
	f.expect("DBSIZE", ":23")

	ids := strings.Fields(strings.Trim(strings.ReplaceAll(f.one("SESS.IDS"), "$", ""), "[]"))
	sort.Strings(ids)
	if len(ids) != 23 || ids[0] != "id02" {
		t.Fatalf("SESS.IDS = %v", ids)
	}
	all := f.one("SESS.ALL")
	if !strings.Contains(all, `$id05 ${"i":5}`) || strings.Contains(all, "id00") || strings.Contains(all, "TOMBSTONE") {
		t.Fatalf("SESS.ALL = %s", all)
	}

	seen := map[string]int{}
	cursor := "0"
	for {
		reply := f.one("SESS.SCAN " + cursor + " COUNT 5")
		fields := strings.Fields(strings.NewReplacer("[", " ", "]", " ", "$", "").Replace(reply))
		cursor = fields[0]
		for _, id := range fields[1:] {
			seen[id]++
		}
		if cursor == "0" {
			break
		}
	}
	if len(seen) != 23 {
		t.Fatalf("SESS.SCAN yielded %d ids: %v", len(seen), seen)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("SESS.SCAN yielded %s %d times", id, n)
		}
	}

	keys := f.one("KEYS *")
	if strings.Contains(keys, "other:key") || strings.Contains(keys, "sess:id00") || !strings.Contains(keys, "sess:id24") {
		t.Fatalf("KEYS * = %s", keys)
	}
	if got := f.one("KEYS sess:id1*"); strings.Count(got, "$") != 10 {
		t.Fatalf("KEYS sess:id1* = %s", got)
	}
	if got := f.one("KEYS *d2?"); strings.Count(got, "$") != 5 {
		t.Fatalf("KEYS *d2? = %s", got)
	}
	scan := f.one("SCAN 0 MATCH * COUNT 1000")
	if strings.Contains(scan, "other:key") || !strings.HasPrefix(scan, "[$0 [") {
		t.Fatalf("SCAN = %s", scan)
	}
	f.expect("SCAN x", "-ERR invalid cursor")
	f.expect("SESS.SCAN 5000", "-ERR invalid cursor")

	f.expect("SESS.CLEAR", ":23")
	f.expect("SESS.LENGTH", ":0")
	if v, _ := f.m.Get("sess:id10"); v != "TOMBSTONE" {
		t.Fatalf("SESS.CLEAR left %q", v)
	}
	if v, _ := f.m.Get("other:key"); v != "x" {
		t.Fatal("SESS.CLEAR touched a key outside the prefix")
	}
}

// A pattern outside the prefix is matched by the proxy: with Redis's
// glob syntax, and in time polynomial in the pattern and the key. Each
// '*' of "*a*a…*b*" may take any run of a's, and tidwall/match tried every
// split: 12 stars against one 64-byte id did not finish in minutes.
func TestKeysPatternIsMatchedInPolynomialTime(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("SESS.SET "+strings.Repeat("a", 64)+" {}", "+OK")
	f.expect("SESS.SET id1 {}", "+OK")
	f.expect("SESS.SET id2 {}", "+OK")
	pattern := strings.Repeat("*a", 12) + "*b*" // no 'b' in the id
	for _, cmd := range []string{"KEYS " + pattern, "SCAN 0 MATCH " + pattern + " COUNT 1000"} {
		start := time.Now()
		got := f.one(cmd)
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s took %v", cmd, took)
		}
		if strings.Contains(got, "$sess:") {
			t.Errorf("%s = %s, want no key", cmd, got)
		}
	}
	// Classes, as Redis has them (tidwall/match had none).
	f.expect("KEYS *id[1]", "[$sess:id1]")
	f.expect("KEYS *id[^1]", "[$sess:id2]")
	f.expect("SCAN 0 MATCH *id[2-9] COUNT 1000", "[$0 [$sess:id2]]")
}

func TestClearNeedsAdmin(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Users = []User{{Name: "web", Password: "p", Role: RoleApp}} })
	f.expect("AUTH web p", "+OK")
	f.expect("SESS.CLEAR", "-NOPERM this user has no permissions to run the 'sess.clear' command")
}
