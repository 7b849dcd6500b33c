package commands

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The transaction's replies, one batch at a time, as the client sees them.
func TestTransactions(t *testing.T) {
	abort := "-" + msgExecAbort
	tests := []struct {
		name  string
		setup []string // run first, each its own batch
		cmds  []string // one pipelined batch
		want  []string
		check func(t *testing.T, f *fixture)
	}{
		{
			name: "queued commands run at EXEC with the TTL policy",
			cmds: []string{"MULTI", `SET sess:a {"v":1}`, "GET sess:a", "EXPIRE sess:a 100", "PING", "EXEC"},
			want: []string{"+OK", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED", `[+OK ${"v":1} :1 +PONG]`},
			check: func(t *testing.T, f *fixture) {
				if ttl := f.m.TTL("sess:a"); ttl != 100*time.Second {
					t.Fatalf("TTL %v, want 100s", ttl)
				}
			},
		},
		{
			name: "a write without expiry gets the policy TTL inside the transaction",
			cmds: []string{"MULTI", `SET sess:b {"v":1}`, "EXEC"},
			want: []string{"+OK", "+QUEUED", "[+OK]"},
			check: func(t *testing.T, f *fixture) {
				if ttl := f.m.TTL("sess:b"); ttl != 24*time.Hour {
					t.Fatalf("TTL %v, want the default 24h", ttl)
				}
			},
		},
		{
			name: "an unknown command aborts the transaction with nothing run",
			cmds: []string{"MULTI", `SET sess:c {"v":1}`, "FLUSHALL", "EXEC", "GET sess:c"},
			want: []string{"+OK", "+QUEUED", "-" + errUnknownCommand("FLUSHALL"), abort, "nil"},
		},
		{
			name: "a wrong arity aborts it",
			cmds: []string{"MULTI", `SET sess:c {"v":1}`, "GET", "EXEC", "GET sess:c"},
			want: []string{"+OK", "+QUEUED", "-" + errArity("get"), abort, "nil"},
		},
		{
			name: "a key outside the namespace aborts it",
			cmds: []string{"MULTI", `SET sess:c {"v":1}`, "GET other:x", "EXEC", "GET sess:c"},
			want: []string{"+OK", "+QUEUED", "-" + errOutsidePrefix("other:x"), abort, "nil"},
		},
		{
			name: "a bad payload aborts it",
			cmds: []string{"MULTI", `SET sess:c {"v":1}`, "SESS.SET d notjson", "EXEC", "GET sess:c"},
			want: []string{"+OK", "+QUEUED", "-" + errPayload("not valid JSON"), abort, "nil"},
		},
		{
			name: "a command not allowed in a transaction aborts it",
			cmds: []string{"MULTI", `SET sess:c {"v":1}`, "SESS.IDS", "EXEC", "GET sess:c"},
			want: []string{"+OK", "+QUEUED", "-" + errNotInTransaction("sess.ids"), abort, "nil"},
		},
		{
			name: "a command that needs a reply before it can finish aborts it",
			cmds: []string{"MULTI", `SET sess:c {"v":1}`, `SET sess:c {"v":2} GET`, "EXEC", "GET sess:c"},
			want: []string{"+OK", "+QUEUED", "-" + errNeedsResult("set"), abort, "nil"},
		},
		{
			name: "nested MULTI is an error that does not abort",
			cmds: []string{"MULTI", "MULTI", `SET sess:e {}`, "EXEC"},
			want: []string{"+OK", "-" + msgMultiNested, "+QUEUED", "[+OK]"},
		},
		{
			name: "WATCH inside MULTI is an error that does not abort",
			cmds: []string{"MULTI", "WATCH sess:e", `SET sess:e {}`, "EXEC"},
			want: []string{"+OK", "-" + msgWatchInMulti, "+QUEUED", "[+OK]"},
		},
		{
			name: "EXEC and DISCARD without MULTI",
			cmds: []string{"EXEC", "DISCARD"},
			want: []string{"-" + msgExecNoMulti, "-" + msgDiscardNoMulti},
		},
		{
			name: "DISCARD drops the queue",
			cmds: []string{"MULTI", `SET sess:f {}`, "DISCARD", "GET sess:f", "EXEC"},
			want: []string{"+OK", "+QUEUED", "+OK", "nil", "-" + msgExecNoMulti},
		},
		{
			name: "RESET drops the queue",
			cmds: []string{"MULTI", `SET sess:f {}`, "RESET", "GET sess:f", "EXEC"},
			want: []string{"+OK", "+QUEUED", "+RESET", "nil", "-" + msgExecNoMulti},
		},
		{
			name:  "a write to a tombstoned session fails inside EXEC while the others run",
			setup: []string{"SESS.DESTROY t"},
			cmds:  []string{"MULTI", `SET sess:t {"v":1}`, `SET sess:u {"v":1}`, "SESS.SET w {}", "EXEC"},
			want:  []string{"+OK", "+QUEUED", "+QUEUED", "+QUEUED", "[-" + errTombstoned("t") + " +OK +OK]"},
			check: func(t *testing.T, f *fixture) {
				if !f.m.Exists("sess:u") || !f.m.Exists("sess:w") {
					t.Fatal("the other writes did not run")
				}
			},
		},
		{
			name:  "a hash session read inside a transaction answers as outside one",
			setup: []string{"HSET sess:h f v"},
			cmds:  []string{"MULTI", "GET sess:h", "SESS.GET h", "GET sess:none", "EXEC"},
			want:  []string{"+OK", "+QUEUED", "+QUEUED", "+QUEUED", `[-` + msgWrongType + ` ${"f":"v"} nil]`},
		},
		{
			name: "MGET of more than 1024 keys is refused at queue time",
			cmds: []string{"MULTI", "MGET " + strings.TrimSpace(strings.Repeat("sess:k ", 1025)), "EXEC"},
			want: []string{"+OK", "-" + errNeedsResult("mget"), abort},
		},
		{
			name: "GETEX with an expiry and SESS.TOUCH reading the stored TTL are refused at queue time",
			cmds: []string{"MULTI", "GETEX sess:a EX 10", "SESS.TOUCH a", "SESS.TOUCH a {}", "DISCARD"},
			want: []string{"+OK", "-" + errNeedsResult("getex"), "-" + errNeedsResult("sess.touch"), "+QUEUED", "+OK"},
		},
		{
			name: "an empty transaction answers an empty array",
			cmds: []string{"MULTI", "EXEC"},
			want: []string{"+OK", "[]"},
		},
		{
			name:  "WATCH of an unchanged key lets EXEC run, pipelined with a write before it",
			setup: []string{`SET sess:g {"v":1}`},
			cmds:  []string{`SET sess:g {"v":2}`, "WATCH sess:g", "GET sess:g", "MULTI", `SET sess:g {"v":3}`, "EXEC", "GET sess:g"},
			want:  []string{"+OK", "+OK", `${"v":2}`, "+OK", "+QUEUED", "[+OK]", `${"v":3}`},
		},
		{
			name: "WATCH outside the namespace is refused",
			cmds: []string{"WATCH sess:a other:b"},
			want: []string{"-" + errOutsidePrefix("other:b")},
		},
		{
			name: "UNWATCH outside a transaction is OK",
			cmds: []string{"UNWATCH"},
			want: []string{"+OK"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			for _, s := range tt.setup {
				f.do(s)
			}
			got := f.do(tt.cmds...)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
			if n := f.e.transactions.Load(); n != 0 && f.client.tx == nil {
				t.Fatalf("%d transactions still counted", n)
			}
		})
	}
}

// A watched key changed by anyone else (another client, or Redis directly)
// makes EXEC answer a nil array with nothing run.
func TestWatchedKeyChangedAbortsExec(t *testing.T) {
	f := newFixture(t, nil)
	f.expect(`SET sess:w {"v":1}`, "+OK")
	f.expect("WATCH sess:w", "+OK")
	g := f.client2()
	g.expect(`SET sess:w {"v":2}`, "+OK")
	f.expect("MULTI", "+OK")
	f.expect(`SET sess:w {"v":3}`, "+QUEUED")
	f.expect(`SET sess:x {"v":3}`, "+QUEUED")
	f.expect("EXEC", "nil")
	f.expect("GET sess:w", `${"v":2}`)
	f.expect("GET sess:x", "nil")

	// Directly in Redis, and with nothing queued.
	f.expect("WATCH sess:w", "+OK")
	f.m.Set("sess:w", `{"v":4}`)
	f.expect("MULTI", "+OK")
	f.expect("EXEC", "nil")

	// UNWATCH forgets.
	f.expect("WATCH sess:w", "+OK")
	f.m.Set("sess:w", `{"v":5}`)
	f.expect("UNWATCH", "+OK")
	f.expect("MULTI", "+OK")
	f.expect(`SET sess:w {"v":6}`, "+QUEUED")
	f.expect("EXEC", "[+OK]")
	if n := f.e.transactions.Load(); n != 0 {
		t.Fatalf("%d transactions still counted", n)
	}
}

// The limits: a MULTI past server.max_transactions is refused and its
// commands discarded, never run one by one; a transaction past
// max_transaction_commands aborts.
func TestTransactionLimits(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxTransactions, o.MaxTxCommands = 1, 2 })
	g := f.client2()
	f.expect("WATCH sess:a", "+OK")
	refused := errTooManyTransactions(1)
	got := g.do("MULTI", `SET sess:b {}`, "EXEC", "GET sess:b")
	want := []string{"-" + refused, "-" + errTxCommandDiscarded(refused), "-" + msgExecAbort, "nil"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("refused MULTI: %q, want %q", got, want)
	}
	g.expect("WATCH sess:b", "-"+refused)
	f.expect("UNWATCH", "+OK")
	g.expect("WATCH sess:b", "+OK")
	g.e.Disconnect(g.client)
	if n := f.e.transactions.Load(); n != 0 {
		t.Fatalf("disconnect left %d transactions counted", n)
	}

	got = f.do("MULTI", "SET sess:c {}", "SET sess:d {}", "SET sess:e {}", "EXEC", "EXISTS sess:c")
	want = []string{"+OK", "+QUEUED", "+QUEUED", "-" + errTransactionTooLong(2), "-" + msgExecAbort, ":0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("long transaction: %q, want %q", got, want)
	}
	if !strings.Contains(refused, "server.max_transactions") {
		t.Fatal("the refusal does not name its setting")
	}
}

