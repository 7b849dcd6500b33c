package commands

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/sessproxy/sessproxy/store"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// fuzzArgs are the arguments seeds give commands, in turn: ids, payloads,
// numbers, keys and option words, so handlers get past their arity checks.
var fuzzArgs = []string{"a", `{"cookie":{"expires":"2099-01-01T00:00:00Z"},"user":{"id":1}}`, "10", "sess:a", "TTL", "COUNT", "user", `{"v":2}`}

// FuzzDispatch runs each input as one client's pipeline (one command a
// line, arguments split on spaces) on an engine against miniredis. No
// command panics (the pipeline would turn it into -ERR internal error and
// a log line), and every command gets exactly one reply, up to a QUIT.
// The seeds are every registry entry with as many arguments as its arity
// asks, so a new command is fuzzed from the start.
func FuzzDispatch(f *testing.F) {
	m := miniredis.RunT(f)
	st, err := store.Open(context.Background(), store.Options{Mode: store.ModeStandalone, Addrs: []string{m.Addr()}, AutoPipeline: true, Combine: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	opts := defaultOptions()
	opts.OwnerField = "user.id"
	core, logs := observer.New(zap.ErrorLevel)
	opts.Logger = zap.New(core)
	e := New(st, opts)

	for _, cmd := range e.sortedCommands() {
		n := cmd.Arity
		if n < 0 {
			n = -n
		}
		args := []string{strings.ToUpper(cmd.Name)}
		for i := 1; i < n; i++ {
			args = append(args, fuzzArgs[(i-1)%len(fuzzArgs)])
		}
		f.Add([]byte(strings.Join(args, " ")))
		f.Add([]byte(strings.Join(append(args, fuzzArgs...), " ")))
	}
	f.Add([]byte("MULTI\nSET sess:mx {\"a\":1}\nEXEC\nGET sess:mx"))
	f.Add([]byte("SESS.SET a {}\nSESS.DESTROY a\nSESS.SET a {}\nQUIT\nPING"))
	f.Add([]byte("SET sess:a {} EX 9223372036854775807\nEXPIRE sess:a -9223372036854775808\nSESS.SCAN 18446744073709551615 COUNT -1"))

	f.Fuzz(func(t *testing.T, data []byte) {
		var cmds [][][]byte
		for _, line := range bytes.Split(data, []byte("\n")) {
			var args [][]byte
			for _, a := range bytes.Split(line, []byte(" ")) {
				if len(a) > 0 {
					args = append(args, a)
				}
			}
			if len(args) > 0 {
				cmds = append(cmds, args)
			}
		}
		if len(cmds) == 0 || len(cmds) > 64 {
			return
		}
		m.FlushAll()
		c := e.Connect("127.0.0.1:1", "127.0.0.1:6380")
		defer e.Disconnect(c)
		var out bytes.Buffer
		e.NewPipeline(c).Run(context.Background(), cmds, func(b []byte) { out.Write(b) })
		if panics := logs.FilterMessage("panic in command").TakeAll(); len(panics) > 0 {
			t.Fatalf("panic: %v", panics[0].ContextMap())
		}
		// One reply per command, but for (UN)SUBSCRIBE one per channel,
		// as in Redis, and none after QUIT.
		want := 0
		for _, cmd := range cmds {
			want += expectedReplies(cmd)
			if strings.EqualFold(string(cmd[0]), "quit") {
				break
			}
		}
		r := bufio.NewReader(&out)
		replies := 0
		for ; out.Len() > 0 || r.Buffered() > 0; replies++ {
			if _, err := readReply(r); err != nil {
				t.Fatalf("reply %d: %v", replies, err)
			}
		}
		if replies != want {
			t.Fatalf("%d replies to %d commands", replies, want)
		}
	})
}

// expectedReplies is how many replies a command gets.
func expectedReplies(cmd [][]byte) int {
	channels := len(cmd) - 1
	switch {
	case strings.EqualFold(string(cmd[0]), "unsubscribe"):
		return max(1, channels)
	case strings.EqualFold(string(cmd[0]), "subscribe") && channels > 0:
		for _, ch := range cmd[1:] {
			if string(ch) != invalidateChannel {
				return 1
			}
		}
		return channels
	}
	return 1
}
