package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
)

func testPipeline(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)

	// 100 mixed commands in one go-redis pipeline, over many slots: each
	// reply is the one for its own command, and a read sees the write
	// queued before it.
	type step struct {
		cmd  *redis.Cmd
		args []interface{}
		want []string // acceptable replies; an error reply matches by prefix
	}
	var steps []step
	pipe := c.Pipeline()
	add := func(want []string, args ...interface{}) {
		steps = append(steps, step{pipe.Do(bg, args...), args, want})
	}
	one := func(s string) []string { return []string{s} }
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("pl-%d", i)
		v := fmt.Sprintf(`{"i":%d}`, i)
		ttl := []string{"86400", "86399"}
		add(one("OK"), "SET", "sess:"+id, v)
		add(one(v), "SESS.GET", id)
		switch i % 4 {
		case 0:
			add(one("NOPERM key 'plain' is outside the session namespace"), "GET", "plain")
		case 1:
			add(one("1"), "DEL", "sess:"+id)
			ttl = one("-2") // the tombstone reads as no key
		case 2:
			add(one("ERR unknown or unsupported command 'FOO'"), "FOO")
		default:
			add(one(id), "ECHO", id)
		}
		add(ttl, "TTL", "sess:"+id)
		add(one("PONG"), "PING")
	}
	if len(steps) != 100 {
		t.Fatalf("built %d commands, want 100", len(steps))
	}
	_, _ = pipe.Exec(bg) // the first error; each command is checked below
	for i, s := range steps {
		v, err := s.cmd.Result()
		got := fmt.Sprint(v)
		if err != nil {
			got = err.Error()
		}
		ok := false
		for _, w := range s.want {
			ok = ok || got == w || (err != nil && strings.HasPrefix(got, w))
		}
		if !ok {
			t.Errorf("command %d %v = %q, want one of %q", i, s.args, got, s.want)
		}
	}

	// One raw write of many commands: a DEL and the writes after it in the
	// same batch see each other.
	rc := p.raw(t)
	var req []byte
	var wants []interface{}
	for i := 0; i < 10; i++ {
		key := fmt.Sprintf("sess:raw-%d", i)
		req = append(req, encode("SET", key, `{"n":1}`)...)
		req = append(req, encode("GET", key)...)
		req = append(req, encode("DEL", key)...)
		req = append(req, encode("GET", key)...)
		req = append(req, encode("SET", key, `{"n":2}`)...)
		wants = append(wants, status("OK"), `{"n":1}`, int64(1), nil,
			respError(destroyedError(key[len("sess:"):])))
	}
	rc.write(req)
	rc.wantReplies(wants...)
}

// scriptFlush empties the script cache of every master, as a restart or a
// failover would.
func scriptFlush(t *testing.T, up *upstream) {
	t.Helper()
	err := up.forEachMaster(bg, func(ctx context.Context, c *redis.Client) error {
		return c.ScriptFlush(ctx).Err()
	})
	if err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
}

func testNoScriptRecovery(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	wantReply(t, c, "OK", "SESS.SET", "ns", `{"v":1}`)

	scriptFlush(t, up)
	wantReply(t, c, "OK", "SESS.SET", "ns", `{"v":2}`)
	wantReply(t, c, `{"v":2}`, "SESS.GET", "ns")
	p.wantTTL(t, "sess:ns", defaultTTL)

	// In one pipeline, over every node: the writes that hit NOSCRIPT run
	// again, and the reads queued after them see their effect.
	scriptFlush(t, up)
	k := up.spreadKeys(t, "sess:nsp-", 3)
	pipe := c.Pipeline()
	var cmds []*redis.Cmd
	var wants []interface{}
	for i, key := range k {
		v := fmt.Sprintf(`{"i":%d}`, i)
		cmds = append(cmds, pipe.Do(bg, "SESS.SET", key[5:], v), pipe.Do(bg, "SESS.GET", key[5:]),
			pipe.Do(bg, "SESS.TTL", key[5:]), pipe.Do(bg, "EXISTS", key), pipe.Do(bg, "GET", key))
		wants = append(wants, "OK", v, 86400, 1, v)
	}
	if _, err := pipe.Exec(bg); err != nil {
		t.Fatalf("pipeline after SCRIPT FLUSH: %v", err)
	}
	for i, cmd := range cmds {
		v, _ := cmd.Result()
		if got := fmt.Sprint(v); got != fmt.Sprint(wants[i]) && got != "86399" {
			t.Errorf("pipelined %v = %v, want %v", cmd.Args(), v, wants[i])
		}
	}

	// The tombstone checks survive a flushed script cache too.
	scriptFlush(t, up)
	wantReply(t, c, 1, "SESS.DESTROY", "ns")
	p.wantTombstone(t, "sess:ns")
	scriptFlush(t, up)
	wantErr(t, c, destroyedError("ns"), "SESS.SET", "ns", `{"v":3}`)
	p.wantTombstone(t, "sess:ns")
}

