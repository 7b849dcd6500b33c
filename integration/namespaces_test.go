package integration

import (
	"testing"
	"time"
)

// TestNamespacesSideBySide: one proxy, started with only
// -preset connect-redis -preset phpredis, serves an Express-style client
// (JSON, sess:) and PHP native sessions (raw, PHPREDIS_SESSION:, locks)
// at once, each with its own codec and tombstone behaviour, and its
// listings never mix the two. Checked in Redis directly.
func TestNamespacesSideBySide(t *testing.T) {
	requirePHP(t)
	bin := buildSessproxy(t)
	for _, up := range []*upstream{standaloneUp, clusterUp} {
		t.Run(up.name, func(t *testing.T) {
			p := startPresetsProcess(t, bin, up, "", "connect-redis", "phpredis")
			p.phpNativePrefix = true
			c := dialRaw(t, p.addr)

			// connect-redis's namespace: JSON only, its TTL from the command.
			wantRaw(t, c, status("OK"), "SET", "sess:node1", `{"cookie":{},"user":"u"}`, "EX", "600")
			wantRawErrPrefix(t, c, "ERR invalid session payload", "SET", "sess:node2", "user|s:1:\"u\";")
			p.wantStored(t, "sess:node1", `{"cookie":{},"user":"u"}`)
			p.wantTTL(t, "sess:node1", 600*time.Second)

			// phpredis's: PHP's own format, its own prefix and locking.
			login := p.php(t, "php1", "incr", 0, phpLocking).wait()
			wantClean(t, "php login", login)
			p.wantStored(t, "PHPREDIS_SESSION:php1", phpSerialized(1, login.PID))
			p.wantTTL(t, "PHPREDIS_SESSION:php1", phpMaxLifetime)

			// Listings: each namespace its own; DBSIZE both.
			wantRaw(t, c, []interface{}{"node1"}, "SESS.IDS")
			wantRaw(t, c, []interface{}{"php1"}, "SESS.IDS", "NS", "phpredis")
			wantRaw(t, c, int64(1), "SESS.LENGTH", "NS", "phpredis")
			wantRaw(t, c, int64(2), "DBSIZE")
			wantRawErrPrefix(t, c, "ERR no such namespace 'rails'", "SESS.IDS", "NS", "rails")

			// Logout in each; a late write is refused with TOMBSTONE for
			// connect-redis, answered as success (and dropped) for PHP.
			wantRaw(t, c, int64(1), "DEL", "sess:node1")
			wantRawErrPrefix(t, c, "TOMBSTONE session node1 was destroyed", "SET", "sess:node1", `{"user":"late"}`, "EX", "600")
			p.wantTombstone(t, "sess:node1")
			wantClean(t, "php logout", p.php(t, "php1", "destroy", 0, phpLocking).wait())
			wantClean(t, "php late write", p.php(t, "php1", "incr", 0, phpLocking).wait())
			p.wantTombstone(t, "PHPREDIS_SESSION:php1")
			wantRaw(t, c, int64(0), "DBSIZE")
		})
	}
}
