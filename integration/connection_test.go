package integration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
)

const (
	msgNoAuth      = "NOAUTH Authentication required."
	msgHelloNoAuth = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
	msgWrongPass   = "WRONGPASS invalid username-password pair or user is disabled."
	msgNoPassword  = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
	msgClientName  = "ERR Client names cannot contain spaces, newlines or special characters."
)

// wantRaw checks a raw reply.
func wantRaw(t *testing.T, c *rawConn, want interface{}, args ...string) {
	t.Helper()
	if got := c.do(args...); fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		t.Errorf("%s = %s, want %s", clip(fmt.Sprintf("%q", args)), clip(fmt.Sprintf("%#v", got)), clip(fmt.Sprintf("%#v", want)))
	}
}

// wantRawErrPrefix checks a raw reply is an error starting with prefix.
func wantRawErrPrefix(t *testing.T, c *rawConn, prefix string, args ...string) {
	t.Helper()
	got := c.do(args...)
	if e, ok := got.(respError); !ok || !strings.HasPrefix(string(e), prefix) {
		t.Errorf("%s = %s, want an error starting %q", clip(fmt.Sprintf("%q", args)), clip(fmt.Sprintf("%#v", got)), prefix)
	}
}

func testUnknownCommands(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	rc := p.raw(t)
	wantRaw(t, rc, status("OK"), "SESS.SET", "keep", `{}`)

	unsupported := [][]string{
		{"FLUSHALL"},
		{"flushdb"},
		{"CONFIG", "SET", "maxmemory", "1"},
		{"PUBLISH", "ch", "x"},
		{"PSUBSCRIBE", "*"},
		{"MONITOR"},
		{"SHUTDOWN"},
		{"DEBUG", "SLEEP", "10"},
		{"LPUSH", "sess:keep", "v"},
		{"FOO", "bar"},
	}
	for _, args := range unsupported {
		// The reply names the command as sent, and the connection stays.
		wantRawErrPrefix(t, rc, "ERR unknown or unsupported command '"+args[0]+"'", args...)
		wantRaw(t, rc, status("PONG"), "PING")
	}
	// Scripts are served (scripts_test.go), but not what a script cannot be
	// policed in; the connection stays.
	wantRawErrPrefix(t, rc, "ERR command 'flushall' is not allowed in scripts", "EVAL", "return redis.call('FLUSHALL')", "0")
	wantRawErrPrefix(t, rc, "NOSCRIPT No matching script. Please use EVAL.", "EVALSHA", "0000000000000000000000000000000000000000", "0")
	wantRawErrPrefix(t, rc, "ERR FCALL is not served by sessproxy", "FCALL", "f", "0")
	wantRaw(t, rc, status("PONG"), "PING")
	wantRawErrPrefix(t, rc, "ERR unknown subcommand 'KILL'. Try CLIENT HELP.", "CLIENT", "KILL", "ID", "1")
	wantRawErrPrefix(t, rc, "ERR unknown subcommand 'FOO'. Try COMMAND HELP.", "COMMAND", "FOO")

	// Pipelined with good commands, replies stay in order; an unknown
	// command inside MULTI aborts the transaction, which runs nothing
	// (SPEC §5: never half-run).
	var pipeline []byte
	for _, cmd := range [][]string{{"FOO"}, {"SESS.GET", "keep"}, {"MULTI"}, {"SET", "sess:keep", `{"a":1}`}, {"FLUSHALL"}, {"EXEC"}, {"ECHO", "after"}} {
		pipeline = append(pipeline, encode(cmd...)...)
	}
	rc.write(pipeline)
	for i, want := range []interface{}{respError(""), "{}", status("OK"), status("QUEUED"), respError(""), respError(""), "after"} {
		got, err := rc.read()
		if err != nil {
			t.Fatalf("pipelined reply %d: %v", i, err)
		}
		if _, isErr := want.(respError); isErr {
			if _, ok := got.(respError); !ok {
				t.Errorf("pipelined reply %d = %#v, want an error", i, got)
			}
		} else if got != want {
			t.Errorf("pipelined reply %d = %#v, want %#v", i, got, want)
		}
	}
	p.wantStored(t, "sess:keep", `{}`) // FLUSHALL, EVAL and the SET inside MULTI never reached Redis

	// The same transaction command by command.
	wantRaw(t, rc, status("OK"), "MULTI")
	wantRaw(t, rc, status("QUEUED"), "SET", "sess:keep", `{"a":1}`)
	wantRawErrPrefix(t, rc, "ERR unknown or unsupported command 'FLUSHALL'", "FLUSHALL")
	wantRawErrPrefix(t, rc, "EXECABORT Transaction discarded because of previous errors.", "EXEC")
	wantRawErrPrefix(t, rc, "ERR EXEC without MULTI", "EXEC")
	wantRaw(t, rc, status("PONG"), "PING")
	p.wantStored(t, "sess:keep", `{}`)
}

