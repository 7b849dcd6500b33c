package commands

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestSweepBoundsLegacyKeysOnly(t *testing.T) {
	f := newFixture(t, nil)
	expires := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	for i := 0; i < 30; i++ {
		f.m.Set(fmt.Sprintf("sess:legacy%d", i), "{}") // written before the proxy: no TTL
	}
	f.m.Set("sess:cookie", `{"cookie":{"expires":"`+expires+`"}}`)
	f.m.Set("sess:php", "user|s:3:\"ada\";") // not JSON: the default TTL
	f.m.Set("sess:forever", "{}")
	f.m.SetTTL("sess:forever", 365*24*time.Hour) // above ttl.max
	f.m.Set("other:key", "{}")                   // outside the prefix
	f.expect("SESS.SET fine {}", "+OK")

	f.expect("SESS.SWEEP DRYRUN", ":33")
	if f.m.TTL("sess:legacy0") != 0 {
		t.Fatal("a dry run changed a TTL")
	}
	var pages int
	stats, err := f.e.Sweep(context.Background(), SweepOptions{Count: 7, Progress: func(SweepStats) { pages++ }})
	if err != nil {
		t.Fatal(err)
	}
	if stats != (SweepStats{Scanned: 34, Fixed: 33, Skipped: 1}) || pages == 0 {
		t.Fatalf("stats %+v after %d pages", stats, pages)
	}
	for _, k := range f.m.Keys() {
		ttl := f.m.TTL(k)
		switch {
		case k == "other:key":
			if ttl != 0 {
				t.Errorf("the sweep touched %s outside the prefix", k)
			}
		case k == "sess:cookie":
			if ttl < time.Hour || ttl > 2*time.Hour {
				t.Errorf("%s: TTL %v, want the cookie's 2h", k, ttl)
			}
		case ttl <= 0 || ttl > 24*time.Hour:
			t.Errorf("%s: TTL %v after the sweep", k, ttl)
		}
	}
	f.expect("SESS.SWEEP", ":0")
}
