package main

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// reloadFixture is a reloader on an engine over the embedded upstream,
// loading the config file at path with args as flags.
type reloadFixture struct {
	t    *testing.T
	path string
	r    *reloader
	logs *observer.ObservedLogs
	p    *commands.Pipeline
}

func newReloadFixture(t *testing.T, body string, flags ...string) *reloadFixture {
	t.Helper()
	path := writeConfig(t, body)
	args := append([]string{"-config", path}, flags...)
	load := configLoader(args)
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := parseLevel(cfg.Log.Level)
	if err != nil {
		t.Fatal(err)
	}
	// The observer honours the level, as serve's logger does.
	level := zap.NewAtomicLevelAt(parsed)
	core, logs := observer.New(level)
	log := zap.New(core)
	st, engine, err := open(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &reloader{load: load, current: cfg, engine: engine, level: level, log: log}
	p := engine.NewPipeline(engine.Connect("127.0.0.1:1", "127.0.0.1:6380"))
	return &reloadFixture{t: t, path: path, r: r, logs: logs, p: p}
}

// rewrite replaces the config file and reloads it.
func (f *reloadFixture) rewrite(body string) {
	f.t.Helper()
	if err := os.WriteFile(f.path, []byte(body), 0o600); err != nil {
		f.t.Fatal(err)
	}
	f.r.reload()
}

// do runs one command on the fixture's client and returns the raw reply.
func (f *reloadFixture) do(args ...string) string {
	cmd := make([][]byte, len(args))
	for i, a := range args {
		cmd[i] = []byte(a)
	}
	var out strings.Builder
	f.p.Run(context.Background(), [][][]byte{cmd}, func(b []byte) { out.Write(b) })
	return out.String()
}

func (f *reloadFixture) wantInfo(want string) {
	f.t.Helper()
	if info := f.do("INFO", "sessions"); !strings.Contains(info, want) {
		f.t.Fatalf("INFO sessions lacks %q:\n%s", want, info)
	}
}

const reloadV1 = `[ttl]
default = "1h"
max = "2h"
[log]
level = "info"
`

func TestReloadAppliesPolicyUsersAndLevel(t *testing.T) {
	f := newReloadFixture(t, reloadV1)
	f.wantInfo("ttl_default_seconds:3600")
	f.rewrite(`[ttl]
default = "10m"
max = "20m"
[log]
level = "debug"
[[users]]
name = "web"
password = "webpw"
role = "app"
`)
	if got := f.r.level.Level(); got != zapcore.DebugLevel {
		t.Fatalf("log level after reload = %v, want debug", got)
	}
	// The connection was open before users were configured, as the
	// default user, which no longer exists: it must AUTH.
	if got := f.do("GET", "sess:a"); got != "-NOAUTH Authentication required.\r\n" {
		t.Fatalf("GET = %q, want -NOAUTH", got)
	}
	if got := f.do("AUTH", "web", "webpw"); got != "+OK\r\n" {
		t.Fatalf("AUTH web = %q", got)
	}
	f.wantInfo("ttl_default_seconds:600")
	f.wantInfo("ttl_max_seconds:1200")
	if n := f.logs.FilterMessage("configuration reloaded").Len(); n != 1 {
		t.Fatalf("%d 'configuration reloaded' lines, want 1", n)
	}
	for _, e := range f.logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), "webpw") {
			t.Fatalf("a password reached the log: %v", e)
		}
	}
}

func TestReloadKeepsTheRunningConfigWhenTheFileIsInvalid(t *testing.T) {
	for _, body := range []string{
		"[ttl]\nmin = \"1h\"\nmax = \"1m\"\n", // invalid value
		"[ttl]\ndefualt = \"1h\"\n",           // unknown key
		"[ttl\n",                              // not TOML
	} {
		f := newReloadFixture(t, reloadV1)
		f.rewrite(body)
		f.wantInfo("ttl_default_seconds:3600")
		f.wantInfo("ttl_max_seconds:7200")
		failed := f.logs.FilterMessage("reload failed, keeping the running configuration").All()
		if len(failed) != 1 || f.logs.FilterMessage("configuration reloaded").Len() != 0 {
			t.Fatalf("%q: logs %v, want one reload failure and no reload", body, f.logs.All())
		}
		if !reflect.DeepEqual(f.r.current.TTL, loadedTTL(t, reloadV1)) {
			t.Fatalf("%q: the reloader's running config changed", body)
		}
	}
	f := newReloadFixture(t, reloadV1)
	f.rewrite("[ttl]\nmin = \"1h\"\nmax = \"1m\"\n")
	err := f.logs.FilterMessage("reload failed, keeping the running configuration").All()[0].ContextMap()["error"]
	if !strings.Contains(err.(string), "invalid ttl.max: must be >= ttl.min") {
		t.Fatalf("reload error = %q, want the key named as at start", err)
	}
}