// raceShape is how a tombstone race runs: each of rounds destroys its own
// session once while workers write it iters times each; every worker waits
// for the destroy before its write waitAt, and the destroy fires after
// destroyAt writes of the round, while the others are in flight.
type raceShape struct {
	rounds, workers, iters, waitAt, destroyAt int
}

// raceResult is what a tombstone race counted.
type raceResult struct {
	writes, refused int64
	// resurrections are rounds that ended with a live session instead of
	// the tombstone, plus writes acknowledged after the destroy was.
	resurrections int64
}

// raceDestroy runs one round of 20 workers writing one session 50 times
// each while destroy runs once in the middle of them, and checks that the
// destroy wins: every write sent after the destroy was acknowledged is
// refused, and the upstream is left holding the tombstone, never a live
// session.
func raceDestroy(t *testing.T, up *upstream, write func(c *redis.Client, sid string, i int) error, destroy func(c *redis.Client, sid string) error) {
	raceRounds(t, up, nil, raceShape{rounds: 1, workers: 20, iters: 50, waitAt: 40, destroyAt: 300}, write, destroy)
}

// raceRounds is raceDestroy's race, shape.rounds times, each round on its
// own session, on one proxy (its options changed by tweak, may be nil).
func raceRounds(t *testing.T, up *upstream, tweak func(*commands.Options, *proxy.Options), shape raceShape,
	write func(c *redis.Client, sid string, i int) error, destroy func(c *redis.Client, sid string) error) raceResult {
	p := startProxy(t, up, tweak)
	c := p.client(t, func(o *redis.Options) { o.PoolSize = shape.workers + 1 })
	var res raceResult
	for round := range shape.rounds {
		sid := "race"
		if shape.rounds > 1 {
			sid = fmt.Sprintf("race-%d", round)
		}
		raceRound(t, p, c, shape, sid, write, destroy, &res)
	}
	return res
}

