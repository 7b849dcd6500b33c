package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// scanCount is the COUNT hint per SCAN call when the caller gives none:
// large enough to cross a big keyspace in few round trips, small enough
// not to stall Redis.
const scanCount = 1000

// maxMasters bounds the masters a composite cursor can name (see Scan).
const maxMasters = 1024

// ErrBadCursor is returned for a cursor no Scan returned.
var ErrBadCursor = errors.New("invalid cursor")

// masters returns one client per master, ordered by address, so a cursor
// can name a master by its position.
func (s *Store) masters(ctx context.Context) ([]*redis.Client, error) {
	var mu sync.Mutex
	var nodes []*redis.Client
	err := s.forEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		nodes = append(nodes, c)
		mu.Unlock()
		return nil
	})
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Options().Addr < nodes[j].Options().Addr })
	return nodes, err
}

// Scan is one step of a cursor over the live sessions matching pattern on
// every master: the masters are walked one after the other, and the cursor
// packs the master's position with that master's own SCAN cursor. Like
// SCAN, it may return fewer keys than count, or none, before the end;
// cursor 0 starts and ends the walk. A keyType ("string", "hash"…) keeps
// the keys of that Redis type (SCAN … TYPE); "" keeps every type.
func (s *Store) Scan(ctx context.Context, cursor uint64, pattern, keyType string, count int64) ([]string, uint64, error) {
	nodes, err := s.masters(ctx)
	if err != nil {
		return nil, 0, err
	}
	idx, nodeCursor := int(cursor%maxMasters), cursor/maxMasters
	if idx >= len(nodes) {
		return nil, 0, ErrBadCursor
	}
	if count <= 0 {
		count = 10
	}
	node := nodes[idx]
	var scan *redis.ScanCmd
	if keyType != "" {
		scan = node.ScanType(ctx, nodeCursor, pattern, count, keyType)
	} else {
		scan = node.Scan(ctx, nodeCursor, pattern, count)
	}
	keys, next, err := scan.Result()
	if err != nil {
		s.observe(err)
		return nil, 0, fmt.Errorf("scan %s: %w", s.nodeName(node), err)
	}
	live, err := s.nodeBatch(node).live(ctx, keys)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case next != 0:
		return live, next*maxMasters + uint64(idx), nil
	case idx+1 < len(nodes):
		return live, uint64(idx + 1), nil
	default:
		return live, 0, nil
	}
}

// ForEachPage calls fn with every page of keys matching pattern on every
// master, with a batch bound to that master for the page's follow-up
// commands. In a cluster the masters are walked concurrently, so fn must be
// safe for concurrent use.
func (s *Store) ForEachPage(ctx context.Context, pattern string, count int64, fn func(ctx context.Context, b *Batch, keys []string) error) error {
	if count <= 0 {
		count = scanCount
	}
	return s.forEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		b := s.nodeBatch(node)
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, pattern, count).Result()
			if err != nil {
				s.observe(err)
				return fmt.Errorf("scan %s: %w", s.nodeName(node), err)
			}
			if len(keys) > 0 {
				if err := fn(ctx, b, keys); err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	})
}

// ForEachLive is ForEachPage with tombstones filtered out.
func (s *Store) ForEachLive(ctx context.Context, pattern string, fn func(ctx context.Context, b *Batch, keys []string) error) error {
	return s.ForEachPage(ctx, pattern, 0, func(ctx context.Context, b *Batch, keys []string) error {
		live, err := b.live(ctx, keys)
		if err != nil || len(live) == 0 {
			return err
		}
		return fn(ctx, b, live)
	})
}

// live executes an existence check of every key (a tombstone is not live)
// and returns the live ones.
func (b *Batch) live(ctx context.Context, keys []string) ([]string, error) {
	checks := make([]IntResult, len(keys))
	for i, k := range keys {
		checks[i] = b.Exists(k)
	}
	if err := b.Exec(ctx); err != nil {
		return nil, err
	}
	live := keys[:0:0]
	for i, c := range checks {
		n, err := c.Result()
		if err != nil {
			return nil, err
		}
		if n == 1 {
			live = append(live, keys[i])
		}
	}
	return live, nil
}

// CountLive counts the live keys under prefix, tombstones excluded, and
// those skip says are not sessions (locks).
func (s *Store) CountLive(ctx context.Context, prefix string, skip func(key string) bool) (int64, error) {
	var n atomic.Int64
	err := s.ForEachLive(ctx, PrefixPattern(prefix), func(_ context.Context, _ *Batch, keys []string) error {
		var skipped int
		for _, k := range keys {
			if skip(k) {
				skipped++
			}
		}
		n.Add(int64(len(keys) - skipped))
		return nil
	})
	return n.Load(), err
}

// PrefixPattern is the SCAN MATCH pattern of every key under prefix.
func PrefixPattern(prefix string) string {
	out := make([]byte, 0, len(prefix)+1)
	for i := 0; i < len(prefix); i++ {
		switch prefix[i] {
		case '*', '?', '[', ']', '\\':
			out = append(out, '\\')
		}
		out = append(out, prefix[i])
	}
	return string(append(out, '*'))
}

// UpstreamKeys is the number of keys in the upstream (all masters), for
// INFO's keyspace section.
func (s *Store) UpstreamKeys(ctx context.Context) (int64, error) {
	var n atomic.Int64
	err := s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		k, err := c.DBSize(ctx).Result()
		n.Add(k)
		s.observe(err)
		return err
	})
	return n.Load(), err
}
