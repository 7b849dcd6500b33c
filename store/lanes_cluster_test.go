package store

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/integration/redistest"
)

// In a cluster a batch whose commands fall in one slot goes on a lane of
// that slot's master; when the proxy's slot map is stale, the command the
// old master answers MOVED for is sent again through the auto-pipeliner and
// lands on the new one. Against a real 3-master cluster: the slot of a
// fresh key is moved to another master behind the store's back.
func TestClusterLanesFollowMoved(t *testing.T) {
	redistest.RequireBinaries(t)
	cl := redistest.Cluster(t)
	ctx := context.Background()
	s, err := Open(ctx, Options{Mode: ModeCluster, Addrs: slices.Clone(cl.Addrs), AutoPipeline: true, Combine: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	write := func(key string) error {
		return exec(t, s, func(b *Batch) func() error {
			r := b.Write(key, Write{Value: []byte(`{"v":1}`), TTL: time.Hour, Native: true, Grace: time.Minute})
			return func() error { _, _, err := r.Result(); return err }
		})
	}
	// The slot map is loaded, and the slot of {lanes} is met once: its
	// write goes on the lanes of its master.
	if err := write("sess:{lanes}a"); err != nil {
		t.Fatal(err)
	}
	s.nodes.mu.RLock()
	used := len(s.nodes.nodes)
	s.nodes.mu.RUnlock()
	if used != 1 {
		t.Fatalf("lanes of %d masters after one single-slot write, want 1", used)
	}
	slot := Slot("sess:{lanes}a")
	from, fromID, err := cl.MasterOf(slot)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := cl.Topology()
	if err != nil {
		t.Fatal(err)
	}
	var to *redistest.Server
	var toID string
	for _, n := range nodes {
		if n.Master && n.ID != fromID && len(n.Slots) > 0 {
			to, toID = cl.Node(n.Addr), n.ID
			break
		}
	}
	// Move the slot, its keys with it, without the store knowing.
	run := func(srv *redistest.Server, args ...string) {
		t.Helper()
		if _, err := srv.Command(args...); err != nil {
			t.Fatalf("%v on %s: %v", args, srv.Addr, err)
		}
	}
	sl := strconv.Itoa(slot)
	move := func(from, to *redistest.Server, fromID, toID string, keys ...string) {
		t.Helper()
		run(to, "CLUSTER", "SETSLOT", sl, "IMPORTING", fromID)
		run(from, "CLUSTER", "SETSLOT", sl, "MIGRATING", toID)
		run(from, append([]string{"MIGRATE", "127.0.0.1", strconv.Itoa(to.Port), "", "0", "5000", "KEYS"}, keys...)...)
		for _, n := range nodes {
			if n.Master {
				run(cl.Node(n.Addr), "CLUSTER", "SETSLOT", sl, "NODE", toID)
			}
		}
	}
	if err := write("sess:{lanes}c"); err != nil {
		t.Fatal(err)
	}
	move(from, to, fromID, toID, "sess:{lanes}a", "sess:{lanes}c")
	// Reads, read raw, follow the MOVED as well: a GET and an MGET of
	// the slot, sent to the old master, answered by the new one.
	var got GetResult
	var many *MGetResult
	if err := exec(t, s, func(b *Batch) func() error {
		got, many = b.GetReply("sess:{lanes}a"), b.MGet([]string{"sess:{lanes}a", "sess:{lanes}c", "sess:{lanes}none"})
		return func() error { return nil }
	}); err != nil {
		t.Fatal(err)
	}
	if v, err := got.Result(); err != nil || string(v) != `{"v":1}` {
		t.Errorf("GET after the slot moved: %q, %v", v, err)
	}
	for i, want := range []string{`{"v":1}`, `{"v":1}`, ""} {
		if v, err := many.Raw(i); err != nil || string(v) != want {
			t.Errorf("MGET's value %d after the slot moved: %q, %v; want %q", i, v, err, want)
		}
	}
	// And back, for a write: the store routes the slot to the master it
	// just left, which answers MOVED; the write must land on the first.
	move(to, from, toID, fromID, "sess:{lanes}a", "sess:{lanes}c")
	if err := write("sess:{lanes}b"); err != nil {
		t.Fatalf("write after the slot moved: %v", err)
	}
	direct := redis.NewClient(&redis.Options{Addr: from.Addr, Protocol: 2, DisableIdentity: true})
	defer direct.Close()
	if v, err := direct.Get(ctx, "sess:{lanes}b").Result(); err != nil || v != `{"v":1}` {
		t.Errorf("on the new master: %q, %v", v, err)
	}
	if ttl, err := direct.PTTL(ctx, "sess:{lanes}b").Result(); err != nil || ttl <= 0 {
		t.Errorf("TTL on the new master: %v, %v", ttl, err)
	}
}
