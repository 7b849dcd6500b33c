package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store"
)

// The clients users point at sessproxy, each doing its own handshake —
// the newest ones open with HELLO 3 — and a session's whole life through
// it, checked in the upstream: go-redis v9 (RESP3 and RESP2), the Node
// clients under express-session (integration/node), redis-cli one-shot and
// interactive.
func testClients(t *testing.T, up *upstream) {
	t.Run("Wire", func(t *testing.T) { testHandshakeWire(t, up) })
	t.Run("GoRedis", func(t *testing.T) { testGoRedis(t, up) })
	t.Run("GoRedisAuth", func(t *testing.T) { testGoRedisAuth(t, up) })
	t.Run("Node", func(t *testing.T) { testNode(t, up) })
	t.Run("RedisCLI3", func(t *testing.T) { testRedisCLI3(t, up) })
	t.Run("RedisCLIInteractive", func(t *testing.T) { testRedisCLIInteractive(t, up) })
}

const (
	clientsPassword = "s3cret"
	appUser         = "app"
	appPassword     = "apppw"
)

// authTweak configures requirepass and one app user.
func authTweak(o *commands.Options, _ *proxy.Options) {
	o.RequirePass = clientsPassword
	o.Users = []commands.User{{Name: appUser, Password: appPassword, Role: commands.RoleApp}}
}

// --- the wire, byte for byte -------------------------------------------------

// wantWire sends cmds in one write, as clients pipeline their handshakes,
// and checks the bytes that come back are exactly want.
func wantWire(t *testing.T, rc *rawConn, want string, cmds ...[]string) {
	t.Helper()
	var req []byte
	for _, c := range cmds {
		req = append(req, encode(c...)...)
	}
	rc.write(req)
	_ = rc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	n, err := io.ReadFull(rc.r, got)
	if err != nil || string(got) != want {
		t.Errorf("%q:\n got %q (%v)\nwant %q", cmds, got[:n], err, want)
	}
}

// helloReply is Redis 7's HELLO reply on the wire.
func helloReply(proto int, id int64) string {
	head := "*14\r\n"
	if proto == 3 {
		head = "%7\r\n"
	}
	return head + "$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n" +
		"$5\r\nproto\r\n:" + strconv.Itoa(proto) + "\r\n$2\r\nid\r\n:" + strconv.FormatInt(id, 10) + "\r\n" +
		"$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
}