func testPingEcho(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	if got, err := c.Ping(bg).Result(); err != nil || got != "PONG" {
		t.Errorf("PING = %q, %v", got, err)
	}
	wantReply(t, c, "hello", "PING", "hello")
	wantReply(t, c, "a b\r\nc", "ECHO", "a b\r\nc")
	wantErr(t, c, "ERR wrong number of arguments for 'ping' command", "PING", "a", "b")
	wantErr(t, c, "ERR wrong number of arguments for 'echo' command", "ECHO")
	// PING answers with a status reply, as Redis does.
	wantRaw(t, p.raw(t), status("PONG"), "PING")
}

func testQuit(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)

	rc := p.raw(t)
	wantRaw(t, rc, status("OK"), "QUIT")
	rc.wantEOF()

	// Pipelined: the replies before QUIT arrive, nothing after it runs.
	rc = p.raw(t)
	rc.write(append(append(append(encode("PING"), encode("SESS.SET", "q", `{}`)...), encode("QUIT")...), encode("SESS.SET", "after", `{}`)...))
	for _, want := range []interface{}{status("PONG"), status("OK"), status("OK")} {
		if got, err := rc.read(); err != nil || got != want {
			t.Errorf("reply = %#v, %v; want %#v", got, err, want)
		}
	}
	rc.wantEOF()
	p.wantStored(t, "sess:q", `{}`)
	p.wantMissing(t, "sess:after")
}

func testReset(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.conn(t)
	wantReply(t, c, "OK", "CLIENT", "SETNAME", "before-reset")
	wantReply(t, c, "RESET", "RESET")
	wantReply(t, c, nil, "CLIENT", "GETNAME")
	wantReply(t, c, "PONG", "PING")
	wantErr(t, c, "ERR wrong number of arguments for 'reset' command", "RESET", "x")
}

