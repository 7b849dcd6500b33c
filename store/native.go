package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// nativeSet holds a native write's arguments in one allocation: go-redis
// takes them as interfaces, and boxing each string would allocate.
type nativeSet struct {
	args    [6]interface{}
	key, px string
}

// addNative queues a Native write of value at key with ttl.
func (b *Batch) addNative(key string, value []byte, ttl time.Duration, grace time.Duration) WriteResult {
	n := &nativeSet{key: key, px: b.pxArg(ttl)}
	n.args = [6]interface{}{"set", &n.key, value, "px", &n.px, "get"}
	cmd := redis.NewCmd(context.Background(), n.args[:]...)
	b.add(cmd, false, key)
	return WriteResult{cmd: cmd, native: true, s: b.s, key: key, grace: grace}
}

// pxArg is msArg(ttl), kept from the batch's last write: a namespace's
// writes nearly all carry its one default TTL.
func (b *Batch) pxArg(ttl time.Duration) string {
	if ttl != b.lastTTL || b.lastPX == "" {
		b.lastTTL, b.lastPX = ttl, msArg(ttl)
	}
	return b.lastPX
}

// nativeResult maps SET … GET's reply: the previous value or nil,
// written; or WRONGTYPE, not written.
func (w WriteResult) nativeResult() (Outcome, []byte, error) {
	key := w.key
	old, err := w.cmd.Text()
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
	case old == Tombstone:
		// A string tombstone, which only a proxy still on the string
		// format past the transition can have written: the write went
		// through. Put the tombstone back, typed, and refuse the write.
		return NotApplied, nil, w.s.retomb(key, w.grace)
	}
	return Applied, nil, nil
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
