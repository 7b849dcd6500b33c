package store

import (
	"github.com/redis/go-redis/v9"
)

// plan is the upstream commands a batch's queued operations become, each
// mapped back to the operations it serves. build is a pure function of the
// operations and of which slots are being migrated; the buffers are reused
// from batch to batch.
//
//   - Consecutive plain reads of one slot (GET, SESS.GET) are one MGET; a
//     run of one is a GET. Consecutive checks that keys hold nothing
//     (Batch.Absent) are one EXISTS.
//   - Consecutive common-case writes of one slot are one setManyScript
//     call: a client's pipelined SETs then cost Redis one script call, not
//     one each.
//   - A run holds at most maxRunKeys keys, so a huge pipeline does not
//     hold Redis in one command for long.
//   - While its slot is being migrated (Store.slotMigrating), a run of
//     several keys is one command per key instead (see sender.recover).
//   - An unordered operation (the owner index) queued while a run of writes
//     is open goes after the run, so it does not split it.
//
// MGET answers nil where GET answers WRONGTYPE, so a key in the namespace
// that is not a string reads as missing when its read shares an MGET (with
// its pipeline's reads, or other clients' in the read combiner); a GET sent
// alone still gets the error; a command that must know looks again
// (Batch.Absent, absent.go).
type plan struct {
	calls []call
	run   []int    // the open run's operations
	after []int    // unordered operations waiting for the open write run
	ops   []int    // the calls' operations, sub-sliced
	keys  []string // the calls' keys, sub-sliced
}

// call is one upstream command of a plan.
type call struct {
	cmd redis.Cmder
	// kind is opRead, opWrite or opAbsent for a command that serves merged
	// reads, writes or checks (deliver gives each its result), opCommand
	// for an operation's own command.
	kind opKind
	// run marks a shared call that recovery splits one key per command on
	// TRYAGAIN: an MGET, or a setManyScript call not already split.
	run  bool
	read bool
	// ops are the operations it serves, in order (a run's, one per key);
	// keys are the keys it touches, nil when opaque.
	ops    []int
	keys   []string
	opaque bool
	slot   int
	script *redis.Script
	user   *UserScript
	// split: replaced by one call per key, appended after it.
	split bool
}

// maxRunKeys bounds one shared call.
const maxRunKeys = 128

func (p *plan) reset() {
	clear(p.calls)
	p.calls = p.calls[:0]
	p.run, p.after, p.ops = p.run[:0], p.after[:0], p.ops[:0]
	clear(p.keys)
	p.keys = p.keys[:0]
}

// build plans ops. migrating reports whether a slot is being migrated
// (nil: none is).
func (p *plan) build(ops []op, migrating func(slot int) bool) {
	p.reset()
	open := opCommand // the kind of the open run; opCommand: none
	for i := range ops {
		o := &ops[i]
		switch {
		case o.unordered && open == opWrite:
			p.after = append(p.after, i)
		case o.unordered:
			p.command(ops, i) // ahead of an open read run, which it cannot affect
		case o.kind == opCommand:
			p.closeRun(ops, open, migrating)
			open = opCommand
			p.command(ops, i)
		default:
			if open != o.kind || ops[p.run[0]].slot != o.slot || len(p.run) >= maxRunKeys {
				p.closeRun(ops, open, migrating)
				open = o.kind
			}
			p.run = append(p.run, i)
		}
	}
	p.closeRun(ops, open, migrating)
}

// command plans ops[i]'s own command.
func (p *plan) command(ops []op, i int) {
	o := &ops[i]
	c := call{cmd: o.cmd, kind: opCommand, read: o.read, opaque: o.opaque, slot: o.slot, script: o.script, user: o.user}
	c.ops = p.opsOf(i)
	if !o.opaque {
		start := len(p.keys)
		if o.keys != nil {
			p.keys = append(p.keys, o.keys...)
		} else {
			p.keys = append(p.keys, o.key)
		}
		c.keys = p.keys[start:len(p.keys):len(p.keys)]
	}
	p.calls = append(p.calls, c)
}

