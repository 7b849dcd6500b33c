package store

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	errNoScriptReply = errors.New("NOSCRIPT No matching script. Please use EVAL.")
	errTryAgainReply = errors.New("TRYAGAIN Multiple keys request during rehashing of slot")
)

// fakeTransport answers each command with what reply scripts for it, by
// round (a wave or a resend sends one round), and records the rounds.
type fakeTransport struct {
	reply  func(round int, cmd string) (interface{}, error)
	rounds [][]string
}

func (f *fakeTransport) send(_ context.Context, cmds []redis.Cmder, _ string) {
	round := len(f.rounds)
	var sent []string
	for _, cmd := range cmds {
		s := cmdString(cmd)
		sent = append(sent, s)
		val, err := f.reply(round, s)
		switch c := cmd.(type) {
		case *redis.Cmd:
			c.SetVal(val)
		case *redis.StringCmd:
			s, _ := val.(string)
			c.SetVal(s)
		case *rawRead:
			if err == nil {
				_, err = c.scan.Write([]byte(respOf(val)))
			}
		}
		cmd.SetErr(err) // nil too, as go-redis does on each reply
	}
	f.rounds = append(f.rounds, sent)
}

// respOf is val as Redis would send it: strings, nils and arrays of them.
func respOf(val interface{}) string {
	switch v := val.(type) {
	case string:
		return "$" + strconv.Itoa(len(v)) + "\r\n" + v + "\r\n"
	case []interface{}:
		out := "*" + strconv.Itoa(len(v)) + "\r\n"
		for _, e := range v {
			out += respOf(e)
		}
		return out
	}
	return "$-1\r\n"
}

// fakeUpstream records what the sender asks of the store.
type fakeUpstream struct {
	reloads   int
	migrating []int
}

func (f *fakeUpstream) reloadScripts(context.Context, []*UserScript) error {
	f.reloads++
	return nil
}
func (f *fakeUpstream) markMigrating(slot int) { f.migrating = append(f.migrating, slot) }
func (f *fakeUpstream) observe(error)          {}

// fakeBatch is a batch whose commands go to a fake transport that
// answers with reply.
func fakeBatch(reply func(round int, cmd string) (interface{}, error)) (*Batch, *fakeTransport, *fakeUpstream) {
	b := testBatch()
	t, up := &fakeTransport{reply: reply}, &fakeUpstream{}
	b.out = sender{t: t, up: up}
	return b, t, up
}