// A transaction past max_transaction_bytes aborts: its queued arguments
// are held until EXEC, outside the in-flight budget, and max_transaction_
// commands alone let one client queue 10,000 requests of 8 MiB (a hostile
// review held 200 MiB after 50 of them).
func TestTransactionBytesLimit(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxTxBytes = 100 })
	// SET sess:c {"x":"…"} is 3 + 6 + 50 bytes of arguments.
	value := `{"x":"` + strings.Repeat("y", 42) + `"}`
	got := f.do("MULTI", "SET sess:c "+value, "SET sess:d "+value, "EXEC", "EXISTS sess:c", "MULTI", "SET sess:e "+value, "EXEC")
	want := []string{"+OK", "+QUEUED", "-" + errTransactionTooLarge(100), "-" + msgExecAbort, ":0", "+OK", "+QUEUED", "[+OK]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("large transaction, then a small one: %q, want %q", got, want)
	}
}

// The owner index of a write inside a transaction is kept (sent after the
// EXEC), and RESP3 clients get EXEC's array in RESP3.
func TestTransactionOwnerIndexAndRESP3(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.OwnerField = "passport.user" })
	got := f.do("MULTI", `SET sess:o1 {"passport":{"user":"u1"}}`, `SESS.SET o2 {"passport":{"user":"u1"}}`, "EXEC")
	want := []string{"+OK", "+QUEUED", "+QUEUED", "[+OK +OK]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	f.expect("SESS.BYOWNER u1", "[$o1 $o2]")

	f.do("HELLO 3")
	got = f.do("MULTI", "GET sess:none", "EXEC")
	want = []string{"+OK", "+QUEUED", "[null]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("RESP3: got %q, want %q", got, want)
	}
	f.expect("WATCH sess:o1", "+OK")
	f.m.Set("sess:o1", "{}")
	got = f.do("MULTI", "EXEC")
	if fmt.Sprint(got) != fmt.Sprint([]string{"+OK", "null"}) {
		t.Fatalf("RESP3 aborted EXEC: %q, want a null", got)
	}
}