// verbatim sends a command and reads its reply, a RESP3 verbatim string
// (=len\r\ntxt:…), whole: format prefix and text.
func verbatim(t *testing.T, rc *rawConn, args ...string) string {
	t.Helper()
	rc.write(encode(args...))
	_ = rc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	head, err := rc.r.ReadString('\n')
	if err != nil || head[0] != '=' {
		t.Fatalf("%q: reply %q, %v; want a verbatim string", args, head, err)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(head[1:], "\r\n"))
	if err != nil {
		t.Fatalf("%q: bad verbatim length %q", args, head)
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return string(body[:n])
}

// clientID is the proxy's id of a raw connection.
func clientID(t *testing.T, rc *rawConn) int64 {
	t.Helper()
	id, ok := rc.do("CLIENT", "ID").(int64)
	if !ok {
		t.Fatal("CLIENT ID: not an integer")
	}
	return id
}

// testHandshakeWire replays the clients' handshakes, pipelined in one
// write as they send them, and compares every byte with what Redis 7
// answers (checked against redis-server 7.0.15; CLIENT SETINFO as 7.2).
func testHandshakeWire(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)

	// node-redis v6: HELLO 3, CLIENT SETINFO ×2 and CLIENT
	// MAINT_NOTIFICATIONS (whose error it ignores), in one write.
	rc := p.raw(t)
	id := clientID(t, rc)
	wantWire(t, rc, helloReply(3, id)+"+OK\r\n+OK\r\n-ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP.\r\n"+"_\r\n",
		[]string{"HELLO", "3"},
		[]string{"CLIENT", "SETINFO", "LIB-VER", "6.3.1"},
		[]string{"CLIENT", "SETINFO", "LIB-NAME", "node-redis"},
		[]string{"CLIENT", "MAINT_NOTIFICATIONS", "ON", "moving-endpoint-type", "external-ip"},
		[]string{"SESS.GET", "missing"})
	// RESP3 shapes: null (also inside an array), map, set, verbatim
	// string; and RESP2 again after RESET.
	wantWire(t, rc, "+OK\r\n*2\r\n$2\r\n{}\r\n_\r\n%1\r\n$1\r\nw\r\n$2\r\n{}\r\n",
		[]string{"SESS.SET", "w", "{}"}, []string{"MGET", "sess:w", "sess:missing"}, []string{"SESS.ALL"})
	wantWire(t, rc, "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~1\r\n+readonly\r\n:1\r\n:1\r\n:1\r\n~2\r\n+@read\r\n+@string\r\n~0\r\n*0\r\n*0\r\n",
		[]string{"COMMAND", "INFO", "GET"})
	if info := verbatim(t, rc, "CLIENT", "INFO"); !strings.HasPrefix(info, "txt:id=") || !strings.HasSuffix(info, " resp=3 lib-name=node-redis lib-ver=6.3.1\n") {
		t.Errorf("CLIENT INFO after node-redis's handshake = %q", info)
	}
	wantWire(t, rc, "+RESET\r\n$-1\r\n*2\r\n$1\r\nw\r\n$2\r\n{}\r\n", []string{"RESET"}, []string{"SESS.GET", "missing"}, []string{"SESS.ALL"})

	// go-redis v9: HELLO 3 SETNAME, then CLIENT SETNAME, then CLIENT
	// SETINFO ×2 pipelined. HELLO 4 is refused and leaves RESP2 in place.
	rc = p.raw(t)
	id = clientID(t, rc)
	wantWire(t, rc, "-NOPROTO unsupported protocol version\r\n$-1\r\n", []string{"HELLO", "4"}, []string{"SESS.GET", "missing"})
	wantWire(t, rc, helloReply(3, id), []string{"hello", "3", "setname", "gr"})
	wantWire(t, rc, "+OK\r\n", []string{"client", "setname", "gr"})
	wantWire(t, rc, "+OK\r\n+OK\r\n$2\r\ngr\r\n",
		[]string{"client", "setinfo", "LIB-NAME", "go-redis(,go1.26)"}, []string{"client", "setinfo", "LIB-VER", "9.23.0"},
		[]string{"CLIENT", "GETNAME"})
	// HELLO with no version reports the protocol in use.
	wantWire(t, rc, helloReply(3, id), []string{"HELLO"})
	wantWire(t, rc, helloReply(2, id)+"$-1\r\n", []string{"HELLO", "2"}, []string{"SESS.GET", "missing"})

	// requirepass: HELLO 3 AUTH authenticates and switches at once; a
	// failed one switches nothing, and the commands pipelined behind it
	// are refused (PING is served before AUTH, SPEC §9).
	a := startProxy(t, up, authTweak)
	rc = a.raw(t)
	wantWire(t, rc, "-"+msgWrongPass+"\r\n-"+msgNoAuth+"\r\n+PONG\r\n",
		[]string{"HELLO", "3", "AUTH", "default", "wrong"}, []string{"CLIENT", "SETINFO", "LIB-NAME", "x"}, []string{"PING"})
	wantWire(t, rc, "-"+msgHelloNoAuth+"\r\n-"+msgNoAuth+"\r\n", []string{"HELLO", "3"}, []string{"CLIENT", "ID"})
	// (CLIENT ID needs AUTH; RESET logs out again, keeping the id.)
	wantWire(t, rc, "+OK\r\n", []string{"AUTH", clientsPassword})
	id = clientID(t, rc)
	wantWire(t, rc, "+RESET\r\n", []string{"RESET"})
	wantWire(t, rc, helloReply(3, id)+"+OK\r\n_\r\n",
		[]string{"HELLO", "3", "AUTH", "default", clientsPassword, "SETNAME", "n"},
		[]string{"CLIENT", "SETINFO", "LIB-NAME", "x"}, []string{"SESS.GET", "missing"})
	wantWire(t, rc, "$1\r\nn\r\n", []string{"CLIENT", "GETNAME"})

	// go-redis's fallback when HELLO fails: AUTH, and the connection stays
	// on RESP2 until a HELLO succeeds.
	rc = a.raw(t)
	wantWire(t, rc, "-"+msgWrongPass+"\r\n+OK\r\n$-1\r\n",
		[]string{"HELLO", "3", "AUTH", appUser, "wrong"}, []string{"AUTH", appUser, appPassword}, []string{"SESS.GET", "missing"})
	id = clientID(t, rc)
	wantWire(t, rc, helloReply(3, id)+"_\r\n", []string{"HELLO", "3"}, []string{"SESS.GET", "missing"})
	wantWire(t, rc, "-NOPERM this user has no permissions to run the 'sess.clear' command\r\n", []string{"SESS.CLEAR"})
}

