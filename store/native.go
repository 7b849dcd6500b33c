package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Native writes (tombstone.format = "typed"): a session write is Redis's
// own SET key value PX ttl GET, one command and no script. A typed
// tombstone is a set, so SET … GET answers WRONGTYPE without writing, as
// it does for a hash session; only on that rare path is TYPE asked which
// of the two it was.

// nativeTimeout bounds the TYPE a WRONGTYPE reply leads to.
const nativeTimeout = 5 * time.Second

// nativeSet holds a native write's arguments and its reply in one
// allocation: go-redis takes the arguments as interfaces, and boxing each
// string would allocate.
type nativeSet struct {
	args    [6]interface{}
	key, px string
	value   payloadArg
	// raw is the write as go-redis sends it, its reply read past, not into
	// a string.
	raw rawSet
}

// rawSet is a native write whose reply — the previous value, sent back
// only because SET needs GET to answer WRONGTYPE on a tombstone — is read
// past rather than into a string: a session's whole value, allocated and
// copied for each overwrite only to be dropped. The reply keeps what
// matters of it (previousReply). An error reply read raw is given back
// to go-redis as the command's error, so a cluster's pipelines see MOVED
// and ASK and follow them; settle turns a nil reply into redis.Nil once
// its pipeline has run (sender.sendWave). The command is held by value,
// in nativeSet's one allocation (init).
type rawSet struct {
	redis.RawWriteToCmd
	reply previousReply
}

// init makes r the raw write of args. go-redis's constructor is inlined,
// so the command it builds is copied here without an allocation of its own.
func (r *rawSet) init(args []interface{}) {
	r.RawWriteToCmd = *redis.NewRawWriteToCmd(context.Background(), &r.reply, args...)
}

// addNative queues a Native write of value at key with ttl.
func (b *Batch) addNative(key string, value []byte, ttl time.Duration, grace time.Duration) WriteResult {
	n := &nativeSet{key: key, px: b.pxArg(ttl), value: value}
	n.args = [6]interface{}{"set", &n.key, &n.value, "px", &n.px, "get"}
	n.raw.init(n.args[:])
	b.add(&n.raw, false, key)
	return WriteResult{set: n, s: b.s, key: key, grace: grace}
}

// payloadArg is a value go-redis writes as it is (encoding.BinaryMarshaler):
// boxed as a pointer into nativeSet, it costs no allocation of its own, as
// a []byte in an interface would.
type payloadArg []byte

// MarshalBinary is the value itself.
func (p *payloadArg) MarshalBinary() ([]byte, error) { return *p, nil }

// pxArg is msArg(ttl), kept from the batch's last write: a namespace's
// writes nearly all carry its one default TTL.
func (b *Batch) pxArg(ttl time.Duration) string {
	if ttl != b.lastTTL || b.lastPX == "" {
		b.lastTTL, b.lastPX = ttl, msArg(ttl)
	}
	return b.lastPX
}

// reply is SET … GET's answer: nil when there was no previous value,
// WRONGTYPE when the key holds a tombstone or a hash (not written), and
// whether the previous value was a string tombstone.
func (n *nativeSet) reply() (stringTomb bool, err error) {
	if err := n.raw.Err(); err != nil {
		return false, err
	}
	if !n.raw.reply.complete {
		return false, errNoResult // its batch did not run
	}
	return n.raw.reply.isTombstone(), nil
}

// nativeResult maps SET … GET's reply: the previous value or nil,
// written; or WRONGTYPE, not written.
func (w WriteResult) nativeResult() (Outcome, []byte, error) {
	key := w.key
	stringTomb, err := w.set.reply()
	switch {
	case err == redis.Nil:
		return Applied, nil, nil
	case IsWrongType(err):
		tomb, terr := w.s.isTypedTombstone(key)
		switch {
		case terr != nil:
			return NotApplied, nil, terr
		case tomb:
			return NotApplied, nil, ErrTombstoned
		}
		return NotApplied, nil, err // a hash session: Redis's own WRONGTYPE
	case err != nil:
		return NotApplied, nil, err
	case stringTomb:
		// A string tombstone, which only a proxy still on the string
		// format past the transition can have written: the write went
		// through. Put the tombstone back, typed, and refuse the write.
		return NotApplied, nil, w.s.retomb(key, w.grace)
	}
	return Applied, nil, nil
}

// settle gives the command redis.Nil when there was no previous value (an
// error reply is already its error: previousReply.Write).
func (r *rawSet) settle() {
	if r.Err() != nil || !r.reply.complete {
		return
	}
	switch r.reply.line[0] {
	case '$':
		if r.reply.size < 0 {
			r.SetErr(redis.Nil)
		}
	default: // SET … GET answers a bulk string, nil or an error
		r.SetErr(fmt.Errorf("unexpected reply to SET … GET: %q", r.reply.line[:1]))
	}
}

// previousReply receives a reply raw (go-redis's RawWriteToCmd): its first
// line, and of a bulk string the size and the first bytes, enough to tell
// a string tombstone; the rest is skipped (ReadFrom). go-redis writes the
// first line and its CRLF with Write, and copies a bulk string's bytes and
// CRLF with io.CopyN, which reads them through ReadFrom. Each reply starts
// over, so a reply cut short by a broken connection leaves nothing behind.
type previousReply struct {
	lineBuf  [16]byte
	line     []byte // the first line, without its CRLF
	size     int    // a bulk string's size; -1 for nil
	head     [len(Tombstone)]byte
	headLen  int
	complete bool // the whole reply has been read
	inLine   bool // the first line is being written
}

