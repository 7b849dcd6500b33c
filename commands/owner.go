package commands

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/sessproxy/sessproxy/store"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"
)

// ownerIndexPrefix starts every owner index key. It is outside the session
// prefix, so the indexes never show up as sessions in SCAN or SESS.IDS.
const ownerIndexPrefix = "sessproxy:owner:"

// ownerKey is the index key of an owner's sessions (the owner hashed too
// with hash_ids: an owner id is personal data).
func (e *Engine) ownerKey(sp *space, owner string) string {
	if sp.hashIDs {
		sum := sha256.Sum256([]byte(owner))
		owner = hex.EncodeToString(sum[:])
	}
	return ownerIndexPrefix + sp.prefix + owner
}

// indexOwner queues recording that the session written with payload
// belongs to its owner. Every write path calls it — plain SET from
// connect-redis as much as SESS.SET — or "log out everywhere" would miss
// the sessions of apps that use plain commands.
func (e *Engine) indexOwner(c *Call, ref keyRef, payload []byte) {
	if ref.ns.ownerField == "" || !ref.ns.codec.JSON() {
		return
	}
	owner := gjson.GetBytes(payload, ref.ns.ownerField)
	if !owner.Exists() || owner.Type == gjson.Null || owner.String() == "" {
		return
	}
	c.Batch.IndexAdd(e.ownerKey(ref.ns, owner.String()), ref.key[len(ref.ns.prefix):], c.policy(ref.ns).Max)
}

// SESS.BYOWNER owner: ids of the live sessions whose owner_field is owner,
// in the index's order.
func (e *Engine) sessByOwner(c *Call) {
	var sids []string
	ok := e.forEachOwned(c, c.space(e), string(c.Args[1]), func(owned []ownedSession) bool {
		for _, s := range owned {
			sids = append(sids, s.sid)
		}
		return true
	})
	if !ok {
		return
	}
	c.Out.Array(len(sids))
	for _, sid := range sids {
		c.Out.BulkString(sid)
	}
}

// SESS.DESTROYOWNER owner: tombstones every session of owner ("log out
// everywhere"); :N sessions destroyed.
//
// Each destroy is on condition that the session is still the value whose
// owner was checked: one rewritten in between (its browser now logged in
// as someone else) is checked again, and destroyed only if it still
// belongs to owner.
func (e *Engine) sessDestroyOwner(c *Call) {
	owner, sp := string(c.Args[1]), c.space(e)
	index := e.ownerKey(sp, owner)
	var n int64
	ok := e.forEachOwned(c, sp, owner, func(owned []ownedSession) bool {
		destroyed, ok := e.destroyOwned(c, sp, owner, owned)
		n += destroyed
		if ok {
			sids := make([]string, len(owned))
			for i, s := range owned {
				sids[i] = s.sid
			}
			c.Batch.IndexRemove(index, sids)
		}
		return ok
	})
	if ok {
		c.Out.Int(n)
	}
}

// destroyOwned destroys the sessions of owned, one chunk of owner's index,
// each on condition that it is still the value checked (the guard is its
// digest), and returns how many were live. false: it answered an error.
func (e *Engine) destroyOwned(c *Call, sp *space, owner string, pending []ownedSession) (int64, bool) {
	var n int64
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == maxUpdateAttempts {
			c.Out.Error(errBusy(pending[0].sid))
			return n, false
		}
		results := make([]store.DestroyResult, len(pending))
		for i, s := range pending {
			results[i] = c.Batch.GetDestroy(sp.prefix+s.sid, sp.grace, sp.format, store.GuardUnchanged(s.stored))
		}
		if !e.flushBefore(c) {
			return n, false
		}
		var rewritten []ownedSession
		for i, r := range results {
			live, prev, err := r.Result()
			switch {
			case errors.Is(err, store.ErrCheckPrevious):
				if e.belongsTo(sp, prev, owner) {
					rewritten = append(rewritten, ownedSession{pending[i].sid, prev})
				}
			case err != nil:
				e.fail(c, keyRef{sid: pending[i].sid, key: sp.prefix + pending[i].sid, session: true, ns: sp}, err)
				return n, false
			case live:
				n++
			}
		}
		pending = rewritten
	}
	return n, true
}

