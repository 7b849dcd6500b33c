package store

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// UpstreamInfo is what the upstream's own INFO says of its data, summed
// over every master: the figures the proxy's INFO passes on, because the
// upstream is where they are true (memory, keyspace, persistence).
type UpstreamInfo struct {
	// Fields are INFO fields by name (used_memory, rdb_bgsave_in_progress,
	// keyspace_hits…), numbers summed over the masters; a field that is
	// not a number (maxmemory_policy) is the first master's.
	Fields map[string]string
	// Keys and Expires are the keyspace line of the configured db:
	// db<N>:keys=…,expires=….
	Keys, Expires int64
}

// upstreamInfoFields are the INFO fields UpstreamInfo keeps.
var upstreamInfoFields = map[string]bool{
	"used_memory": true, "used_memory_rss": true, "used_memory_peak": true, "used_memory_dataset": true,
	"maxmemory": true, "maxmemory_policy": true,
	"rdb_bgsave_in_progress": true, "aof_rewrite_in_progress": true, "rdb_changes_since_last_save": true,
	"expired_keys": true, "evicted_keys": true, "keyspace_hits": true, "keyspace_misses": true,
}

// Info reads INFO sections from every master (Redis 7 takes several
// sections in one INFO). An upstream that refuses a multi-section INFO
// (miniredis) is asked its key count alone; in embedded mode the data
// lives in this process, so used_memory is this process's heap.
func (s *Store) Info(ctx context.Context, sections ...string) (UpstreamInfo, error) {
	info := UpstreamInfo{Fields: make(map[string]string)}
	var mu sync.Mutex
	err := s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		text, err := c.Info(ctx, sections...).Result()
		if UpstreamReply(err) {
			n, err := c.DBSize(ctx).Result()
			s.observe(err)
			mu.Lock()
			info.Keys += n
			mu.Unlock()
			return err
		}
		s.observe(err)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		info.add(text, s.opts.DB)
		return nil
	})
	if s.embedded != nil {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		info.Fields["used_memory"] = strconv.FormatUint(ms.HeapAlloc, 10)
	}
	return info, err
}

// add sums one master's INFO text into info.
func (info *UpstreamInfo) add(text string, db int) {
	dbPrefix := "db" + strconv.Itoa(db) + ":"
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if rest, ok := strings.CutPrefix(line, dbPrefix); ok {
			for _, kv := range strings.Split(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.ParseInt(v, 10, 64)
				switch k {
				case "keys":
					info.Keys += n
				case "expires":
					info.Expires += n
				}
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !upstreamInfoFields[name] {
			continue
		}
		old, seen := info.Fields[name]
		a, errA := strconv.ParseInt(old, 10, 64)
		b, errB := strconv.ParseInt(value, 10, 64)
		switch {
		case !seen:
			info.Fields[name] = value
		case errA == nil && errB == nil:
			info.Fields[name] = strconv.FormatInt(a+b, 10)
		}
	}
}