// --- go-redis v9 -------------------------------------------------------------

// testGoRedis runs a session's life with go-redis v9 on each protocol, with
// its full handshake (HELLO <proto> SETNAME, CLIENT SETNAME, CLIENT SETINFO).
func testGoRedis(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	for _, proto := range []int{3, 2} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			name := fmt.Sprintf("gr%d", proto)
			c := redis.NewClient(&redis.Options{Addr: p.addr, Protocol: proto, ClientName: name})
			t.Cleanup(func() { c.Close() })

			info, err := c.ClientInfo(bg).Result()
			if err != nil {
				t.Fatalf("CLIENT INFO: %v", err)
			}
			if info.Resp != proto || info.Name != name || !strings.HasPrefix(info.LibName, "go-redis") || info.LibVer == "" {
				t.Errorf("CLIENT INFO after go-redis's handshake = resp %d name %q lib %q %q; want resp %d name %q lib go-redis…",
					info.Resp, info.Name, info.LibName, info.LibVer, proto, name)
			}
			hello, err := c.Do(bg, "HELLO").Result()
			if err != nil {
				t.Fatalf("HELLO: %v", err)
			}
			// go-redis hands a RESP3 map over as a Go map, RESP2's as a slice.
			if m, isMap := hello.(map[interface{}]interface{}); (proto == 3) != isMap || (isMap && m["proto"] != int64(3)) {
				t.Errorf("HELLO on RESP%d = %#v", proto, hello)
			}

			sid := "gr-" + name
			key := "sess:" + sid
			payload := `{"user":"bob","cookie":{"originalMaxAge":3600000}}`
			if err := c.Set(bg, key, payload, time.Hour).Err(); err != nil {
				t.Fatalf("SET EX: %v", err)
			}
			p.wantStored(t, key, payload)
			p.wantTTL(t, key, time.Hour)
			if got, err := c.Get(bg, key).Result(); err != nil || got != payload {
				t.Errorf("GET = %q, %v", got, err)
			}
			for _, cmd := range []*redis.Cmd{c.Do(bg, "SESS.GET", "missing"), c.Do(bg, "GET", "sess:missing")} {
				if err := cmd.Err(); !errors.Is(err, redis.Nil) {
					t.Errorf("%v: %v, want redis.Nil", cmd.Args(), err)
				}
			}
			if got, err := c.MGet(bg, key, "sess:missing").Result(); err != nil || fmt.Sprint(got) != fmt.Sprint([]interface{}{payload, nil}) {
				t.Errorf("MGET = %#v, %v", got, err)
			}
			all, err := c.Do(bg, "SESS.ALL").Result()
			want := interface{}([]interface{}{sid, payload})
			if proto == 3 {
				want = map[interface{}]interface{}{sid: payload}
			}
			if err != nil || fmt.Sprintf("%#v", all) != fmt.Sprintf("%#v", want) {
				t.Errorf("SESS.ALL on RESP%d = %#v, %v; want %#v", proto, all, err, want)
			}

			// Touch (EXPIRE), then a pipeline as go-redis sends one.
			if ok, err := c.Expire(bg, key, 2*time.Hour).Result(); err != nil || !ok {
				t.Errorf("EXPIRE = %v, %v", ok, err)
			}
			p.wantTTL(t, key, 2*time.Hour)
			var ttl *redis.DurationCmd
			var get *redis.StringCmd
			_, err = c.Pipelined(bg, func(pipe redis.Pipeliner) error {
				pipe.Do(bg, "SESS.TOUCH", sid)
				ttl = pipe.TTL(bg, key)
				get = pipe.Get(bg, key)
				return nil
			})
			if err != nil || get.Val() != payload || ttl.Val() > 24*time.Hour || ttl.Val() < 24*time.Hour-ttlSlack {
				t.Errorf("pipeline: TTL %v GET %q, %v; want the default TTL and the payload", ttl.Val(), get.Val(), err)
			}

			// Logout, and a late write refused.
			if n, err := c.Del(bg, key).Result(); err != nil || n != 1 {
				t.Errorf("DEL = %d, %v", n, err)
			}
			p.wantTombstone(t, key)
			if err := c.Set(bg, key, payload, time.Hour).Err(); err == nil || err.Error() != "TOMBSTONE session "+sid+" was destroyed" {
				t.Errorf("SET after DEL: %v, want the TOMBSTONE error", err)
			}
			if err := c.Get(bg, key).Err(); !errors.Is(err, redis.Nil) {
				t.Errorf("GET after DEL: %v, want redis.Nil", err)
			}
			p.wantTombstone(t, key)
		})
	}
}

