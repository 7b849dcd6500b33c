package integration

import (
	"strings"
	"testing"
	"time"
)

// lockMax is ttl.lock_max as startSibling configures it (the default).
const lockMax = 5 * time.Minute

// testLocks runs phpredis's session locking through the proxy: a lock is a
// plain key with a bounded TTL, no codec and no tombstone, and never a
// session in the listings. Each step is checked in Redis directly.
func testLocks(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	// Sessions on several slots (and masters, in a cluster), each with its lock.
	keys := up.spreadKeys(t, "sess:php-", 2)
	sess, other := keys[0], keys[1]
	sid, otherSID := sess[len("sess:"):], other[len("sess:"):]
	lock := sess + "_LOCK"
	wantReply(t, c, "OK", "SESS.SET", sid, `{"a":1}`)
	wantReply(t, c, "OK", "SESS.SET", otherSID, `{"b":2}`)

	// Acquire: the token is no JSON, and is stored as sent.
	wantReply(t, c, "OK", "SET", lock, "token-1", "NX", "PX", "30000")
	p.wantStored(t, lock, "token-1")
	p.wantTTL(t, lock, 30*time.Second)
	// A second request for the same session waits: NX fails.
	wantReply(t, c, nil, "SET", lock, "token-2", "NX", "PX", "30000")
	p.wantStored(t, lock, "token-1")
	wantReply(t, c, "token-1", "GET", lock)
	wantReply(t, c, 1, "EXISTS", lock)
	if ms := p.pttl(t, lock); ms > 30*time.Second || ms <= 0 {
		t.Errorf("PTTL %s = %v, want within 30s", lock, ms)
	}

	// While held, the listings see the two sessions and never the lock.
	wantReply(t, c, 2, "SESS.LENGTH")
	wantReply(t, c, 2, "DBSIZE")
	ids, err := c.Do(bg, "SESS.IDS").StringSlice()
	if err != nil {
		t.Fatalf("SESS.IDS: %v", err)
	}
	wantStrings(t, "SESS.IDS", ids, []string{sid, otherSID})
	all, err := c.Do(bg, "SESS.ALL").StringSlice()
	if err != nil {
		t.Fatalf("SESS.ALL: %v", err)
	}
	if len(all) != 4 || strings.Contains(strings.Join(all, " "), "LOCK") {
		t.Errorf("SESS.ALL = %q, want the two sessions only", all)
	}
	var scanned []string
	for _, page := range scanPages(t, c, "SESS.SCAN", 1000) {
		scanned = append(scanned, page...)
	}
	wantStrings(t, "SESS.SCAN ids", scanned, []string{sid, otherSID})
	// SCAN and KEYS list keys: the lock is one.
	keysReply, err := c.Do(bg, "KEYS", "*").StringSlice()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	wantStrings(t, "KEYS *", keysReply, []string{sess, other, lock})

	// Release: DEL deletes it, with no tombstone, and a new lock can be taken.
	wantReply(t, c, 1, "DEL", lock)
	p.wantMissing(t, lock)
	wantReply(t, c, "OK", "SET", lock, "token-3", "NX", "PX", "30000")
	wantReply(t, c, 1, "DEL", lock)
	p.wantMissing(t, lock)

	// A TTL beyond ttl.lock_max is lowered to it, however it is asked.
	wantReply(t, c, "OK", "SET", lock, "token-4", "NX", "EX", "86400")
	p.wantTTL(t, lock, lockMax)
	wantReply(t, c, 1, "PEXPIRE", lock, "1000")
	wantReply(t, c, 1, "EXPIRE", lock, "86400")
	p.wantTTL(t, lock, lockMax)
	wantReply(t, c, "OK", "SET", lock, "token-5")
	p.wantTTL(t, lock, lockMax)
	wantReply(t, c, "OK", "SET", lock, "token-6", "XX", "KEEPTTL")
	p.wantTTL(t, lock, lockMax)
	wantErrPrefix(t, c, "ERR PERSIST is not allowed on lock keys", "PERSIST", lock)
	p.wantTTL(t, lock, lockMax)
	wantReply(t, c, "token-6", "GETDEL", lock)
	p.wantMissing(t, lock)

	// A destroyed session's tombstone does not concern its lock.
	wantReply(t, c, 1, "SESS.DESTROY", sid)
	p.wantTombstone(t, sess)
	wantReply(t, c, "OK", "SET", lock, "token-7", "NX", "PX", "30000")
	p.wantStored(t, lock, "token-7")
	wantReply(t, c, 1, "DEL", lock)
	p.wantMissing(t, lock)
	p.wantTombstone(t, sess)

	// SESS.* do not take a lock's id; SESS.CLEAR deletes locks uncounted.
	wantErrPrefix(t, c, "ERR invalid session id: ends in the lock suffix", "SESS.GET", sid+"_LOCK")
	otherLock := other + "_LOCK"
	wantReply(t, c, "OK", "SET", otherLock, "token-8", "NX", "PX", "30000")
	wantReply(t, c, 1, "SESS.CLEAR")
	p.wantMissing(t, otherLock)
	p.wantTombstone(t, other)
}
