package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
)

// sweepMax is ttl.max in the sweep tests: above ttl.default (24h), so a
// key with a TTL between the two is already bounded.
const sweepMax = 48 * time.Hour

// legacyFixture is what a legacy deployment left in Redis before the
// proxy: session keys without a TTL (or with a huge one), next to keys
// outside the prefix and a few sessions already under policy.
type legacyFixture struct {
	legacy  []string          // sess:legacy-N, no TTL, JSON without cookie
	outside map[string]string // outside the prefix, no TTL
	// Counts a sweep must report.
	scanned, fixed, skipped int
}

// seedLegacy writes the fixture directly in the upstream (c, through the
// proxy, writes the bounded sessions and a tombstone).
func seedLegacy(t *testing.T, p *proxyHandle, c doer) *legacyFixture {
	t.Helper()
	f := &legacyFixture{outside: map[string]string{}}
	pipe := p.up.direct.Pipeline()
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("sess:legacy-%d", i)
		f.legacy = append(f.legacy, k)
		p.seeded[k] = true
		pipe.Set(bg, k, fmt.Sprintf(`{"n":%d}`, i), 0)
	}
	for i := 0; i < 20; i++ {
		k := fmt.Sprintf("legacy:%d", i)
		f.outside[k] = fmt.Sprintf(`{"n":%d}`, i)
		pipe.Set(bg, k, f.outside[k], 0)
	}
	f.outside["session:x"] = "x"
	pipe.Set(bg, "session:x", "x", 0)
	p.seeded["sess:cookie"], p.seeded["sess:garbage"], p.seeded["sess:hash"] = true, true, true
	pipe.Set(bg, "sess:cookie", cookieISO(2*time.Hour), 0)
	pipe.Set(bg, "sess:garbage", "not json at all", 0)
	pipe.HSet(bg, "sess:hash", "a", "1") // not even a string
	// A TTL above ttl.max.
	pipe.Set(bg, "sess:far", `{"n":"far"}`, 10*24*time.Hour)
	if _, err := pipe.Exec(bg); err != nil {
		t.Fatalf("seed legacy keys: %v", err)
	}
	p.up.wantAllMasters(t, f.legacy)
	for i := 0; i < 5; i++ {
		wantReply(t, c, "OK", "SESS.SET", fmt.Sprintf("bounded-%d", i), `{}`)
	}
	wantReply(t, c, 0, "SESS.DESTROY", "gone")
	f.scanned = len(f.legacy) + 4 + 5 + 1
	f.fixed = len(f.legacy) + 4
	f.skipped = 5 + 1
	return f
}

// prefixTTLs is the upstream PTTL of every key under sess:.
func prefixTTLs(t *testing.T, up *upstream) map[string]time.Duration {
	t.Helper()
	var mu sync.Mutex
	out := map[string]time.Duration{}
	err := up.forEachMaster(bg, func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, "sess:*").Result()
		if err != nil {
			return err
		}
		for _, k := range keys {
			d, err := c.PTTL(ctx, k).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			out[k] = d
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("PTTL of sess:* upstream: %v", err)
	}
	return out
}

// wantUnswept checks nothing changed: the legacy keys still have no TTL.
func (f *legacyFixture) wantUnswept(t *testing.T, p *proxyHandle) {
	t.Helper()
	ttls := prefixTTLs(t, p.up)
	if len(ttls) != f.scanned {
		t.Errorf("upstream holds %d keys under sess:, want %d", len(ttls), f.scanned)
	}
	for _, k := range append(f.legacy, "sess:cookie", "sess:garbage", "sess:hash") {
		if d := ttls[k]; d != -1 {
			t.Errorf("upstream: PTTL %s = %v after a dry run, want none still", k, d)
		}
	}
	p.wantTTL(t, "sess:far", 10*24*time.Hour)
	f.wantOutsideUntouched(t, p)
}

// wantSwept checks every key under the prefix has a TTL within ttl.max,
// the policy's for each, and that nothing outside changed.
func (f *legacyFixture) wantSwept(t *testing.T, p *proxyHandle) {
	t.Helper()
	ttls := prefixTTLs(t, p.up)
	if len(ttls) != f.scanned {
		t.Errorf("upstream holds %d keys under sess:, want %d", len(ttls), f.scanned)
	}
	for k, d := range ttls {
		if d <= 0 || d > sweepMax {
			t.Errorf("upstream: PTTL %s = %v after the sweep, want within (0, %v]", k, d, sweepMax)
		}
	}
	for _, k := range f.legacy[:10] {
		p.wantTTL(t, k, defaultTTL)
	}
	p.wantTTL(t, "sess:cookie", 2*time.Hour) // from its own cookie.expires
	p.wantTTL(t, "sess:garbage", defaultTTL)
	p.wantTTL(t, "sess:hash", defaultTTL)
	p.wantTTL(t, "sess:far", defaultTTL)
	p.wantStored(t, "sess:garbage", "not json at all")
	p.wantStored(t, f.legacy[7], `{"n":7}`)
	p.wantTombstone(t, "sess:gone")
	f.wantOutsideUntouched(t, p)
}