// testGoRedisAuth connects go-redis v9 with credentials: HELLO <proto> AUTH,
// and, when HELLO fails, the AUTH it falls back to.
func testGoRedisAuth(t *testing.T, up *upstream) {
	p := startProxy(t, up, authTweak)
	tests := []struct {
		name           string
		proto          int
		user, password string
		wantUser       string
		wantErr        string // of the first command; "" connects
	}{
		{"default-RESP3", 3, "", clientsPassword, "default", ""},
		{"default-RESP2", 2, "", clientsPassword, "default", ""},
		{"user-RESP3", 3, appUser, appPassword, appUser, ""},
		{"user-RESP2", 2, appUser, appPassword, appUser, ""},
		// HELLO 3 AUTH fails with WRONGPASS, go-redis falls back to AUTH,
		// which fails the same way: that is the error the app sees.
		{"wrong-RESP3", 3, "", "wrong", "", msgWrongPass},
		{"wrong-user-RESP2", 2, appUser, "wrong", "", msgWrongPass},
		{"none-RESP3", 3, "", "", "", msgNoAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: p.addr, Protocol: tt.proto, Username: tt.user, Password: tt.password, MaxRetries: -1})
			t.Cleanup(func() { c.Close() })
			sid := "auth-" + tt.name
			err := c.Do(bg, "SESS.SET", sid, `{"n":1}`).Err()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("SESS.SET: %v, want %q", err, tt.wantErr)
				}
				p.wantMissing(t, "sess:"+sid)
				return
			}
			if err != nil {
				t.Fatalf("SESS.SET: %v", err)
			}
			p.wantStored(t, "sess:"+sid, `{"n":1}`)
			info, err := c.ClientInfo(bg).Result()
			if err != nil || info.User != tt.wantUser || info.Resp != tt.proto {
				t.Errorf("CLIENT INFO = user %q resp %d, %v; want %q, %d", info.User, info.Resp, err, tt.wantUser, tt.proto)
			}
		})
	}

	// No requirepass: a client configured with a password still connects,
	// as Redis's nopass default user takes any (HELLO 3 AUTH default x).
	open := startProxy(t, up, nil)
	c := redis.NewClient(&redis.Options{Addr: open.addr, Password: "not-needed", MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	wantReply(t, c, nil, "SESS.GET", "missing")
}

// --- Node: express-session + connect-redis, node-redis, ioredis --------------

// nodeDir is the Node project; its node_modules must be installed.
func nodeDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not installed: the Node client tests need Node.js 20 or later (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		t.Fatalf("integration/node has no node_modules: run `npm ci` in integration/node (make test does) (%v)", err)
	}
	return dir
}

// testNode runs integration/node's tests (node --test test/*.test.mjs)
// against a proxy, and a second one with requirepass, on this upstream.
func testNode(t *testing.T, up *upstream) {
	dir := nodeDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "test", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s/test (%v)", dir, err)
	}
	p := startProxy(t, up, nil)
	a := startProxy(t, up, authTweak)
	runNode(t, up, files,
		"SESSPROXY_ADDR="+p.addr,
		"SESSPROXY_AUTH_ADDR="+a.addr,
		"SESSPROXY_PASSWORD="+clientsPassword,
	)
}

