package commands

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sessproxy/sessproxy/store"
	"github.com/tidwall/match"
)

// The bulk commands walk every master with SCAN, a page at a time, and run
// their follow-up commands per page on that page's own node: never one
// giant MGET or DEL, never CROSSSLOT. Tombstones are skipped.

// SESS.IDS
func (e *Engine) sessIDs(c *Call) {
	if !e.flushBefore(c) {
		return
	}
	keys, err := e.liveKeys(c.Ctx, "")
	if err != nil {
		e.fail(c, "", err)
		return
	}
	keys = e.sessionKeys(keys)
	c.Out.Array(len(keys))
	for _, k := range keys {
		c.Out.BulkString(k[len(e.opts.Prefix):])
	}
}

// SESS.LENGTH, and DBSIZE: the live sessions (tombstones, locks and keys
// outside the prefix excluded), counted by scanning every master.
func (e *Engine) sessLength(c *Call) {
	if !e.flushBefore(c) {
		return
	}
	n, err := e.store.CountLive(c.Ctx, e.opts.Prefix, e.isLockKey)
	if err != nil {
		e.fail(c, "", err)
		return
	}
	c.Out.Int(n)
}

// SESS.ALL: id payload id payload … (a map in RESP3).
func (e *Engine) sessAll(c *Call) {
	if !e.flushBefore(c) {
		return
	}
	type entry struct {
		sid     string
		payload []byte
	}
	var mu sync.Mutex
	var all []entry
	err := e.store.ForEachLive(c.Ctx, store.PrefixPattern(e.opts.Prefix), func(ctx context.Context, b *store.Batch, keys []string) error {
		if keys = e.sessionKeys(keys); len(keys) == 0 {
			return nil
		}
		gets := make([]store.GetResult, len(keys))
		for i, k := range keys {
			gets[i] = b.Get(k)
		}
		if err := b.Exec(ctx); err != nil {
			return err
		}
		page := make([]entry, 0, len(keys))
		// A hash session reads as missing in the page's MGET (or as
		// WRONGTYPE alone): its fields are read in a second step, as a
		// JSON object.
		hashes := make(map[int]store.HashResult)
		for i, g := range gets {
			if _, err := g.Result(); err == store.ErrNotFound || store.IsWrongType(err) {
				hashes[i] = b.HashRead(keys[i], 0, "HGETALL")
			}
		}
		if len(hashes) > 0 {
			if err := b.Exec(ctx); err != nil {
				return err
			}
		}
		for i, g := range gets {
			if h, ok := hashes[i]; ok {
				fields, found, err := h.Result()
				if err != nil {
					return err
				}
				if found { // else destroyed since the page was read
					page = append(page, entry{keys[i][len(e.opts.Prefix):], hashJSON(fields)})
				}
				continue
			}
			stored, err := g.Result()
			if err != nil {
				return err
			}
			sid := keys[i][len(e.opts.Prefix):]
			payload, _, err := e.opts.Codec.Decode(stored)
			if err != nil {
				return &decodeError{sid: sid, err: err}
			}
			page = append(page, entry{sid, payload})
		}
		mu.Lock()
		all = append(all, page...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		e.fail(c, "", err)
		return
	}
	c.Out.Map(len(all))
	for _, en := range all {
		c.Out.BulkString(en.sid)
		c.Out.Bulk(en.payload)
	}
}

// SESS.CLEAR: destroys every session (tombstones), admin only. Locks are
// deleted too (they belong to the namespace, and their sessions are gone)
// but, not being sessions, not counted.
func (e *Engine) sessClear(c *Call) {
	if !e.flushBefore(c) {
		return
	}
	var mu sync.Mutex
	var n int64
	err := e.store.ForEachLive(c.Ctx, store.PrefixPattern(e.opts.Prefix), func(ctx context.Context, b *store.Batch, keys []string) error {
		results := make([]store.DestroyResult, 0, len(keys))
		var locks []store.ForwardResult
		for _, k := range keys {
			if e.isLockKey(k) {
				locks = append(locks, b.Forward(false, "del", k))
			} else {
				results = append(results, b.Destroy(k, e.grace()))
			}
		}
		if err := b.Exec(ctx); err != nil {
			return err
		}
		for _, r := range locks {
			if _, err := r.Result(); err != nil {
				return err
			}
		}
		var destroyed int64
		for _, r := range results {
			live, _, err := r.Result()
			if err != nil {
				return err
			}
			if live {
				destroyed++
			}
		}
		mu.Lock()
		n += destroyed
		mu.Unlock()
		return nil
	})
	if err != nil {
		e.fail(c, "", err)
		return
	}
	c.Out.Int(n)
}

// scanArgs are the options of SESS.SCAN and SCAN.
type scanArgs struct {
	cursor  uint64
	count   int64
	match   string // SCAN only; "" = everything under the prefix
	keyType string // SCAN only: TYPE; "" = every type
}

func parseScanArgs(args [][]byte, allowMatch bool) (scanArgs, string) {
	var s scanArgs
	cursor, err := strconv.ParseUint(string(args[0]), 10, 64)
	if err != nil {
		return s, msgInvalidCursor
	}
	s.cursor = cursor
	for i := 1; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return s, msgSyntax
		}
		switch opt := string(bytes.ToUpper(args[i])); {
		case opt == "COUNT":
			n, ok := parseInt(args[i+1])
			if !ok || n < 1 {
				return s, msgNotInteger
			}
			s.count = n
		case opt == "MATCH" && allowMatch:
			s.match = string(args[i+1])
		case opt == "TYPE" && allowMatch:
			// Redis's own type names; the upstream filters, and a
			// tombstone, whatever its type, is never listed.
			s.keyType = strings.ToLower(string(args[i+1]))
		default:
			return s, msgSyntax
		}
	}
	return s, ""
}