func (p *previousReply) Write(b []byte) (int, error) {
	if !p.inLine { // a new reply: go-redis writes the line, then CRLF
		p.line, p.size, p.headLen, p.complete, p.inLine = p.lineBuf[:0], -1, 0, false, true
		if len(b) > 0 && b[0] == '-' {
			// An error reply, whole (go-redis has read its CRLF): given
			// back as this Write's error, go-redis sets it as the
			// command's, reads on (it is a Redis error reply) and acts
			// on it as on any, closing a connection that answered
			// READONLY (a demoted master behind a name or address
			// that moved).
			p.line = append(p.line, b...)
			p.complete, p.inLine = true, false
			return len(b), replyError(b[1:])
		}
	}
	if string(b) != "\r\n" {
		p.line = append(p.line, b...)
		return len(b), nil
	}
	p.inLine = false
	if len(p.line) == 0 {
		return 0, errors.New("empty reply line")
	}
	if p.line[0] == '$' {
		if n, err := strconv.Atoi(string(p.line[1:])); err == nil && n >= 0 {
			p.size = n
			return len(b), nil // the bulk string's bytes follow, through ReadFrom
		}
	}
	p.complete = true
	return len(b), nil
}

// ReadFrom reads a bulk string and its CRLF from r to the end, keeping the
// first bytes of a value as long as a string tombstone. go-redis's reader
// is a bufio.Reader (under io.CopyN's LimitedReader): the rest is skipped
// there with Discard, neither copied nor allocated.
func (p *previousReply) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	if p.size == len(Tombstone) { // the only size worth looking at
		n, err := io.ReadFull(r, p.head[:])
		p.headLen, total = n, int64(n)
		if err != nil {
			return total, err
		}
	}
	var err error
	if lr, ok := r.(*io.LimitedReader); ok {
		if d, ok := lr.R.(interface{ Discard(int) (int, error) }); ok {
			var n int
			n, err = d.Discard(int(lr.N))
			lr.N -= int64(n)
			total += int64(n)
			p.complete = err == nil && total == int64(p.size)+2
			return total, err
		}
	}
	var scratch [64]byte
	for err == nil { // any other reader: a few bytes at a time
		var n int
		n, err = r.Read(scratch[:])
		total += int64(n)
	}
	if err != io.EOF {
		return total, err
	}
	p.complete = total == int64(p.size)+2
	return total, nil
}

// isTombstone reports whether the previous value was a string tombstone.
func (p *previousReply) isTombstone() bool {
	return p.size == len(Tombstone) && string(p.head[:p.headLen]) == Tombstone
}

// isTypedTombstone asks whether key holds a typed tombstone, after a
// command on it answered WRONGTYPE.
func (s *Store) isTypedTombstone(key string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), nativeTimeout)
	defer cancel()
	n, err := typedTombScript.Run(ctx, s.client, []string{key}).Int64()
	s.observe(err)
	return n == 1, err
}

// typedTombScript answers 1 when KEYS[1] is a typed tombstone: TYPE and
// SISMEMBER in one step.
var typedTombScript = newScript(luaTypedTomb + `
if typed_tomb(KEYS[1]) then return 1 end
return 0
`)

// retomb writes a typed tombstone at key over the session a Native write
// just stored there, and answers ErrTombstoned (or the failure).
func (s *Store) retomb(key string, grace time.Duration) error {
	if grace <= 0 {
		grace = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), nativeTimeout)
	defer cancel()
	err := destroyScript.Run(ctx, s.client, []string{key}, msArg(grace), "0", string(NoGuard), string(TombstoneTyped)).Err()
	s.observe(err)
	if err != nil {
		return err
	}
	return ErrTombstoned
}

// CheckNativeWrites fails when a master runs a Redis older than 6.2, whose
// SET has no GET option: tombstone.format = "typed" needs it once its
// transition is over. The embedded upstream has it.
func (s *Store) CheckNativeWrites(ctx context.Context) error {
	if s.embedded != nil {
		return nil
	}
	return s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return fmt.Errorf("INFO server on %s: %w", s.nodeName(c), err)
		}
		version := infoField(info, "redis_version")
		if !atLeast(version, 6, 2) {
			return fmt.Errorf("%s runs Redis %q: tombstone.format = \"typed\" needs Redis >= 6.2 (SET … GET)", s.nodeName(c), version)
		}
		return nil
	})
}

// MutableScriptLibraries names a master whose Redis is older than 7.0,
// with its version ("" when every master runs 7.0 or later, or the
// upstream is embedded). Before 7.0 a script can change the Lua libraries
// (string, table…) that the scripts after it see, so one client's script
// can change what a later wrapped script's policy checks call.
func (s *Store) MutableScriptLibraries(ctx context.Context) (node, version string, err error) {
	if s.embedded != nil {
		return "", "", nil // miniredis gives each script a Lua state of its own
	}
	var mu sync.Mutex // masters are asked at once
	err = s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return fmt.Errorf("INFO server on %s: %w", s.nodeName(c), err)
		}
		if v := infoField(info, "redis_version"); !atLeast(v, 7, 0) {
			mu.Lock()
			if node == "" {
				node, version = s.nodeName(c), v
			}
			mu.Unlock()
		}
		return nil
	})
	return node, version, err
}

// infoField is the value of field in an INFO reply ("" when absent).
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// atLeast reports whether version (major.minor.patch) is major.minor or
// later.
func atLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}