func loadedTTL(t *testing.T, body string) TTLConfig {
	cfg, err := loadConfig(writeConfig(t, body), "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg.TTL
}

func TestReloadWarnsAboutKeysThatNeedARestart(t *testing.T) {
	f := newReloadFixture(t, reloadV1)
	f.rewrite(`[server]
listen = "127.0.0.1:7777"
[session]
prefix = "other:"
lock_suffixes = [".lock"]
[codec]
format = "msgpack"
[ttl]
default = "30m"
max = "2h"
absolute = "1h"
lock_max = "1m"
[log]
level = "info"
format = "json"
`)
	warn := f.logs.FilterMessage("reload: these keys need a restart, keeping their running values").All()
	if len(warn) != 1 {
		t.Fatalf("logs %v, want one restart warning", f.logs.All())
	}
	want := []string{"server.listen", "session.prefix", "session.lock_suffixes", "ttl.absolute", "codec.format", "log.format"}
	if got := warn[0].ContextMap()["keys"]; !reflect.DeepEqual(got, toInterfaces(want)) {
		t.Fatalf("restart-only keys = %v, want %v", got, want)
	}
	// The rest is applied; the restart-only keys keep their values.
	f.wantInfo("ttl_default_seconds:1800")
	f.wantInfo("session_prefix:sess:")
	if c := f.r.current; c.Server.Listen != "127.0.0.1:6380" || c.TTL.Absolute != 0 || c.Codec.Format != "json" || c.TTL.Default != Duration(30*60e9) ||
		c.TTL.LockMax != Duration(time.Minute) || !reflect.DeepEqual(c.Session.LockSuffixes, []string{"_LOCK"}) {
		t.Fatalf("running config after reload: %+v", c)
	}
}

func toInterfaces(s []string) []interface{} {
	out := make([]interface{}, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// TestReloadLogLevel: the new level applies, and the reload line shows
// when either the old or the new level shows info.
func TestReloadLogLevel(t *testing.T) {
	tests := []struct {
		from, to string
		lines    int // "configuration reloaded" lines
	}{
		{"info", "debug", 1},
		{"info", "error", 1},
		{"error", "info", 1},
		{"warn", "error", 0},
	}
	for _, tt := range tests {
		t.Run(tt.from+"-"+tt.to, func(t *testing.T) {
			f := newReloadFixture(t, strings.Replace(reloadV1, `level = "info"`, `level = "`+tt.from+`"`, 1))
			f.rewrite(strings.Replace(reloadV1, `level = "info"`, `level = "`+tt.to+`"`, 1))
			if got := f.r.level.Level().String(); got != tt.to {
				t.Fatalf("log level = %s, want %s", got, tt.to)
			}
			if n := f.logs.FilterMessage("configuration reloaded").Len(); n != tt.lines {
				t.Fatalf("%d reload lines, want %d", n, tt.lines)
			}
		})
	}
}

func TestReloadKeepsTheLogLevelFlag(t *testing.T) {
	f := newReloadFixture(t, reloadV1, "-log-level", "warn")
	f.rewrite(strings.Replace(reloadV1, `level = "info"`, `level = "debug"`, 1))
	if got := f.r.level.Level(); got != zapcore.WarnLevel {
		t.Fatalf("log level = %v, want warn from the command line", got)
	}
}

func TestKeepRestartOnlyLetsAbsoluteChangeWhileOn(t *testing.T) {
	running, next := defaultConfig(), defaultConfig()
	running.TTL.Absolute, next.TTL.Absolute = Duration(60e9), Duration(120e9)
	applied, kept := keepRestartOnly(running, next)
	if len(kept) != 0 || applied.TTL.Absolute != next.TTL.Absolute {
		t.Fatalf("kept %v, applied ttl.absolute %v; want it applied", kept, applied.TTL.Absolute)
	}
}

// A file valid on its own can clash with a restart-only value kept from the
// running configuration: ttl.absolute switched off stays on, below the new
// ttl.min. The reload is refused as an invalid file is.
func TestReloadRefusesAKeptValueThatNoLongerFits(t *testing.T) {
	f := newReloadFixture(t, "[ttl]\nabsolute = \"1h\"\n")
	f.rewrite("[ttl]\nmin = \"2h\"\ndefault = \"2h\"\nmax = \"3h\"\n")
	failed := f.logs.FilterMessage("reload failed, keeping the running configuration").All()
	if len(failed) != 1 || f.logs.FilterMessage("configuration reloaded").Len() != 0 {
		t.Fatalf("logs %v, want one reload failure and no reload", f.logs.All())
	}
	if err := failed[0].ContextMap()["error"].(string); !strings.Contains(err, "invalid ttl.absolute: must be 0 (off) or >= ttl.min") {
		t.Fatalf("reload error = %q, want the clash named", err)
	}
	if f.r.current.TTL.Min != Duration(time.Second) {
		t.Fatalf("running ttl.min = %v, want the old 1s", f.r.current.TTL.Min)
	}
}