func testAuth(t *testing.T, up *upstream) {
	// No password configured: AUTH <password> is an error, AUTH default
	// <anything> succeeds and other users do not exist, as in Redis.
	p0 := startProxy(t, up, nil)
	rc0 := p0.raw(t)
	wantRaw(t, rc0, respError(msgNoPassword), "AUTH", "x")
	wantRaw(t, rc0, status("OK"), "AUTH", "default", "x")
	wantRaw(t, rc0, respError(msgWrongPass), "AUTH", "nobody", "x")
	wantRaw(t, rc0, nil, "SESS.GET", "a")

	const pass = "s3cret"
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.RequirePass = pass })
	rc := p.raw(t)
	for _, args := range [][]string{
		{"GET", "sess:a"}, {"SESS.GET", "a"}, {"SESS.SET", "a", `{}`}, {"SET", "sess:a", `{}`},
		{"ECHO", "x"}, {"CLIENT", "SETNAME", "x"}, {"DBSIZE"}, {"INFO"}, {"SELECT", "0"},
	} {
		wantRaw(t, rc, respError(msgNoAuth), args...)
	}
	wantRaw(t, rc, status("PONG"), "PING")
	wantRaw(t, rc, respError(msgHelloNoAuth), "HELLO", "2")
	wantRaw(t, rc, respError(msgWrongPass), "AUTH", "wrong")
	wantRaw(t, rc, respError(msgWrongPass), "AUTH", "default", "wrong")
	wantRaw(t, rc, respError(msgWrongPass), "AUTH", "nobody", pass)
	wantRaw(t, rc, respError("ERR syntax error"), "AUTH", "a", "b", "c")
	wantRaw(t, rc, respError(msgNoAuth), "GET", "sess:a")
	wantRaw(t, rc, status("OK"), "AUTH", pass)
	wantRaw(t, rc, nil, "GET", "sess:a")
	wantRaw(t, rc, status("OK"), "AUTH", "default", pass)
	// RESET logs the connection out.
	wantRaw(t, rc, status("RESET"), "RESET")
	wantRaw(t, rc, respError(msgNoAuth), "GET", "sess:a")
	if got := rc.do("HELLO", "2", "AUTH", "default", pass, "SETNAME", "authed"); !isArray(got, 14) {
		t.Errorf("HELLO 2 AUTH = %#v, want the 7-pair HELLO reply", got)
	}
	wantRaw(t, rc, "authed", "CLIENT", "GETNAME")
	wantRaw(t, rc, nil, "SESS.GET", "a")

	// QUIT works before AUTH.
	rc = p.raw(t)
	wantRaw(t, rc, status("OK"), "QUIT")
	rc.wantEOF()

	// go-redis authenticates with HELLO 2 AUTH.
	c := p.client(t, func(o *redis.Options) { o.Password = pass })
	wantReply(t, c, "OK", "SESS.SET", "a", `{"n":1}`)
	wantReply(t, c, `{"n":1}`, "SESS.GET", "a")
	bad := p.client(t, func(o *redis.Options) { o.Password = "wrong" })
	if err := bad.Ping(bg).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("PING with a wrong password: %v, want WRONGPASS", err)
	}
	none := p.client(t)
	wantErr(t, none, msgNoAuth, "SESS.GET", "a")
}

func isArray(v interface{}, n int) bool {
	a, ok := v.([]interface{})
	return ok && len(a) == n
}

