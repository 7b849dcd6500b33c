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

// SESS.BYOWNER owner: ids of the live sessions whose owner_field is owner.
func (e *Engine) sessByOwner(c *Call) {
	owner := string(c.Args[1])
	sessions, ok := e.ownedSessions(c, c.space(e), owner)
	if !ok {
		return
	}
	c.Out.Array(len(sessions))
	for _, s := range sessions {
		c.Out.BulkString(s.sid)
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
	pending, ok := e.ownedSessions(c, sp, owner)
	if !ok {
		return
	}
	sids := make([]string, len(pending))
	for i, s := range pending {
		sids[i] = s.sid
	}
	var n int64
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == maxUpdateAttempts {
			c.Out.Error(errBusy(pending[0].sid))
			return
		}
		results := make([]store.DestroyResult, len(pending))
		for i, s := range pending {
			results[i] = c.Batch.GetDestroy(sp.prefix+s.sid, sp.grace, sp.format, store.GuardUnchanged(s.stored))
		}
		if !e.flushBefore(c) {
			return
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
				return
			case live:
				n++
			}
		}
		pending = rewritten
	}
	c.Batch.IndexRemove(e.ownerKey(sp, owner), sids)
	c.Out.Int(n)
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

// ownedSessions reads owner's index and checks every member against the
// session itself: members whose session is gone or now belongs to someone
// else are pruned from the index and left out.
func (e *Engine) ownedSessions(c *Call, sp *space, owner string) ([]ownedSession, bool) {
	if sp.ownerField == "" {
		c.Out.Error(msgNoOwnerField)
		return nil, false
	}
	index := e.ownerKey(sp, owner)
	read := c.Batch.IndexMembers(index)
	if !e.flushBefore(c) {
		return nil, false
	}
	members, err := read.Result()
	if err != nil {
		e.fail(c, keyRef{}, err)
		return nil, false
	}
	gets := make([]store.GetResult, len(members))
	for i, m := range members {
		gets[i] = c.Batch.Get(sp.prefix + m)
	}
	if !e.flushBefore(c) {
		return nil, false
	}
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
			return nil, false
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
	return owned, true
}