// SESS.SCAN cursor [COUNT n]: [next-cursor, [ids…]], across every master.
func (e *Engine) sessScan(c *Call) { e.scanPage(c, false) }

// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]: confined to the session prefix,
// tombstones filtered; the cursor spans every master.
func (e *Engine) scan(c *Call) { e.scanPage(c, true) }

// scanPage serves one step of SCAN (keys, MATCH allowed) or SESS.SCAN (ids).
func (e *Engine) scanPage(c *Call, keys bool) {
	args, msg := parseScanArgs(c.Args[1:], keys)
	if msg != "" {
		c.Out.Error(msg)
		return
	}
	if !e.flushBefore(c) {
		return
	}
	pattern, filter := e.confine(args.match)
	page, next, err := e.store.Scan(c.Ctx, args.cursor, pattern, args.keyType, args.count)
	if err == store.ErrBadCursor {
		c.Out.Error(msgInvalidCursor)
		return
	}
	if err != nil {
		e.fail(c, "", err)
		return
	}
	page = filterKeys(page, filter)
	if !keys {
		page = e.sessionKeys(page) // SCAN is a listing of keys, locks included
	}
	c.Out.Array(2)
	c.Out.BulkString(strconv.FormatUint(next, 10))
	c.Out.Array(len(page))
	for _, k := range page {
		if keys {
			c.Out.BulkString(k)
		} else {
			c.Out.BulkString(k[len(e.opts.Prefix):])
		}
	}
}

// KEYS pattern: served by SCAN inside the prefix, never by KEYS upstream.
func (e *Engine) keys(c *Call) {
	if !e.flushBefore(c) {
		return
	}
	all, err := e.liveKeys(c.Ctx, string(c.Args[1]))
	if err != nil {
		e.fail(c, "", err)
		return
	}
	c.Out.Array(len(all))
	for _, k := range all {
		c.Out.BulkString(k)
	}
}

// confine turns a client's MATCH pattern into one that stays inside the
// prefix. A pattern that starts with the prefix goes to Redis as it is;
// any other ("*", "user*") scans the whole prefix and is applied here as
// a filter (with * and ? wildcards).
func (e *Engine) confine(pattern string) (upstream, filter string) {
	if pattern == "" || pattern == "*" {
		return store.PrefixPattern(e.opts.Prefix), ""
	}
	if strings.HasPrefix(pattern, e.opts.Prefix) && store.PrefixPattern(e.opts.Prefix) == e.opts.Prefix+"*" {
		return pattern, ""
	}
	return store.PrefixPattern(e.opts.Prefix), pattern
}

// filterKeys keeps the keys matching pattern ("" keeps all).
func filterKeys(keys []string, pattern string) []string {
	if pattern == "" {
		return keys
	}
	out := keys[:0]
	for _, k := range keys {
		if match.Match(k, pattern) {
			out = append(out, k)
		}
	}
	return out
}

// liveKeys lists every live session key matching a client's pattern
// ("" or "*": all), confined to the prefix.
func (e *Engine) liveKeys(ctx context.Context, match string) ([]string, error) {
	pattern, filter := e.confine(match)
	var mu sync.Mutex
	var all []string
	err := e.store.ForEachLive(ctx, pattern, func(_ context.Context, _ *store.Batch, keys []string) error {
		keys = filterKeys(keys, filter)
		mu.Lock()
		all = append(all, keys...)
		mu.Unlock()
		return nil
	})
	return all, err
}

// flushBefore executes the commands queued ahead of a command that reads
// the store directly, so it sees their writes. It answers the client and
// returns false when that fails.
func (e *Engine) flushBefore(c *Call) bool {
	if err := c.exec(); err != nil {
		e.fail(c, "", err)
		return false
	}
	return true
}

// grace is the tombstone lifetime; zero when tombstones are off.
func (e *Engine) grace() time.Duration {
	if e.opts.Tombstones {
		return e.opts.Grace
	}
	return 0
}
