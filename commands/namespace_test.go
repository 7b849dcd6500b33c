package commands

import (
	"slices"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/store/codec"
)

// twoNamespaces is the default namespace (json, sess:, 24 h) beside a
// phpredis-like one (raw, PHPREDIS_SESSION:, 1 h, tombstone refusals
// ignored) and an admin one nested under the default's prefix
// (sess:admin:, 10 m).
func twoNamespaces(o *Options) {
	base := defaultOptions()
	php := Namespace{Name: "php", Prefix: "PHPREDIS_SESSION:", LockSuffixes: []string{"_LOCK"},
		Policy:     ttl.Policy{Default: time.Hour, Min: time.Second, Max: 2 * time.Hour, Touch: true, Persist: ttl.PersistDeny, LockMax: time.Minute},
		Tombstones: true, Grace: time.Minute, OnWrite: OnWriteIgnore, Codec: mustCodec(codec.Options{Format: codec.FormatRaw})}
	admin := Namespace{Name: "admin", Prefix: "sess:admin:", Policy: base.Policy, Tombstones: true, Grace: time.Minute,
		OnWrite: OnWriteError, Codec: base.Codec}
	admin.Policy.Default = 10 * time.Minute
	o.Namespaces = []Namespace{php, admin}
}

// TestNamespacesApplyTheirOwnPolicy: a key gets the codec, TTL policy and
// tombstone behaviour of the namespace with the longest prefix it starts
// with; SESS.* act on the default namespace, or on the one NS names.
func TestNamespacesApplyTheirOwnPolicy(t *testing.T) {
	f := newFixture(t, twoNamespaces)
	runSteps(t, f, []step{
		{`SET PHPREDIS_SESSION:p1 a|i:1;`, "+OK"},               // raw: PHP's serialize format
		{`SET sess:p1 a|i:1;`, "-ERR invalid session payload*"}, // json in the default
		{`SET sess:admin:a1 {"admin":true}`, "+OK"},
		{`SET sess:d1 {"n":1}`, "+OK"},
		{`SESS.SET p2 a|i:2; NS php`, "+OK"},
		{`SESS.GET p2 NS php`, "$a|i:2;"},
		{`SESS.GET p2`, "nil"},
		{`SESS.SET x {} NS nope`, "-ERR no such namespace 'nope'*"},
		// NS is the namespace only where what precedes it is complete.
		{`SESS.SET ns {"n":1}`, "+OK"},
		{`SESS.GET ns`, `${"n":1}`},
		{`SESS.EXISTS ns`, ":1"},
	})
	for key, want := range map[string]time.Duration{
		"PHPREDIS_SESSION:p1": time.Hour, "PHPREDIS_SESSION:p2": time.Hour,
		"sess:admin:a1": 10 * time.Minute, "sess:d1": 24 * time.Hour,
	} {
		if got := f.m.TTL(key); got != want {
			t.Errorf("%s TTL %v, want its namespace's %v", key, got, want)
		}
	}
	// Tombstones: the php namespace answers a late write as success (and
	// writes nothing), the default refuses it.
	runSteps(t, f, []step{
		{`DEL PHPREDIS_SESSION:p1 sess:d1`, ":2"},
		{`SET PHPREDIS_SESSION:p1 a|i:9;`, "+OK"},
		{`SET sess:d1 {"n":9}`, "-TOMBSTONE session d1 was destroyed"},
	})
	if v, _ := f.m.Get("PHPREDIS_SESSION:p1"); v == "a|i:9;" {
		t.Error("a late write in the php namespace brought the session back")
	}
	// A lock of the php namespace gets its lock_max.
	runSteps(t, f, []step{{`SET PHPREDIS_SESSION:p3_LOCK token EX 3600`, "+OK"}})
	if got := f.m.TTL("PHPREDIS_SESSION:p3_LOCK"); got != time.Minute {
		t.Errorf("php lock TTL %v, want its namespace's lock_max 1m", got)
	}
}