// Commands flagged flagFlush run what was pipelined before them first, so
// they see its writes; inside MULTI they are queued or refused with
// nothing run.
func TestFlushFlag(t *testing.T) {
	tests := []struct {
		name string
		cmds []string
		want []string
	}{
		{
			name: "a listing sees the writes pipelined before it",
			cmds: []string{`SESS.SET a {"v":1}`, `SESS.SET b {"v":2}`, "SESS.LENGTH", "DBSIZE", "KEYS sess:a"},
			want: []string{"+OK", "+OK", ":2", ":2", "[$sess:a]"},
		},
		{
			name: "inside MULTI a listing is refused and nothing is written",
			cmds: []string{"MULTI", `SESS.SET a {"v":1}`, "SESS.LENGTH", "DISCARD", "SESS.LENGTH"},
			want: []string{"+OK", "+QUEUED", "-" + errNotInTransaction("sess.length"), "+OK", ":0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			if got := f.do(tt.cmds...); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// An EXEC whose flush of the commands pipelined before MULTI fails answers
// the failure and still ends the transaction, as it did when it flushed in
// its own body. The batch fails here on a context already cancelled.
func TestExecFlushFailureEndsTransaction(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var replies []string
	args := [][][]byte{{[]byte("SESS.SET"), []byte("a"), []byte(`{"v":1}`)}, {[]byte("MULTI")}, {[]byte("PING")}, {[]byte("EXEC")}}
	f.p.Run(ctx, args, func(b []byte) { replies = append(replies, string(b)) })
	if len(replies) != 4 || !strings.HasPrefix(replies[3], "-ERR upstream error: context canceled") {
		t.Fatalf("replies = %q", replies)
	}
	if f.client.tx != nil {
		t.Fatal("the transaction outlived its EXEC")
	}
	if got := f.one("EXEC"); got != "-"+msgExecNoMulti {
		t.Fatalf("second EXEC = %q", got)
	}
}

// A transaction's WATCH commands name at most maxWatchedKeys keys all
// together: Redis 7.0 pays O(N²) for N watched keys on one connection,
// blocking every other client (40,000 keys: 10.6 s, hostile round 6).
// UNWATCH starts the count again.
func TestWatchedKeysAreBounded(t *testing.T) {
	f := newFixture(t, nil)
	watch := func(from, n int) string {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("sess:w%d", from+i)
		}
		return "WATCH " + strings.Join(keys, " ")
	}
	refused := "-" + errTooManyWatchedKeys(maxWatchedKeys)
	f.expect(watch(0, maxWatchedKeys+1), refused)
	f.expect(watch(0, maxWatchedKeys-1), "+OK")
	f.expect(watch(maxWatchedKeys, 2), refused)
	f.expect(watch(maxWatchedKeys, 1), "+OK")
	f.expect("UNWATCH", "+OK")
	f.expect(watch(0, maxWatchedKeys), "+OK")
	got := f.do("MULTI", `SET sess:w0 {}`, "EXEC")
	if want := []string{"+OK", "+QUEUED", "[+OK]"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("transaction after a WATCH at the bound: %q, want %q", got, want)
	}
}