// ownedSession is a session found to belong to an owner, with the stored
// value that said so.
type ownedSession struct {
	sid    string
	stored []byte
}

// belongsTo says whether stored is a session of owner; false when it cannot
// be decoded.
func (e *Engine) belongsTo(sp *space, stored []byte, owner string) bool {
	payload, _, err := sp.codec.Decode(stored)
	return err == nil && gjson.GetBytes(payload, sp.ownerField).String() == owner
}

// An owner index has no size bound, and checking a member means fetching
// its session's whole value: fetched all at once, an index's sessions were
// all held at once (100 sessions of 4 MiB: +800 MiB for a reply of 100
// ids). So the members are checked in chunks (nextChunkSize), each decided
// before the next is fetched.

// forEachOwned reads owner's index and checks its members against the
// sessions themselves, chunk by chunk, in the index's order: decide gets
// each chunk's sessions that belong to owner before the next chunk is
// fetched, and the values are dropped after it. Members whose session is
// gone or now belongs to someone else are pruned from the index and left
// out. false: it or decide answered an error.
func (e *Engine) forEachOwned(c *Call, sp *space, owner string, decide func([]ownedSession) bool) bool {
	if sp.ownerField == "" {
		c.Out.Error(msgNoOwnerField)
		return false
	}
	index := e.ownerKey(sp, owner)
	read := c.Batch.IndexMembers(index)
	if !e.flushBefore(c) {
		return false
	}
	members, err := read.Result()
	if err != nil {
		e.fail(c, keyRef{}, err)
		return false
	}
	// The replies received so far are held for their commands: account
	// them now (as chunks does), so that what each chunk brings can be
	// told apart below.
	c.setAsideReplies()
	if !c.holdReplies() {
		c.Out.Error(msgReplyLimit)
		return false
	}
	size := firstChunkKeys
	for lo := 0; lo < len(members); {
		chunk := members[lo:min(lo+size, len(members))]
		lo += len(chunk)
		owned, fetched, ok := e.checkOwned(c, sp, index, owner, chunk)
		if !ok || !decide(owned) {
			return false
		}
		size = nextChunkSize(len(chunk), fetched)
	}
	return true
}

// checkOwned fetches the sessions of members, one chunk of owner's index,
// and returns those that belong to owner, with the size of the replies
// that brought them. Those bytes are taken out of the proxy's account of
// replies held (TakeReplyBytes): they are dropped once the chunk is
// decided, not held for the client, and counted as held they would add up
// over the chunks to more than the client may hold at once. It queues
// pruning the chunk's stale members.
func (e *Engine) checkOwned(c *Call, sp *space, index, owner string, members []string) ([]ownedSession, int64, bool) {
	gets := make([]store.GetResult, len(members))
	for i, m := range members {
		gets[i] = c.Batch.Get(sp.prefix + m)
	}
	if !e.flushBefore(c) {
		return nil, 0, false
	}
	fetched := c.Batch.TakeReplyBytes()
	var owned []ownedSession
	var stale []string
	for i, g := range gets {
		stored, err := g.Result()
		switch {
		case errors.Is(err, store.ErrNotFound):
			stale = append(stale, members[i])
			continue
		case err != nil:
			e.fail(c, keyRef{sid: members[i], key: sp.prefix + members[i], session: true, ns: sp}, err)
			return nil, 0, false
		}
		payload, _, err := sp.codec.Decode(stored)
		if err != nil {
			// Its owner cannot be told (written with a key this proxy
			// lacks, say): keep it in the index, leave it out here, so one
			// such session does not block "log out everywhere".
			// Logged without the id: a session id is a credential.
			e.opts.Logger.Warn("owner index: a session cannot be decoded", zap.String("index", index), zap.Error(err))
			continue
		}
		if gjson.GetBytes(payload, sp.ownerField).String() == owner {
			owned = append(owned, ownedSession{members[i], stored})
		} else {
			stale = append(stale, members[i])
		}
	}
	c.Batch.IndexRemove(index, stale)
	return owned, fetched, true
}
