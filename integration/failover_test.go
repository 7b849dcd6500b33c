package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/store"
)

// failoverTimeout bounds how long the proxy may take to write to the new
// master once the sentinels have promoted it.
const failoverTimeout = 30 * time.Second

// TestSentinelFailover writes sessions through a proxy in sentinel mode,
// has the sentinels promote the replica — asked to (SENTINEL FAILOVER), or
// because the master died — and checks the proxy follows: writes land on
// the new master, the acknowledged sessions are there, and the policy
// still holds (TTLs bounded, a tombstone refuses a write). The new master
// never loaded the scripts (SCRIPT LOAD is not replicated), so its first
// write answers NOSCRIPT, which the store must recover from. Each case has
// its own upstream: the package's sentinel upstream must not move.
func TestSentinelFailover(t *testing.T) {
	tests := []struct {
		name string
		// promote makes the sentinels promote the replica and returns the
		// new master's address.
		promote func(*redistest.SentinelInfo) (string, error)
	}{
		{"SentinelFailoverCommand", (*redistest.SentinelInfo).Failover},
		{"MasterKilled", func(si *redistest.SentinelInfo) (string, error) {
			old := si.Data[0]
			old.Stop()
			return si.WaitNewMaster(old.Addr)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testSentinelFailover(t, tt.promote) })
	}
}