// TestNamespaceListingsNeverMix: SESS.IDS, SESS.LENGTH, SESS.ALL, SCAN and
// KEYS list one namespace; a nested prefix's keys belong to the nested
// namespace only; DBSIZE counts them all.
func TestNamespaceListingsNeverMix(t *testing.T) {
	f := newFixture(t, twoNamespaces)
	runSteps(t, f, []step{
		{`SET sess:d1 {"n":1}`, "+OK"},
		{`SET sess:admin:a1 {"n":2}`, "+OK"},
		{`SET PHPREDIS_SESSION:p1 raw`, "+OK"},
		{`SESS.IDS`, "[$d1]"},
		{`SESS.IDS NS admin`, "[$a1]"},
		{`SESS.IDS NS php`, "[$p1]"},
		{`SESS.LENGTH`, ":1"},
		{`SESS.LENGTH NS admin`, ":1"},
		{`DBSIZE`, ":3"},
		{`KEYS *`, "[$sess:d1]"},
		{`KEYS sess:admin:*`, "[$sess:admin:a1]"},
		{`SCAN 0 MATCH PHPREDIS_SESSION:*`, "[$0 [$PHPREDIS_SESSION:p1]]"},
		{`SESS.CLEAR`, ":1"},
	})
	if !f.m.Exists("sess:admin:a1") || !f.m.Exists("PHPREDIS_SESSION:p1") {
		t.Error("SESS.CLEAR of the default namespace touched another namespace's sessions")
	}
}

// TestNamespaceInTransactionsAndScripts: a SESS.* with NS queued in MULTI
// runs in its namespace at EXEC; a script runs in the namespace of its
// KEYS, may not mix namespaces, and may not touch another namespace's keys.
func TestNamespaceInTransactionsAndScripts(t *testing.T) {
	f := newFixture(t, twoNamespaces)
	replies := f.do("MULTI", `SESS.SET t1 raw-value NS php`, "EXEC")
	if len(replies) != 3 || replies[2] != "[+OK]" {
		t.Fatalf("MULTI / SESS.SET … NS php / EXEC = %q", replies)
	}
	if v, _ := f.m.Get("PHPREDIS_SESSION:t1"); v != "raw-value" || f.m.TTL("PHPREDIS_SESSION:t1") != time.Hour {
		t.Errorf("SESS.SET NS php inside EXEC stored %q with TTL %v", v, f.m.TTL("PHPREDIS_SESSION:t1"))
	}
	runSteps(t, f, []step{
		{`EVAL 'return redis.call("set", KEYS[1], ARGV[1])' 1 PHPREDIS_SESSION:s1 raw`, "$OK"},
		{`EVAL 'return 1' 2 sess:a PHPREDIS_SESSION:b`, "-" + msgScriptNamespaces},
		{`EVAL 'return redis.call("set", "sess:admin:x", "{}")' 1 sess:d`, "-ERR Error compiling script (new function): ERR key 'sess:admin:x' belongs to another namespace*"},
	})
	if got := f.m.TTL("PHPREDIS_SESSION:s1"); got != time.Hour {
		t.Errorf("a script's SET in the php namespace: TTL %v, want 1h", got)
	}
	if f.m.Exists("sess:admin:x") {
		t.Error("a script of the default namespace wrote the admin namespace's key")
	}
}

// TestReloadMatchesNamespacesByName: a reload changes each namespace's
// policy by name; a namespace it lacks keeps its running policy.
func TestReloadMatchesNamespacesByName(t *testing.T) {
	f := newFixture(t, twoNamespaces)
	opts := defaultOptions()
	twoNamespaces(&opts)
	opts.Namespaces[0].Policy.Default = 30 * time.Minute // php
	opts.Namespaces = opts.Namespaces[:1]                // admin left out
	f.e.Reload(opts)
	runSteps(t, f, []step{{`SET PHPREDIS_SESSION:r1 raw`, "+OK"}, {`SET sess:admin:r2 {}`, "+OK"}})
	if got := f.m.TTL("PHPREDIS_SESSION:r1"); got != 30*time.Minute {
		t.Errorf("php after the reload: TTL %v, want 30m", got)
	}
	if got := f.m.TTL("sess:admin:r2"); got != 10*time.Minute {
		t.Errorf("admin, absent from the reload: TTL %v, want its running 10m", got)
	}
}

// TestTrackingPrefixesCoverEveryNamespace: the upstream tracking watches
// every namespace's prefix, a nested one through its parent (Redis refuses
// overlapping BCAST prefixes).
func TestTrackingPrefixesCoverEveryNamespace(t *testing.T) {
	f := newFixture(t, twoNamespaces)
	if got := f.e.trackingPrefixes(); !slices.Equal(got, []string{"sess:", "PHPREDIS_SESSION:"}) {
		t.Errorf("tracking prefixes %q, want sess: (covering sess:admin:) and PHPREDIS_SESSION:", got)
	}
}
