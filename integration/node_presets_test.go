package integration

import (
	"path/filepath"
	"testing"
)

// The Node session stores driven from the sessproxy binary started with
// only their preset (integration/node/presets/), standalone and cluster:
// the login → read → touch → logout → late write flow of
// integration/node/lib/flow.mjs through an Express app, each step checked
// in Redis directly.

// nodePresetFile is a test file of integration/node/presets.
func nodePresetFile(t *testing.T, name string) string {
	t.Helper()
	return filepath.Join(nodeDir(t), "presets", name)
}

// TestPresetConnectRedisVersions: connect-redis 7.1.1 and 8.1.0 over
// node-redis 4, and 10.0.0 over node-redis 6, through -preset
// connect-redis: the session at sess:<id> with the TTL of cookie.expires,
// the touch's EXPIRE, ids/all/length, the tombstone after logout, a late
// set and touch refused with the key still a tombstone.
func TestPresetConnectRedisVersions(t *testing.T) {
	bin := buildSessproxy(t)
	for _, up := range []*upstream{standaloneUp, clusterUp} {
		t.Run(up.name, func(t *testing.T) {
			p := startPresetProcess(t, bin, up, "connect-redis")
			runNode(t, up, []string{nodePresetFile(t, "connect-redis.test.mjs")}, "SESSPROXY_ADDR="+p.addr)
		})
	}
}

// TestPresetConnectRedisSession: the connect-redis-session emulation
// (integration/node/lib/emulated) through -preset connect-redis-session:
// the flow at sessions:<id>, store.access, a write inside the grace
// refused, and — through a second proxy whose config file adds [ttl]
// require_expires = true, as ttlSeconds: false needs — a session without
// cookie.expires refused while one with it passes.
func TestPresetConnectRedisSession(t *testing.T) {
	bin := buildSessproxy(t)
	for _, up := range []*upstream{standaloneUp, clusterUp} {
		t.Run(up.name, func(t *testing.T) {
			p := startPresetProcess(t, bin, up, "connect-redis-session")
			strict := startPresetProcessWith(t, bin, up, "connect-redis-session", "[ttl]\nrequire_expires = true\n")
			runNode(t, up, []string{nodePresetFile(t, "connect-redis-session.test.mjs")},
				"SESSPROXY_ADDR="+p.addr, "SESSPROXY_REQUIRE_EXPIRES_ADDR="+strict.addr)
		})
	}
}

// TestPresetAltSession: the alt-session emulation through -preset
// alt-session: the flow on the hash at sess:<id> with its 300 s idle TTL,
// every access renewing it, mget/remove, invalidate leaving a tombstone
// (a read after it answers null, a write is refused), SELECT dbIndex.
func TestPresetAltSession(t *testing.T) {
	bin := buildSessproxy(t)
	for _, up := range []*upstream{standaloneUp, clusterUp} {
		t.Run(up.name, func(t *testing.T) {
			p := startPresetProcess(t, bin, up, "alt-session")
			runNode(t, up, []string{nodePresetFile(t, "alt-session.test.mjs")}, "SESSPROXY_ADDR="+p.addr)
		})
	}
}