func testSentinelFailover(t *testing.T, promote func(*redistest.SentinelInfo) (string, error)) {
	si := redistest.Sentinel(t, redistest.SentinelOptions{Sentinels: 2})
	oldMaster, replica := si.Data[0], si.Data[1]
	up := &upstream{
		name:       "sentinel-failover",
		mode:       store.ModeSentinel,
		addrs:      si.Addrs,
		masterName: redistest.MasterName,
		master:     oldMaster.Addr,
		direct:     directClient(oldMaster.Addr),
	}
	// Registered before the proxy's cleanups, so it runs after them: their
	// checks read whichever master up.direct points at by then.
	t.Cleanup(func() { up.direct.Close() })
	p := startProxy(t, up, nil)
	c := p.client(t)

	const acked = 20
	for i := range acked {
		mustDo(t, c, "SESS.SET", fmt.Sprintf("s%d", i), fmt.Sprintf(`{"n":%d}`, i))
	}
	mustDo(t, c, "SESS.SET", "doomed", `{"n":-1}`)
	wantReply(t, c, int64(1), "SESS.DESTROY", "doomed")
	destroyed := time.Now()

	// Replication is asynchronous: a failover loses what the replica has not
	// received, whatever the proxy does. WAIT makes the test about the proxy.
	if n, err := up.direct.Do(bg, "WAIT", 1, 5000).Int64(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 on the master = %d, %v; want the replica caught up", n, err)
	}
	if n := cachedScripts(t, replica.Addr); n != 0 {
		t.Fatalf("the replica has %d cached scripts, want 0 (the NOSCRIPT path would go untested)", n)
	}

	promoted, err := promote(si)
	if err != nil {
		t.Fatal(err)
	}
	if promoted != replica.Addr {
		t.Fatalf("sentinels promoted %s, want the replica %s", promoted, replica.Addr)
	}
	up.direct.Close()
	up.master, up.direct = promoted, directClient(promoted)

	// Until go-redis hears +switch-master, writes may still reach the old
	// master (now being turned into a replica: errors, or writes it will
	// drop). Done when a write through the proxy is on the new master.
	deadline := time.Now().Add(failoverTimeout)
	for i := 0; ; i++ {
		payload := fmt.Sprintf(`{"probe":%d}`, i)
		err := c.Do(bg, "SESS.SET", "probe", payload).Err()
		if err == nil {
			if v, _ := p.stored(t, "sess:probe"); v == payload {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no proxy write reached the new master %s within %v (last error %v)", promoted, failoverTimeout, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if noScriptErrors(t, promoted) == 0 {
		t.Errorf("the new master answered no NOSCRIPT: the scripts' reload went untested")
	}

	for i := range acked {
		sid := fmt.Sprintf("s%d", i)
		want := fmt.Sprintf(`{"n":%d}`, i)
		wantReply(t, c, want, "SESS.GET", sid)
		p.wantStored(t, "sess:"+sid, want)
	}
	// Policy on the new master: an explicit TTL above ttl.max is clamped,
	// plain SET gets the default TTL, the tombstone refuses both.
	mustDo(t, c, "SESS.SET", "long", `{}`, "TTL", strconv.Itoa(int(10*maxTTL/time.Second)))
	p.wantTTL(t, "sess:long", maxTTL)
	mustDo(t, c, "SET", "sess:plain", `{}`)
	p.wantTTL(t, "sess:plain", defaultTTL)
	wantErr(t, c, "TOMBSTONE session doomed was destroyed", "SESS.SET", "doomed", `{"n":-2}`)
	wantErr(t, c, "TOMBSTONE session doomed was destroyed", "SET", "sess:doomed", `{"n":-2}`)
	p.wantTombstoneSince(t, "sess:doomed", destroyed)
}

// TestSentinelAuth runs a proxy on a master and sentinels that each have
// their own password: upstream.password must reach the master and
// upstream.sentinel_password the sentinels, not the other way round.
func TestSentinelAuth(t *testing.T) {
	si := redistest.Sentinel(t, redistest.SentinelOptions{Password: "data-pass", SentinelPassword: "sentinel-pass"})
	up := &upstream{
		name:             "sentinel-auth",
		mode:             store.ModeSentinel,
		addrs:            si.Addrs,
		masterName:       redistest.MasterName,
		master:           si.Data[0].Addr,
		password:         "data-pass",
		sentinelPassword: "sentinel-pass",
		direct: redis.NewClient(&redis.Options{
			Addr: si.Data[0].Addr, Password: "data-pass", Protocol: 2, DisableIdentity: true,
		}),
	}
	t.Cleanup(func() { up.direct.Close() })
	p := startProxy(t, up, nil)
	c := p.client(t)
	mustDo(t, c, "SESS.SET", "a", `{"n":1}`)
	wantReply(t, c, `{"n":1}`, "SESS.GET", "a")
	p.wantStored(t, "sess:a", `{"n":1}`)
	p.wantTTL(t, "sess:a", defaultTTL)

	// Without the sentinels' password the master cannot be found.
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{Mode: store.ModeSentinel, Addrs: si.Addrs,
		MasterName: redistest.MasterName, Password: "data-pass"})
	if err == nil {
		st.Close()
		t.Fatal("store.Open without the sentinels' password succeeded")
	}
	if !strings.Contains(err.Error(), "NOAUTH") && !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("store.Open without the sentinels' password: %v, want the sentinels' refusal (NOAUTH)", err)
	}
}

func directClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
}

// cachedScripts is number_of_cached_scripts from addr's INFO memory.
func cachedScripts(t *testing.T, addr string) int {
	t.Helper()
	return infoInt(t, addr, "memory", "number_of_cached_scripts")
}

// noScriptErrors is how many NOSCRIPT errors addr has answered.
func noScriptErrors(t *testing.T, addr string) int {
	t.Helper()
	return infoInt(t, addr, "errorstats", "errorstat_NOSCRIPT")
}

// infoInt reads field from addr's INFO section: "field:N" or
// "field:count=N"; 0 when the field is absent.
func infoInt(t *testing.T, addr, section, field string) int {
	t.Helper()
	c := directClient(addr)
	defer c.Close()
	info, err := c.Info(bg, section).Result()
	if err != nil {
		t.Fatalf("INFO %s on %s: %v", section, addr, err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		value, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		value = strings.TrimPrefix(value, "count=")
		n, err := strconv.Atoi(value)
		if err != nil {
			t.Fatalf("INFO %s on %s: %q is not a number", section, addr, line)
		}
		return n
	}
	return 0
}
