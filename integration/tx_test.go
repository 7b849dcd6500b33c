package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testTxPolicy: a transaction's writes get the TTL policy, each checked in
// Redis directly. The keys share a hash tag, so one slot in a cluster.
func testTxPolicy(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	a, b, cl := "sess:{tx}a", "sess:{tx}b", "sess:{tx}c"
	cmds, err := c.TxPipelined(bg, func(pipe redis.Pipeliner) error {
		pipe.Set(bg, a, `{"v":1}`, 0)
		pipe.Get(bg, a)
		pipe.Set(bg, b, `{"v":2}`, 0)
		pipe.Expire(bg, b, 100*time.Second)
		pipe.Set(bg, cl, `{"v":3}`, 365*24*time.Hour)
		pipe.Get(bg, "sess:{tx}missing")
		return nil
	})
	if !errors.Is(err, redis.Nil) { // the last GET's null
		t.Fatalf("TxPipelined: %v, want the null of its last GET", err)
	}
	for _, cmd := range cmds[:5] {
		if cmd.Err() != nil {
			t.Errorf("%v: %v", cmd.Args(), cmd.Err())
		}
	}
	if got := cmds[1].(*redis.StringCmd).Val(); got != `{"v":1}` {
		t.Errorf("GET inside the transaction = %q, want the SET before it", got)
	}
	p.wantStored(t, a, `{"v":1}`)
	p.wantTTL(t, a, defaultTTL)
	p.wantTTL(t, b, 100*time.Second)
	p.wantTTL(t, cl, maxTTL) // clamped to ttl.max
}

// testTxTombstone: a write to a destroyed session fails inside EXEC's
// reply with TOMBSTONE while the others apply, as Redis's own runtime
// errors do.
func testTxTombstone(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	wantReply(t, c, 0, "DEL", "sess:{tx}t") // a tombstone whether or not it existed
	cmds, err := c.TxPipelined(bg, func(pipe redis.Pipeliner) error {
		pipe.Set(bg, "sess:{tx}u", `{"v":1}`, 0)
		pipe.Set(bg, "sess:{tx}t", `{"v":1}`, 0)
		pipe.Do(bg, "SESS.SET", "{tx}w", `{"v":2}`)
		return nil
	})
	if err == nil || !strings.HasPrefix(err.Error(), "TOMBSTONE ") {
		t.Fatalf("TxPipelined = %v, want the TOMBSTONE of its second command", err)
	}
	if cmds[0].Err() != nil || cmds[2].Err() != nil {
		t.Errorf("the other writes failed: %v, %v", cmds[0].Err(), cmds[2].Err())
	}
	if err := cmds[1].Err(); err == nil || err.Error() != "TOMBSTONE session {tx}t was destroyed" {
		t.Errorf("write to the tombstoned key: %v", err)
	}
	p.wantTombstone(t, "sess:{tx}t")
	p.wantStored(t, "sess:{tx}u", `{"v":1}`)
	p.wantStored(t, "sess:{tx}w", `{"v":2}`)
	p.wantTTL(t, "sess:{tx}u", defaultTTL)
}

// testTxExecAbort: a queue-time error makes EXEC answer EXECABORT with
// nothing applied; so does one in a transaction pipelined in one write.
func testTxExecAbort(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	rc := p.raw(t)
	wantRaw(t, rc, status("OK"), "MULTI")
	wantRaw(t, rc, status("QUEUED"), "SET", "sess:{tx}x", `{"v":1}`)
	wantRawErrPrefix(t, rc, "NOPERM key 'other:{tx}' is outside the session namespace", "GET", "other:{tx}")
	wantRaw(t, rc, status("QUEUED"), "SESS.SET", "{tx}y", `{}`)
	wantRawErrPrefix(t, rc, "EXECABORT Transaction discarded because of previous errors.", "EXEC")
	p.wantMissing(t, "sess:{tx}x")
	p.wantMissing(t, "sess:{tx}y")

	var pipeline []byte
	for _, cmd := range [][]string{{"MULTI"}, {"SET", "sess:{tx}x", `{"v":1}`}, {"SESS.IDS"}, {"EXEC"}, {"MULTI"}, {"SET", "sess:{tx}x", `{"v":2}`}, {"EXEC"}} {
		pipeline = append(pipeline, encode(cmd...)...)
	}
	rc.write(pipeline)
	for i, want := range []interface{}{status("OK"), status("QUEUED"), respError(""), respError(""), status("OK"), status("QUEUED"), []interface{}{status("OK")}} {
		got, err := rc.read()
		if err != nil {
			t.Fatalf("pipelined reply %d: %v", i, err)
		}
		if _, isErr := want.(respError); isErr {
			if _, ok := got.(respError); !ok {
				t.Errorf("pipelined reply %d = %#v, want an error", i, got)
			}
		} else if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("pipelined reply %d = %#v, want %#v", i, got, want)
		}
	}
	p.wantStored(t, "sess:{tx}x", `{"v":2}`)

	wantRawErrPrefix(t, rc, "ERR EXEC without MULTI", "EXEC")
	wantRawErrPrefix(t, rc, "ERR DISCARD without MULTI", "DISCARD")
	wantRaw(t, rc, status("OK"), "MULTI")
	wantRawErrPrefix(t, rc, "ERR MULTI calls can not be nested", "MULTI")
	wantRawErrPrefix(t, rc, "ERR WATCH inside MULTI is not allowed", "WATCH", "sess:{tx}x")
	wantRaw(t, rc, status("OK"), "DISCARD")
}