func testUsers(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) {
		o.Users = []commands.User{
			{Name: "app", Password: "apppw", Role: commands.RoleApp},
			{Name: "ro", Password: "ropw", Role: commands.RoleReadonly},
			{Name: "adm", Password: "admpw", Role: commands.RoleAdmin},
		}
	})
	as := func(user, pass string) func(*redis.Options) {
		return func(o *redis.Options) { o.Username, o.Password = user, pass }
	}
	app := p.client(t, as("app", "apppw"))
	wantReply(t, app, "OK", "SESS.SET", "s1", `{"n":1}`)
	wantReply(t, app, "OK", "SET", "sess:s2", `{"n":2}`)
	wantReply(t, app, 2, "DBSIZE")

	ro := p.conn(t, as("ro", "ropw"))
	wantReply(t, ro, `{"n":1}`, "SESS.GET", "s1")
	wantReply(t, ro, `{"n":2}`, "GET", "sess:s2")
	wantReply(t, ro, 2, "EXISTS", "sess:s1", "sess:s2")
	wantReply(t, ro, 2, "DBSIZE")
	for _, args := range [][]interface{}{
		{"SET", "sess:x", `{}`}, {"SESS.SET", "x", `{}`}, {"SESS.DESTROY", "s1"}, {"SESS.TOUCH", "s1"},
		{"DEL", "sess:s1"}, {"GETDEL", "sess:s1"}, {"EXPIRE", "sess:s1", "1"}, {"MSET", "sess:x", `{}`},
		{"GETEX", "sess:s1"},
	} {
		name := lower(args[0].(string))
		wantErr(t, ro, "NOPERM this user has no permissions to run the '"+name+"' command", args...)
	}
	p.wantStored(t, "sess:s1", `{"n":1}`)
	p.wantMissing(t, "sess:x")
	if info, err := ro.ClientInfo(bg).Result(); err != nil || info.User != "ro" {
		t.Errorf("CLIENT INFO user = %+v, %v; want ro", info, err)
	}

	adm := p.client(t, as("adm", "admpw"))
	wantReply(t, adm, 1, "SESS.DESTROY", "s1")

	for _, creds := range [][2]string{{"ro", "wrong"}, {"nobody", "ropw"}, {"default", "ropw"}} {
		bad := p.client(t, as(creds[0], creds[1]))
		if err := bad.Ping(bg).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Errorf("PING as %s/%s: %v, want WRONGPASS", creds[0], creds[1], err)
		}
	}

	// HELLO 2 AUTH user pass SETNAME name, on a raw connection.
	rc := p.raw(t)
	wantRaw(t, rc, respError(msgNoAuth), "GET", "sess:s2")
	wantRaw(t, rc, respError(msgWrongPass), "AUTH", "ropw") // the default user has no password
	if got := rc.do("HELLO", "2", "AUTH", "ro", "ropw", "SETNAME", "ro-client"); !isArray(got, 14) {
		t.Errorf("HELLO 2 AUTH ro = %#v, want the HELLO reply", got)
	}
	wantRaw(t, rc, "ro-client", "CLIENT", "GETNAME")
	wantRaw(t, rc, respError("NOPERM this user has no permissions to run the 'set' command"), "SET", "sess:y", `{}`)
	wantRaw(t, rc, status("OK"), "AUTH", "app", "apppw")
	wantRaw(t, rc, status("OK"), "SET", "sess:y", `{}`)
}

func testHello(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.conn(t)

	id, err := c.ClientID(bg).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]interface{}{{"HELLO"}, {"HELLO", "2"}} {
		got, err := c.Do(bg, args...).Slice()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		want := []interface{}{"server", "redis", "version", "7.0.15", "proto", int64(2), "id", id,
			"mode", "standalone", "role", "master", "modules", []interface{}{}}
		if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
			t.Errorf("%v = %#v\nwant %#v", args, got, want)
		}
	}
	m, err := c.Hello(bg, 2, "", "", "").Result()
	if err != nil || m["proto"] != int64(2) || m["server"] != "redis" {
		t.Errorf("go-redis Hello = %v, %v", m, err)
	}

	// Protocol versions other than 2 and 3: NOPROTO, and the connection
	// stays on RESP2.
	wantErr(t, c, "NOPROTO unsupported protocol version", "HELLO", "4")
	wantReply(t, c, "PONG", "PING")
	wantErr(t, c, "ERR Protocol version is not an integer or out of range", "HELLO", "abc")
	wantErr(t, c, "NOPROTO unsupported protocol version", "HELLO", "1")
	wantErr(t, c, "ERR Syntax error in HELLO option 'FOO'", "HELLO", "2", "FOO")
	wantErr(t, c, "ERR Syntax error in HELLO option 'SETNAME'", "HELLO", "2", "SETNAME")
	// No password configured: as Redis's nopass default user, any password
	// opens "default" (a client configured with one still connects), and
	// no other user exists.
	if got, err := c.Do(bg, "HELLO", "2", "AUTH", "default", "x").Slice(); err != nil || len(got) != 14 {
		t.Errorf("HELLO 2 AUTH default x = %v, %v; want the HELLO reply", got, err)
	}
	wantErr(t, c, msgWrongPass, "HELLO", "2", "AUTH", "nobody", "x")
	wantErr(t, c, msgClientName, "HELLO", "2", "SETNAME", "bad name")
	wantReply(t, c, nil, "CLIENT", "GETNAME")
	mustDo(t, c, "HELLO", "2", "SETNAME", "hello-name")
	wantReply(t, c, "hello-name", "CLIENT", "GETNAME")
}

