package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// A read that shares an MGET (plan.go) gets nil for a missing key and for
// a key of another type alike: a hash session, a typed tombstone. Telling
// them apart cost every missing session its own TYPE, or SESS.GET's
// hash-read script, in the round trip after the batch. Absent is that
// round trip's check instead: the checks of one slot queued together go as
// one EXISTS, which answers 0 when none of their keys holds anything, and
// only where it counts a key does a command look closer (a third round
// trip, for a hash or a tombstone among the misses). At pipeline depth 16
// on a full key space, reads of missing keys became 1.19 to 1.28 times as
// fast for GET and 2.32 to 2.61 times for SESS.GET
// (bench/results/2026-12-07-89-misses-ab.txt, docs/performance.md).

// AbsentResult is the handle of a queued Absent.
type AbsentResult struct{ res *opResult }

// Result reports whether the key held nothing at all when the check ran.
// false also when another key checked in the same EXISTS exists: the
// caller then looks at its key alone.
func (r AbsentResult) Result() (bool, error) {
	if r.res.err != nil {
		return false, r.res.err
	}
	return r.res.absent, nil
}

// Absent queues checking that key holds nothing at all, for a read that
// found it empty in an MGET (GetResult.Absent false). Consecutive checks
// of one slot share one EXISTS (plan.go).
func (b *Batch) Absent(key string) AbsentResult {
	res := b.result()
	b.ops = append(b.ops, op{kind: opAbsent, read: true, key: key, slot: b.slotOf(key), res: res})
	return AbsentResult{res: res}
}

// existsCmd is the EXISTS of a run of Absent checks.
func existsCmd(keys []string) *redis.IntCmd {
	return redis.NewIntCmd(context.Background(), keysArgs("exists", keys)...)
}

// deliverAbsent gives a run's checks EXISTS's answer: absent when it
// counted none of the run's keys.
func deliverAbsent(ops []op, c *call) {
	n, err := c.cmd.(*redis.IntCmd).Result()
	for _, oi := range c.ops {
		ops[oi].res.err = err
		ops[oi].res.absent = err == nil && n == 0
	}
}