// opsOf records the operations a call serves.
func (p *plan) opsOf(idx ...int) []int {
	start := len(p.ops)
	p.ops = append(p.ops, idx...)
	return p.ops[start:len(p.ops):len(p.ops)]
}

// closeRun plans the open run of kind, then the unordered operations that
// waited for it.
func (p *plan) closeRun(ops []op, kind opKind, migrating func(int) bool) {
	if len(p.run) == 0 {
		return
	}
	idx := p.opsOf(p.run...)
	p.run = p.run[:0]
	start := len(p.keys)
	for _, i := range idx {
		p.keys = append(p.keys, ops[i].key)
	}
	keys := p.keys[start:len(p.keys):len(p.keys)]
	slot := ops[idx[0]].slot
	c := call{kind: kind, read: kind != opWrite, ops: idx, keys: keys, slot: slot}
	switch {
	case len(idx) > 1 && migrating != nil && migrating(slot):
		p.calls = append(p.calls, c)
		p.splitCall(ops, len(p.calls)-1)
	case kind == opRead:
		// Read raw, each value against its client's room.
		c.cmd, c.run = newRawRead(ops, idx, keys), len(idx) > 1
		p.calls = append(p.calls, c)
	case kind == opAbsent:
		c.cmd, c.run = existsCmd(keys), len(idx) > 1
		p.calls = append(p.calls, c)
	default:
		c.cmd, c.run, c.script = setManyCmd(ops, idx, keys), true, setManyScript
		p.calls = append(p.calls, c)
	}
	if kind == opWrite {
		for _, i := range p.after {
			p.command(ops, i)
		}
		p.after = p.after[:0]
	}
}

// splitCall replaces the run p.calls[c] with one call per key, appended
// to p.calls, and returns their indexes [from, to).
func (p *plan) splitCall(ops []op, c int) (from, to int) {
	p.calls[c].split = true
	r := p.calls[c]
	from = len(p.calls)
	for j := range r.keys {
		part := call{kind: r.kind, read: r.read, ops: r.ops[j : j+1 : j+1], keys: r.keys[j : j+1 : j+1], slot: r.slot}
		switch r.kind {
		case opRead:
			part.cmd = newRawRead(ops, part.ops, part.keys)
		case opAbsent:
			part.cmd = existsCmd(part.keys)
		default:
			part.cmd, part.script = setManyCmd(ops, part.ops, part.keys), setManyScript
		}
		p.calls = append(p.calls, part)
	}
	return from, len(p.calls)
}

// keysArgs are the arguments of command name (MGET, EXISTS) on keys.
func keysArgs(name string, keys []string) []interface{} {
	args := make([]interface{}, 1+len(keys))
	args[0] = name
	for i := range keys {
		// A pointer: boxing a string would allocate. go-redis writes and
		// hashes *string args; only its multi-shard routing would refuse
		// one, and its command policies (modules' commands only) give
		// neither MGET nor EXISTS one, though Redis marks both multi_shard.
		args[1+i] = &keys[i]
	}
	return args
}

// deliver gives every merged read and write its result, from the calls
// that served it.
func (p *plan) deliver(ops []op) {
	for i := range p.calls {
		c := &p.calls[i]
		if c.kind == opCommand || c.split {
			continue
		}
		if r, ok := c.cmd.(*rawRead); ok { // its values are in place already
			r.deliver()
			continue
		}
		if c.kind == opAbsent {
			deliverAbsent(ops, c)
			continue
		}
		// A run of writes (setManyCmd): each key's status, or its own
		// error reply (WRONGTYPE…).
		vals, err := c.cmd.(*redis.Cmd).Slice()
		for j, oi := range c.ops {
			res := ops[oi].res
			switch {
			case err != nil:
				res.err = err
			case j >= len(vals):
				res.err = errNoResult
			default:
				res.err, _ = vals[j].(error)
				res.status = asInt(vals[j])
			}
		}
	}
}