// runNode runs node --test on files (paths under integration/node) with
// env (the proxies' addresses) and the upstream's. The tests check the
// upstream themselves; their output is the failure message.
func runNode(t *testing.T, up *upstream, files []string, env ...string) {
	t.Helper()
	dir := nodeDir(t)
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	args := []string{"--test", "--test-reporter=spec"}
	for _, f := range files {
		rel, err := filepath.Rel(dir, f)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, rel)
	}
	// The node tests read the upstream directly; a sentinel's master is,
	// to them, a standalone server (the suite's master never fails over).
	mode, addrs := up.mode, up.addrs
	if up.mode == store.ModeSentinel {
		mode, addrs = store.ModeStandalone, []string{up.master}
	}
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env,
		"UPSTREAM_MODE="+mode,
		"UPSTREAM_ADDRS="+strings.Join(addrs, ","),
		"NO_COLOR=1",
	)
	cmd.WaitDelay = 10 * time.Second // node's per-file children may hold the pipe
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s (in integration/node): %v\n%s", strings.Join(args, " "), err, out)
	}
	// node --test exits 0 when it found no test: make sure it ran them.
	pass := regexp.MustCompile(`(?m)^(?:ℹ|#) pass (\d+)$`).FindSubmatch(out)
	fail := regexp.MustCompile(`(?m)^(?:ℹ|#) fail (\d+)$`).FindSubmatch(out)
	if pass == nil || fail == nil || string(pass[1]) == "0" || string(fail[1]) != "0" {
		t.Fatalf("node --test ran no test, or its summary is unreadable:\n%s", out)
	}
	t.Logf("node --test: %s passed", pass[1])
}

// --- redis-cli ---------------------------------------------------------------

// testRedisCLI3 runs redis-cli one-shot on RESP3 (-3: it sends HELLO 3
// first) and with credentials (AUTH, then HELLO 3).
func testRedisCLI3(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	tests := []struct {
		args []string
		want string // the whole output
	}{
		{[]string{"-3", "SESS.SET", "cli3", `{"a":1}`}, "OK\n"},
		{[]string{"-3", "--no-raw", "SESS.GET", "cli3"}, `"{\"a\":1}"` + "\n"},
		{[]string{"-3", "--no-raw", "SESS.GET", "missing"}, "(nil)\n"},
		{[]string{"-3", "--no-raw", "MGET", "sess:cli3", "sess:missing"}, "1) \"{\\\"a\\\":1}\"\n2) (nil)\n"},
		{[]string{"-3", "--no-raw", "SESS.ALL"}, `1# "cli3" => "{\"a\":1}"` + "\n"},
		{[]string{"-3", "--json", "SESS.ALL"}, `{"cli3":"{\"a\":1}"}` + "\n"},
		{[]string{"-2", "--no-raw", "SESS.ALL"}, "1) \"cli3\"\n2) \"{\\\"a\\\":1}\"\n"},
	}
	for _, tt := range tests {
		if out, err := p.redisCLI(t, tt.args...); err != nil || out != tt.want {
			t.Errorf("redis-cli %q = %q, %v; want %q", tt.args, out, err, tt.want)
		}
	}
	p.wantStored(t, "sess:cli3", `{"a":1}`)
	p.wantTTL(t, "sess:cli3", defaultTTL)

	out, err := p.redisCLI(t, "-3", "--no-raw", "HELLO")
	if err != nil || !strings.Contains(out, `3# "proto" => (integer) 3`) {
		t.Errorf("redis-cli -3 HELLO = %q, %v", out, err)
	}
	out, err = p.redisCLI(t, "-3", "CLIENT", "INFO")
	if err != nil || !strings.Contains(out, " resp=3 ") {
		t.Errorf("redis-cli -3 CLIENT INFO = %q, %v", out, err)
	}

	a := startProxy(t, up, authTweak)
	auth := []struct {
		args []string
		want string
	}{
		{[]string{"-3", "-a", clientsPassword, "--no-auth-warning", "SESS.SET", "cli-auth", "{}"}, "OK\n"},
		{[]string{"-3", "--user", appUser, "--pass", appPassword, "--no-auth-warning", "--no-raw", "SESS.GET", "cli-auth"}, `"{}"` + "\n"},
		// redis-cli reports a failed AUTH or HELLO 3 and sends the command anyway.
		{[]string{"-a", "wrong", "--no-auth-warning", "SESS.GET", "cli-auth"}, "AUTH failed: " + msgWrongPass + "\n" + msgNoAuth + "\n\n"},
		{[]string{"-3", "SESS.GET", "cli-auth"}, "HELLO 3 failed: " + msgHelloNoAuth + "\n" + msgNoAuth + "\n\n"},
	}
	for _, tt := range auth {
		if out, err := a.redisCLI(t, tt.args...); err != nil || out != tt.want {
			t.Errorf("redis-cli %q = %q, %v; want %q", tt.args, out, err, tt.want)
		}
	}
	a.wantStored(t, "sess:cli-auth", "{}")
}

