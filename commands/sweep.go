package commands

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"github.com/sessproxy/sessproxy/commands/ttl"
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
	// Namespace is the one namespace to sweep (its name); "": every one.
	Namespace string
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
	var counts sweepCounts
	// One configuration for the whole walk, even if a reload swaps it
	// meanwhile.
	conf := e.conf.Load()
	for _, sp := range e.spaces {
		if opts.Namespace != "" && sp.name != opts.Namespace && sp.alias != opts.Namespace {
			continue
		}
		if err := e.sweepSpace(ctx, sp, &conf.policies[sp.index], opts, &counts); err != nil {
			return counts.stats(), err
		}
	}
	return counts.stats(), nil
}

// sweepCounts are a sweep's running totals, kept from several goroutines
// in a cluster.
type sweepCounts struct {
	scanned, fixed, skipped atomic.Int64
	progress                sync.Mutex // one Progress call at a time
}

func (s *sweepCounts) stats() SweepStats {
	return SweepStats{Scanned: s.scanned.Load(), Fixed: s.fixed.Load(), Skipped: s.skipped.Load()}
}

// sweepSpace sweeps one namespace under policy. Keys of a namespace with a
// longer prefix are left to that namespace's own pass.
func (e *Engine) sweepSpace(ctx context.Context, sp *space, policy *ttl.Policy, opts SweepOptions, counts *sweepCounts) error {
	maxTTL, lockMax := policy.Max, policy.LockMax
	return e.store.ForEachPage(ctx, store.PrefixPattern(sp.prefix), opts.Count, func(ctx context.Context, b *store.Batch, keys []string) error {
		keys = e.ownedKeys(sp, keys)
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
			if sp.isLockKey(keys[i]) {
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
					applied = append(applied, b.BoundTTL(k, max(sp.grace, policy.Min), maxTTL))
				}
				continue
			}
			// Not a string, or undecodable: not ours to judge, but it is in
			// the namespace and must expire: the default TTL.
			var payload []byte
			if err == nil {
				if p, _, derr := sp.codec.Decode(stored); derr == nil {
					payload = p
				}
			}
			// An already expired session still gets ttl.min rather than
			// an instant delete: the sweep bounds keys, it does not judge.
			ttl := max(ttlArg(e.decide(sp, policy, payload, 0)), policy.Min)
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
		counts.scanned.Add(int64(len(keys)))
		counts.fixed.Add(toFix)
		counts.skipped.Add(int64(len(keys)) - toFix)
		if opts.Progress != nil {
			counts.progress.Lock()
			opts.Progress(counts.stats())
			counts.progress.Unlock()
		}
		return nil
	})
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
	opts.Namespace = c.space(e).name
	stats, err := e.Sweep(c.Ctx, opts)
	if err != nil {
		e.fail(c, keyRef{}, err)
		return
	}
	c.Out.Int(stats.Fixed)
}
