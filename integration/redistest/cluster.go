package redistest

import (
	"fmt"
	"os/exec"
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

// ClusterInfo is a running Redis Cluster of three masters and no replicas.
type ClusterInfo struct {
	Addrs []string // "127.0.0.1:port" of every master, the seeds a cluster client needs
	Nodes []*Server
}

// Cluster starts a 3-master Redis Cluster and registers a t.Cleanup that stops it.
func Cluster(t testing.TB) *ClusterInfo {
	t.Helper()
	RequireBinaries(t)
	c, err := StartCluster()
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
	c := &ClusterInfo{}
	for range clusterMasters {
		s, err := startServer(
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000",
		)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("start cluster node: %w", err)
		}
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}

	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}

	if err := c.waitOK(); err != nil {
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

// waitOK polls CLUSTER INFO on every node: redis-cli --cluster create returns once
// the nodes have met, but gossip may not yet have told every node about every slot,
// and a client that hits such a node gets CLUSTERDOWN.
func (c *ClusterInfo) waitOK() error {
	want := []string{
		"cluster_state:ok",
		fmt.Sprintf("cluster_slots_assigned:%d", clusterSlots),
		fmt.Sprintf("cluster_slots_ok:%d", clusterSlots),
		fmt.Sprintf("cluster_known_nodes:%d", clusterMasters),
	}
	deadline := time.Now().Add(clusterTimeout)
	for _, s := range c.Nodes {
		for {
			info, err := command(s.Addr, "CLUSTER", "INFO")
			if err == nil && containsAll(info, want) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("cluster node %s not ready within %v: want %v, CLUSTER INFO: %q (err %v)",
					s.Addr, clusterTimeout, want, info, err)
			}
			time.Sleep(pollInterval)
		}
	}
	return nil
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
