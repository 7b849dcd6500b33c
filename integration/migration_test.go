package integration

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/store"
)

// TestClusterSlotMigration: while a slot is being migrated, some of its
// keys are on the old node and some on the new one. Redis refuses a
// multi-key command there (TRYAGAIN) until the migration ends, where
// single-key ones are served or sent on with ASK. Commands that share a
// call — a client's pipelined GETs (one MGET) or SETs (one script call),
// different clients' single reads and writes (the combiners) — must still
// work, and a pipelined read after a write still sees it. Each slot is met
// first by a pipeline (the TRYAGAIN), then by many clients (the proxy then
// knows the slot is migrating). It runs on a cluster of its own: the test
// migrates slots.
func TestClusterSlotMigration(t *testing.T) {
	c := redistest.Cluster(t)
	up := &upstream{
		name: "migrating cluster", mode: store.ModeCluster, addrs: c.Addrs,
		direct: redis.NewClusterClient(&redis.ClusterOptions{Addrs: slices.Clone(c.Addrs), Protocol: 2, DisableIdentity: true}),
	}
	t.Cleanup(func() { up.direct.Close() })
	if err := up.waitAllSlots(); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, up, nil)
	setup := p.client(t)
	ids := []string{"a", "b", "c", "d"}
	value := func(id, version string) string { return fmt.Sprintf(`{"id":%q,"v":%q}`, id, version) }

	t.Run("reads", func(t *testing.T) {
		sid := migratingSessions(t, c, up, setup, "{mr}", ids, func(id string) string { return value(id, "1") })
		rc := p.raw(t)
		var req []byte
		for _, id := range ids {
			req = append(req, encode("GET", "sess:"+sid(id))...)
		}
		rc.write(req)
		for _, id := range ids {
			if got, err := rc.read(); err != nil || got != value(id, "1") {
				t.Errorf("pipelined GET %s = %#v, %v; want %q", sid(id), got, err, value(id, "1"))
			}
		}
		manyClients(t, p, func(cl *redis.Client, id string) error {
			got, err := cl.Do(bg, "SESS.GET", sid(id)).Text()
			if err != nil || got != value(id, "1") {
				return fmt.Errorf("SESS.GET %s = %q, %v; want %q", sid(id), got, err, value(id, "1"))
			}
			return nil
		}, ids)
	})

	t.Run("writes", func(t *testing.T) {
		sid := migratingSessions(t, c, up, setup, "{mw}", ids, func(id string) string { return value(id, "1") })
		rc := p.raw(t)
		var req []byte
		for _, id := range ids {
			req = append(req, encode("SET", "sess:"+sid(id), value(id, "2"))...)
		}
		req = append(req, encode("GET", "sess:"+sid("b"))...)
		rc.write(req)
		for i, want := range []interface{}{status("OK"), status("OK"), status("OK"), status("OK"), value("b", "2")} {
			if got, err := rc.read(); err != nil || got != want {
				t.Errorf("pipelined reply %d = %#v, %v; want %#v", i, got, err, want)
			}
		}
		// Again, now that the proxy knows: each write and read its own call.
		req = nil
		var wants []interface{}
		for _, id := range ids {
			req = append(req, encode("SET", "sess:"+sid(id), value(id, "2b"))...)
			req = append(req, encode("GET", "sess:"+sid(id))...)
			wants = append(wants, status("OK"), value(id, "2b"))
		}
		rc.write(req)
		for i, want := range wants {
			if got, err := rc.read(); err != nil || got != want {
				t.Errorf("second pipeline, reply %d = %#v, %v; want %#v", i, got, err, want)
			}
		}
		manyClients(t, p, func(cl *redis.Client, id string) error {
			if err := cl.Do(bg, "SESS.SET", sid(id), value(id, "3")).Err(); err != nil {
				return fmt.Errorf("SESS.SET %s: %v", sid(id), err)
			}
			return nil
		}, ids)
		for _, id := range ids {
			if got, err := setup.Do(bg, "SESS.GET", sid(id)).Text(); err != nil || got != value(id, "3") {
				t.Errorf("SESS.GET %s after the writes = %q, %v; want %q", sid(id), got, err, value(id, "3"))
			}
		}
	})

	t.Run("recovery", func(t *testing.T) { testMigrationRecovery(t, c, up, p) })
}

