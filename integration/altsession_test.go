package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store"
)

// altSessionStore is a session store in the style of alt-session: one
// Redis hash per session, one field per attribute, and an idle timeout the
// store keeps itself. Each get or set is the hash command followed by
// EXPIRE <idle>, pipelined, as such a store sends them; invalidate is DEL.
// (hashSessionStore in hashes_test.go leaves the sliding to ttl.idle.)
type altSessionStore struct {
	rdb    *redis.Client
	prefix string
	idle   time.Duration
}

// do pipelines a hash command on id's key with the store's EXPIRE, and
// returns the hash command and the EXPIRE's error.
func (s altSessionStore) do(ctx context.Context, id string, hashCmd func(redis.Pipeliner, string) redis.Cmder) (redis.Cmder, error) {
	key := s.prefix + id
	var cmd redis.Cmder
	var expire *redis.BoolCmd
	_, _ = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		cmd = hashCmd(pipe, key)
		expire = pipe.Expire(ctx, key, s.idle)
		return nil
	})
	return cmd, expire.Err()
}

func (s altSessionStore) set(ctx context.Context, id, field, value string) error {
	cmd, err := s.do(ctx, id, func(p redis.Pipeliner, key string) redis.Cmder { return p.HSet(ctx, key, field, value) })
	return errors.Join(cmd.Err(), err)
}

func (s altSessionStore) get(ctx context.Context, id, field string) (string, error) {
	cmd, err := s.do(ctx, id, func(p redis.Pipeliner, key string) redis.Cmder { return p.HGet(ctx, key, field) })
	v, getErr := cmd.(*redis.StringCmd).Result()
	return v, errors.Join(getErr, err)
}

func (s altSessionStore) mget(ctx context.Context, id string, fields ...string) ([]interface{}, error) {
	cmd, err := s.do(ctx, id, func(p redis.Pipeliner, key string) redis.Cmder { return p.HMGet(ctx, key, fields...) })
	v, getErr := cmd.(*redis.SliceCmd).Result()
	return v, errors.Join(getErr, err)
}

func (s altSessionStore) remove(ctx context.Context, id, field string) error {
	cmd, err := s.do(ctx, id, func(p redis.Pipeliner, key string) redis.Cmder { return p.HDel(ctx, key, field) })
	return errors.Join(cmd.Err(), err)
}

func (s altSessionStore) invalidate(ctx context.Context, id string) error {
	return s.rdb.Del(ctx, s.prefix+id).Err()
}

// testAltSessionStore runs the alt-session style store through the proxy,
// with the TTL policy's defaults (the 300 s comes from the store's EXPIRE
// alone) and with ttl.idle = 300s as well, each step checked in Redis.
func testAltSessionStore(t *testing.T, up *upstream) {
	const idle = 300 * time.Second
	configs := []struct {
		name  string
		tweak func(*commands.Options, *proxy.Options)
	}{
		{"defaults", nil},
		{"ttl.idle", func(o *commands.Options, _ *proxy.Options) { o.Policy.Idle = idle }},
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			p := startProxy(t, up, cfg.tweak)
			st := altSessionStore{rdb: p.client(t), prefix: "sess:", idle: idle}
			testAltSessionStoreOn(t, p, st)
		})
	}
}

func testAltSessionStoreOn(t *testing.T, p *proxyHandle, st altSessionStore) {
	const id, key, lowered = "alt-s1", "sess:alt-s1", time.Minute

	// Fields round-trip; each set leaves the store's idle TTL.
	fields := []struct{ name, value string }{{"user", "ada"}, {"cart", `{"n":2}`}, {"csrf", "tok"}}
	for _, f := range fields {
		if err := st.set(bg, id, f.name, f.value); err != nil {
			t.Fatalf("set %s: %v", f.name, err)
		}
		p.wantTTL(t, key, st.idle)
	}
	p.wantHash(t, key, map[string]string{"user": "ada", "cart": `{"n":2}`, "csrf": "tok"})
	for _, f := range fields {
		if v, err := st.get(bg, id, f.name); err != nil || v != f.value {
			t.Errorf("get %s = %q, %v; want %q", f.name, v, err, f.value)
		}
	}

	// Every read and write slides the TTL back to idle: lowered in Redis
	// directly, then back at 300 s after the call through the proxy.
	steps := []struct {
		name string
		call func() (interface{}, error)
		want interface{}
	}{
		{"get", func() (interface{}, error) { return st.get(bg, id, "user") }, "ada"},
		{"mget", func() (interface{}, error) { return st.mget(bg, id, "cart", "none", "user") }, []interface{}{`{"n":2}`, nil, "ada"}},
		{"set", func() (interface{}, error) { return nil, st.set(bg, id, "user", "grace") }, nil},
		{"remove", func() (interface{}, error) { return nil, st.remove(bg, id, "csrf") }, nil},
	}
	for _, s := range steps {
		p.lowerTTL(t, key, lowered)
		got, err := s.call()
		if err != nil || fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("%s = %v, %v; want %v", s.name, got, err, s.want)
		}
		p.wantTTL(t, key, st.idle)
	}
	p.wantHash(t, key, map[string]string{"user": "grace", "cart": `{"n":2}`})
	if _, err := st.get(bg, id, "csrf"); !errors.Is(err, redis.Nil) {
		t.Errorf("get of a removed field: %v, want redis.Nil", err)
	}

	// Invalidate leaves a tombstone.
	if err := st.invalidate(bg, id); err != nil {
		t.Fatalf("invalidate: %v", err)
	}
	p.wantTombstone(t, key)

	// A later field write is refused, HSET and EXPIRE alike, and writes
	// nothing: the tombstone stays, with the TTL it had (lowered first, so
	// that an EXPIRE 300 getting through would show).
	p.lowerTTL(t, key, lowered)
	err := st.set(bg, id, "user", "mallory")
	var refused []string
	for _, e := range unjoin(err) {
		refused = append(refused, e.Error())
	}
	if want := []string{destroyedError(id), destroyedError(id)}; fmt.Sprint(refused) != fmt.Sprint(want) {
		t.Errorf("set after invalidate: HSET, EXPIRE errors %q, want %q", refused, want)
	}
	p.wantStored(t, key, store.Tombstone)
	if d := p.pttl(t, key); d > lowered || d <= 0 {
		t.Errorf("upstream: PTTL %s = %v after a refused write, want the tombstone's %v or less", key, d, lowered)
	}

	// A read finds no field; its EXPIRE is a write to a destroyed session
	// and is refused too (Redis would answer 0 for a missing key), leaving
	// the tombstone as it was.
	v, err := st.get(bg, id, "user")
	errs := unjoin(err)
	if v != "" || len(errs) != 2 || !errors.Is(errs[0], redis.Nil) || errs[1].Error() != destroyedError(id) {
		t.Errorf("get after invalidate = %q, %v; want redis.Nil for HGET and %q for EXPIRE", v, err, destroyedError(id))
	}
	p.wantStored(t, key, store.Tombstone)
	if d := p.pttl(t, key); d > lowered || d <= 0 {
		t.Errorf("upstream: PTTL %s = %v after a read, want the tombstone's %v or less", key, d, lowered)
	}
}

// unjoin is the errors errors.Join joined (nil for none).
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}
