// Package integration runs sessproxy in-process against real redis-server
// processes — one standalone server, one 3-master Redis Cluster and one
// master with a replica under a sentinel, started once for the package by
// TestMain — and checks the behaviour SPEC.md promises with real clients:
// go-redis, redigo, raw RESP over TCP, redis-cli, the Node clients
// (integration/node), and redis-py and redis-rb (integration/clients).
package integration

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/store"
)

// upstream is one Redis deployment the suite runs against, with a direct
// client that bypasses the proxy to check what is really stored.
type upstream struct {
	name  string
	mode  string   // store.ModeStandalone, store.ModeCluster or store.ModeSentinel
	addrs []string // the server, the cluster masters, or the sentinels
	// masterName is the sentinels' name of the master (sentinel only).
	masterName string
	// master is the master's address (sentinel only): the suite's sentinel
	// upstream never fails over, so it stays put.
	master string
	// password is the data nodes' requirepass, sentinelPassword the
	// sentinels' (sentinel only); "" = none.
	password, sentinelPassword string

	direct redis.UniversalClient
}

// The upstreams TestMain starts for the whole package.
var (
	standaloneUp *upstream
	clusterUp    *upstream
	sentinelUp   *upstream
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// run starts the upstreams, runs the tests and always stops the servers,
// also when a test panics (the deferred Stops run while the panic unwinds).
func run(m *testing.M) int {
	// A missing redis-server must fail the run, never skip it: a silently
	// skipped integration suite looks like a passing one.
	s, err := redistest.StartStandalone()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: cannot start redis-server: %v\n", err)
		return 1
	}
	defer s.Stop()
	c, err := redistest.StartCluster()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: cannot start a 3-master Redis Cluster: %v\n", err)
		return 1
	}
	defer c.Stop()
	sn, err := redistest.StartSentinel(redistest.SentinelOptions{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: cannot start a master, a replica and a sentinel: %v\n", err)
		return 1
	}
	defer sn.Stop()

	standaloneUp = &upstream{
		name:  "standalone",
		mode:  store.ModeStandalone,
		addrs: []string{s.Addr},
		direct: redis.NewClient(&redis.Options{
			Addr: s.Addr, Protocol: 2, DisableIdentity: true,
		}),
	}
	defer standaloneUp.direct.Close()
	clusterUp = &upstream{
		name:  "cluster",
		mode:  store.ModeCluster,
		addrs: c.Addrs,
		direct: redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: slices.Clone(c.Addrs), Protocol: 2, DisableIdentity: true,
		}),
	}
	defer clusterUp.direct.Close()
	sentinelUp = &upstream{
		name:       "sentinel",
		mode:       store.ModeSentinel,
		addrs:      sn.Addrs,
		masterName: redistest.MasterName,
		master:     sn.Data[0].Addr,
		// A plain client to the master, which names its node by address
		// (stats, masterOf) where a failover client has a placeholder.
		direct: redis.NewClient(&redis.Options{
			Addr: sn.Data[0].Addr, Protocol: 2, DisableIdentity: true,
		}),
	}
	defer sentinelUp.direct.Close()
	if err := clusterUp.waitAllSlots(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	return m.Run()
}

// waitAllSlots makes sure the direct cluster client sees three masters
// before any test relies on ForEachMaster reaching all of them.
func (u *upstream) waitAllSlots() error {
	cc := u.direct.(*redis.ClusterClient)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		slots, err := cc.ClusterSlots(ctx).Result()
		cancel()
		if err == nil && len(slots) == 3 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster client sees %d slot ranges (err %v), want 3", len(slots), err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

func (u *upstream) cluster() bool { return u.mode == store.ModeCluster }

// forEachMaster runs fn on the standalone server or sentinel's master, or on
// every cluster master.
func (u *upstream) forEachMaster(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
	cc, ok := u.direct.(*redis.ClusterClient)
	if !ok {
		return fn(ctx, u.direct.(*redis.Client))
	}
	// Not cc.ForEachMaster: it reloads the slot map there and then, which
	// races (under -race) with a reload the client's own failed commands
	// started, after a chaos test killed a node. Each master that CLUSTER
	// SLOTS names gets a connection of its own.
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return fmt.Errorf("cluster slots: %w", err)
	}
	seen := make(map[string]bool)
	for _, r := range slots {
		if len(r.Nodes) == 0 || seen[r.Nodes[0].Addr] {
			continue
		}
		seen[r.Nodes[0].Addr] = true
		c := redis.NewClient(&redis.Options{Addr: r.Nodes[0].Addr, Protocol: 2, DisableIdentity: true})
		err := fn(ctx, c)
		c.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// flush empties the upstream, so every test starts from nothing.
func (u *upstream) flush(t *testing.T) {
	t.Helper()
	err := u.forEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
		return c.FlushAll(ctx).Err()
	})
	if err != nil {
		t.Fatalf("FLUSHALL on the %s upstream: %v", u.name, err)
	}
}