func (f *legacyFixture) wantOutsideUntouched(t *testing.T, p *proxyHandle) {
	t.Helper()
	for k, v := range f.outside {
		p.wantStored(t, k, v)
		if d := p.pttl(t, k); d != -time.Millisecond {
			t.Errorf("upstream: PTTL %s = %v, want no TTL (outside the prefix, untouched)", k, d)
		}
	}
}

func testSweepCommand(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) {
		o.Policy.Max = sweepMax
		o.Users = []commands.User{
			{Name: "adm", Password: "admpw", Role: commands.RoleAdmin},
			{Name: "app", Password: "apppw", Role: commands.RoleApp},
		}
	})
	adm := p.client(t, asUser("adm", "admpw"))
	app := p.client(t, asUser("app", "apppw"))
	f := seedLegacy(t, p, adm)

	wantErr(t, app, "NOPERM this user has no permissions to run the 'sess.sweep' command", "SESS.SWEEP")
	wantErr(t, adm, "ERR value is not an integer or out of range", "SESS.SWEEP", "COUNT", "0")
	wantErr(t, adm, "ERR syntax error", "SESS.SWEEP", "FAST")
	f.wantUnswept(t, p)

	wantReply(t, adm, f.fixed, "SESS.SWEEP", "DRYRUN", "COUNT", "10")
	f.wantUnswept(t, p)
	wantReply(t, adm, f.fixed, "SESS.SWEEP", "COUNT", "10")
	f.wantSwept(t, p)
	wantReply(t, adm, 0, "SESS.SWEEP")
	wantReply(t, adm, 0, "SESS.SWEEP", "dryrun")
}

// buildSessproxy builds the real binary into a temporary directory.
func buildSessproxy(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build sessproxy: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "sessproxy")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, "github.com/sessproxy/sessproxy/cmd/sessproxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/sessproxy: %v\n%s", err, out)
	}
	return bin
}

// runSessproxy runs the binary and returns its stdout; stderr must be
// empty (it is not a terminal, so no progress bar).
func runSessproxy(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sessproxy %q: %v\nstdout: %s\nstderr: %s", args, err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("sessproxy %q wrote to stderr: %q", args, stderr.String())
	}
	return stdout.String()
}

func testSweepCLI(t *testing.T, up *upstream) {
	bin := buildSessproxy(t)
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.Policy.Max = sweepMax })
	f := seedLegacy(t, p, p.client(t))

	cfg := filepath.Join(t.TempDir(), "sessproxy.toml")
	addrs := make([]string, len(up.addrs))
	for i, a := range up.addrs {
		addrs[i] = fmt.Sprintf("%q", a)
	}
	masterName := ""
	if up.masterName != "" {
		masterName = fmt.Sprintf("master_name = %q\n", up.masterName)
	}
	toml := fmt.Sprintf(`[upstream]
mode = %q
addrs = [%s]
%s
[ttl]
default = "24h"
max = "48h"
`, up.mode, strings.Join(addrs, ", "), masterName)
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}

	summary := fmt.Sprintf("scanned=%d fixed=%d skipped=%d", f.scanned, f.fixed, f.skipped)
	if out := runSessproxy(t, bin, "sweep", "-dry-run", "-config", cfg); out != summary+" (dry run: nothing changed)\n" {
		t.Errorf("sessproxy sweep -dry-run printed %q, want %q", out, summary+" (dry run: nothing changed)\n")
	}
	f.wantUnswept(t, p)
	if out := runSessproxy(t, bin, "sweep", "-config", cfg); out != summary+"\n" {
		t.Errorf("sessproxy sweep printed %q, want %q", out, summary+"\n")
	}
	f.wantSwept(t, p)
	again := fmt.Sprintf("scanned=%d fixed=0 skipped=%d\n", f.scanned, f.scanned)
	if out := runSessproxy(t, bin, "sweep", "-config", cfg); out != again {
		t.Errorf("second sessproxy sweep printed %q, want %q", out, again)
	}
}
