package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// An owner index is a Redis set of the session keys (without the prefix)
// one owner has written. It lives in its own slot, apart from the sessions,
// so it cannot change atomically with them: readers check every member
// against the session itself and prune the stale ones.

// IndexAdd queues adding member to the set at key and extending the set's
// TTL to ttl, so an index never outlives the sessions it lists by long.
func (b *Batch) IndexAdd(key, member string, ttl time.Duration) {
	b.addUnordered(redis.NewCmd(context.Background(), "evalsha", indexAddScript.Hash(), 1, key, member, msArg(ttl)))
}

// MembersResult is the handle of a queued IndexMembers.
type MembersResult struct{ cmd *redis.StringSliceCmd }

// Result is the members of the set.
func (r MembersResult) Result() ([]string, error) { return r.cmd.Result() }

// IndexMembers queues reading the members of the set at key.
func (b *Batch) IndexMembers(key string) MembersResult {
	cmd := redis.NewStringSliceCmd(context.Background(), "smembers", key)
	b.add(cmd, true)
	return MembersResult{cmd}
}

// IndexRemove queues removing members from the set at key.
func (b *Batch) IndexRemove(key string, members []string) {
	if len(members) == 0 {
		return
	}
	args := make([]interface{}, 0, len(members)+2)
	args = append(args, "srem", key)
	for _, m := range members {
		args = append(args, m)
	}
	b.add(redis.NewIntCmd(context.Background(), args...), false)
}
