package redistest

import (
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	clusterMasters = 3
	clusterSlots   = 16384
	// clusterTimeout bounds how long the nodes may take to agree on the slot map
	// after redis-cli --cluster create returns.
	clusterTimeout = 20 * time.Second
)

// ClusterInfo is a running Redis Cluster of three masters, each with
// ClusterOptions.Replicas replicas.
type ClusterInfo struct {
	// Addrs are "127.0.0.1:port" of the masters as created, the seeds a
	// cluster client needs (after a failover some are replicas: still seeds).
	Addrs []string
	Nodes []*Server // every node, masters first
	opts  ClusterOptions
}

// ClusterOptions shape a cluster.
type ClusterOptions struct {
	// Replicas is how many replicas each master has. default: 0
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a master may be
	// unreachable before its replica is promoted. default: 5s
	NodeTimeout time.Duration
}

// Cluster starts a 3-master Redis Cluster and registers a t.Cleanup that stops it.
func Cluster(t testing.TB) *ClusterInfo {
	t.Helper()
	return ClusterWith(t, ClusterOptions{})
}

// ClusterWith starts a cluster shaped by opts and registers a t.Cleanup
// that stops it.
func ClusterWith(t testing.TB, opts ClusterOptions) *ClusterInfo {
	t.Helper()
	RequireBinaries(t)
	c, err := StartClusterWith(opts)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// StartCluster starts a 3-master Redis Cluster and returns once every node reports
// cluster_state:ok with all 16384 slots assigned; the caller must Stop it. It is
// meant for TestMain, so one cluster can serve a whole package.
func StartCluster() (*ClusterInfo, error) {
	return StartClusterWith(ClusterOptions{})
}

// StartClusterWith starts a cluster shaped by opts and returns once every
// node reports cluster_state:ok with all 16384 slots assigned and every
// replica is in sync with its master; the caller must Stop it.
func StartClusterWith(opts ClusterOptions) (*ClusterInfo, error) {
	if opts.NodeTimeout == 0 {
		opts.NodeTimeout = 5 * time.Second
	}
	c := &ClusterInfo{opts: opts}
	for range clusterMasters * (1 + opts.Replicas) {
		s, err := startServer(
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(opts.NodeTimeout/time.Millisecond)),
			// A replica is promoted however long it was cut off from its
			// master, and syncs without waiting for company.
			"--cluster-replica-validity-factor", "0",
			"--repl-diskless-sync-delay", "0",
		)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("start cluster node: %w", err)
		}
		c.Nodes = append(c.Nodes, s)
	}
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	// redis-cli makes the first three nodes the masters, the others their
	// replicas.
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.Replicas), "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	c.Addrs = addrs[:clusterMasters]

	if err := c.WaitInSync(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Stop stops every node. It is safe to call more than once.
func (c *ClusterInfo) Stop() {
	for _, s := range c.Nodes {
		s.Stop()
	}
}

// WaitInSync polls every running node until all of them report
// cluster_state:ok with every slot served, know every node, agree on who
// is master of what, see no failed node and every master with its
// replicas, and every replica's link to its master is up and its sync
// done. redis-cli --cluster create returns once the nodes have met, but
// gossip may not yet have told every node about every slot (a client that
// hits such a node gets CLUSTERDOWN); a killed master started again still
// believes it owns its slots until the others tell it otherwise, and then
// syncs as a replica.
func (c *ClusterInfo) WaitInSync() error {
	timeout := clusterTimeout + 4*c.opts.NodeTimeout
	deadline := time.Now().Add(timeout)
	for {
		err := c.inSync()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not in sync within %v: %w", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// inSync is one round of WaitInSync's checks: nil when they all pass.
func (c *ClusterInfo) inSync() error {
	want := []string{
		"cluster_state:ok",
		fmt.Sprintf("cluster_slots_assigned:%d", clusterSlots),
		fmt.Sprintf("cluster_slots_ok:%d", clusterSlots),
		fmt.Sprintf("cluster_known_nodes:%d", len(c.Nodes)),
	}
	var agreed string // the first node's view of the roles
	for _, s := range c.Nodes {
		if !s.Running() {
			continue
		}
		info, err := command(s.Addr, "CLUSTER", "INFO")
		if err != nil || !containsAll(info, want) {
			return fmt.Errorf("%s: CLUSTER INFO %q (%v), want %v", s.Addr, info, err, want)
		}
		out, err := command(s.Addr, "CLUSTER", "NODES")
		if err != nil {
			return fmt.Errorf("%s: CLUSTER NODES: %w", s.Addr, err)
		}
		nodes, err := parseClusterNodes(out)
		if err != nil {
			return err
		}
		if err := c.complete(nodes); err != nil {
			return fmt.Errorf("%s sees %w", s.Addr, err)
		}
		roles := rolesOf(nodes)
		if agreed == "" {
			agreed = roles
		} else if roles != agreed {
			return fmt.Errorf("%s sees roles %q, another node %q", s.Addr, roles, agreed)
		}
		info, err = command(s.Addr, "INFO", "replication")
		if err != nil {
			return fmt.Errorf("%s: INFO replication: %w", s.Addr, err)
		}
		self := myself(nodes, s.Addr)
		switch {
		case self == nil:
			return fmt.Errorf("%s is not in its own CLUSTER NODES", s.Addr)
		case self.Master != hasInfoLine(info, "role:master"):
			return fmt.Errorf("%s: INFO replication disagrees with CLUSTER NODES on its role", s.Addr)
		case !self.Master && !(hasInfoLine(info, "master_link_status:up") && hasInfoLine(info, "master_sync_in_progress:0")):
			return fmt.Errorf("%s: replica not in sync: %q", s.Addr, info)
		}
	}
	return nil
}

// rolesOf sums up a CLUSTER NODES view: each node's id and its master's.
func rolesOf(nodes []ClusterNode) string {
	lines := make([]string, len(nodes))
	for i, n := range nodes {
		lines[i] = n.ID + ">" + n.MasterID
	}
	sort.Strings(lines)
	return strings.Join(lines, " ")
}

func myself(nodes []ClusterNode, addr string) *ClusterNode {
	for i := range nodes {
		if nodes[i].Addr == addr {
			return &nodes[i]
		}
	}
	return nil
}

// complete checks that a CLUSTER NODES view has no failed node and every
// master that owns slots with its ClusterOptions.Replicas replicas.
func (c *ClusterInfo) complete(nodes []ClusterNode) error {
	replicas := map[string]int{}
	for _, n := range nodes {
		if n.Failed {
			return fmt.Errorf("node %s failed", n.Addr)
		}
		if !n.Master {
			replicas[n.MasterID]++
		}
	}
	for _, n := range nodes {
		if n.Master && len(n.Slots) > 0 && replicas[n.ID] != c.opts.Replicas {
			return fmt.Errorf("master %s with %d replicas, want %d", n.Addr, replicas[n.ID], c.opts.Replicas)
		}
	}
	return nil
}

// Node is the node at addr, nil if the cluster has none there.
func (c *ClusterInfo) Node(addr string) *Server {
	for _, s := range c.Nodes {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// ClusterNode is one line of CLUSTER NODES.
type ClusterNode struct {
	ID, Addr string
	Master   bool   // flags has master
	Failed   bool   // flags has fail
	MasterID string // of a replica
	// Slots are the node's slot ranges, each [first, last].
	Slots [][2]int
}

// Topology is CLUSTER NODES as the first running node answers it.
func (c *ClusterInfo) Topology() ([]ClusterNode, error) {
	var lastErr error
	for _, s := range c.Nodes {
		if !s.Running() {
			continue
		}
		out, err := command(s.Addr, "CLUSTER", "NODES")
		if err != nil {
			lastErr = err
			continue
		}
		return parseClusterNodes(out)
	}
	return nil, fmt.Errorf("CLUSTER NODES: no node answers (last error %v)", lastErr)
}

func parseClusterNodes(out string) ([]ClusterNode, error) {
	var nodes []ClusterNode
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q: too few fields", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := ClusterNode{ID: f[0], Addr: addr}
		for _, flag := range strings.Split(f[2], ",") {
			switch flag {
			case "master":
				n.Master = true
			case "fail":
				n.Failed = true
			}
		}
		if f[3] != "-" {
			n.MasterID = f[3]
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being imported or migrated
			}
			first, last, isRange := strings.Cut(r, "-")
			if !isRange {
				last = first
			}
			a, err1 := strconv.Atoi(first)
			b, err2 := strconv.Atoi(last)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("CLUSTER NODES line %q: bad slots %q", line, r)
			}
			n.Slots = append(n.Slots, [2]int{a, b})
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// MasterOf is the node that owns slot, and the id of that node.
func (c *ClusterInfo) MasterOf(slot int) (*Server, string, error) {
	nodes, err := c.Topology()
	if err != nil {
		return nil, "", err
	}
	for _, n := range nodes {
		for _, r := range n.Slots {
			if n.Master && !n.Failed && r[0] <= slot && slot <= r[1] {
				return c.Node(n.Addr), n.ID, nil
			}
		}
	}
	return nil, "", fmt.Errorf("no master serves slot %d", slot)
}

// ReplicaOf is a running replica of the master with id masterID.
func (c *ClusterInfo) ReplicaOf(masterID string) (*Server, error) {
	nodes, err := c.Topology()
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if s := c.Node(n.Addr); n.MasterID == masterID && !n.Failed && s != nil && s.Running() {
			return s, nil
		}
	}
	return nil, fmt.Errorf("master %s has no running replica", masterID)
}

func containsAll(info string, lines []string) bool {
	for _, l := range lines {
		// Match whole lines so cluster_known_nodes:3 does not accept :30.
		if !strings.Contains(info, l+"\r\n") {
			return false
		}
	}
	return true
}
