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
	b.addUnordered(redis.NewCmd(context.Background(), "evalsha", indexAddScript.Hash(), 1, key, member, msArg(ttl)), key)
}

// MembersResult is the handle of a queued IndexMembers.
type MembersResult struct{ cmd *redis.StringSliceCmd }

// Result is the members of the set.
func (r MembersResult) Result() ([]string, error) { return r.cmd.Result() }

// IndexMembers queues reading the members of the set at key.
func (b *Batch) IndexMembers(key string) MembersResult {
	cmd := redis.NewStringSliceCmd(context.Background(), "smembers", key)
	b.add(cmd, true, key)
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
	b.add(redis.NewIntCmd(context.Background(), args...), false, key)
}

// indexAddScript adds a member to an owner index and extends the index's
// TTL: one command rather than three, so nothing can run between them (in a
// cluster, go-redis follows a redirect for each command on its own, and an
// index whose PEXPIRE ran before its SADD would be left without a TTL).
// PEXPIRE GT leaves a longer TTL alone but does not set one on a set
// without; NX covers the set just created.
// KEYS: the index; ARGV: member, ttl ms.
var indexAddScript = newScript(`
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'GT')
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX')
return 1
`)
