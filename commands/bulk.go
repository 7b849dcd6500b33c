package commands

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/sessproxy/sessproxy/internal/glob"
	"github.com/sessproxy/sessproxy/store"
)

// The bulk commands walk every master with SCAN, a page at a time, and run
// their follow-up commands per page on that page's own node: never one
// giant MGET or DEL, never CROSSSLOT. Tombstones are skipped.

// SESS.IDS
func (e *Engine) sessIDs(c *Call) {
	sp := c.space(e)
	keys, err := e.liveKeysIn(c.Ctx, sp, "", true, c.Out.Room())
	if err != nil {
		e.fail(c, keyRef{}, err)
		return
	}
	c.Out.Array(len(keys))
	for _, k := range keys {
		c.Out.BulkString(k[len(sp.prefix):])
	}
}

// SESS.LENGTH: the live sessions of a namespace (tombstones, locks and
// keys outside it excluded), and DBSIZE: of every namespace, counted by
// scanning every master.
func (e *Engine) sessLength(c *Call) {
	spaces := []*space{c.space(e)}
	if c.cmd != nil && c.cmd.Name == "dbsize" {
		spaces = e.spaces
	}
	var total int64
	for _, sp := range spaces {
		n, err := e.store.CountLive(c.Ctx, sp.prefix, func(k string) bool { return !e.isSessionKey(sp, k) })
		if err != nil {
			e.fail(c, keyRef{}, err)
			return
		}
		total += n
	}
	c.Out.Int(total)
}

