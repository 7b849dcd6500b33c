package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
)

func TestExampleConfigIsTheDefaults(t *testing.T) {
	cfg, err := loadConfig("../../config.example.toml", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := defaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config.example.toml decodes to\n%+v\nbut the defaults are\n%+v", cfg, want)
	}
	if err := cfg.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sessproxy.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"max below min", "[ttl]\nmin = \"1h\"\nmax = \"1m\"\n", "invalid ttl.max: must be >= ttl.min"},
		{"unknown key", "[ttl]\ndefualt = \"1h\"\n", "unknown key ttl.defualt"},
		{"bad duration", "[ttl]\ndefault = \"soon\"\n", "ttl.default"},
		{"bad mode", "[upstream]\nmode = \"sentinal\"\n", "invalid upstream.mode"},
		{"negative request timeout", "[server]\nrequest_timeout = \"-1s\"\n", "invalid server.request_timeout: must be >= 0"},
		{"request limit past 1 GiB", "[server]\nmax_request_bytes = 2147483648\n", "invalid server.max_request_bytes"},
		{"standalone needs addr", "[upstream]\nmode = \"standalone\"\n", "invalid upstream.addrs"},
		{"sentinel needs master_name", "[upstream]\nmode = \"sentinel\"\naddrs = [\"127.0.0.1:26379\"]\n",
			"invalid upstream.master_name: required in sentinel mode"},
		{"sentinel needs a sentinel", "[upstream]\nmode = \"sentinel\"\nmaster_name = \"mymaster\"\n",
			"invalid upstream.addrs: sentinel mode needs at least one sentinel address"},
		{"master_name outside sentinel", "[upstream]\nmode = \"standalone\"\naddrs = [\"127.0.0.1:6379\"]\nmaster_name = \"mymaster\"\n",
			"invalid upstream.master_name: only for sentinel mode"},
		{"sentinel_password outside sentinel", "[upstream]\nmode = \"cluster\"\naddrs = [\"127.0.0.1:7000\"]\nsentinel_password = \"x\"\n",
			"invalid upstream.sentinel_password: only for sentinel mode"},
		{"bad outside", "[session]\noutside_prefix = \"allow\"\n", "invalid session.outside_prefix"},
		{"bad on_write", "[tombstone]\non_write = \"drop\"\n", "invalid tombstone.on_write"},
		{"bad tombstone format", "[tombstone]\nformat = \"set\"\n", `invalid tombstone.format: must be "typed" or "string"`},
		{"negative transition", "[tombstone]\ntransition = \"-1s\"\n", "invalid tombstone.transition: must be >= 0"},
		{"bad persist", "[ttl]\npersist = \"keep\"\n", "invalid ttl.persist"},
		{"lock_max zero", "[ttl]\nlock_max = \"0s\"\n", "invalid ttl.lock_max: must be >= 1ms"},
		{"require_expires on raw", "[ttl]\nrequire_expires = true\n[codec]\nformat = \"raw\"\n", "invalid ttl.require_expires: needs ttl.from_cookie = true"},
		{"require_expires without from_cookie", "[ttl]\nrequire_expires = true\nfrom_cookie = false\n", "invalid ttl.require_expires: needs ttl.from_cookie = true"},
		{"empty lock suffix", "[session]\nlock_suffixes = [\"_LOCK\", \"\"]\n", "invalid session.lock_suffixes[1]: must not be empty"},
		{"bad codec", "[codec]\nformat = \"xml\"\n", "invalid codec.format"},
		{"bad compress", "[codec]\ncompress = \"lz4\"\n", "invalid codec.compress"},
		{"short key", "[codec]\nencrypt_keys = [\"k1:MDEy\"]\n", "invalid codec.encrypt_keys[0]"},
		{"bad level", "[log]\nlevel = \"loud\"\n", "invalid log.level"},
		{"bad role", "[[users]]\nname = \"a\"\npassword = \"b\"\nrole = \"root\"\n", "invalid users[0].role"},
		{"rule without ttl", "[[ttl.rules]]\nfield = \"user.role\"\nequals = \"admin\"\n", "invalid ttl.rules[0].ttl"},
		{"metrics addr without port", "[metrics]\naddr = \"localhost\"\n", "invalid metrics.addr: must be host:port"},
		{"metrics port out of range", "[metrics]\naddr = \"127.0.0.1:99999\"\n", "invalid metrics.addr: must be host:port"},
		{"metrics port not a number", "[metrics]\naddr = \"127.0.0.1:http\"\n", "invalid metrics.addr: must be host:port"},
		{"metrics on the proxy's address", "[metrics]\naddr = \"127.0.0.1:6380\"\n", "invalid metrics.addr: must differ from server.listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := configFromFlags("test", []string{"-config", writeConfig(t, tt.body)}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLockSuffixesEmptyTurnsLocksOff(t *testing.T) {
	cfg, err := configFromFlags("test", []string{"-config", writeConfig(t, "[session]\nlock_suffixes = []\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cfg.commandOptions()
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.LockSuffixes) != 0 || opts.Policy.LockMax != commands.DefaultLockMax {
		t.Fatalf("lock_suffixes = [] gives suffixes %q, lock_max %v", opts.LockSuffixes, opts.Policy.LockMax)
	}
}

func TestFlagsOverrideTheFile(t *testing.T) {
	path := writeConfig(t, "[server]\nlisten = \"127.0.0.1:7000\"\n[log]\nlevel = \"warn\"\n")
	cfg, err := configFromFlags("test", []string{"-config", path, "-listen", "127.0.0.1:7001",
		"-upstream", "127.0.0.1:7002,127.0.0.1:7003", "-mode", "cluster", "-log-level", "debug"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "127.0.0.1:7001" || cfg.Upstream.Mode != "cluster" ||
		!reflect.DeepEqual(cfg.Upstream.Addrs, []string{"127.0.0.1:7002", "127.0.0.1:7003"}) || cfg.Log.Level != "debug" {
		t.Fatalf("flags not applied: %+v", cfg)
	}
}

func TestSentinelFlags(t *testing.T) {
	cfg, err := configFromFlags("test", []string{"-mode", "sentinel", "-upstream", "127.0.0.1:26379,127.0.0.1:26380",
		"-master-name", "mymaster"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.Mode != "sentinel" || cfg.Upstream.MasterName != "mymaster" ||
		!reflect.DeepEqual(cfg.Upstream.Addrs, []string{"127.0.0.1:26379", "127.0.0.1:26380"}) {
		t.Fatalf("flags not applied: %+v", cfg.Upstream)
	}
}

func TestUpstreamFlagAloneMeansStandalone(t *testing.T) {
	cfg, err := configFromFlags("test", []string{"-upstream", "127.0.0.1:6379"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.Mode != "standalone" {
		t.Fatalf("mode = %q, want standalone", cfg.Upstream.Mode)
	}
}

func TestDaysInDurations(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, "[ttl]\nmax = \"7d\"\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(cfg.TTL.Max) != 7*24*time.Hour {
		t.Fatalf("ttl.max = %v", time.Duration(cfg.TTL.Max))
	}
}

func TestCheckPrintsEffectiveConfigWithSecretsMasked(t *testing.T) {
	path := writeConfig(t, `[server]
requirepass = "s3cret-pass"
[upstream]
mode = "standalone"
addrs = ["127.0.0.1:6379"]
password = "upstream-pass"
[codec]
encrypt_keys = ["k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
[[users]]
name = "web"
password = "user-pass"
role = "app"
`)
	var out bytes.Buffer
	if err := run([]string{"check", "-config", path}, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, secret := range []string{"s3cret-pass", "upstream-pass", "user-pass", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="} {
		if strings.Contains(text, secret) {
			t.Errorf("check printed the secret %q:\n%s", secret, text)
		}
	}
	for _, want := range []string{`mode = "standalone"`, `requirepass = "********"`, `max = "30d"`, `name = "web"`} {
		if !strings.Contains(text, want) {
			t.Errorf("check output lacks %q:\n%s", want, text)
		}
	}
}

func TestCheckRejectsAnInvalidConfig(t *testing.T) {
	path := writeConfig(t, "[ttl]\nmin = \"1h\"\nmax = \"1m\"\n")
	err := run([]string{"check", "-config", path}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "invalid ttl.max") {
		t.Fatalf("err = %v", err)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"version"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "sessproxy ") {
		t.Fatalf("version printed %q", out.String())
	}
}

func TestSentinelConfig(t *testing.T) {
	path := writeConfig(t, `[upstream]
mode = "sentinel"
addrs = ["127.0.0.1:26379", "127.0.0.1:26380"]
master_name = "mymaster"
password = "master-pass"
sentinel_username = "watcher"
sentinel_password = "sentinel-pass"
db = 2
`)
	cfg, err := configFromFlags("test", []string{"-config", path}, nil)
	if err != nil {
		t.Fatalf("a sentinel config with a db does not validate: %v", err)
	}
	opts, err := cfg.storeOptions()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Mode != "sentinel" || opts.MasterName != "mymaster" || opts.DB != 2 || opts.Password != "master-pass" ||
		opts.SentinelUsername != "watcher" || opts.SentinelPassword != "sentinel-pass" ||
		!reflect.DeepEqual(opts.Addrs, []string{"127.0.0.1:26379", "127.0.0.1:26380"}) {
		t.Fatalf("store options = %+v", opts)
	}

	var out bytes.Buffer
	if err := run([]string{"check", "-config", path}, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, secret := range []string{"master-pass", "sentinel-pass"} {
		if strings.Contains(text, secret) {
			t.Errorf("check printed the secret %q:\n%s", secret, text)
		}
	}
	for _, want := range []string{`mode = "sentinel"`, `master_name = "mymaster"`, `sentinel_username = "watcher"`,
		`sentinel_password = "********"`, `addrs = ["127.0.0.1:26379", "127.0.0.1:26380"]`} {
		if !strings.Contains(text, want) {
			t.Errorf("check output lacks %q:\n%s", want, text)
		}
	}
}

func TestMetricsAddrEmptyTurnsMetricsOff(t *testing.T) {
	cfg, err := configFromFlags("test", []string{"-config", writeConfig(t, "[metrics]\naddr = \"\"\n")}, nil)
	if err != nil || cfg.Metrics.Addr != "" {
		t.Fatalf("metrics.addr = \"\": %q, %v; want it accepted, off", cfg.Metrics.Addr, err)
	}
	cfg, err = configFromFlags("test", []string{"-metrics-addr", ""}, nil)
	if err != nil || cfg.Metrics.Addr != "" {
		t.Fatalf("-metrics-addr \"\": %q, %v; want it accepted, off", cfg.Metrics.Addr, err)
	}
	cfg, err = configFromFlags("test", []string{"-metrics-addr", "127.0.0.1:9999"}, nil)
	if err != nil || cfg.Metrics.Addr != "127.0.0.1:9999" {
		t.Fatalf("-metrics-addr 127.0.0.1:9999: %q, %v", cfg.Metrics.Addr, err)
	}
	cfg, err = configFromFlags("test", nil, nil)
	if err != nil || cfg.Metrics.Addr != "127.0.0.1:9380" {
		t.Fatalf("no flag: metrics.addr = %q, %v; want the default 127.0.0.1:9380", cfg.Metrics.Addr, err)
	}
}

func TestMetricsBindFailureNamesTheKey(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = run([]string{"-listen", "127.0.0.1:0", "-metrics-addr", taken.Addr().String(), "-log-level", "error"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "metrics.addr") || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("run with metrics.addr taken = %v; want a startup error naming metrics.addr and the address", err)
	}
}

// request_timeout = "0s" turns the timeout off; proxy.Options reads its own
// zero as the default (10s), so off travels as a negative.
func TestRequestTimeoutZeroIsOff(t *testing.T) {
	c := defaultConfig()
	if got := c.proxyOptions().RequestTimeout; got != 10*time.Second {
		t.Fatalf("default request timeout = %v", got)
	}
	c.Server.RequestTimeout = 0
	if got := c.proxyOptions().RequestTimeout; got >= 0 {
		t.Fatalf("request_timeout 0 gives proxy.Options.RequestTimeout %v, want negative (off)", got)
	}
}

// server.event_loops asks the store for a lane per loop; 0 and -1 leave
// the store's default.
func TestEventLoopsAskALanePerLoop(t *testing.T) {
	for loops, want := range map[int]int{-1: 0, 0: 0, 2: 2, 6: 6} {
		path := writeConfig(t, fmt.Sprintf("[server]\nevent_loops = %d\n", loops))
		cfg, err := configFromFlags("test", []string{"-config", path}, nil)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := cfg.storeOptions()
		if err != nil {
			t.Fatal(err)
		}
		if opts.Lanes != want {
			t.Errorf("event_loops = %d: store lanes %d, want %d", loops, opts.Lanes, want)
		}
	}
}