// testTxCrossSlot: in a cluster a transaction's keys share one slot, else
// CROSSSLOT at queue or WATCH time; elsewhere any keys go.
func testTxCrossSlot(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	keys := up.spreadKeys(t, "sess:txs-", 2)
	rc := p.raw(t)
	if !up.cluster() {
		wantRaw(t, rc, status("OK"), "WATCH", keys[0], keys[1])
		wantRaw(t, rc, status("OK"), "MULTI")
		wantRaw(t, rc, status("QUEUED"), "SET", keys[0], `{}`)
		wantRaw(t, rc, status("QUEUED"), "SET", keys[1], `{}`)
		wantRaw(t, rc, []interface{}{status("OK"), status("OK")}, "EXEC")
		p.wantStored(t, keys[1], `{}`)
		return
	}
	wantRawErrPrefix(t, rc, "CROSSSLOT Keys in request don't hash to the same slot", "WATCH", keys[0], keys[1])
	wantRaw(t, rc, status("OK"), "WATCH", keys[0])
	wantRawErrPrefix(t, rc, "CROSSSLOT Keys in request don't hash to the same slot", "WATCH", keys[1])
	wantRaw(t, rc, status("OK"), "MULTI")
	wantRaw(t, rc, status("QUEUED"), "SET", keys[0], `{}`)
	wantRawErrPrefix(t, rc, "CROSSSLOT Keys in request don't hash to the same slot", "SET", keys[1], `{}`)
	wantRawErrPrefix(t, rc, "EXECABORT", "EXEC")
	p.wantMissing(t, keys[0])
	wantRaw(t, rc, status("OK"), "MULTI")
	wantRaw(t, rc, status("QUEUED"), "GET", keys[1])
	wantRawErrPrefix(t, rc, "CROSSSLOT", "MGET", keys[0], keys[1])
	wantRaw(t, rc, status("OK"), "DISCARD")
}

// testTxWatch: a WATCHed key written through a second proxy, or straight
// to Redis, aborts the EXEC (go-redis: TxFailedErr) with nothing run.
func testTxWatch(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	q := startSibling(t, up, nil)
	c, other := p.client(t), q.client(t)
	key := "sess:{txw}k"
	wantReply(t, c, "OK", "SET", key, `{"v":0}`)
	for _, tc := range []struct {
		name  string
		write func() error
		value string
	}{
		{"another proxy", func() error { return other.Set(bg, key, `{"v":1}`, 0).Err() }, `{"v":1}`},
		{"Redis directly", func() error { return up.direct.Set(bg, key, `{"v":2}`, time.Hour).Err() }, `{"v":2}`},
	} {
		err := c.Watch(bg, func(tx *redis.Tx) error {
			if err := tx.Get(bg, key).Err(); err != nil {
				return err
			}
			if err := tc.write(); err != nil {
				return err
			}
			_, err := tx.TxPipelined(bg, func(pipe redis.Pipeliner) error {
				pipe.Set(bg, key, `{"v":99}`, 0)
				pipe.Set(bg, "sess:{txw}other", `{}`, 0)
				return nil
			})
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			t.Errorf("%s: Watch = %v, want TxFailedErr", tc.name, err)
		}
		p.wantStored(t, key, tc.value)
		p.wantMissing(t, "sess:{txw}other")
	}
	// Unchanged, it runs.
	err := c.Watch(bg, func(tx *redis.Tx) error {
		_, err := tx.TxPipelined(bg, func(pipe redis.Pipeliner) error {
			pipe.Set(bg, key, `{"v":3}`, 0)
			return nil
		})
		return err
	}, key)
	if err != nil {
		t.Fatalf("Watch of an unchanged key: %v", err)
	}
	p.wantStored(t, key, `{"v":3}`)
}

// testTxOptimisticCounter: 20 goroutines × 50 optimistic increments of a
// session's counter (GET, then SET under WATCH, through go-redis's Watch
// and TxPipelined) end exactly at 1,000. The proxy serves no INCR, so the
// counter is a field of the session's JSON.
func testTxOptimisticCounter(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t, func(o *redis.Options) { o.PoolSize = 20 })
	const workers, increments = 20, 50
	key := "sess:counter"
	wantReply(t, c, "OK", "SET", key, `{"n":0}`)
	var attempts, retries atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < increments; i++ {
				for {
					attempts.Add(1)
					err := c.Watch(bg, func(tx *redis.Tx) error {
						raw, err := tx.Get(bg, key).Bytes()
						if err != nil {
							return err
						}
						var s struct{ N int }
						if err := json.Unmarshal(raw, &s); err != nil {
							return err
						}
						_, err = tx.TxPipelined(bg, func(pipe redis.Pipeliner) error {
							pipe.Set(bg, key, fmt.Sprintf(`{"n":%d}`, s.N+1), 0)
							return nil
						})
						return err
					}, key)
					if errors.Is(err, redis.TxFailedErr) {
						retries.Add(1)
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("increment: %v", err)
	}
	t.Logf("%s: %d×%d optimistic increments: %d attempts, %d retries, %v",
		up.name, workers, increments, attempts.Load(), retries.Load(), time.Since(start).Round(time.Millisecond))
	p.wantStored(t, key, fmt.Sprintf(`{"n":%d}`, workers*increments))
	p.wantTTL(t, key, defaultTTL)
}
