package store

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cond is a write condition, as in SET NX/XX and EXPIRE NX/XX/GT/LT.
type Cond string

// Write conditions.
const (
	Always Cond = ""
	NX     Cond = "NX"
	XX     Cond = "XX"
	GT     Cond = "GT"
	LT     Cond = "LT"
	// XXLT is EXPIRE … XX LT: LT, and only on a key that has a TTL (plain
	// LT treats a key without one as infinite and applies).
	XXLT Cond = "XXLT"
)

// Outcome says what a write did.
type Outcome int

// Write outcomes.
const (
	NotApplied Outcome = iota // missing key, or the condition was not met
	Applied
	Deleted // the TTL was already over, so the key was deleted
)

// Write is a session value to store at a key.
type Write struct {
	Value []byte
	// TTL is the expiry to set; zero or negative deletes the key (the session
	// is already expired).
	TTL  time.Duration
	Cond Cond // Always, NX or XX
	// KeepTTL keeps the key's current TTL when it has one no longer than
	// MaxTTL; otherwise TTL applies. A write never leaves a key without one.
	KeepTTL bool
	MaxTTL  time.Duration
	// ReturnOld asks for the previous value (SET … GET, GETSET), and
	// Guard guards the write on it.
	ReturnOld bool
	Guard     Guard
	// Absolute is ttl.absolute: with it, Value carries its creation time in
	// its header, the stored creation time is kept, and the TTL is capped
	// to what is left of the lifetime. 0: off.
	Absolute time.Duration
	// Native sends a common-case write (no condition, no previous value,
	// no KEEPTTL, no absolute lifetime, a positive TTL) as Redis's own
	// SET … PX … GET rather than a script: under tombstone.format =
	// "typed", once no string tombstone can be left (Engine's transition),
	// a tombstone is a set and SET … GET refuses it with WRONGTYPE without
	// writing. Only then is TYPE asked, to tell a tombstone from a hash
	// session. Never inside a transaction (its script path is kept).
	Native bool
	// Grace is the namespace's tombstone lifetime, for a Native write that
	// met a string tombstone after all (a proxy left on the string format
	// past the transition): the tombstone is put back, as a typed one.
	Grace time.Duration
}

// WriteResult is the handle of a queued Write.
type WriteResult struct {
	cmd *redis.Cmd
	run *writeRun // set instead of cmd for a write merged into a run
	idx int       // its position in the run
	// native marks cmd as a Native write's SET … GET; its rare WRONGTYPE
	// or string-tombstone path asks s again, and may need grace. Held by
	// value: the hot path allocates no handle.
	native bool
	s      *Store
	grace  time.Duration
}

// Result is what the write did and, when asked for, the previous value (nil
// when there was none). A tombstoned key gives ErrTombstoned; a write its
// Guard stopped, ErrCheckPrevious with the previous value.
func (r WriteResult) Result() (Outcome, []byte, error) {
	if r.native {
		return r.nativeResult()
	}
	if r.run == nil {
		return scriptOutcome(r.cmd)
	}
	vals, err := r.run.results()
	if err != nil {
		return NotApplied, nil, err
	}
	if err, ok := vals[r.idx].(error); ok {
		return NotApplied, nil, err // this key's own error reply (WRONGTYPE…)
	}
	return outcome(vals[r.idx], nil)
}

// Write queues a tombstone-checked write of w at key.
func (b *Batch) Write(key string, w Write) WriteResult {
	keep := ""
	if w.KeepTTL {
		keep = msArg(w.MaxTTL)
	}
	if w.Cond == Always && !w.KeepTTL && !w.ReturnOld && w.Absolute == 0 {
		if w.Native && w.TTL > 0 && b.tx == nil && !b.dry {
			return b.addNative(key, w.Value, msArg(w.TTL), w.Grace)
		}
		return b.addToRun(key, w.Value, msArg(w.TTL))
	}
	ret := "0"
	if w.ReturnOld {
		ret = "1"
	}
	return WriteResult{cmd: b.script(writeScript, false, key, w.Value, msArg(w.TTL), string(w.Cond), keep, ret, msArg(w.Absolute), string(w.Guard))}
}

