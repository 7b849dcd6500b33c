package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// transport sends commands upstream and waits for all their replies; each
// command then holds its own reply or error. key, when not "", is a key of
// the slot every one of the commands falls in (a cluster's transport sends
// them to that slot's master).
type transport interface {
	send(ctx context.Context, cmds []redis.Cmder, key string)
}

// autoTransport sends through the store's auto-pipeliner, merged with
// other clients' commands, in submission order.
type autoTransport struct {
	ap      *redis.AutoPipeliner
	futures []redis.AutoFuture
}

func (t *autoTransport) send(ctx context.Context, cmds []redis.Cmder, _ string) {
	for _, cmd := range cmds {
		t.futures = append(t.futures, t.ap.Submit(ctx, cmd))
	}
	for _, f := range t.futures {
		_ = f.Wait() // the error is the command's own, read from it
	}
	clear(t.futures)
	t.futures = t.futures[:0]
}

// pipeTransport sends as one pipeline (of a node, or of a pinned
// connection).
type pipeTransport struct{ pipe redis.Pipeliner }

func (t pipeTransport) send(ctx context.Context, cmds []redis.Cmder, _ string) {
	for _, cmd := range cmds {
		_ = t.pipe.Process(ctx, cmd)
	}
	_, _ = t.pipe.Exec(ctx)
}

// upstream is what the sender needs of the store besides its transport.
type upstream interface {
	// reloadScripts loads the proxy's scripts, and users, on every
	// master.
	reloadScripts(ctx context.Context, users []*UserScript) error
	// markMigrating makes slot's runs go one key per command for a while.
	markMigrating(slot int)
	// observe counts a command's failure.
	observe(err error)
}

var _ upstream = (*Store)(nil)

// sender sends a plan's calls, in waves where order needs them, and sends
// again what did not run.
type sender struct {
	t  transport
	up upstream
	// waves: commands sent together may run out of order (a cluster's
	// auto-pipeliner follows each ASK on its own), so a command that must
	// follow another of its batch waits for its reply (sendInWaves).
	waves bool
	// received is the size of the replies since TakeReplyBytes.
	received int64
	cmds     []redis.Cmder
	pending  []int
}

// exec sends p's calls, then recovers; parties says whose ops are
// (Batch.SetParty).
func (sn *sender) exec(ctx context.Context, ops []op, parties []partyMark, p *plan) {
	pending := sn.pending[:0]
	for i := range p.calls {
		if !p.calls[i].split {
			pending = append(pending, i)
		}
	}
	sn.send(ctx, p, pending)
	sn.recover(ctx, ops, parties, p, pending)
	sn.pending = pending[:0]
}

// maxRecoveryRounds bounds recover: a round's re-sent commands can meet the
// next condition (split writes sent on to a node that lost its scripts).
const maxRecoveryRounds = 3

// recover sends again, in order, what did not run and what must see it.
// Two answers mean a command had no effect:
//   - NOSCRIPT: the node restarted or was failed over and lost its script
//     cache. The scripts are loaded everywhere first; if that fails, the
//     commands that got NOSCRIPT carry its error.
//   - TRYAGAIN, to a run's MGET or script call: in a cluster, a slot being
//     migrated, with some of its keys moved, refuses multi-key commands
//     until the migration ends, and serves or redirects (ASK) single keys.
//     The run goes again one key per command, and so do the slot's runs
//     for a while (migrationHold).
//
// The reads after the first of them go again too, so a read queued after a
// write sees it. But a command is not sent again when a later write to one
// of its keys did run: a read would see that later write, a write would
// undo it. Such a read keeps its first answer, and then a write before it
// to one of its keys is not sent again either: the answer would be stale.
// Such a write keeps its error.
//
// That rule orders every command of the batch after the ones before it,
// which is right for one client's. Where the batch carries several
// clients' (parties), none of them has an answer yet, so any order among
// different clients' commands is one Redis could have run them in: a
// command also goes again when no later command of its own client keeps
// its first result, whatever other clients' commands did to its keys. It
// then runs after them, and its client's later commands after it.
// Without that, one client's write to a key (a PHP process polling a lock
// with SET NX) made another's script that met NOSCRIPT on the same key
// (the lock's release) fail.
func (sn *sender) recover(ctx context.Context, ops []op, parties []partyMark, p *plan, sent []int) {
	var party []int64 // each op's, once a round needs it
	for round := 0; round < maxRecoveryRounds; round++ {
		first, noScript := -1, false
		for i, c := range sent {
			if p.calls[c].didNotRun() {
				if first < 0 {
					first = i
				}
				noScript = noScript || isNoScript(p.calls[c].cmd.Err())
			}
		}
		if first < 0 {
			return
		}
		if noScript {
			var users []*UserScript
			for _, c := range sent[first:] {
				if u := p.calls[c].user; u != nil && isNoScript(p.calls[c].cmd.Err()) {
					users = append(users, u)
				}
			}
			if err := sn.up.reloadScripts(ctx, users); err != nil {
				for _, c := range sent[first:] {
					if cmd := p.calls[c].cmd; isNoScript(cmd.Err()) {
						cmd.SetErr(err) // the client sees why, not NOSCRIPT
					}
				}
				return
			}
		}
		if party == nil {
			party = partiesOf(parties, len(ops))
		}
		if sent = sn.again(ops, party, p, sent[first:]); len(sent) == 0 {
			return
		}
		sn.send(ctx, p, sent)
	}
}