func testSelect(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	wantReply(t, c, "OK", "SELECT", "0")
	wantErr(t, c, "ERR DB index is out of range: sessproxy serves db 0 only", "SELECT", "1")
	wantErr(t, c, "ERR value is not an integer or out of range", "SELECT", "x")
	wantErr(t, c, "ERR wrong number of arguments for 'select' command", "SELECT")

	// go-redis sends SELECT on connect when DB is set.
	db1 := p.client(t, func(o *redis.Options) { o.DB = 1 })
	if err := db1.Ping(bg).Err(); err == nil || !strings.Contains(err.Error(), "DB index is out of range") {
		t.Errorf("client with DB 1: %v, want the SELECT error", err)
	}
}

func testClient(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.conn(t)

	id, err := c.ClientID(bg).Result()
	if err != nil || id <= 0 {
		t.Fatalf("CLIENT ID = %d, %v", id, err)
	}
	wantReply(t, c, nil, "CLIENT", "GETNAME")
	wantReply(t, c, "OK", "CLIENT", "SETNAME", "my-conn")
	wantReply(t, c, "my-conn", "CLIENT", "GETNAME")
	wantErr(t, c, msgClientName, "CLIENT", "SETNAME", "bad name")
	wantErr(t, c, msgClientName, "CLIENT", "SETNAME", "bad\nname")
	wantReply(t, c, "OK", "CLIENT", "SETINFO", "LIB-NAME", "mylib")
	wantReply(t, c, "OK", "CLIENT", "SETINFO", "lib-ver", "1.2.3")
	wantErr(t, c, "ERR Unrecognized option 'FOO'", "CLIENT", "SETINFO", "FOO", "x")
	wantErrPrefix(t, c, "ERR ", "CLIENT", "SETINFO", "LIB-NAME", "bad name")
	wantReply(t, c, "OK", "CLIENT", "NO-EVICT", "on")
	wantErr(t, c, "ERR unknown subcommand 'FOO'. Try CLIENT HELP.", "CLIENT", "FOO")
	wantErr(t, c, "ERR wrong number of arguments for 'client' command", "CLIENT")
	if help, err := c.Do(bg, "CLIENT", "HELP").Slice(); err != nil || len(help) < 2 {
		t.Errorf("CLIENT HELP = %v, %v", help, err)
	}

	info, err := c.Do(bg, "CLIENT", "INFO").Text()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"id=" + strconv.FormatInt(id, 10) + " ", " name=my-conn ", " db=0 ",
		" cmd=client", " user=default ", " resp=2", " lib-name=mylib ", " lib-ver=1.2.3"} {
		if !strings.Contains(info, want) {
			t.Errorf("CLIENT INFO %q lacks %q", info, want)
		}
	}
	if !strings.HasSuffix(info, "\n") || strings.Count(info, "\n") != 1 {
		t.Errorf("CLIENT INFO %q: want one line ending in a newline", info)
	}
	parsed, err := c.ClientInfo(bg).Result()
	if err != nil || parsed.ID != id || parsed.Name != "my-conn" || parsed.LibName != "mylib" {
		t.Errorf("go-redis ClientInfo = %+v, %v", parsed, err)
	}

	other := p.conn(t)
	wantReply(t, other, "OK", "CLIENT", "SETNAME", "other-conn")
	otherID, _ := other.ClientID(bg).Result()
	list, err := c.ClientList(bg).Result()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(list, "\n"), "\n")
	found := map[string]bool{}
	for _, l := range lines {
		if strings.HasPrefix(l, "id="+strconv.FormatInt(id, 10)+" ") && strings.Contains(l, " name=my-conn ") {
			found["mine"] = true
		}
		if strings.HasPrefix(l, "id="+strconv.FormatInt(otherID, 10)+" ") && strings.Contains(l, " name=other-conn ") {
			found["other"] = true
		}
	}
	if !found["mine"] || !found["other"] {
		t.Errorf("CLIENT LIST lacks a client (found %v):\n%s", found, list)
	}
}

