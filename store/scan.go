package store

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// scanCount is the COUNT hint per SCAN call: large enough to cross a big
// keyspace in few round trips, small enough not to stall Redis.
const scanCount = 1000

// ScanKeys calls fn with every key matching pattern, a page at a time, on
// every master. In a cluster the masters are scanned concurrently, so fn
// must be safe for concurrent use.
func (s *Store) ScanKeys(ctx context.Context, pattern string, fn func(ctx context.Context, node *redis.Client, keys []string) error) error {
	return s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, scanCount).Result()
			if err != nil {
				return fmt.Errorf("scan %s: %w", c.Options().Addr, err)
			}
			if len(keys) > 0 {
				if err := fn(ctx, c, keys); err != nil {
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

// CountLive counts the live sessions under prefix, tombstones excluded.
func (s *Store) CountLive(ctx context.Context, prefix string) (int64, error) {
	var n atomic.Int64
	err := s.ScanKeys(ctx, escapeGlob(prefix)+"*", func(ctx context.Context, node *redis.Client, keys []string) error {
		pipe := node.Pipeline()
		cmds := make([]*redis.IntCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.StrLen(ctx, k)
		}
		_, _ = pipe.Exec(ctx)
		var maybeTombstones []string
		for i, c := range cmds {
			l, err := c.Result()
			switch {
			case err != nil:
				// Not a string: not a session the proxy wrote, but a key in
				// the namespace all the same.
				n.Add(1)
			case l == int64(len(Tombstone)):
				maybeTombstones = append(maybeTombstones, keys[i])
			case l > 0:
				n.Add(1)
			}
		}
		for _, k := range maybeTombstones {
			v, err := node.Get(ctx, k).Result()
			if err == nil && v != Tombstone {
				n.Add(1)
			}
		}
		return nil
	})
	return n.Load(), err
}

// escapeGlob escapes the glob characters of a literal prefix for MATCH.
func escapeGlob(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// UpstreamKeys is the number of keys in the upstream (all masters), for
// INFO's keyspace section.
func (s *Store) UpstreamKeys(ctx context.Context) (int64, error) {
	var n atomic.Int64
	err := s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		k, err := c.DBSize(ctx).Result()
		n.Add(k)
		return err
	})
	return n.Load(), err
}
