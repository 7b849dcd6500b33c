package redistest

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStandalone(t *testing.T) {
	s := Standalone(t)

	if got, err := command(s.Addr, "SET", "sess:abc", `{"n":1}`); err != nil || got != "OK" {
		t.Fatalf("SET = %q, %v; want OK", got, err)
	}
	if got, err := command(s.Addr, "GET", "sess:abc"); err != nil || got != `{"n":1}` {
		t.Fatalf("GET = %q, %v; want {\"n\":1}", got, err)
	}
	if _, err := command(s.Addr, "GET", "sess:missing"); err != errNil {
		t.Fatalf("GET missing: err = %v, want errNil", err)
	}

	// Stop here; the t.Cleanup registered by Standalone calls it again, which must be harmless.
	s.Stop()
	assertClosed(t, s.Addr)
}

func TestCluster(t *testing.T) {
	c := Cluster(t)
	if len(c.Addrs) != 3 || len(c.Nodes) != 3 {
		t.Fatalf("got %d addrs and %d nodes, want 3 and 3", len(c.Addrs), len(c.Nodes))
	}

	for _, addr := range c.Addrs {
		info, err := command(addr, "CLUSTER", "INFO")
		if err != nil {
			t.Fatalf("CLUSTER INFO on %s: %v", addr, err)
		}
		for _, want := range []string{"cluster_state:ok", "cluster_known_nodes:3", "cluster_size:3"} {
			if !strings.Contains(info, want+"\r\n") {
				t.Errorf("CLUSTER INFO on %s lacks %q:\n%s", addr, want, info)
			}
		}
		nodes, err := command(addr, "CLUSTER", "NODES")
		if err != nil {
			t.Fatalf("CLUSTER NODES on %s: %v", addr, err)
		}
		if n := strings.Count(nodes, "master"); n != 3 {
			t.Errorf("CLUSTER NODES on %s lists %d masters, want 3:\n%s", addr, n, nodes)
		}
	}

	// A key reaches its own slot's master: proves slots are served, not just assigned.
	var served bool
	for _, addr := range c.Addrs {
		if _, err := command(addr, "SET", "sess:abc", `{"n":1}`); err == nil {
			served = true
		} else if !strings.HasPrefix(err.Error(), "MOVED ") {
			t.Errorf("SET on %s: %v, want OK or MOVED", addr, err)
		}
	}
	if !served {
		t.Error("no master accepted SET sess:abc")
	}

	c.Stop()
	for _, addr := range c.Addrs {
		assertClosed(t, addr)
	}
}

func TestStartStop(t *testing.T) {
	s, err := StartStandalone()
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.Stop()
	assertClosed(t, s.Addr)
}

func TestFreePortDistinct(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] || p >= 55536 {
			t.Fatalf("FreePort returned %d (seen before: %v)", p, seen[p])
		}
		seen[p] = true
	}
}

func assertClosed(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Stop", addr)
	}
}

func TestSentinel(t *testing.T) {
	si := Sentinel(t, SentinelOptions{Sentinels: 2})
	if len(si.Addrs) != 2 || len(si.Sentinels) != 2 || len(si.Data) != 2 {
		t.Fatalf("got %d addrs, %d sentinels, %d data nodes; want 2, 2, 2", len(si.Addrs), len(si.Sentinels), len(si.Data))
	}
	master, replica := si.Data[0], si.Data[1]
	if got, err := si.MasterAddr(); err != nil || got != master.Addr {
		t.Fatalf("MasterAddr = %q, %v; want %s", got, err, master.Addr)
	}
	// The replica is in sync: a write to the master reaches it.
	if _, err := command(master.Addr, "SET", "sess:abc", `{"n":1}`); err != nil {
		t.Fatal(err)
	}
	if _, err := command(master.Addr, "WAIT", "1", "5000"); err != nil {
		t.Fatal(err)
	}
	if got, err := command(replica.Addr, "GET", "sess:abc"); err != nil || got != `{"n":1}` {
		t.Fatalf("GET on the replica = %q, %v; want the master's value", got, err)
	}

	promoted, err := si.Failover()
	if err != nil {
		t.Fatal(err)
	}
	if promoted != replica.Addr {
		t.Fatalf("Failover promoted %s, want the replica %s", promoted, replica.Addr)
	}
	if _, err := command(replica.Addr, "SET", "sess:def", `{"n":2}`); err != nil {
		t.Fatalf("SET on the promoted replica: %v", err)
	}

	si.Stop()
	for _, addr := range append(si.Addrs, master.Addr, replica.Addr) {
		assertClosed(t, addr)
	}
}

