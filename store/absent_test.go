package store

import (
	"context"
	"errors"
	"testing"
)

// A read proves a key absent by itself only when it was a GET (an MGET
// answers nil for a hash too), the sliding script, or found a string
// tombstone; Absent checks of one slot share one EXISTS, which proves all
// of them absent or none.
func TestReadsKnownAbsent(t *testing.T) {
	ctx := context.Background()
	s, m := openMini(t)
	m.Set("sess:present", `{"v":1}`)
	m.Set("sess:stomb", Tombstone)
	m.HSet("sess:hash", "f", "v")
	m.SetAdd("sess:ttomb", Tombstone) // a typed tombstone

	reads := func(keys ...string) []GetResult {
		t.Helper()
		b := s.NewBatch()
		out := make([]GetResult, len(keys))
		for i, k := range keys {
			out[i] = b.Get(k)
		}
		if err := b.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := func(name string, got, absent bool) {
		t.Helper()
		if got != absent {
			t.Errorf("%s: absent = %v, want %v", name, got, absent)
		}
	}

	// One MGET: its nils prove nothing, a string tombstone does.
	r := reads("sess:present", "sess:none", "sess:stomb", "sess:hash")
	want("present", r[0].Absent(), false)
	want("missing, in an MGET", r[1].Absent(), false)
	want("string tombstone", r[2].Absent(), true)
	want("hash, in an MGET", r[3].Absent(), false)
	if _, err := r[1].Result(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v, want ErrNotFound", err)
	}
	if _, err := r[3].Result(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("hash in an MGET: %v, want ErrNotFound (MGET's nil)", err)
	}

	// A GET alone: its nil is the key's absence; a hash is WRONGTYPE.
	want("missing, alone", reads("sess:none")[0].Absent(), true)
	want("hash, alone", reads("sess:hash")[0].Absent(), false)

	// The sliding script (ttl.idle) answers nil only for nothing.
	b := s.NewBatch()
	sliding := b.GetSliding("sess:none", 1e9, 0)
	if err := b.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	want("missing, sliding", sliding.Absent(), true)

	checks := func(keys ...string) []bool {
		t.Helper()
		b := s.NewBatch()
		res := make([]AbsentResult, len(keys))
		for i, k := range keys {
			res[i] = b.Absent(k)
		}
		if err := b.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		out := make([]bool, len(keys))
		for i, r := range res {
			var err error
			if out[i], err = r.Result(); err != nil {
				t.Fatalf("check %s: %v", keys[i], err)
			}
		}
		return out
	}
	a := checks("sess:none", "sess:none2")
	want("checked, missing", a[0], true)
	want("checked, second missing", a[1], true)
	// Any key EXISTS counts makes the whole check inconclusive.
	for _, other := range []string{"sess:hash", "sess:ttomb", "sess:present"} {
		a = checks("sess:none", other)
		want("checked missing beside "+other, a[0], false)
		want("checked "+other, a[1], false)
	}
	want("checked alone, hash", checks("sess:hash")[0], false)
	want("checked alone, missing", checks("sess:none")[0], true)
}
