package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Metrics is told about the store's upstream commands that failed; the
// metrics package implements it. It runs on the request path: it must not
// block or allocate.
type Metrics interface {
	UpstreamError(kind FailureKind)
}

// FailureKind is why an upstream command failed without an answer from
// Redis. Redis's own error replies (WRONGTYPE, NOSCRIPT…) and nil replies
// are answers, not failures.
type FailureKind uint8

// Failure kinds.
const (
	FailureTimeout    FailureKind = iota // no answer in time: dial, read, write or pool timeout
	FailureConnection                    // refused, reset or closed connection, and the like
	NumFailureKinds                      // how many kinds there are, for arrays indexed by kind
)

func (k FailureKind) String() string {
	if k == FailureTimeout {
		return "timeout"
	}
	return "connection"
}

// observe counts err when it is a failure of the upstream command itself,
// and in a cluster has a failure that may mean a changed topology reload
// the slot map. A cancelled context is the proxy giving up (a shutdown past
// its deadline), not the upstream failing.
func (s *Store) observe(err error) {
	if err == nil || err == redis.Nil {
		return
	}
	var reply redis.Error
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
	case errors.As(err, &reply):
		if s.cluster != nil && isTopologyReply(reply.Error()) {
			s.cluster.ReloadState(context.Background())
		}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, redis.ErrPoolTimeout),
		errors.As(err, &netErr) && netErr.Timeout():
		s.failed(FailureTimeout)
	default:
		s.failed(FailureConnection)
	}
}

// failed counts a failure of kind and, in a cluster, reloads the slot map:
// go-redis's auto-pipeliner routes each command to the master its cached
// slot map names and reloads that map on MOVED or ASK only, so after a
// failover every command to the dead master's slots would fail until the
// next periodic reload. ReloadState returns at once; go-redis runs one
// reload at a time and at most one more 200ms after, however many commands
// fail meanwhile.
func (s *Store) failed(kind FailureKind) {
	if s.cluster != nil {
		s.cluster.ReloadState(context.Background())
	}
	if s.opts.Metrics != nil {
		s.opts.Metrics.UpstreamError(kind)
	}
}

// isTopologyReply reports whether a Redis error reply says the node no
// longer serves the slot as this store believes: a master demoted to a
// replica (READONLY), a cluster without coverage (CLUSTERDOWN), a slot
// moved (MOVED, which go-redis follows itself but a node-bound pipeline
// does not).
func isTopologyReply(msg string) bool {
	for _, code := range []string{"READONLY ", "CLUSTERDOWN ", "MOVED ", "MASTERDOWN "} {
		if strings.HasPrefix(msg, code) {
			return true
		}
	}
	return false
}

// Ping checks that the upstream answers: the server, or in a cluster that
// every slot has a master and every master answers. Its failures are not
// counted as upstream errors: it is a readiness probe, not a client's
// command.
func (s *Store) Ping(ctx context.Context) error {
	if s.cluster != nil {
		return s.pingCluster(ctx)
	}
	return s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		if err := c.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("ping %s: %w", s.nodeName(c), err)
		}
		return nil
	})
}

// numSlots is how many hash slots a Redis Cluster has.
const numSlots = 16384

// pingCluster is Ping in a cluster: the slot map one node answers must
// give every slot to a master, and each of those masters must answer a
// PING. A master that is down until its replica is promoted fails it; so
// does a slot with no master (no replica to promote). The masters are
// pinged on connections of their own, outside the cluster client: its
// ForEachMaster reloads the slot map, and go-redis's reloads race with one
// another (the race detector flags its node list), while a failing command
// already has one under way.
func (s *Store) pingCluster(ctx context.Context) error {
	slots, err := s.cluster.ClusterSlots(ctx).Result()
	if err != nil {
		return fmt.Errorf("cluster slots: %w", err)
	}
	owned := map[string]int{} // master → how many slots
	for _, r := range slots {
		if len(r.Nodes) == 0 {
			continue
		}
		owned[r.Nodes[0].Addr] += r.End - r.Start + 1
		// The proxy's own slot map must agree: a map left stale by a
		// failover sends the range's commands to a node that no longer
		// serves it, however healthy the cluster is.
		node, err := s.cluster.MasterForKey(ctx, keyForSlot(r.Start))
		if err != nil {
			return fmt.Errorf("route slot %d: %w", r.Start, err)
		}
		if addr := node.Options().Addr; addr != r.Nodes[0].Addr {
			s.cluster.ReloadState(context.Background())
			return fmt.Errorf("slots %d-%d: the proxy routes them to %s, the cluster serves them on %s", r.Start, r.End, addr, r.Nodes[0].Addr)
		}
	}
	served := 0
	for _, n := range owned {
		served += n
	}
	if served != numSlots {
		return fmt.Errorf("cluster: %d of %d slots have a master", served, numSlots)
	}
	errs := make(chan error, len(owned))
	var wg sync.WaitGroup
	for addr := range owned {
		wg.Go(func() {
			c := redis.NewClient(s.clientOptions(addr))
			defer c.Close()
			if err := c.Ping(ctx).Err(); err != nil {
				errs <- fmt.Errorf("ping %s (master of %d slots): %w", addr, owned[addr], err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when closed empty
}

// slotKeys holds, for each hash slot, a key that hashes to it, so that the
// readiness check can ask the cluster client where it routes a slot.
var slotKeys = sync.OnceValue(func() []string {
	keys := make([]string, numSlots)
	for i, left := 0, numSlots; left > 0; i++ {
		k := strconv.Itoa(i)
		if slot := Slot(k); keys[slot] == "" {
			keys[slot] = k
			left--
		}
	}
	return keys
})

// keyForSlot is a key in slot.
func keyForSlot(slot int) string { return slotKeys()[slot] }