// testMigrationRecovery continues TestClusterSlotMigration. A pipeline
// SET a; SET k is one script call, which gets TRYAGAIN: k is still on the
// node, a has moved. The call goes again one key per command — except a key
// a later command of the pipeline wrote (it ran): sent again, the earlier
// write would undo that one. The earlier write then answers TRYAGAIN, and a
// read between them keeps the value from before it. A node that lost its
// scripts (a new node, say) gets them on the way.
func testMigrationRecovery(t *testing.T, c *redistest.ClusterInfo, up *upstream, p *proxyHandle) {
	setup := p.client(t)
	value := func(id, version string) string { return fmt.Sprintf(`{"id":%q,"v":%q}`, id, version) }
	tryAgain := respError("TRYAGAIN Multiple keys request during rehashing of slot")
	for _, tc := range []struct {
		tag         string
		later       [][]string // after SET a, SET k; each command's key is k, or c where it says "c"
		flushOthers bool       // SCRIPT FLUSH on every other node first
		wants       []interface{}
		final       interface{} // k, read through the proxy
	}{
		{"lw1", [][]string{{"GET", "-"}, {"SET", "-", value("k", "3"), "XX"}}, false,
			[]interface{}{status("OK"), tryAgain, value("k", "1"), status("OK")}, value("k", "3")},
		{"lw2", [][]string{{"DEL", "-"}}, false,
			[]interface{}{status("OK"), tryAgain, int64(1)}, nil},
		{"lw3", [][]string{{"GET", "-"}}, false,
			[]interface{}{status("OK"), status("OK"), value("k", "2")}, value("k", "2")},
		{"lw4", [][]string{{"GET", "-"}}, true,
			[]interface{}{status("OK"), status("OK"), value("k", "2")}, value("k", "2")},
		// GET k and GET c share an MGET, which keeps its answer (SET c
		// ran after it), so SET k must not go again.
		{"lw5", [][]string{{"GET", "-"}, {"GET", "c"}, {"SET", "c", value("c", "2")}}, false,
			[]interface{}{status("OK"), tryAgain, value("k", "1"), value("c", "1"), status("OK")}, value("k", "1")},
	} {
		sid := func(id string) string { return "sess:{" + tc.tag + "}" + id }
		for _, id := range []string{"a", "k", "c"} {
			mustDo(t, setup, "SET", sid(id), value(id, "1"))
		}
		finish := migrateHalf(t, c, up, sid("k"), sid("a"))
		if tc.flushOthers {
			for _, addr := range c.Addrs {
				if addr == up.masterOf(t, sid("k")) {
					continue
				}
				node := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
				err := node.ScriptFlush(bg).Err()
				node.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		rc := p.raw(t)
		req := encode("SET", sid("a"), value("a", "2"))
		req = append(req, encode("SET", sid("k"), value("k", "2"))...)
		for _, cmd := range tc.later {
			cmd = slices.Clone(cmd)
			if cmd[1] == "c" {
				cmd[1] = sid("c")
			} else {
				cmd[1] = sid("k")
			}
			req = append(req, encode(cmd...)...)
		}
		rc.write(req)
		for i, want := range tc.wants {
			got, err := rc.read()
			if err != nil {
				t.Fatalf("%s reply %d: %v", tc.tag, i, err)
			}
			if got != want {
				t.Errorf("%s reply %d = %#v, want %#v", tc.tag, i, got, want)
			}
		}
		finish()
		got, err := setup.Get(bg, sid("k")).Result()
		if err == redis.Nil && tc.final == nil {
			err = nil
		}
		if err != nil || (tc.final != nil && got != tc.final) {
			t.Errorf("%s: GET k after = %q, %v; want %#v", tc.tag, got, err, tc.final)
		}
		if got, err := setup.Get(bg, sid("a")).Result(); err != nil || got != value("a", "2") {
			t.Errorf("%s: GET a after = %q, %v; want %q", tc.tag, got, err, value("a", "2"))
		}
	}
}

// migratingSessions stores a session for each of ids, with tag, through
// setup, and starts migrating their slot with b and d moved (migrateHalf;
// the migration ends with t). It returns the session id of each id.
func migratingSessions(t *testing.T, c *redistest.ClusterInfo, up *upstream, setup *redis.Client, tag string, ids []string, value func(id string) string) func(id string) string {
	t.Helper()
	sid := func(id string) string { return tag + id }
	for _, id := range ids {
		mustDo(t, setup, "SESS.SET", sid(id), value(id))
	}
	t.Cleanup(migrateHalf(t, c, up, "sess:"+sid("a"), "sess:"+sid("b"), "sess:"+sid("d")))
	return sid
}

// manyClients runs do from 10 clients at once, 20 times each, over ids.
func manyClients(t *testing.T, p *proxyHandle, do func(cl *redis.Client, id string) error, ids []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 10*20)
	for g := 0; g < 10; g++ {
		cl := p.client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if err := do(cl, ids[(g+i)%len(ids)]); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// migrateHalf starts migrating the slot of first to another master, as
// redis-cli --cluster reshard does, and carries the moved keys (of that
// slot) over; the slot's other keys stay behind. A multi-key command on the
// slot's keys then gets TRYAGAIN (checked). finish completes the migration,
// so the checks after the test find every key on the node that owns it.
func migrateHalf(t *testing.T, c *redistest.ClusterInfo, up *upstream, first string, moved ...string) (finish func()) {
	t.Helper()
	slot := store.Slot(first)
	var source, target *redis.Client
	sourceAddr := up.masterOf(t, first)
	nodes := make([]*redis.Client, len(c.Addrs))
	for i, addr := range c.Addrs {
		nodes[i] = redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
		t.Cleanup(func() { nodes[i].Close() })
		switch {
		case addr == sourceAddr:
			source = nodes[i]
		case target == nil:
			target = nodes[i]
		}
	}
	sourceID, targetID := source.ClusterMyID(bg).Val(), target.ClusterMyID(bg).Val()
	do := func(node *redis.Client, args ...interface{}) {
		t.Helper()
		if err := node.Do(bg, args...).Err(); err != nil {
			t.Fatalf("%v on %s: %v", args, node.Options().Addr, err)
		}
	}
	host, port, _ := strings.Cut(target.Options().Addr, ":")
	migrate := func(key string) {
		t.Helper()
		if err := source.Migrate(bg, host, port, key, 0, 5e9).Err(); err != nil {
			t.Fatalf("MIGRATE %s: %v", key, err)
		}
	}
	do(target, "cluster", "setslot", slot, "importing", sourceID)
	do(source, "cluster", "setslot", slot, "migrating", targetID)
	for _, k := range moved {
		migrate(k)
	}
	if err := source.MGet(bg, first, moved[0]).Err(); err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
		t.Fatalf("MGET on the source node mid-migration: %v, want TRYAGAIN (the case under test)", err)
	}
	return func() {
		rest, err := source.ClusterGetKeysInSlot(bg, slot, 1000).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range rest {
			migrate(k)
		}
		for _, node := range nodes {
			do(node, "cluster", "setslot", slot, "node", targetID)
		}
	}
}