// didNotRun reports whether c's answer says it had no effect.
func (c *call) didNotRun() bool {
	err := c.cmd.Err()
	return isNoScript(err) || (isTryAgain(err) && c.run)
}

// again returns, in order, the calls of sent (from the first that did not
// run on) to send again, as recover describes. It splits the runs that got
// TRYAGAIN into their per-key calls; those not sent again keep the
// TRYAGAIN. party is each op's client (0: not known).
func (sn *sender) again(ops []op, party []int64, p *plan, sent []int) []int {
	// Walking backwards collects the keys of the writes that ran after each
	// call (ran), and of the reads after it that keep their first answer
	// (pinned): a write sent again before such a read would make its answer
	// stale, so it keeps its error instead. kept holds the clients with a
	// later command that keeps its first result, ran or read (keptUnknown:
	// one whose client is not known). resend[i], or per key of a split run
	// keyResend[i], says what goes again.
	resend := make([]bool, len(sent))
	keyResend := make([][]bool, len(sent))
	ran, pinned := make(map[string]bool), make(map[string]bool)
	ranUnknown, pinnedUnknown := false, false // keys the proxy cannot name
	kept, keptUnknown := make(map[int64]bool), false
	// last: nothing of the clients of ops after them stays, so they can go
	// after everything that ran.
	last := func(ops []int) bool {
		if keptUnknown {
			return false
		}
		for _, o := range ops {
			if who := party[o]; who == 0 || kept[who] {
				return false
			}
		}
		return true
	}
	free := func(c *call, ops []int, keys []string, write bool) bool {
		if last(ops) {
			return true
		}
		if ranUnknown || (write && pinnedUnknown) {
			return false
		}
		if c.opaque {
			return len(ran) == 0 && (!write || len(pinned) == 0)
		}
		for _, k := range keys {
			if ran[k] || (write && pinned[k]) {
				return false
			}
		}
		return true
	}
	keep := func(o int) {
		if who := party[o]; who != 0 {
			kept[who] = true
		} else {
			keptUnknown = true
		}
	}
	for i := len(sent) - 1; i >= 0; i-- {
		c := &p.calls[sent[i]]
		switch {
		case c.didNotRun() && c.run:
			// A run: split it, unless it got NOSCRIPT and can go again whole.
			all := true
			keyResend[i] = make([]bool, len(c.keys))
			for j := range c.keys {
				keyResend[i][j] = free(c, c.ops[j:j+1], c.keys[j:j+1], !c.read)
				all = all && keyResend[i][j]
			}
			if all && isNoScript(c.cmd.Err()) {
				resend[i], keyResend[i] = true, nil
			}
		case c.didNotRun():
			resend[i] = free(c, c.ops, c.keys, !c.read)
		case c.read:
			if resend[i] = free(c, c.ops, c.keys, false); !resend[i] {
				pinnedUnknown = pinnedUnknown || c.opaque
				for _, k := range c.keys {
					pinned[k] = true
				}
				for _, o := range c.ops {
					keep(o)
				}
			}
		case c.opaque:
			ranUnknown = true
			for _, o := range c.ops {
				keep(o)
			}
		default:
			for _, k := range c.keys {
				ran[k] = true
			}
			for _, o := range c.ops {
				keep(o)
			}
		}
	}
	var out []int
	for i, ci := range sent {
		switch {
		case keyResend[i] != nil:
			err := p.calls[ci].cmd.Err()
			if isTryAgain(err) {
				sn.up.markMigrating(p.calls[ci].slot)
			}
			from, to := p.splitCall(ops, ci)
			for j := from; j < to; j++ {
				if keyResend[i][j-from] {
					out = append(out, j)
				} else {
					p.calls[j].cmd.SetErr(err)
				}
			}
		case resend[i]:
			out = append(out, ci)
		}
	}
	return out
}