func wantRounds(t *testing.T, got [][]string, want ...[]string) {
	t.Helper()
	if !slices.EqualFunc(got, want, slices.Equal[[]string]) {
		var g, w []string
		for _, r := range got {
			g = append(g, strings.Join(r, " | "))
		}
		for _, r := range want {
			w = append(w, strings.Join(r, " | "))
		}
		t.Fatalf("sent:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(w, "\n  "))
	}
}

func wantWrite(t *testing.T, r WriteResult, want Outcome, wantErr error) {
	t.Helper()
	if o, _, err := r.Result(); o != want || !errors.Is(err, wantErr) {
		t.Fatalf("write: %v %v, want %v %v", o, err, want, wantErr)
	}
}

func wantRead(t *testing.T, r GetResult, want string) {
	t.Helper()
	if v, err := r.Result(); err != nil || string(v) != want {
		t.Fatalf("read: %q %v, want %q", v, err, want)
	}
}

// After NOSCRIPT the scripts are loaded, and the write that did not run
// goes again with the read after it, which then sees it.
func TestSendNoScriptThenSuccess(t *testing.T) {
	b, sent, up := fakeBatch(func(round int, cmd string) (interface{}, error) {
		switch {
		case round == 0 && strings.HasPrefix(cmd, "evalsha"):
			return nil, errNoScriptReply
		case round == 0:
			return nil, redis.Nil // the read, before the write
		case strings.HasPrefix(cmd, "evalsha"):
			return []interface{}{int64(1)}, nil
		}
		return "v", nil
	})
	write := b.Write("a", Write{Value: []byte("v"), TTL: time.Second})
	read := b.Get("a")
	if err := b.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantRounds(t, sent.rounds,
		[]string{"evalsha setMany 1 a v 1000", "get a"},
		[]string{"evalsha setMany 1 a v 1000", "get a"})
	if up.reloads != 1 {
		t.Fatalf("scripts loaded %d times, want 1", up.reloads)
	}
	wantWrite(t, write, Applied, nil)
	wantRead(t, read, "v")
}

// An MGET that meets a slot being migrated goes again one GET per key,
// and the slot is marked.
func TestSendTryAgainOnReadRun(t *testing.T) {
	b, sent, up := fakeBatch(func(round int, cmd string) (interface{}, error) {
		switch {
		case strings.HasPrefix(cmd, "mget"):
			return nil, errTryAgainReply
		case cmd == "get a":
			return "1", nil
		}
		return "2", nil
	})
	a, bb := b.Get("a"), b.Get("b")
	inSlot(b, 42)
	if err := b.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantRounds(t, sent.rounds, []string{"mget a b"}, []string{"get a", "get b"})
	if !slices.Equal(up.migrating, []int{42}) {
		t.Fatalf("slots marked migrating: %v, want [42]", up.migrating)
	}
	wantRead(t, a, "1")
	wantRead(t, bb, "2")
}

// A write run that meets a slot being migrated goes again one script call
// per key, each key keeping its own outcome.
func TestSendTryAgainOnWriteRun(t *testing.T) {
	b, sent, up := fakeBatch(func(round int, cmd string) (interface{}, error) {
		switch {
		case round == 0:
			return nil, errTryAgainReply
		case strings.Contains(cmd, " a "):
			return []interface{}{int64(1)}, nil
		}
		return []interface{}{int64(-1)}, nil // b is tombstoned
	})
	a := b.Write("a", Write{Value: []byte("1"), TTL: time.Second})
	bw := b.Write("b", Write{Value: []byte("2"), TTL: time.Second})
	inSlot(b, 42)
	if err := b.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantRounds(t, sent.rounds,
		[]string{"evalsha setMany 2 a b 1 1000 2 1000"},
		[]string{"evalsha setMany 1 a 1 1000", "evalsha setMany 1 b 2 1000"})
	if !slices.Equal(up.migrating, []int{42}) {
		t.Fatalf("slots marked migrating: %v, want [42]", up.migrating)
	}
	wantWrite(t, a, Applied, nil)
	wantWrite(t, bw, NotApplied, ErrTombstoned)
}

// The reads after a write that did not run go again with it, so they see
// it, whatever their keys; a command before the first that did not run
// is not sent again.
func TestSendResendsReadsAfterFailedWrite(t *testing.T) {
	b, sent, _ := fakeBatch(func(round int, cmd string) (interface{}, error) {
		switch {
		case round == 0 && strings.HasPrefix(cmd, "evalsha write"):
			return nil, errNoScriptReply
		case strings.HasPrefix(cmd, "evalsha write"):
			return []interface{}{int64(1)}, nil
		case strings.HasPrefix(cmd, "set"):
			return "OK", nil
		}
		return "v", nil
	})
	b.Forward(false, "set", "x", "1")
	write := b.Write("a", Write{Value: []byte("v"), TTL: time.Second, Cond: NX})
	read := b.Forward(true, "get", "b")
	if err := b.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantRounds(t, sent.rounds,
		[]string{"set x 1", "evalsha write 1 a v 1000 NX  0 0 ", "get b"},
		[]string{"evalsha write 1 a v 1000 NX  0 0 ", "get b"})
	wantWrite(t, write, Applied, nil)
	if v, err := read.Result(); err != nil || v != "v" {
		t.Fatalf("read: %v %v", v, err)
	}
}

// A command is not sent again when a later write to its key ran: a write
// would undo it (the write keeps its error), a read would see it (the
// read keeps its first answer), and a write before such a read would make
// that answer stale (it keeps its error too).
func TestSendKeepsErrorWhenLaterWriteRan(t *testing.T) {
	b, sent, up := fakeBatch(func(round int, cmd string) (interface{}, error) {
		switch {
		case strings.HasPrefix(cmd, "evalsha"):
			return nil, errNoScriptReply
		case strings.HasPrefix(cmd, "set"):
			return "OK", nil
		}
		return "first", nil
	})
	stale := b.Write("b", Write{Value: []byte("v"), TTL: time.Second, Cond: NX})
	undone := b.Write("a", Write{Value: []byte("v"), TTL: time.Second, Cond: NX})
	read := b.Forward(true, "get", "b")
	b.Forward(false, "set", "a", "later")
	b.Forward(false, "set", "b", "later")
	if err := b.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sent.rounds) != 1 {
		t.Fatalf("sent %d rounds, want 1: nothing can go again", len(sent.rounds))
	}
	if up.reloads != 1 {
		t.Fatalf("scripts loaded %d times, want 1", up.reloads)
	}
	if _, _, err := undone.Result(); !isNoScript(err) {
		t.Fatalf("write before a later write to its key: %v, want its NOSCRIPT", err)
	}
	if _, _, err := stale.Result(); !isNoScript(err) {
		t.Fatalf("write before a read that keeps its answer: %v, want its NOSCRIPT", err)
	}
	if v, _ := read.Result(); v != "first" {
		t.Fatalf("read before a later write to its key: %v, want its first answer", v)
	}
}