// DestroyResult is the handle of a queued Destroy.
type DestroyResult struct{ cmd *redis.Cmd }

// Result says whether a live session was there and, when asked for, its
// value. ErrCheckPrevious, with the value, when the guard stopped it.
func (r DestroyResult) Result() (live bool, old []byte, err error) {
	vals, err := r.cmd.Slice()
	if err != nil {
		return false, nil, err
	}
	if len(vals) > 1 {
		old = asBytes(vals[1])
	}
	switch asInt(vals[0]) {
	case 1:
		live = true
	case 3:
		return false, old, ErrCheckPrevious
	}
	return live, old, nil
}

// Destroy queues replacing key with a tombstone of format that lives for
// grace (or a plain delete when grace is zero: tombstones off).
func (b *Batch) Destroy(key string, grace time.Duration, format TombstoneFormat) DestroyResult {
	return DestroyResult{b.script(destroyScript, false, key, msArg(grace), "0", string(NoGuard), string(format))}
}

// GetDestroy is Destroy that also answers the previous value (GETDEL), with
// guard on it.
func (b *Batch) GetDestroy(key string, grace time.Duration, format TombstoneFormat, guard Guard) DestroyResult {
	return DestroyResult{b.script(destroyScript, false, key, msArg(grace), "1", string(guard), string(format))}
}

// ExpireResult is the handle of a queued Expire.
type ExpireResult struct{ cmd *redis.Cmd }

// Result is what the expire did and, when asked for, the value (nil when the
// key is missing). A tombstoned key gives ErrTombstoned; an expire its
// Guard stopped, ErrCheckPrevious with the value.
func (r ExpireResult) Result() (Outcome, []byte, error) {
	return scriptOutcome(r.cmd)
}

// Expiry is a TTL change for Expire.
type Expiry struct {
	TTL         time.Duration // <= 0 deletes
	Cond        Cond
	ReturnValue bool          // read the value in the same step (GETEX)
	Guard       Guard         // on that value
	Absolute    time.Duration // ttl.absolute: cap by the stored creation time; 0: off
}

// Expire queues setting the TTL of a live session at key.
func (b *Batch) Expire(key string, x Expiry) ExpireResult {
	ret := "0"
	if x.ReturnValue {
		ret = "1"
	}
	return ExpireResult{b.script(expireScript, false, key, msArg(x.TTL), string(x.Cond), ret, msArg(x.Absolute), string(x.Guard))}
}

// IntResult is the handle of a queued integer read.
type IntResult struct{ cmd *redis.Cmd }

// Result is the integer reply.
func (r IntResult) Result() (int64, error) { return r.cmd.Int64() }

// PTTL queues reading the TTL of key in milliseconds: -2 when there is no
// live session, -1 when the key has no TTL.
func (b *Batch) PTTL(key string) IntResult {
	return IntResult{b.script(inspectScript, true, key, "pttl")}
}

// Exists queues checking for a live session at key (1 or 0).
func (b *Batch) Exists(key string) IntResult {
	return IntResult{b.script(inspectScript, true, key, "exists")}
}

// TypeResult is the handle of a queued Type.
type TypeResult struct{ cmd *redis.Cmd }

// Result is the Redis type name; "none" for a tombstone.
func (r TypeResult) Result() (string, error) { return r.cmd.Text() }

// Type queues reading the type of key.
func (b *Batch) Type(key string) TypeResult {
	return TypeResult{b.script(inspectScript, true, key, "type")}
}

// GetResult is the handle of a queued Get.
type GetResult struct {
	cmd *redis.StringCmd
	run *readRun // set instead of cmd for a Get in a read run
	idx int      // its position in the run
	s   *Store   // for the WRONGTYPE of a GET sent alone
	key string
}

