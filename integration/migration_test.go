package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/store"
)

// TestClusterReadsDuringSlotMigration: while a slot is being migrated, some
// of its keys are on the old node and some on the new one. Redis answers a
// multi-key MGET there with TRYAGAIN until the migration ends, where single
// GETs are served (or sent on with ASK). Reads that share an MGET — a
// client's pipelined GETs, different clients' single reads — must still get
// their values. It runs on a cluster of its own: the test leaves a slot
// half-migrated.
func TestClusterReadsDuringSlotMigration(t *testing.T) {
	c := redistest.Cluster(t)
	up := &upstream{
		name: "migrating cluster", mode: store.ModeCluster, addrs: c.Addrs,
		direct: redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, Protocol: 2, DisableIdentity: true}),
	}
	t.Cleanup(func() { up.direct.Close() })
	if err := up.waitAllSlots(); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, up, nil)
	setup := p.client(t)
	key := func(id string) string { return "sess:{mig}" + id }
	value := func(id string) string { return fmt.Sprintf(`{"id":%q}`, id) }
	ids := []string{"a", "b", "c", "d"}
	for _, id := range ids {
		mustDo(t, setup, "SET", key(id), value(id))
	}

	// Move the slot's state to "migrating" and carry b and d over to another
	// master, as redis-cli --cluster reshard does one key batch at a time.
	slot := store.Slot(key("a"))
	source, target := migrationNodes(t, c, up.masterOf(t, key("a")))
	sourceID := source.ClusterMyID(bg).Val()
	targetID := target.ClusterMyID(bg).Val()
	for _, step := range []struct {
		node *redis.Client
		args []interface{}
	}{
		{target, []interface{}{"cluster", "setslot", slot, "importing", sourceID}},
		{source, []interface{}{"cluster", "setslot", slot, "migrating", targetID}},
	} {
		if err := step.node.Do(bg, step.args...).Err(); err != nil {
			t.Fatalf("%v: %v", step.args, err)
		}
	}
	host, port, _ := strings.Cut(target.Options().Addr, ":")
	for _, id := range []string{"b", "d"} {
		if err := source.Migrate(bg, host, port, key(id), 0, 5e9).Err(); err != nil {
			t.Fatalf("MIGRATE %s: %v", key(id), err)
		}
	}
	if err := source.MGet(bg, key("a"), key("b")).Err(); err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
		t.Fatalf("MGET on the source node mid-migration: %v, want TRYAGAIN (the case under test)", err)
	}

	// One client's pipelined reads: one MGET run of the slot.
	rc := p.raw(t)
	var req []byte
	for _, id := range ids {
		req = append(req, encode("GET", key(id))...)
	}
	rc.write(req)
	for _, id := range ids {
		got, err := rc.read()
		if err != nil || got != value(id) {
			t.Errorf("pipelined GET %s = %#v, %v; want %q", key(id), got, err, value(id))
		}
	}

	// Many clients' single reads, which the read combiner merges.
	var wg sync.WaitGroup
	errs := make(chan error, 10*20)
	for g := 0; g < 10; g++ {
		cl := p.client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				id := ids[(g+i)%len(ids)]
				if got, err := cl.Do(bg, "SESS.GET", "{mig}"+id).Text(); err != nil || got != value(id) {
					errs <- fmt.Errorf("SESS.GET {mig}%s = %q, %v; want %q", id, got, err, value(id))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// End the migration (the rest of the slot's keys moved, the slot the
	// target's on every master), so the checks after the test find every
	// key on the node that owns it.
	rest, err := source.ClusterGetKeysInSlot(bg, slot, 1000).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range rest {
		if err := source.Migrate(bg, host, port, k, 0, 5e9).Err(); err != nil {
			t.Fatalf("MIGRATE %s: %v", k, err)
		}
	}
	for _, addr := range c.Addrs {
		node := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
		err := node.Do(bg, "cluster", "setslot", slot, "node", targetID).Err()
		node.Close()
		if err != nil {
			t.Fatalf("CLUSTER SETSLOT %d NODE on %s: %v", slot, addr, err)
		}
	}
}

// migrationNodes are direct clients of the master that owns the slot
// (source) and of another master (target).
func migrationNodes(t *testing.T, c *redistest.ClusterInfo, sourceAddr string) (source, target *redis.Client) {
	t.Helper()
	for _, addr := range c.Addrs {
		cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
		t.Cleanup(func() { cl.Close() })
		switch {
		case addr == sourceAddr:
			source = cl
		case target == nil:
			target = cl
		}
	}
	if source == nil || target == nil {
		t.Fatalf("no source (%s) or target among %v", sourceAddr, c.Addrs)
	}
	return source, target
}
