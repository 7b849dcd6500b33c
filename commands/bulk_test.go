package commands

import (
	"fmt"
	"sort"
	"strings"
	"testing"
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

func TestClearNeedsAdmin(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Users = []User{{Name: "web", Password: "p", Role: RoleApp}} })
	f.expect("AUTH web p", "+OK")
	f.expect("SESS.CLEAR", "-NOPERM this user has no permissions to run the 'sess.clear' command")
}