func raceRound(t *testing.T, p *proxyHandle, c *redis.Client, shape raceShape, sid string,
	write func(c *redis.Client, sid string, i int) error, destroy func(c *redis.Client, sid string) error, res *raceResult) {
	if err := write(c, sid, -1); err != nil { // the session exists before the race
		t.Fatal(err)
	}
	var (
		writes    atomic.Int64
		refused   atomic.Int64
		late      atomic.Int64 // writes acknowledged after the destroy was
		reached   = make(chan struct{})
		destroyed = make(chan struct{})
		wg        sync.WaitGroup
	)
	isClosed := func(ch chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	wg.Go(func() {
		<-reached
		if err := destroy(c, sid); err != nil {
			t.Errorf("destroy: %v", err)
		}
		close(destroyed)
	})
	for w := 0; w < shape.workers; w++ {
		wg.Go(func() {
			for i := 0; i < shape.iters; i++ {
				if i == shape.waitAt {
					<-destroyed
				}
				after := isClosed(destroyed)
				err := write(c, sid, w*shape.iters+i)
				switch {
				case err == nil && after:
					late.Add(1)
					t.Errorf("a write of %s sent after the destroy was acknowledged succeeded", sid)
				case err != nil && !strings.HasPrefix(err.Error(), destroyedError(sid)):
					t.Errorf("write: %v", err)
				case err != nil:
					refused.Add(1)
				}
				if writes.Add(1) == int64(shape.destroyAt) {
					close(reached)
				}
			}
		})
	}
	wg.Wait()
	if n, want := refused.Load(), int64(shape.workers*(shape.iters-shape.waitAt)); n < want {
		t.Errorf("%s: %d writes refused, want at least %d", sid, n, want)
	}
	res.writes += writes.Load()
	res.refused += refused.Load()
	res.resurrections += late.Load()
	if p.tombstoneAt(t, "sess:"+sid) == "" {
		res.resurrections++
	}
	p.wantTombstone(t, "sess:"+sid)
	wantReply(t, c, nil, "SESS.GET", sid)
}

func testRaceSetDestroy(t *testing.T, up *upstream) {
	raceDestroy(t, up, raceSessSet, raceSessDestroy)
}

// raceSessSet and raceSessDestroy are a tombstone race with SESS.* commands.
func raceSessSet(c *redis.Client, sid string, i int) error {
	return c.Do(bg, "SESS.SET", sid, fmt.Sprintf(`{"i":%d}`, i)).Err()
}

func raceSessDestroy(c *redis.Client, sid string) error {
	n, err := c.Do(bg, "SESS.DESTROY", sid).Int64()
	if err == nil && n != 1 {
		err = fmt.Errorf("SESS.DESTROY %s = %d, want 1 (the session was live)", sid, n)
	}
	return err
}

func testRacePlainSetDel(t *testing.T, up *upstream) {
	raceDestroy(t, up, racePlainSet, racePlainDel)
}

// racePlainSet and racePlainDel are a tombstone race with plain commands,
// as connect-redis sends them.
func racePlainSet(c *redis.Client, sid string, i int) error {
	key := "sess:" + sid
	switch i % 3 {
	case 0:
		return c.Do(bg, "SET", key, fmt.Sprintf(`{"i":%d}`, i)).Err()
	case 1:
		return c.Do(bg, "SETEX", key, "600", fmt.Sprintf(`{"i":%d}`, i)).Err()
	default:
		return c.Do(bg, "SET", key, fmt.Sprintf(`{"i":%d}`, i), "EX", "600").Err()
	}
}

func racePlainDel(c *redis.Client, sid string) error {
	n, err := c.Do(bg, "DEL", "sess:"+sid).Int64()
	if err == nil && n != 1 {
		err = fmt.Errorf("DEL sess:%s = %d, want 1 (the session was live)", sid, n)
	}
	return err
}

// testPipelinedReads: a client's pipelined GETs of one slot go upstream as
// one MGET, and each still gets its own answer: a live value, a missing
// key, a tombstone read as missing, and a read after a write in the same
// batch seeing the write.
func testPipelinedReads(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	// One hash tag, so every key is in one slot and the run is not split.
	key := func(id string) string { return "sess:{pr}" + id }
	mustDo(t, c, "SET", key("live"), `{"n":1}`)
	mustDo(t, c, "SET", key("gone"), `{"n":2}`)
	mustDo(t, c, "DEL", key("gone"))
	if err := up.direct.HSet(bg, key("hash"), "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	if err := up.direct.Expire(bg, key("hash"), time.Hour).Err(); err != nil {
		t.Fatal(err) // every key in the namespace has a TTL (checked after the test)
	}
	up.resetStats(t)

	rc := p.raw(t)
	var req []byte
	for _, id := range []string{"live", "missing", "gone", "live", "hash"} {
		req = append(req, encode("GET", key(id))...)
	}
	req = append(req, encode("SESS.GET", "{pr}live")...)
	req = append(req, encode("SET", key("new"), `{"n":3}`)...)
	req = append(req, encode("GET", key("new"))...)
	rc.write(req)
	// The hash is missing in the shared MGET, which answers nil for it; the
	// proxy looks at that key again and answers GET's WRONGTYPE
	// (docs/commands.md).
	rc.wantReplies(`{"n":1}`, nil, nil, `{"n":1}`, respError("WRONGTYPE Operation against a key holding the wrong kind of value"), `{"n":1}`, status("OK"), `{"n":3}`)
	stats := up.stats(t)[up.masterOf(t, key("live"))]
	if stats.calls["mget"] != 1 || stats.calls["get"] != 1 {
		t.Errorf("upstream ran %d MGET and %d GET, want the six reads before the SET as one MGET and the read after it as one GET (commandstats %v)",
			stats.calls["mget"], stats.calls["get"], stats.calls)
	}

	// A GET on its own still gets Redis's answer for a hash.
	wantErr(t, c, "WRONGTYPE Operation against a key holding the wrong kind of value", "GET", key("hash"))
}

// testPipelinedMissesAnswerAtOnce: a pipeline's reads of missing keys in
// one MGET are told from a hash by one EXISTS of the MGET's nil keys, not a
// TYPE (or SESS.GET's hash read) per miss after the batch (store/absent.go).
func testPipelinedMissesAnswerAtOnce(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	key := func(id string) string { return "sess:{pm}" + id }
	mustDo(t, p.client(t), "SET", key("live"), `{"n":1,"f":"x"}`)
	up.resetStats(t)

	rc := p.raw(t)
	var req []byte
	for _, id := range []string{"a", "live", "b"} {
		req = append(req, encode("GET", key(id))...)
	}
	req = append(req, encode("SESS.GET", "{pm}c")...)
	req = append(req, encode("STRLEN", key("d"))...)
	req = append(req, encode("SESS.FGET", "{pm}e", "f")...)
	req = append(req, encode("GET", key("live"))...)
	rc.write(req)
	rc.wantReplies(nil, `{"n":1,"f":"x"}`, nil, nil, int64(0), nil, `{"n":1,"f":"x"}`)
	stats := up.stats(t)[up.masterOf(t, key("live"))]
	if stats.calls["mget"] != 1 || stats.calls["exists"] != 1 {
		t.Errorf("upstream ran %d MGET and %d EXISTS, want the reads as one MGET and its misses confirmed by one EXISTS (commandstats %v)",
			stats.calls["mget"], stats.calls["exists"], stats.calls)
	}
	for _, cmd := range []string{"type", "hgetall", "evalsha", "get"} {
		if n := stats.calls[cmd]; n != 0 {
			t.Errorf("upstream ran %d %s, want none: the misses were known absent (commandstats %v)", n, strings.ToUpper(cmd), stats.calls)
		}
	}
}

// testMissesAcrossSlots: misses in many slots (a cluster's several
// masters) are checked in one round trip of one EXISTS per slot, sent
// together, and answered as missing; a hash among them still answers
// WRONGTYPE, a live session its value.
func testMissesAcrossSlots(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	mustDo(t, p.client(t), "SET", "sess:across-live", `{"n":1}`)
	if err := up.direct.HSet(bg, "sess:across-hash", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	if err := up.direct.Expire(bg, "sess:across-hash", time.Hour).Err(); err != nil {
		t.Fatal(err) // every key in the namespace has a TTL (checked after the test)
	}
	rc := p.raw(t)
	var req []byte
	var wants []interface{}
	for i := 0; i < 40; i++ {
		req = append(req, encode("GET", fmt.Sprintf("sess:across-missing-%d", i))...)
		wants = append(wants, nil)
		if i%10 == 5 {
			req = append(req, encode("SESS.GET", fmt.Sprintf("across-gone-%d", i))...)
			wants = append(wants, nil)
		}
	}
	req = append(req, encode("GET", "sess:across-hash")...)
	req = append(req, encode("GET", "sess:across-live")...)
	wants = append(wants, respError("WRONGTYPE Operation against a key holding the wrong kind of value"), `{"n":1}`)
	rc.write(req)
	rc.wantReplies(wants...)
}

// testConcurrentWritesShareCalls: writes of many clients at once are
// merged into shared script calls (the store's write combiner, which works
// on the auto-pipeliner startProxy turns on), and each keeps its own
// outcome: a write to a destroyed session is refused, one to a key of the
// wrong type gets Redis's error, and every other is stored — also when the
// first calls find the script cache flushed.
func testConcurrentWritesShareCalls(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	// One hash tag: merging is per slot, and this makes it one in a cluster.
	sid := func(name string) string { return "{cw}" + name }
	setup := p.client(t)
	mustDo(t, setup, "SESS.SET", sid("dead"), `{"n":0}`)
	mustDo(t, setup, "SESS.DESTROY", sid("dead"))
	if err := up.direct.HSet(bg, "sess:"+sid("hash"), "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	if err := up.direct.Expire(bg, "sess:"+sid("hash"), time.Hour).Err(); err != nil {
		t.Fatal(err) // every key in the namespace has a TTL (checked after the test)
	}
	scriptFlush(t, up)
	up.resetStats(t)

	const clients, writes = 20, 25
	var wg sync.WaitGroup
	errs := make(chan error, clients*(writes+2))
	for g := 0; g < clients; g++ {
		c := p.client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < writes; i++ {
				id, v := sid(fmt.Sprintf("c%d-%d", g, i)), fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)
				if err := c.Do(bg, "SESS.SET", id, v).Err(); err != nil {
					errs <- fmt.Errorf("SESS.SET %s: %v", id, err)
				}
				switch i {
				case 5:
					err := c.Do(bg, "SESS.SET", sid("dead"), `{"late":true}`).Err()
					if err == nil || err.Error() != destroyedError(sid("dead")) {
						errs <- fmt.Errorf("write to the destroyed session: %v, want %q", err, destroyedError(sid("dead")))
					}
				case 9:
					err := c.Do(bg, "SET", "sess:"+sid("hash"), `{"n":1}`).Err()
					if err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
						errs <- fmt.Errorf("write to a hash: %v, want WRONGTYPE", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for g := 0; g < clients; g++ {
		for i := 0; i < writes; i++ {
			p.wantStored(t, "sess:"+sid(fmt.Sprintf("c%d-%d", g, i)), fmt.Sprintf(`{"g":%d,"i":%d}`, g, i))
		}
	}
	p.wantTombstone(t, "sess:"+sid("dead"))

	total := clients * (writes + 2)
	calls := up.stats(t)[up.masterOf(t, "sess:"+sid("x"))].calls["evalsha"]
	if calls > int64(total*3/4) {
		t.Errorf("%d writes took %d script calls, want at most 3/4 as many: concurrent clients' writes share calls", total, calls)
	}
	t.Logf("%d writes from %d clients took %d script calls", total, clients, calls)
}

// testConcurrentReadsShareCalls: single reads of many clients at once are
// merged into shared MGETs (the store's read combiner), and each gets its
// own answer: the value, or nil for a missing or destroyed session.
func testConcurrentReadsShareCalls(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	// One hash tag: merging is per slot, and this makes it one in a cluster.
	sid := func(name string) string { return "{cr}" + name }
	value := func(g, i int) string { return fmt.Sprintf(`{"g":%d,"i":%d}`, g, i) }
	const clients, reads = 20, 25
	setup := p.client(t)
	for g := 0; g < clients; g++ {
		for i := 0; i < reads; i++ {
			mustDo(t, setup, "SESS.SET", sid(fmt.Sprintf("c%d-%d", g, i)), value(g, i))
		}
	}
	mustDo(t, setup, "SESS.SET", sid("dead"), `{"n":0}`)
	mustDo(t, setup, "SESS.DESTROY", sid("dead"))
	up.resetStats(t)

	var wg sync.WaitGroup
	errs := make(chan error, clients*(reads+2))
	for g := 0; g < clients; g++ {
		c := p.client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < reads; i++ {
				id := sid(fmt.Sprintf("c%d-%d", g, i))
				// SESS.GET and GET alternate: both are plain reads.
				var got string
				var err error
				if i%2 == 0 {
					got, err = c.Do(bg, "SESS.GET", id).Text()
				} else {
					got, err = c.Get(bg, "sess:"+id).Result()
				}
				if err != nil || got != value(g, i) {
					errs <- fmt.Errorf("read %s = %q, %v; want %q", id, got, err, value(g, i))
				}
				switch i {
				case 5:
					if err := c.Do(bg, "SESS.GET", sid("dead")).Err(); err != redis.Nil {
						errs <- fmt.Errorf("read of the destroyed session: %v, want nil", err)
					}
				case 9:
					if err := c.Get(bg, "sess:"+sid("missing")).Err(); err != redis.Nil {
						errs <- fmt.Errorf("read of a missing session: %v, want nil", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	total := clients * (reads + 2)
	stats := up.stats(t)[up.masterOf(t, "sess:"+sid("x"))]
	calls := stats.calls["get"] + stats.calls["mget"]
	if calls > int64(total*3/4) {
		t.Errorf("%d reads took %d calls (commandstats %v), want at most 3/4 as many: concurrent clients' reads share MGETs", total, calls, stats.calls)
	}
	t.Logf("%d reads from %d clients took %d GET and %d MGET calls", total, clients, stats.calls["get"], stats.calls["mget"])
}

// testSplitPipeline: a pipeline that reaches the proxy in pieces (redcon
// parses what one read of 4 KB brings; a client's write can arrive split
// too) still goes upstream as one batch, one script call for its writes:
// the commands read while the client is part-way through the next are held
// for it. A client that leaves part-way through a command still has the
// whole commands it sent before run, as Redis would.
func testSplitPipeline(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	key := func(i int) string { return fmt.Sprintf("sess:{sp}%d", i) }
	session := fmt.Sprintf(`{"cookie":{"originalMaxAge":86400000},"pad":%q}`, strings.Repeat("x", 1000))
	var req []byte
	for i := 0; i < 16; i++ {
		req = append(req, encode("SET", key(i), session)...)
	}
	up.resetStats(t)
	rc := p.raw(t)
	half := len(req)/2 + 7 // part-way through a command
	rc.write(req[:half])
	rc.write(req[half:])
	for i := 0; i < 16; i++ {
		if got, err := rc.read(); err != nil || got != status("OK") {
			t.Fatalf("reply %d = %#v, %v; want OK", i, got, err)
		}
	}
	stats := up.stats(t)[up.masterOf(t, key(0))]
	if n := stats.calls["evalsha"]; n != 1 {
		t.Errorf("16 pipelined writes of %d bytes took %d script calls, want 1 (commandstats %v)", len(req), n, stats.calls)
	}

	left := p.raw(t)
	left.write(append(encode("SET", key(100), session), encode("SET", key(101), session)[:40]...))
	left.nc.Close()
	for deadline := time.Now().Add(10 * time.Second); up.direct.Exists(bg, key(100)).Val() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("a whole SET sent before the client left part-way through the next never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if up.direct.Exists(bg, key(101)).Val() != 0 {
		t.Error("the SET the client left part-way through was written")
	}
}