// tmuxCLI is an interactive redis-cli in a detached tmux session on its
// own tmux server (socket in the test's temporary directory), read through
// capture-pane.
type tmuxCLI struct {
	t      *testing.T
	socket string
}

func (m *tmuxCLI) tmux(args ...string) string {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tmux", append([]string{"-S", m.socket}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// screen is the visible pane.
func (m *tmuxCLI) screen() string {
	m.t.Helper()
	return m.tmux("capture-pane", "-p", "-t", "cli")
}

// waitFor polls the screen until it holds want, or fails after a deadline.
func (m *tmuxCLI) waitFor(want string) string {
	m.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := m.screen()
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("redis-cli screen never showed %q:\n%s", want, s)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// run types a command line and waits for the prompt after its reply:
// the screen's prompt count grows by one.
func (m *tmuxCLI) run(line, prompt string) string {
	m.t.Helper()
	before := strings.Count(m.screen(), prompt)
	m.tmux("send-keys", "-t", "cli", "-l", line)
	m.tmux("send-keys", "-t", "cli", "Enter")
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := m.screen()
		if strings.Count(s, prompt) > before && strings.HasSuffix(strings.TrimRight(s, "\n "), prompt) {
			// The reply sits between the echoed line and the new prompt.
			_, after, _ := strings.Cut(s[strings.LastIndex(s, prompt+" "+line):], line)
			return strings.TrimSpace(strings.TrimSuffix(strings.TrimRight(after, "\n "), prompt))
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("redis-cli: no prompt after %q:\n%s", line, s)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// testRedisCLIInteractive drives redis-cli on a terminal, as a person does:
// on start it sends COMMAND DOCS (for its help and hints), then each line
// typed.
func testRedisCLIInteractive(t *testing.T, up *upstream) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is not installed (apt-get install tmux): the interactive redis-cli test needs it (%v)", err)
	}
	p := startProxy(t, up, nil)
	m := &tmuxCLI{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock")}
	cli := fmt.Sprintf("env REDISCLI_HISTFILE=/dev/null REDISCLI_RCFILE=/dev/null redis-cli -h 127.0.0.1 -p %d", p.port)
	m.tmux("-f", "/dev/null", "new-session", "-d", "-s", "cli", "-x", "160", "-y", "50", cli)
	t.Cleanup(func() {
		_ = exec.Command("tmux", "-S", m.socket, "kill-server").Run()
	})
	prompt := fmt.Sprintf("127.0.0.1:%d>", p.port)
	m.waitFor(prompt)

	// The start-up COMMAND DOCS was served: it is the last command the
	// proxy saw from that client (recorded once its reply is written, so
	// poll).
	admin := p.client(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines, err := admin.ClientList(bg).Result()
		if err == nil && regexp.MustCompile(`(?m) cmd=command `).MatchString(lines) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CLIENT LIST after redis-cli started = %q, %v; want its connection with cmd=command (COMMAND DOCS)", lines, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}

	steps := []struct{ line, want string }{
		{"SESS.SET tmux-x {}", "OK"},
		{"SESS.GET tmux-x", `"{}"`},
		{"SESS.GET missing", "(nil)"},
		{"FLUSHALL", "(error) ERR unknown or unsupported command 'FLUSHALL'"},
		{"HELLO 3", `3# "proto" => (integer) 3`},
		{"SESS.GET missing", "(nil)"},
		{"SESS.ALL", `1# "tmux-x" => "{}"`},
	}
	for _, s := range steps {
		if got := m.run(s.line, prompt); !strings.HasPrefix(got, s.want) && !strings.Contains(got, "\n"+s.want) {
			t.Errorf("redis-cli> %s\n%s\nwant %q", s.line, got, s.want)
		}
	}
	got := m.run("TTL sess:tmux-x", prompt)
	if n, err := strconv.Atoi(strings.TrimPrefix(got, "(integer) ")); err != nil || n <= 0 || n > int(defaultTTL.Seconds()) {
		t.Errorf("redis-cli> TTL sess:tmux-x\n%s\nwant (integer) about %d", got, int(defaultTTL.Seconds()))
	}
	p.wantStored(t, "sess:tmux-x", "{}")
	p.wantTTL(t, "sess:tmux-x", defaultTTL)
}