// In a batch of several clients (an event loop's round), another client's
// later write to the key does not keep a command from going again: no
// client has its answer yet, so the command may run after that write. Its
// own client's later read goes again after it and sees it.
func TestSendAgainAfterAnotherClientsWrite(t *testing.T) {
	b, sent, _ := fakeBatch(func(round int, cmd string) (interface{}, error) {
		switch {
		case round == 0 && strings.HasPrefix(cmd, "evalsha"):
			return nil, errNoScriptReply
		case strings.HasPrefix(cmd, "evalsha"):
			return []interface{}{int64(1)}, nil
		case strings.HasPrefix(cmd, "set"):
			return "OK", nil
		}
		return "round " + strconv.Itoa(round), nil
	})
	b.SetParty(1)
	release := b.Write("lock", Write{Value: []byte("v"), TTL: time.Second, Cond: NX})
	b.SetParty(2)
	b.Forward(false, "set", "lock", "other")
	b.SetParty(1)
	read := b.Forward(true, "get", "lock")
	if err := b.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantRounds(t, sent.rounds,
		[]string{"evalsha write 1 lock v 1000 NX  0 0 ", "set lock other", "get lock"},
		[]string{"evalsha write 1 lock v 1000 NX  0 0 ", "get lock"})
	wantWrite(t, release, Applied, nil)
	if v, _ := read.Result(); v != "round 1" {
		t.Fatalf("the client's read after its write: %v, want the answer sent after the write (round 1)", v)
	}
}

// A command still keeps its error when a later command of its own client
// keeps its first result, even on other keys: going again would put it
// after that command. Without parties (one client's batch), another
// write to the key keeps it too.
func TestSendKeepsErrorWhenOwnLaterCommandStays(t *testing.T) {
	for _, parties := range []bool{true, false} {
		b, sent, _ := fakeBatch(func(round int, cmd string) (interface{}, error) {
			switch {
			case strings.HasPrefix(cmd, "evalsha"):
				return nil, errNoScriptReply
			case strings.HasPrefix(cmd, "set"):
				return "OK", nil
			}
			return "first", nil
		})
		party := func(id int64) {
			if parties {
				b.SetParty(id)
			}
		}
		party(1)
		w := b.Write("a", Write{Value: []byte("v"), TTL: time.Second, Cond: NX})
		party(2)
		b.Forward(false, "set", "a", "other")
		party(1)
		b.Forward(false, "set", "b", "mine")
		if err := b.Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(sent.rounds) != 1 {
			t.Fatalf("parties %v: sent %d rounds, want 1: nothing can go again", parties, len(sent.rounds))
		}
		if _, _, err := w.Result(); !isNoScript(err) {
			t.Fatalf("parties %v: write before its client's own later write: %v, want its NOSCRIPT", parties, err)
		}
	}
}

// In a merged run of several clients' writes, each key's write goes again
// by its own client's rule: another client's later write to a keeps
// nothing, but b's client has a later write of its own.
func TestSendAgainSplitsRunByClient(t *testing.T) {
	b, sent, _ := fakeBatch(func(round int, cmd string) (interface{}, error) {
		switch {
		case round == 0 && strings.HasPrefix(cmd, "evalsha"):
			return nil, errTryAgainReply
		case strings.HasPrefix(cmd, "evalsha"):
			return []interface{}{int64(1)}, nil
		}
		return "OK", nil
	})
	b.SetParty(1)
	one := b.Write("a", Write{Value: []byte("1"), TTL: time.Second})
	b.SetParty(2)
	two := b.Write("b", Write{Value: []byte("2"), TTL: time.Second})
	b.SetParty(3)
	b.Forward(false, "set", "a", "x")
	b.Forward(false, "set", "b", "x")
	b.SetParty(2)
	b.Forward(false, "set", "c", "y")
	inSlot(b, 42)
	if err := b.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantRounds(t, sent.rounds,
		[]string{"evalsha setMany 2 a b 1 1000 2 1000", "set a x", "set b x", "set c y"},
		[]string{"evalsha setMany 1 a 1 1000"})
	wantWrite(t, one, Applied, nil)
	if _, _, err := two.Result(); !isTryAgain(err) {
		t.Fatalf("client 2's write, before its own later write: %v, want its TRYAGAIN", err)
	}
}

// With waves (a cluster), a command that reads a key an earlier command of
// its wave writes waits for that wave's replies; a command of unknown keys
// goes alone.
func TestSendInWaves(t *testing.T) {
	b, sent, _ := fakeBatch(func(round int, cmd string) (interface{}, error) {
		if strings.HasPrefix(cmd, "evalsha") {
			return []interface{}{int64(1)}, nil
		}
		return "v", nil
	})
	b.out.waves = true
	b.Forward(false, "set", "x", "1")
	b.Write("a", Write{Value: []byte("v"), TTL: time.Second, Cond: NX})
	b.Get("b")
	b.Get("a") // reads a, written in this wave: the next wave
	b.Forward(false, "set", "y", "1")
	b.Forward(false, "ping") // unknown keys: a wave of its own
	b.Get("c")
	if err := b.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantRounds(t, sent.rounds,
		[]string{"set x 1", "evalsha write 1 a v 1000 NX  0 0 "},
		[]string{"mget b a", "set y 1"},
		[]string{"ping"},
		[]string{"get c"})
}