// SESS.ALL: id payload id payload … (a map in RESP3).
//
// Every session is held until the reply is written (a map's length comes
// first), so the reply limit is checked as they are fetched: a chunk at a
// time (nextChunkSize), stopping once what is gathered passes the room the
// client's reply has left. Written, it then takes the writer over its
// limit and the client gets the reply-limit error, as for any reply too
// large. Gathered whole first, a namespace's sessions were all held at
// once whatever the limit (120 sessions of 400 KiB: +52 MiB for a client
// allowed 1 MiB).
func (e *Engine) sessAll(c *Call) {
	all := gathering[sessionEntry]{room: c.Out.Room()}
	sp := c.space(e)
	err := e.store.ForEachLive(c.Ctx, store.PrefixPattern(sp.prefix), func(ctx context.Context, b *store.Batch, keys []string) error {
		keys = e.sessionKeys(sp, keys)
		for lo, size := 0, firstChunkKeys; lo < len(keys); {
			chunk := keys[lo:min(lo+size, len(keys))]
			lo += len(chunk)
			page, n, err := e.readSessions(ctx, b, sp, chunk)
			if err != nil {
				return err
			}
			if err := all.add(page, n); err != nil {
				return err
			}
			size = nextChunkSize(len(chunk), n)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errGatheredPastRoom) {
		e.fail(c, keyRef{}, err)
		return
	}
	c.Out.Map(len(all.items))
	for _, en := range all.items {
		c.Out.BulkString(en.sid)
		c.Out.Bulk(en.payload)
	}
}

// errGatheredPastRoom stops a listing's walk (SESS.ALL, SESS.IDS, KEYS)
// once its reply cannot fit.
var errGatheredPastRoom = errors.New("listing gathered past the reply's room")

// gathering is what a listing's walk has gathered so far, from the walk's
// goroutines (ForEachLive walks a cluster's masters at once), and the
// bytes of reply they make against room.
type gathering[T any] struct {
	mu    sync.Mutex
	items []T
	bytes int64
	room  int64
}

// add keeps items, n bytes of reply, and says errGatheredPastRoom once
// what is gathered passes room.
func (g *gathering[T]) add(items []T, n int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.items = append(g.items, items...)
	if g.bytes += n; g.bytes > g.room {
		return errGatheredPastRoom
	}
	return nil
}

// sessionEntry is one session of SESS.ALL's reply.
type sessionEntry struct {
	sid     string
	payload []byte
}

// readSessions fetches the sessions at keys, all on b's node, and returns
// them with their size. A hash session reads as missing in the page's
// MGET (or as WRONGTYPE alone): its fields are read in a second step, as a
// JSON object.
func (e *Engine) readSessions(ctx context.Context, b *store.Batch, sp *space, keys []string) ([]sessionEntry, int64, error) {
	gets := make([]store.GetResult, len(keys))
	for i, k := range keys {
		gets[i] = b.Get(k)
	}
	if err := b.Exec(ctx); err != nil {
		return nil, 0, err
	}
	hashes := make(map[int]store.HashResult)
	for i, g := range gets {
		if _, err := g.Result(); (err == store.ErrNotFound && !g.Absent()) || store.IsWrongType(err) {
			hashes[i] = b.HashRead(keys[i], 0, "HGETALL")
		}
	}
	if len(hashes) > 0 {
		if err := b.Exec(ctx); err != nil {
			return nil, 0, err
		}
	}
	page := make([]sessionEntry, 0, len(keys))
	var size int64
	for i, g := range gets {
		sid := keys[i][len(sp.prefix):]
		var payload []byte
		if h, ok := hashes[i]; ok {
			fields, found, err := h.Result()
			if err != nil {
				return nil, 0, err
			}
			if !found { // destroyed since the page was read
				continue
			}
			payload = hashJSON(fields)
		} else {
			stored, err := g.Result()
			if err != nil {
				return nil, 0, err
			}
			if payload, _, err = sp.codec.Decode(stored); err != nil {
				return nil, 0, &decodeError{sid: sid, err: err}
			}
		}
		page = append(page, sessionEntry{sid, payload})
		size += int64(len(sid) + len(payload))
	}
	return page, size, nil
}

// SESS.CLEAR: destroys every session (tombstones), admin only. Locks are
// deleted too (they belong to the namespace, and their sessions are gone)
// but, not being sessions, not counted.
func (e *Engine) sessClear(c *Call) {
	var mu sync.Mutex
	var n int64
	sp := c.space(e)
	err := e.store.ForEachLive(c.Ctx, store.PrefixPattern(sp.prefix), func(ctx context.Context, b *store.Batch, keys []string) error {
		results := make([]store.DestroyResult, 0, len(keys))
		var locks []store.ForwardResult
		for _, k := range keys {
			switch {
			case !e.owns(sp, k): // a namespace with a longer prefix: not this one's to clear
			case sp.isLockKey(k):
				locks = append(locks, b.Forward(false, "del", k))
			default:
				results = append(results, b.Destroy(k, sp.grace, sp.format))
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
		e.fail(c, keyRef{}, err)
		return
	}
	c.Out.Int(n)
}

// maxScanCount bounds SCAN's and SESS.SCAN's COUNT, a hint in Redis's
// contract, not a promise: a page comes back in one upstream SCAN, is
// checked for tombstones in one pipeline of as many EXISTS, and is held
// whole. Uncapped, SCAN 0 COUNT 1000000000 walked all 200,000 sessions of
// a keyspace in one Redis call and peaked the proxy at +395 MiB for a
// client allowed 1 MiB of replies (hostile round 5). The keyspace walks
// use pages of the same size (store.scanCount).
const maxScanCount = 1000

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
			s.count = min(n, maxScanCount)
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
	sp := c.space(e)
	if keys {
		sp = e.scanSpace(args.match)
	}
	pattern, filter := confine(sp, args.match)
	page, next, err := e.store.Scan(c.Ctx, args.cursor, pattern, args.keyType, args.count)
	if err == store.ErrBadCursor {
		c.Out.Error(msgInvalidCursor)
		return
	}
	if err != nil {
		e.fail(c, keyRef{}, err)
		return
	}
	page = filterKeys(page, filter)
	if keys {
		page = e.ownedKeys(sp, page) // SCAN is a listing of keys, locks included
	} else {
		page = e.sessionKeys(sp, page)
	}
	c.Out.Array(2)
	c.Out.BulkString(strconv.FormatUint(next, 10))
	c.Out.Array(len(page))
	for _, k := range page {
		if keys {
			c.Out.BulkString(k)
		} else {
			c.Out.BulkString(k[len(sp.prefix):])
		}
	}
}

// KEYS pattern: served by SCAN inside the prefix, never by KEYS upstream.
func (e *Engine) keys(c *Call) {
	all, err := e.liveKeysIn(c.Ctx, e.scanSpace(string(c.Args[1])), string(c.Args[1]), false, c.Out.Room())
	if err != nil {
		e.fail(c, keyRef{}, err)
		return
	}
	c.Out.Array(len(all))
	for _, k := range all {
		c.Out.BulkString(k)
	}
}

// scanSpace is the namespace SCAN or KEYS lists for a MATCH pattern: the
// one whose prefix the pattern starts with (the longest), else the
// default. A listing never mixes namespaces.
func (e *Engine) scanSpace(pattern string) *space {
	for _, sp := range e.byLength {
		if strings.HasPrefix(pattern, sp.prefix) {
			return sp
		}
	}
	return e.spaces[0]
}

// ownedKeys drops, in place, the keys of namespaces with a longer prefix
// than sp's from a page under sp's prefix.
func (e *Engine) ownedKeys(sp *space, keys []string) []string {
	if len(e.spaces) == 1 {
		return keys
	}
	out := keys[:0]
	for _, k := range keys {
		if e.owns(sp, k) {
			out = append(out, k)
		}
	}
	return out
}

// confine turns a client's MATCH pattern into one that stays inside sp's
// prefix. A pattern that starts with the prefix goes to Redis as it is;
// any other ("*", "user*") scans the whole prefix and is applied here as
// a filter, with Redis's glob syntax.
func confine(sp *space, pattern string) (upstream, filter string) {
	if pattern == "" || pattern == "*" {
		return store.PrefixPattern(sp.prefix), ""
	}
	if strings.HasPrefix(pattern, sp.prefix) && store.PrefixPattern(sp.prefix) == sp.prefix+"*" {
		return pattern, ""
	}
	return store.PrefixPattern(sp.prefix), pattern
}

// filterKeys keeps the keys matching pattern ("" keeps all).
func filterKeys(keys []string, pattern string) []string {
	if pattern == "" {
		return keys
	}
	out := keys[:0]
	for _, k := range keys {
		if glob.Match(pattern, k) {
			out = append(out, k)
		}
	}
	return out
}

// liveKeysIn lists the live keys of namespace sp matching a client's
// pattern ("" or "*": all), confined to its prefix; with ids, only its
// sessions (no locks), whose ids the reply gives without the prefix.
//
// Every name is held until the reply is written (an array's length comes
// first), so the walk stops once the names gathered pass room, the bytes
// the client's reply has left (c.Out.Room): written, the reply then takes
// the writer over its limit and the client gets the reply-limit error, as
// SESS.ALL's does. Gathered whole first, four KEYS * at once over 200,000
// sessions of 250-byte ids peaked the proxy at +460 MiB for clients
// allowed 1 MiB.
func (e *Engine) liveKeysIn(ctx context.Context, sp *space, match string, ids bool, room int64) ([]string, error) {
	pattern, filter := confine(sp, match)
	all := gathering[string]{room: room}
	err := e.store.ForEachLive(ctx, pattern, func(_ context.Context, _ *store.Batch, keys []string) error {
		keys = filterKeys(keys, filter)
		if ids {
			keys = e.sessionKeys(sp, keys)
		} else {
			keys = e.ownedKeys(sp, keys)
		}
		var n int64
		for _, k := range keys {
			n += int64(len(k))
		}
		if ids {
			n -= int64(len(keys) * len(sp.prefix))
		}
		return all.add(keys, n)
	})
	if errors.Is(err, errGatheredPastRoom) {
		err = nil
	}
	return all.items, err
}

// flushBefore executes the commands queued ahead of a command that reads
// the store directly, so it sees their writes: Dispatch calls it for the
// commands flagged flagFlush, handlers for what they queue mid-way. It
// answers the client and returns false when that fails.
func (e *Engine) flushBefore(c *Call) bool {
	if err := c.exec(); err != nil {
		e.fail(c, keyRef{}, err)
		return false
	}
	return true
}
