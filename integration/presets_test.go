package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/store"
)

// startPresetProcess runs the sessproxy binary on up with only a
// framework's preset (-preset) beside what reaching the upstream takes,
// and returns a handle on it for the direct checks.
func startPresetProcess(t *testing.T, bin string, up *upstream, preset string) *proxyHandle {
	t.Helper()
	return startPresetProcessWith(t, bin, up, preset, "")
}

// startPresetProcessWith is startPresetProcess with more of the config
// file (TOML tables other than server, upstream, log and metrics), which
// overrides the preset as a user's file does.
func startPresetProcessWith(t *testing.T, bin string, up *upstream, preset, extraTOML string) *proxyHandle {
	t.Helper()
	return startPresetsProcess(t, bin, up, extraTOML, preset)
}

// startPresetsProcess runs the binary with -preset given for each of
// presets (the first the default namespace's, each further one a
// namespace of its own) and extraTOML in its config file.
func startPresetsProcess(t *testing.T, bin string, up *upstream, extraTOML string, presets ...string) *proxyHandle {
	t.Helper()
	up.flush(t)
	addrs := ""
	for i, a := range up.addrs {
		if i > 0 {
			addrs += ", "
		}
		addrs += strconv.Quote(a)
	}
	path := filepath.Join(t.TempDir(), "sessproxy.toml")
	body := fmt.Sprintf("[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nmode = %q\naddrs = [%s]\n[log]\nformat = \"json\"\n[metrics]\naddr = \"\"\n", up.mode, addrs) + extraTOML
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-config", path}
	for _, p := range presets {
		args = append(args, "-preset", p)
	}
	proc, addr := startSessproxyProcess(t, bin, args...)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	// The config file's default tombstone format is typed; the
	// connect-redis-session preset, or a file saying so, keeps strings.
	format := store.TombstoneTyped
	if presets[0] == "connect-redis-session" || strings.Contains(extraTOML, `format = "string"`) {
		format = store.TombstoneString
	}
	return &proxyHandle{up: up, addr: addr, port: n, process: proc, format: format}
}

// TestPresetPhpredis: PHP native sessions with phpredis's defaults (its
// own PHPREDIS_SESSION: prefix, locking on) through a proxy started with
// only -preset phpredis: login → read → logout → a late write, each step
// checked in Redis directly; the late write is answered as success (PHP
// would throw on TOMBSTONE) and the session stays destroyed.
func TestPresetPhpredis(t *testing.T) {
	requirePHP(t)
	bin := buildSessproxy(t)
	for _, up := range []*upstream{standaloneUp, clusterUp} {
		t.Run(up.name, func(t *testing.T) {
			p := startPresetProcess(t, bin, up, "phpredis")
			p.phpNativePrefix = true
			const sid = "presetphp"
			sess, lock := "PHPREDIS_SESSION:"+sid, "PHPREDIS_SESSION:"+sid+"_LOCK"

			login := p.php(t, sid, "incr", 0, phpLocking).wait()
			wantClean(t, "login", login)
			p.wantStored(t, sess, phpSerialized(1, login.PID))
			p.wantTTL(t, sess, phpMaxLifetime)
			p.wantMissing(t, lock)

			read := p.php(t, sid, "read", 0, phpLocking).wait()
			wantClean(t, "read", read)
			if read.Read == nil || *read.Read != 1 {
				t.Errorf("read counter %s, want 1", readCounter(read))
			}

			off := phpLocking
			off.off = true
			slow := p.php(t, sid, "incr", time.Second, off)
			slow.waitAcquired()
			wantClean(t, "logout", p.php(t, sid, "destroy", 0, phpLocking).wait())
			p.wantTombstone(t, sess)
			late := slow.wait()
			wantClean(t, "late write", late) // on_write = "ignore": PHP sees success
			p.wantTombstone(t, sess)
			p.wantMissing(t, lock)
		})
	}
}