// send sends the calls sent of p and waits for their replies.
func (sn *sender) send(ctx context.Context, p *plan, sent []int) {
	if sn.waves && len(sent) > 1 {
		sn.sendInWaves(ctx, p, sent)
		return
	}
	sn.sendWave(ctx, p, sent)
}

// sendInWaves sends calls in as few waves as keep each key's commands in
// order: a command that reads a key an earlier command of its wave writes,
// or writes a key one of them touches, waits for that wave's replies. In a
// cluster, go-redis's auto-pipeliner follows each redirect (ASK, during a
// slot migration) on its own, so commands sent together could run out of
// order on the node they are sent on to. A command whose keys are not known
// here goes in a wave of its own. A pipeline rarely reads what it just
// wrote, so it is nearly always one wave.
func (sn *sender) sendInWaves(ctx context.Context, p *plan, calls []int) {
	var touched, written map[string]bool
	start, opaque := 0, false // opaque: the last command's keys are unknown
	for i, ci := range calls {
		c := &p.calls[ci]
		conflict := c.opaque || opaque
		opaque = c.opaque
		for _, k := range c.keys {
			if written[k] || (!c.read && touched[k]) {
				conflict = true
			}
		}
		if conflict && i > start {
			sn.sendWave(ctx, p, calls[start:i])
			start = i
			clear(touched)
			clear(written)
		}
		if touched == nil {
			touched, written = make(map[string]bool), make(map[string]bool)
		}
		for _, k := range c.keys {
			touched[k] = true
			if !c.read {
				written[k] = true
			}
		}
	}
	sn.sendWave(ctx, p, calls[start:])
}

// sendWave sends calls together and waits for their replies.
func (sn *sender) sendWave(ctx context.Context, p *plan, calls []int) {
	for _, c := range calls {
		sn.cmds = append(sn.cmds, p.calls[c].cmd)
	}
	sn.t.send(ctx, sn.cmds, oneSlotKey(p, calls))
	for _, cmd := range sn.cmds {
		if r, ok := cmd.(*rawSet); ok {
			r.settle() // its error reply, read raw, becomes its error
		}
		sn.up.observe(cmd.Err())
		sn.received += replySize(cmd)
	}
	clear(sn.cmds)
	sn.cmds = sn.cmds[:0]
}

// oneSlotKey is a key of the one cluster slot all of calls fall in, or ""
// (outside a cluster every slot is -1; a call whose keys are unknown here
// has none).
func oneSlotKey(p *plan, calls []int) string {
	var key string
	for _, ci := range calls {
		c := &p.calls[ci]
		if c.slot < 0 || len(c.keys) == 0 || c.slot != p.calls[calls[0]].slot {
			return ""
		}
		key = c.keys[0]
	}
	return key
}

// replySize estimates the memory a command's reply holds: its strings,
// and a few words for each element around them.
func replySize(cmd redis.Cmder) int64 {
	switch c := cmd.(type) {
	case *rawRead:
		return 24 + c.scan.received
	case *rawValue:
		return 24 + c.scan.received
	case *redis.Cmd:
		return valueSize(c.Val())
	case *redis.SliceCmd:
		return valueSize(c.Val())
	case *redis.StringCmd:
		return valueSize(c.Val())
	}
	return 16
}

func valueSize(v interface{}) int64 {
	switch v := v.(type) {
	case string:
		return 32 + int64(len(v))
	case []interface{}:
		n := int64(24)
		for _, e := range v {
			n += valueSize(e)
		}
		return n
	}
	return 16
}