func testReadonlyReadwrite(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	wantReply(t, c, "OK", "READONLY")
	wantReply(t, c, "OK", "READWRITE")
	wantReply(t, c, "OK", "SESS.SET", "rw", `{}`)
}

func testInfo(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	mustDo(t, c, "SESS.SET", "i1", `{}`)
	mustDo(t, c, "SESS.SET", "i2", `{}`)
	mustDo(t, c, "SESS.DESTROY", "i2")

	info, err := c.Info(bg).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Server\r\n", "redis_version:7.0.15\r\n", "redis_mode:standalone\r\n", "# Clients\r\n",
		"connected_clients:", "loading:0\r\n", "# Stats\r\n", "total_commands_processed:",
		"# Upstream\r\n", "upstream_mode:" + up.mode + "\r\n", "# Sessions\r\n", "session_prefix:sess:\r\n",
		"ttl_default_seconds:86400\r\n", "tombstone_grace:5m0s\r\n", "tombstone_format:string\r\n", "tombstone_writes:scripted\r\n",
		"# Keyspace\r\n", "db0:keys=2,expires=2,", // the upstream's count: a session and a tombstone, both with a TTL
	} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO lacks %q:\n%s", want, info)
		}
	}

	// The upstream section says where the upstream is: in sentinel mode the
	// sentinels and the master's name, never a placeholder.
	upstreamLines := []string{"upstream_addrs:" + strings.Join(up.addrs, ",") + "\r\n"}
	if up.masterName != "" {
		upstreamLines = append(upstreamLines, "upstream_master_name:"+up.masterName+"\r\n")
	}
	for _, want := range upstreamLines {
		if !strings.Contains(info, want) {
			t.Errorf("INFO lacks %q:\n%s", want, info)
		}
	}
	if up.masterName == "" && strings.Contains(info, "upstream_master_name:") {
		t.Errorf("INFO names a sentinel master outside sentinel mode:\n%s", info)
	}

	server, err := c.Info(bg, "server").Result()
	if err != nil || !strings.Contains(server, "redis_version:") || strings.Contains(server, "# Clients") {
		t.Errorf("INFO server = %q, %v; want the server section only", server, err)
	}
	both, err := c.Info(bg, "clients", "persistence").Result()
	if err != nil || !strings.Contains(both, "connected_clients:") || !strings.Contains(both, "loading:0") ||
		strings.Contains(both, "redis_version") {
		t.Errorf("INFO clients persistence = %q, %v", both, err)
	}
}

