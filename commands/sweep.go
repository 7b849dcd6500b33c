package commands

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"github.com/sessproxy/sessproxy/store"
)

// SweepStats counts what a sweep did.
type SweepStats struct {
	Scanned int64 // keys under the prefix
	Fixed   int64 // keys given the policy TTL (would be, in a dry run)
	Skipped int64 // keys already within [ttl.min, ttl.max]
}

// SweepOptions configure a sweep.
type SweepOptions struct {
	DryRun bool
	// Count is the SCAN COUNT hint per page. default: 1000
	Count int64
	// Progress, when set, is called after every page with the running
	// totals (from several goroutines in a cluster, one at a time).
	Progress func(SweepStats)
}

// Sweep walks the prefix on every master and gives each key without a TTL,
// or with one above ttl.max, the policy TTL (from its own payload when it
// can be decoded, ttl.default otherwise); a lock key without a TTL or with
// one above ttl.lock_max gets ttl.lock_max. It is how a legacy deployment
// gets its existing keys under policy; keys outside the prefix are never
// touched.
func (e *Engine) Sweep(ctx context.Context, opts SweepOptions) (SweepStats, error) {
	var scanned, fixed, skipped atomic.Int64
	var progress sync.Mutex
	// One policy for the whole walk, even if a reload swaps it meanwhile.
	policy := &e.conf.Load().policy
	maxTTL, lockMax := policy.Max, policy.LockMax
	err := e.store.ForEachPage(ctx, store.PrefixPattern(e.opts.Prefix), opts.Count, func(ctx context.Context, b *store.Batch, keys []string) error {
		ttls := make([]store.IntResult, len(keys))
		for i, k := range keys {
			ttls[i] = b.RawPTTL(k)
		}
		if err := b.Exec(ctx); err != nil {
			return err
		}
		var unbounded []string
		var applied []store.IntResult
		var toFix int64
		for i, r := range ttls {
			ms, err := r.Result()
			if err != nil {
				return err
			}
			if e.isLockKey(keys[i]) {
				// A lock (written before locks were told apart, say)
				// gets ttl.lock_max; its value is not ours to judge.
				if ms == -1 || ms > lockMax.Milliseconds() {
					toFix++
					if !opts.DryRun {
						applied = append(applied, b.BoundTTL(keys[i], lockMax, lockMax))
					}
				}
				continue
			}
			if ms == -1 || ms > maxTTL.Milliseconds() {
				unbounded = append(unbounded, keys[i])
			}
		}
		values := make([]store.GetStoredResult, len(unbounded))
		for i, k := range unbounded {
			values[i] = b.GetStored(k)
		}
		if err := b.Exec(ctx); err != nil {
			return err
		}
		for i, k := range unbounded {
			stored, err := values[i].Result()
			if err == nil && stored == nil {
				continue // gone since the scan
			}
			if err == store.ErrTombstoned {
				// Written behind the proxy's back without a TTL: a
				// tombstone must still end, after the grace.
				toFix++
				if !opts.DryRun {
					applied = append(applied, b.BoundTTL(k, max(e.opts.Grace, policy.Min), maxTTL))
				}
				continue
			}
			// Not a string, or undecodable: not ours to judge, but it is in
			// the namespace and must expire: the default TTL.
			var payload []byte
			if err == nil {
				if p, _, derr := e.opts.Codec.Decode(stored); derr == nil {
					payload = p
				}
			}
			// An already expired session still gets ttl.min rather than
			// an instant delete: the sweep bounds keys, it does not judge.
			ttl := max(ttlArg(e.decide(policy, payload, 0)), policy.Min)
			toFix++
			if !opts.DryRun {
				applied = append(applied, b.BoundTTL(k, ttl, maxTTL))
			}
		}
		if !opts.DryRun {
			if err := b.Exec(ctx); err != nil {
				return err
			}
			toFix = 0
			for _, r := range applied {
				n, err := r.Result()
				if err != nil {
					return err
				}
				toFix += n
			}
		}
		scanned.Add(int64(len(keys)))
		fixed.Add(toFix)
		skipped.Add(int64(len(keys)) - toFix)
		if opts.Progress != nil {
			progress.Lock()
			opts.Progress(SweepStats{Scanned: scanned.Load(), Fixed: fixed.Load(), Skipped: skipped.Load()})
			progress.Unlock()
		}
		return nil
	})
	return SweepStats{Scanned: scanned.Load(), Fixed: fixed.Load(), Skipped: skipped.Load()}, err
}

// SESS.SWEEP [DRYRUN] [COUNT n]: :N keys fixed (admin).
func (e *Engine) sessSweep(c *Call) {
	var opts SweepOptions
	for i := 1; i < len(c.Args); i++ {
		switch {
		case bytes.EqualFold(c.Args[i], []byte("DRYRUN")):
			opts.DryRun = true
		case bytes.EqualFold(c.Args[i], []byte("COUNT")) && i+1 < len(c.Args):
			n, ok := parseInt(c.Args[i+1])
			if !ok || n < 1 {
				c.Out.Error(msgNotInteger)
				return
			}
			opts.Count = n
			i++
		default:
			c.Out.Error(msgSyntax)
			return
		}
	}
	if !e.flushBefore(c) {
		return
	}
	stats, err := e.Sweep(c.Ctx, opts)
	if err != nil {
		e.fail(c, "", err)
		return
	}
	c.Out.Int(stats.Fixed)
}