func TestSentinelAuth(t *testing.T) {
	si := Sentinel(t, SentinelOptions{Password: "data-pass", SentinelPassword: "sentinel-pass"})
	for _, s := range append(si.Data, si.Sentinels...) {
		if _, err := command(s.Addr, "PING"); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
			t.Errorf("PING without AUTH on %s: %v, want NOAUTH", s.Addr, err)
		}
	}
	if _, err := commandAuth(si.Addrs[0], "data-pass", "PING"); err == nil {
		t.Errorf("the sentinel accepted the data nodes' password")
	}
	if got, err := si.MasterAddr(); err != nil || got != si.Data[0].Addr {
		t.Fatalf("MasterAddr = %q, %v; want %s", got, err, si.Data[0].Addr)
	}
}

func TestRestart(t *testing.T) {
	s := Standalone(t)
	if _, err := command(s.Addr, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	back, err := s.Restart()
	if err != nil {
		t.Fatal(err)
	}
	defer back.Stop()
	if back.Addr != s.Addr {
		t.Fatalf("restarted on %s, want the same address %s", back.Addr, s.Addr)
	}
	if _, err := command(back.Addr, "GET", "k"); err != errNil {
		t.Fatalf("GET k after restart: err = %v, want errNil (a fresh, empty server)", err)
	}
}

// TestKillStart: a server killed with SIGKILL comes back on its port, in its
// directory, with what its AOF had acknowledged.
func TestKillStart(t *testing.T) {
	s := StandaloneWith(t, "--appendonly", "yes", "--appendfsync", "always")
	if got, err := s.Command("SET", "sess:kept", "v"); err != nil || got != "OK" {
		t.Fatalf("SET = %q, %v; want OK", got, err)
	}
	s.Kill()
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	assertClosed(t, s.Addr)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Command("GET", "sess:kept"); err != nil || got != "v" {
		t.Fatalf("GET after Kill and Start = %q, %v; want v (from the AOF)", got, err)
	}
}

// TestClusterWithReplicas: three masters owning every slot between them,
// each with one replica in sync.
func TestClusterWithReplicas(t *testing.T) {
	c := ClusterWith(t, ClusterOptions{Replicas: 1, NodeTimeout: 2 * time.Second})
	if len(c.Addrs) != 3 || len(c.Nodes) != 6 {
		t.Fatalf("got %d addrs and %d nodes, want 3 and 6", len(c.Addrs), len(c.Nodes))
	}
	nodes, err := c.Topology()
	if err != nil {
		t.Fatal(err)
	}
	slots, replicas := 0, map[string]int{}
	for _, n := range nodes {
		for _, r := range n.Slots {
			slots += r[1] - r[0] + 1
		}
		if !n.Master {
			replicas[n.MasterID]++
		}
	}
	if slots != clusterSlots {
		t.Errorf("masters own %d slots, want %d", slots, clusterSlots)
	}
	for _, slot := range []int{0, 8000, 16383} {
		m, id, err := c.MasterOf(slot)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(c.Addrs, " "), m.Addr) {
			t.Errorf("slot %d: master %s is not one of the seeds %v", slot, m.Addr, c.Addrs)
		}
		if replicas[id] != 1 {
			t.Errorf("master %s has %d replicas, want 1", m.Addr, replicas[id])
		}
		r, err := c.ReplicaOf(id)
		if err != nil {
			t.Fatal(err)
		}
		info, err := r.Command("INFO", "replication")
		if err != nil || !HasInfoLine(info, "master_link_status:up") || !HasInfoLine(info, "master_port:"+strconv.Itoa(m.Port)) {
			t.Errorf("replica %s of %s: INFO replication %q (%v), want its link to the master up", r.Addr, m.Addr, info, err)
		}
	}
}