// Result is the stored value; ErrNotFound when the key is missing or holds a
// tombstone (either format).
func (r GetResult) Result() ([]byte, error) {
	v, err := r.raw()
	if err == redis.Nil || (err == nil && string(v) == Tombstone) {
		return nil, ErrNotFound
	}
	if IsWrongType(err) && r.s != nil {
		// A GET sent alone (not in an MGET, which answers nil): a hash
		// session, or a typed tombstone, which reads as absent.
		if tomb, terr := r.s.isTypedTombstone(r.key); terr != nil {
			return nil, terr
		} else if tomb {
			return nil, ErrNotFound
		}
	}
	return v, err
}

// raw is the read's own reply: the value, redis.Nil, or its error.
func (r GetResult) raw() ([]byte, error) {
	switch {
	case r.run == nil:
		return r.cmd.Bytes()
	case r.run.done:
		return r.run.val, r.run.err
	case r.run.gets != nil:
		return r.run.gets[r.idx].Bytes()
	case r.run.get != nil:
		return r.run.get.Bytes()
	case r.run.mget == nil:
		return nil, errNoResult // read before its batch ran
	}
	vals, err := r.run.mget.Slice()
	if err != nil {
		return nil, err
	}
	if r.idx >= len(vals) {
		return nil, errNoResult
	}
	s, ok := vals[r.idx].(string)
	if !ok {
		return nil, redis.Nil // MGET's nil for a missing or non-string key
	}
	return []byte(s), nil
}

// Get queues reading the session at key.
func (b *Batch) Get(key string) GetResult {
	return b.addRead(key)
}

// GetSliding queues reading the session at key and resetting its TTL to
// idle (ttl.idle; 0: leave it), capped by its absolute lifetime when
// absolute > 0 (a session past it is deleted and reads as missing).
func (b *Batch) GetSliding(key string, idle, absolute time.Duration) GetResult {
	cmd := redis.NewStringCmd(context.Background(), "evalsha", readScript.Hash(), 1, key, msArg(idle), msArg(absolute))
	b.add(cmd, false)
	return GetResult{cmd: cmd, s: b.s, key: key}
}

// ForwardResult is the handle of a forwarded command.
type ForwardResult struct{ cmd *redis.Cmd }

// Result is the upstream's reply as go-redis decodes it (nil for a null).
func (r ForwardResult) Result() (interface{}, error) {
	v, err := r.cmd.Result()
	if err == redis.Nil {
		return nil, nil
	}
	return v, err
}

// Forward queues a command unchanged (keys outside the session prefix, with
// outside_prefix = "passthrough"). read marks it free of side effects.
func (b *Batch) Forward(read bool, args ...interface{}) ForwardResult {
	cmd := redis.NewCmd(context.Background(), args...)
	b.add(cmd, read)
	return ForwardResult{cmd}
}

// scriptOutcome decodes the {status[, value]} reply of the write and expire
// scripts.
func scriptOutcome(cmd *redis.Cmd) (Outcome, []byte, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return NotApplied, nil, err
	}
	var val []byte
	if len(vals) > 1 {
		val = asBytes(vals[1])
	}
	return outcome(vals[0], val)
}

// outcome maps a script's status code.
func outcome(status interface{}, val []byte) (Outcome, []byte, error) {
	switch asInt(status) {
	case -1:
		return NotApplied, nil, ErrTombstoned
	case 1:
		return Applied, val, nil
	case 2:
		return Deleted, val, nil
	case 3:
		return NotApplied, val, ErrCheckPrevious
	default:
		return NotApplied, val, nil
	}
}

func asInt(v interface{}) int64 {
	n, _ := v.(int64)
	return n
}

func asBytes(v interface{}) []byte {
	if s, ok := v.(string); ok {
		return []byte(s)
	}
	return nil
}

// msArg renders a duration as whole milliseconds for a script argument,
// rounding up so a positive TTL never becomes 0 (which means "delete").
func msArg(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)
}