func testCommand(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)

	count, err := c.Do(bg, "COMMAND", "COUNT").Int64()
	if err != nil || count < 40 {
		t.Fatalf("COMMAND COUNT = %d, %v", count, err)
	}
	list, err := c.Do(bg, "COMMAND", "LIST").StringSlice()
	if err != nil || int64(len(list)) != count {
		t.Errorf("COMMAND LIST has %d names, %v; want %d", len(list), err, count)
	}
	for _, name := range []string{"sess.set", "sess.get", "get", "set", "ping", "hello", "dbsize"} {
		if !contains(list, name) {
			t.Errorf("COMMAND LIST lacks %s", name)
		}
	}
	all, err := c.Do(bg, "COMMAND").Slice()
	if err != nil || int64(len(all)) != count {
		t.Errorf("COMMAND has %d entries, %v; want %d", len(all), err, count)
	}

	wantReply(t, c, []interface{}{[]interface{}{"get", 2, []interface{}{"readonly"}, 1, 1, 1,
		[]interface{}{"@read", "@string"}, []interface{}{}, []interface{}{}, []interface{}{}}, nil},
		"COMMAND", "INFO", "GET", "nosuch")
	docs, err := c.Do(bg, "COMMAND", "DOCS").Slice()
	if err != nil || int64(len(docs)) != 2*count {
		t.Errorf("COMMAND DOCS has %d elements, %v; want %d (name, docs for each command)", len(docs), err, 2*count)
	}

	// go-redis parses the whole table (it does so for read-only routing).
	cmds, err := c.Command(bg).Result()
	if err != nil {
		t.Fatalf("go-redis COMMAND: %v", err)
	}
	if s := cmds["sess.set"]; s == nil || s.Arity != -3 || s.FirstKeyPos != 1 || s.ReadOnly {
		t.Errorf("COMMAND sess.set = %+v", s)
	}
	if g := cmds["get"]; g == nil || !g.ReadOnly {
		t.Errorf("COMMAND get = %+v", g)
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func testTime(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	got, err := c.Time(bg).Result()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(got); d < -5*time.Second || d > 5*time.Second {
		t.Errorf("TIME = %v, %v away from now", got, d)
	}
}

func testDBSize(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	k := up.spreadKeys(t, "sess:dbsize-", 6)
	for _, key := range k[:5] {
		wantReply(t, c, "OK", "SET", key, `{}`)
	}
	wantReply(t, c, 1, "DEL", k[4])              // a tombstone
	wantReply(t, c, 0, "SESS.DESTROY", k[5][5:]) // a tombstone of no session
	// Exactly nine bytes, like a tombstone, but a live session.
	wantReply(t, c, "OK", "SET", "sess:nine", `{"a":123}`)
	for _, key := range []string{"plain", "session:x"} {
		if err := up.direct.Set(bg, key, "x", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if keys := p.allKeys(t); len(keys) != 9 {
		t.Fatalf("upstream keys = %q, want 9", keys)
	}
	wantReply(t, c, 5, "DBSIZE") // k[0..3] and sess:nine, from every master

	// A write pipelined before DBSIZE is counted.
	pipe := c.Pipeline()
	pipe.Do(bg, "SESS.SET", "piped", `{}`)
	n := pipe.Do(bg, "DBSIZE")
	if _, err := pipe.Exec(bg); err != nil {
		t.Fatal(err)
	}
	if v, _ := n.Int64(); v != 6 {
		t.Errorf("pipelined DBSIZE = %d, want 6", v)
	}
	wantErr(t, c, "ERR wrong number of arguments for 'dbsize' command", "DBSIZE", "x")
}

func testGoRedisDefaultHandshake(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)

	// go-redis's own handshake: HELLO 2 SETNAME, then CLIENT SETINFO.
	c := p.conn(t, func(o *redis.Options) { o.DisableIdentity, o.ClientName = false, "gr-client" })
	wantReply(t, c, "OK", "SESS.SET", "gr", `{"n":1}`)
	wantReply(t, c, `{"n":1}`, "SESS.GET", "gr")
	wantReply(t, c, "gr-client", "CLIENT", "GETNAME")
	info, err := c.ClientInfo(bg).Result()
	if err != nil || !strings.HasPrefix(info.LibName, "go-redis") || info.LibVer == "" {
		t.Errorf("CLIENT INFO after the go-redis handshake = %+v, %v; want lib-name go-redis…", info, err)
	}

	// Out of the box go-redis speaks RESP3.
	def := redis.NewClient(&redis.Options{Addr: p.addr})
	t.Cleanup(func() { def.Close() })
	wantReply(t, def, "OK", "SET", "sess:def", `{"n":2}`)
	if got, err := def.Get(bg, "sess:def").Result(); err != nil || got != `{"n":2}` {
		t.Errorf("default go-redis GET = %q, %v", got, err)
	}
}
