package integration

import (
	"strconv"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/proxy"
)

const (
	oldValue = `{"v":"old"}`
	newValue = `{"v":"new"}`
	// oldTTL is the TTL of the session a test case starts from.
	oldTTL = 1000 * time.Second
)

// unixIn is the Unix time d from now, in seconds or milliseconds.
func unixIn(d time.Duration) string   { return strconv.FormatInt(time.Now().Add(d).Unix(), 10) }
func unixMSIn(d time.Duration) string { return strconv.FormatInt(time.Now().Add(d).UnixMilli(), 10) }

// setOld stores oldValue at key through the proxy, with oldTTL.
func setOld(t *testing.T, c doer, key string) {
	t.Helper()
	wantReply(t, c, "OK", "SET", key, oldValue, "EX", strconv.Itoa(int(oldTTL.Seconds())))
}

func testGetMGet(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	keys := up.spreadKeys(t, "sess:mget-", 5)
	wantReply(t, c, "OK", "SET", keys[0], `{"k":0}`)
	wantReply(t, c, "OK", "SET", keys[1], `{"k":1}`)
	wantReply(t, c, "OK", "SET", keys[3], `{"k":3}`)
	wantReply(t, c, 1, "DEL", keys[3]) // a tombstone
	// A legacy value the proxy did not write is returned as stored.
	if err := up.direct.Set(bg, keys[4], "legacy bytes", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}

	wantReply(t, c, `{"k":0}`, "GET", keys[0])
	wantReply(t, c, nil, "GET", keys[2])
	wantReply(t, c, nil, "GET", keys[3])
	wantReply(t, c, "legacy bytes", "GET", keys[4])
	wantReply(t, c, []interface{}{`{"k":0}`, `{"k":1}`, nil, nil, "legacy bytes", `{"k":0}`},
		"MGET", keys[0], keys[1], keys[2], keys[3], keys[4], keys[0])
	wantReply(t, c, []interface{}{nil}, "MGET", keys[2])
	wantErr(t, c, "NOPERM key 'plain' is outside the session namespace", "MGET", keys[0], "plain")
	wantErr(t, c, "ERR wrong number of arguments for 'get' command", "GET")
	wantErr(t, c, "ERR wrong number of arguments for 'mget' command", "MGET")
}

func testSetOptions(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	cookie := cookieISO(2 * time.Hour)

	tests := []struct {
		name     string
		existing bool // the key holds oldValue with oldTTL
		value    string
		opts     []interface{}
		want     interface{} // reply; nil for a null reply
		stored   string      // value afterwards; "" for no key
		ttl      time.Duration
	}{
		{"new", false, newValue, nil, "OK", newValue, defaultTTL},
		{"overwrite", true, newValue, nil, "OK", newValue, defaultTTL},
		{"ex", false, newValue, []interface{}{"EX", "100"}, "OK", newValue, 100 * time.Second},
		{"ex-lower", false, newValue, []interface{}{"ex", "100"}, "OK", newValue, 100 * time.Second},
		{"px", true, newValue, []interface{}{"PX", "150000"}, "OK", newValue, 150 * time.Second},
		{"exat", false, newValue, []interface{}{"EXAT", unixIn(200 * time.Second)}, "OK", newValue, 200 * time.Second},
		{"pxat", false, newValue, []interface{}{"PXAT", unixMSIn(250 * time.Second)}, "OK", newValue, 250 * time.Second},
		{"exat-past", true, newValue, []interface{}{"EXAT", unixIn(-time.Minute)}, "OK", "", 0},
		{"pxat-past", true, newValue, []interface{}{"PXAT", unixMSIn(-time.Minute)}, "OK", "", 0},
		{"ex-huge", false, newValue, []interface{}{"EX", "999999999"}, "OK", newValue, maxTTL},
		{"nx-missing", false, newValue, []interface{}{"NX"}, "OK", newValue, defaultTTL},
		{"nx-existing", true, newValue, []interface{}{"NX"}, nil, oldValue, oldTTL},
		{"xx-missing", false, newValue, []interface{}{"XX"}, nil, "", 0},
		{"xx-existing", true, newValue, []interface{}{"XX"}, "OK", newValue, defaultTTL},
		{"get-missing", false, newValue, []interface{}{"GET"}, nil, newValue, defaultTTL},
		{"get-existing", true, newValue, []interface{}{"GET"}, oldValue, newValue, defaultTTL},
		{"nx-get-existing", true, newValue, []interface{}{"NX", "GET"}, oldValue, oldValue, oldTTL},
		{"nx-get-missing", false, newValue, []interface{}{"NX", "GET"}, nil, newValue, defaultTTL},
		{"xx-get-ex-existing", true, newValue, []interface{}{"XX", "GET", "EX", "100"}, oldValue, newValue, 100 * time.Second},
		{"xx-get-missing", false, newValue, []interface{}{"GET", "XX"}, nil, "", 0},
		{"ex-nx-missing", false, newValue, []interface{}{"EX", "100", "NX"}, "OK", newValue, 100 * time.Second},
		{"px-xx-existing", true, newValue, []interface{}{"PX", "100000", "XX"}, "OK", newValue, 100 * time.Second},
		{"keepttl-existing", true, newValue, []interface{}{"KEEPTTL"}, "OK", newValue, oldTTL},
		{"keepttl-missing", false, newValue, []interface{}{"KEEPTTL"}, "OK", newValue, defaultTTL},
		{"keepttl-get-xx", true, newValue, []interface{}{"KEEPTTL", "GET", "XX"}, oldValue, newValue, oldTTL},
		{"cookie", false, cookie, nil, "OK", cookie, 2 * time.Hour},
		// Explicit expiry beats cookie.expires.
		{"ex-over-cookie", false, cookie, []interface{}{"EX", "100"}, "OK", cookie, 100 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "sess:set-" + tt.name
			if tt.existing {
				setOld(t, c, key)
			}
			wantReply(t, c, tt.want, append([]interface{}{"SET", key, tt.value}, tt.opts...)...)
			if tt.stored == "" {
				p.wantMissing(t, key)
				return
			}
			p.wantStored(t, key, tt.stored)
			p.wantTTL(t, key, tt.ttl)
		})
	}
}

func testSetSyntaxErrors(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	const key = "sess:syntax"
	setOld(t, c, key)

	const (
		syntax  = "ERR syntax error"
		notInt  = "ERR value is not an integer or out of range"
		expTime = "ERR invalid expire time in 'set' command"
	)
	tests := []struct {
		opts []interface{}
		msg  string
	}{
		{[]interface{}{"EX"}, syntax},
		{[]interface{}{"PXAT"}, syntax},
		{[]interface{}{"EX", "abc"}, notInt},
		{[]interface{}{"PX", "1.5"}, notInt},
		{[]interface{}{"EX", "0"}, expTime},
		{[]interface{}{"EX", "-1"}, expTime},
		{[]interface{}{"PX", "0"}, expTime},
		{[]interface{}{"EXAT", "0"}, expTime},
		{[]interface{}{"PXAT", "-5"}, expTime},
		{[]interface{}{"EX", "99999999999"}, expTime}, // overflows as milliseconds, as in Redis
		{[]interface{}{"EX", "10", "PX", "100"}, syntax},
		{[]interface{}{"EX", "10", "EX", "10"}, syntax},
		{[]interface{}{"EX", "10", "KEEPTTL"}, syntax},
		{[]interface{}{"KEEPTTL", "EXAT", unixIn(time.Hour)}, syntax},
		{[]interface{}{"KEEPTTL", "KEEPTTL"}, syntax},
		{[]interface{}{"NX", "XX"}, syntax},
		{[]interface{}{"XX", "NX"}, syntax},
		{[]interface{}{"NX", "NX"}, syntax},
		{[]interface{}{"GET", "GET"}, syntax},
		{[]interface{}{"FOO"}, syntax},
		{[]interface{}{"10"}, syntax},
	}
	for _, tt := range tests {
		wantErr(t, c, tt.msg, append([]interface{}{"SET", key, newValue}, tt.opts...)...)
	}
	wantErr(t, c, "ERR wrong number of arguments for 'set' command", "SET", key)
	// Nothing was written.
	p.wantStored(t, key, oldValue)
	p.wantTTL(t, key, oldTTL)
}

func testSetKeepTTL(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)

	// A legacy key without a TTL gets the policy TTL from any write,
	// KEEPTTL included: no write leaves a session key without one.
	for _, opts := range [][]interface{}{nil, {"KEEPTTL"}, {"XX", "KEEPTTL"}, {"GET"}} {
		key := "sess:legacy"
		p.seedNoTTL(t, key, oldValue)
		if d := p.pttl(t, key); d != -time.Millisecond {
			t.Fatalf("seeded PTTL = %v, want -1ms", d)
		}
		if _, err := c.Do(bg, append([]interface{}{"SET", key, newValue}, opts...)...).Result(); err != nil {
			t.Errorf("SET legacy %v: %v", opts, err)
		}
		p.wantStored(t, key, newValue)
		p.wantTTL(t, key, defaultTTL)
	}

	// A TTL above max is not kept either.
	if err := up.direct.Set(bg, "sess:long", oldValue, 2*maxTTL).Err(); err != nil {
		t.Fatal(err)
	}
	wantReply(t, c, "OK", "SET", "sess:long", newValue, "KEEPTTL")
	p.wantTTL(t, "sess:long", defaultTTL)
}

func testSetexPsetexSetnxGetset(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)

	wantReply(t, c, "OK", "SETEX", "sess:setex", "100", newValue)
	p.wantStored(t, "sess:setex", newValue)
	p.wantTTL(t, "sess:setex", 100*time.Second)
	wantReply(t, c, "OK", "SETEX", "sess:setex", "99999999", newValue)
	p.wantTTL(t, "sess:setex", maxTTL)
	wantReply(t, c, "OK", "PSETEX", "sess:psetex", "50000", newValue)
	p.wantTTL(t, "sess:psetex", 50*time.Second)

	errs := []struct {
		args []interface{}
		msg  string
	}{
		{[]interface{}{"SETEX", "sess:bad", "0", newValue}, "ERR invalid expire time in 'setex' command"},
		{[]interface{}{"SETEX", "sess:bad", "-1", newValue}, "ERR invalid expire time in 'setex' command"},
		{[]interface{}{"PSETEX", "sess:bad", "0", newValue}, "ERR invalid expire time in 'psetex' command"},
		{[]interface{}{"SETEX", "sess:bad", "abc", newValue}, "ERR value is not an integer or out of range"},
		{[]interface{}{"SETEX", "sess:bad", "100"}, "ERR wrong number of arguments for 'setex' command"},
		{[]interface{}{"SETNX", "sess:bad"}, "ERR wrong number of arguments for 'setnx' command"},
		{[]interface{}{"GETSET", "sess:bad"}, "ERR wrong number of arguments for 'getset' command"},
	}
	for _, tt := range errs {
		wantErr(t, c, tt.msg, tt.args...)
	}
	p.wantMissing(t, "sess:bad")

	wantReply(t, c, 1, "SETNX", "sess:setnx", oldValue)
	p.wantTTL(t, "sess:setnx", defaultTTL)
	wantReply(t, c, 0, "SETNX", "sess:setnx", newValue)
	p.wantStored(t, "sess:setnx", oldValue)

	wantReply(t, c, nil, "GETSET", "sess:getset", oldValue)
	p.wantTTL(t, "sess:getset", defaultTTL)
	wantReply(t, c, 1, "EXPIRE", "sess:getset", "100")
	wantReply(t, c, oldValue, "GETSET", "sess:getset", cookieISO(2*time.Hour))
	p.wantTTL(t, "sess:getset", 2*time.Hour) // GETSET gives the policy TTL
}

func testGetEx(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	const key = "sess:getex"
	setOld(t, c, key)

	wantReply(t, c, oldValue, "GETEX", key)
	p.wantTTL(t, key, oldTTL)
	tests := []struct {
		opts []interface{}
		ttl  time.Duration
	}{
		{[]interface{}{"EX", "100"}, 100 * time.Second},
		{[]interface{}{"PX", "200000"}, 200 * time.Second},
		{[]interface{}{"EXAT", unixIn(300 * time.Second)}, 300 * time.Second},
		{[]interface{}{"PXAT", unixMSIn(400 * time.Second)}, 400 * time.Second},
		{[]interface{}{"ex", "99999999"}, maxTTL},
	}
	for _, tt := range tests {
		wantReply(t, c, oldValue, append([]interface{}{"GETEX", key}, tt.opts...)...)
		p.wantTTL(t, key, tt.ttl)
	}

	setOld(t, c, key)
	errs := []struct {
		opts []interface{}
		msg  string
	}{
		{[]interface{}{"PERSIST"}, `ERR PERSIST is not allowed on session keys (ttl.persist = "deny")`},
		{[]interface{}{"EX", "0"}, "ERR invalid expire time in 'getex' command"},
		{[]interface{}{"PXAT", "-1"}, "ERR invalid expire time in 'getex' command"},
		{[]interface{}{"EX", "abc"}, "ERR value is not an integer or out of range"},
		{[]interface{}{"EX"}, "ERR syntax error"},
		{[]interface{}{"FOO", "1"}, "ERR syntax error"},
		{[]interface{}{"EX", "1", "2"}, "ERR syntax error"},
		{[]interface{}{"PERSIST", "EX", "10"}, "ERR syntax error"},
	}
	for _, tt := range errs {
		wantErr(t, c, tt.msg, append([]interface{}{"GETEX", key}, tt.opts...)...)
	}
	p.wantTTL(t, key, oldTTL)

	wantReply(t, c, nil, "GETEX", "sess:missing", "EX", "100")
	p.wantMissing(t, "sess:missing")
	// An absolute time in the past returns the value and ends the session.
	wantReply(t, c, oldValue, "GETEX", key, "EXAT", unixIn(-time.Minute))
	p.wantMissing(t, key)

	// ttl.persist = clamp turns PERSIST into the longest TTL allowed.
	p2 := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.Policy.Persist = ttl.PersistClamp })
	c2 := p2.client(t)
	setOld(t, c2, key)
	wantReply(t, c2, oldValue, "GETEX", key, "PERSIST")
	p2.wantTTL(t, key, maxTTL)
}

func testGetDel(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	const key = "sess:getdel"
	setOld(t, c, key)

	wantReply(t, c, oldValue, "GETDEL", key)
	p.wantTombstone(t, key)
	wantReply(t, c, nil, "GETDEL", key)
	wantErr(t, c, destroyedError("getdel"), "SET", key, newValue)
	// A missing session gets its tombstone as well.
	wantReply(t, c, nil, "GETDEL", "sess:never")
	p.wantTombstone(t, "sess:never")
}

func testMSetAcrossSlots(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	k := up.spreadKeys(t, "sess:mset-", 4)
	cookie := cookieISO(2 * time.Hour)

	wantReply(t, c, "OK", "MSET", k[0], `{"k":0}`, k[1], cookie, k[2], `{"k":2}`, k[3], `{"k":3}`)
	p.wantStored(t, k[0], `{"k":0}`)
	p.wantStored(t, k[1], cookie)
	p.wantStored(t, k[2], `{"k":2}`)
	p.wantStored(t, k[3], `{"k":3}`)
	p.wantTTL(t, k[0], defaultTTL)
	p.wantTTL(t, k[1], 2*time.Hour) // each value's own policy TTL
	p.wantTTL(t, k[3], defaultTTL)
	wantReply(t, c, []interface{}{`{"k":0}`, `{"k":2}`, `{"k":3}`}, "MGET", k[0], k[2], k[3])

	// A refused key or value refuses the whole command: nothing is written.
	wantErr(t, c, "ERR invalid session payload: not valid JSON", "MSET", k[0], newValue, k[2], "nope")
	wantErr(t, c, "NOPERM key 'plain' is outside the session namespace", "MSET", k[0], newValue, "plain", "x")
	wantErr(t, c, "ERR wrong number of arguments for 'mset' command", "MSET", k[0], newValue, k[2])
	wantErr(t, c, "ERR wrong number of arguments for 'mset' command", "MSET", k[0])
	p.wantStored(t, k[0], `{"k":0}`)
	p.wantStored(t, k[2], `{"k":2}`)
}

func testDelUnlinkAcrossSlots(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	k := up.spreadKeys(t, "sess:del-", 6)
	mustDo(t, c, "MSET", k[0], `{}`, k[1], `{}`, k[2], `{}`, k[3], `{}`)

	wantReply(t, c, 2, "DEL", k[0], k[1], k[4])
	wantReply(t, c, 2, "UNLINK", k[2], k[5], k[3])
	for _, key := range k {
		p.wantTombstone(t, key) // deleting a session key destroys it
	}
	wantReply(t, c, 0, "DEL", k[0], k[1])
	wantReply(t, c, 0, "EXISTS", k[0], k[1], k[2], k[3])

	// A key outside the prefix refuses the whole command.
	mustDo(t, c, "SET", "sess:live", `{}`)
	wantErr(t, c, "NOPERM key 'plain' is outside the session namespace", "DEL", "sess:live", "plain")
	wantErr(t, c, "NOPERM key 'plain' is outside the session namespace", "UNLINK", "sess:live", "plain")
	p.wantStored(t, "sess:live", `{}`)
	wantErr(t, c, "ERR wrong number of arguments for 'del' command", "DEL")
}

func testExistsAcrossSlots(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	k := up.spreadKeys(t, "sess:exists-", 4)
	mustDo(t, c, "MSET", k[0], `{}`, k[1], `{}`, k[3], `{}`)
	mustDo(t, c, "DEL", k[3])

	wantReply(t, c, 3, "EXISTS", k[0], k[1], k[2], k[0], k[3]) // duplicates count twice
	wantReply(t, c, 0, "EXISTS", k[2])
	wantReply(t, c, 1, "EXISTS", k[1])
	wantReply(t, c, 3, "SESS.EXISTS", k[0][5:], k[1][5:], k[2][5:], k[0][5:])
}

func testExpireFamily(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)

	tests := []struct {
		name string
		cmd  string
		arg  string
		opts []interface{}
		want int64
		ttl  time.Duration // 0: the session is deleted
	}{
		{"expire", "EXPIRE", "100", nil, 1, 100 * time.Second},
		{"pexpire", "PEXPIRE", "200000", nil, 1, 200 * time.Second},
		{"expireat", "EXPIREAT", unixIn(300 * time.Second), nil, 1, 300 * time.Second},
		{"pexpireat", "PEXPIREAT", unixMSIn(400 * time.Second), nil, 1, 400 * time.Second},
		{"nx", "EXPIRE", "100", []interface{}{"NX"}, 0, oldTTL}, // a session always has a TTL
		{"xx", "EXPIRE", "100", []interface{}{"XX"}, 1, 100 * time.Second},
		{"gt-longer", "EXPIRE", "2000", []interface{}{"GT"}, 1, 2000 * time.Second},
		{"gt-shorter", "EXPIRE", "100", []interface{}{"GT"}, 0, oldTTL},
		{"lt-shorter", "PEXPIRE", "100000", []interface{}{"LT"}, 1, 100 * time.Second},
		{"lt-longer", "EXPIRE", "2000", []interface{}{"lt"}, 0, oldTTL},
		{"nx-nx", "EXPIRE", "100", []interface{}{"NX", "NX"}, 0, oldTTL},
		{"xx-gt-longer", "EXPIRE", "2000", []interface{}{"XX", "GT"}, 1, 2000 * time.Second},
		{"xx-gt-shorter", "EXPIRE", "100", []interface{}{"GT", "XX"}, 0, oldTTL},
		{"xx-lt-shorter", "EXPIRE", "100", []interface{}{"XX", "LT"}, 1, 100 * time.Second},
		{"xx-lt-longer", "PEXPIRE", "2000000", []interface{}{"LT", "XX"}, 0, oldTTL},
		{"huge", "EXPIRE", "999999999", nil, 1, maxTTL},
		{"zero", "EXPIRE", "0", nil, 1, 0},
		{"negative", "PEXPIRE", "-1", nil, 1, 0},
		{"at-past", "EXPIREAT", unixIn(-time.Minute), nil, 1, 0},
		{"pat-past", "PEXPIREAT", "1", nil, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "sess:expire-" + tt.name
			setOld(t, c, key)
			wantReply(t, c, tt.want, append([]interface{}{tt.cmd, key, tt.arg}, tt.opts...)...)
			if tt.ttl == 0 {
				p.wantMissing(t, key)
				return
			}
			p.wantStored(t, key, oldValue)
			p.wantTTL(t, key, tt.ttl)
		})
	}

	const key = "sess:expire-errors"
	setOld(t, c, key)
	errs := []struct {
		args []interface{}
		msg  string
	}{
		{[]interface{}{"EXPIRE", key, "abc"}, "ERR value is not an integer or out of range"},
		{[]interface{}{"EXPIRE", key, "1.5"}, "ERR value is not an integer or out of range"},
		{[]interface{}{"EXPIRE", key, "100", "FOO"}, "ERR Unsupported option FOO"},
		{[]interface{}{"EXPIRE", key, "100", "NX", "XX"}, "ERR NX and XX, GT or LT options at the same time are not compatible"},
		{[]interface{}{"PEXPIRE", key, "100", "NX", "GT"}, "ERR NX and XX, GT or LT options at the same time are not compatible"},
		{[]interface{}{"EXPIRE", key, "100", "GT", "LT"}, "ERR GT and LT options at the same time are not compatible"},
		{[]interface{}{"EXPIRE", key, "100", "XX", "GT", "LT"}, "ERR GT and LT options at the same time are not compatible"},
		{[]interface{}{"EXPIRE", key}, "ERR wrong number of arguments for 'expire' command"},
		{[]interface{}{"PEXPIREAT", key}, "ERR wrong number of arguments for 'pexpireat' command"},
	}
	for _, tt := range errs {
		wantErr(t, c, tt.msg, tt.args...)
	}
	p.wantTTL(t, key, oldTTL)

	// A missing key is not created.
	wantReply(t, c, 0, "EXPIRE", "sess:missing", "100")
	wantReply(t, c, 0, "PEXPIREAT", "sess:missing", unixMSIn(time.Hour))
	p.wantMissing(t, "sess:missing")

	// On a legacy key without a TTL every option answers as Redis does for
	// the same key: checked against the upstream itself.
	for _, opts := range [][]interface{}{{"XX"}, {"GT"}, {"XX", "GT"}, {"XX", "LT"}, {"LT"}, {"NX"}} {
		const legacy, plain = "sess:legacy", "plain:legacy"
		p.seedNoTTL(t, legacy, oldValue)
		p.seedNoTTL(t, plain, oldValue)
		args := append([]interface{}{"EXPIRE", "", "100"}, opts...)
		args[1] = plain
		want, err := up.direct.Do(bg, args...).Int64()
		if err != nil {
			t.Fatalf("Redis %v: %v", args, err)
		}
		args[1] = legacy
		wantReply(t, c, want, args...)
		if d := p.pttl(t, legacy); (want == 1) != (d > 0) {
			t.Errorf("%v: PTTL afterwards %v, Redis replied %d", opts, d, want)
		}
	}
	p.wantTTL(t, "sess:legacy", 100*time.Second) // NX applied
}

func testPersist(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	const key = "sess:persist"
	setOld(t, c, key)
	const denied = `ERR PERSIST is not allowed on session keys (ttl.persist = "deny")`
	wantErr(t, c, denied, "PERSIST", key)
	wantErr(t, c, denied, "PERSIST", "sess:missing")
	p.wantTTL(t, key, oldTTL)
	wantErr(t, c, "ERR wrong number of arguments for 'persist' command", "PERSIST")

	p2 := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.Policy.Persist = ttl.PersistClamp })
	c2 := p2.client(t)
	setOld(t, c2, key)
	wantReply(t, c2, 1, "PERSIST", key)
	p2.wantStored(t, key, oldValue)
	p2.wantTTL(t, key, maxTTL)
	wantReply(t, c2, 0, "PERSIST", "sess:missing")
	p2.wantMissing(t, "sess:missing")
	wantReply(t, c2, 1, "DEL", key)
	wantErr(t, c2, destroyedError("persist"), "PERSIST", key)
}

func testTTLTypeStrlen(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	const key = "sess:inspect"
	wantReply(t, c, "OK", "SET", key, newValue)

	wantIntIn(t, c, 86400-10, 86400, "TTL", key)
	wantIntIn(t, c, (defaultTTL - ttlSlack).Milliseconds(), defaultTTL.Milliseconds(), "PTTL", key)
	wantReply(t, c, "string", "TYPE", key)
	wantReply(t, c, len(newValue), "STRLEN", key)

	wantReply(t, c, -2, "TTL", "sess:missing")
	wantReply(t, c, -2, "PTTL", "sess:missing")
	wantReply(t, c, "none", "TYPE", "sess:missing")
	wantReply(t, c, 0, "STRLEN", "sess:missing")

	// A legacy key without a TTL reports -1, as Redis does.
	p.seedNoTTL(t, "sess:legacy", oldValue)
	wantReply(t, c, -1, "TTL", "sess:legacy")
	wantReply(t, c, -1, "PTTL", "sess:legacy")
	wantReply(t, c, -1, "SESS.TTL", "legacy")

	for _, cmd := range []string{"TTL", "PTTL", "TYPE", "STRLEN"} {
		wantErr(t, c, "ERR wrong number of arguments for '"+lower(cmd)+"' command", cmd)
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			b[i] = ch + 'a' - 'A'
		}
	}
	return string(b)
}

func testOutsidePrefixDeny(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	mustDo(t, c, "SET", "sess:live", `{}`)
	if err := up.direct.Set(bg, "plain", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}

	commandsOn := func(key string) [][]interface{} {
		return [][]interface{}{
			{"GET", key}, {"SET", key, `{}`}, {"SETEX", key, "10", `{}`}, {"PSETEX", key, "10", `{}`},
			{"SETNX", key, `{}`}, {"GETSET", key, `{}`}, {"GETEX", key}, {"GETDEL", key},
			{"STRLEN", key}, {"DEL", key}, {"UNLINK", key}, {"EXISTS", key}, {"EXPIRE", key, "10"},
			{"PEXPIRE", key, "10"}, {"EXPIREAT", key, "10"}, {"PEXPIREAT", key, "10"}, {"PERSIST", key},
			{"TTL", key}, {"PTTL", key}, {"TYPE", key},
			{"MGET", "sess:live", key}, {"MSET", "sess:new", `{}`, key, `{}`},
			{"DEL", "sess:live", key}, {"EXISTS", "sess:live", key},
		}
	}
	// The prefix is matched exactly, case included.
	for _, key := range []string{"plain", "session:x", "SESS:x", "sess", ""} {
		msg := "NOPERM key '" + key + "' is outside the session namespace"
		for _, args := range commandsOn(key) {
			wantErr(t, c, msg, args...)
		}
	}
	p.wantStored(t, "plain", "x")
	p.wantStored(t, "sess:live", `{}`)
	p.wantMissing(t, "sess:new")
	p.wantMissing(t, "session:x")
}

func testOutsidePrefixPassthrough(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.OutsidePrefix = commands.OutsidePassthrough })
	c := p.client(t)
	k := up.spreadKeys(t, "plain:", 6)

	// Forwarded unchanged: no JSON check, no TTL policy.
	wantReply(t, c, "OK", "SET", k[0], "not json")
	p.wantStored(t, k[0], "not json")
	if d := p.pttl(t, k[0]); d != -time.Millisecond {
		t.Errorf("PTTL %s = %v, want -1ms (no policy TTL outside the prefix)", k[0], d)
	}
	wantReply(t, c, "not json", "GET", k[0])
	wantReply(t, c, "OK", "SET", k[1], "v1", "EX", "100")
	wantIntIn(t, c, 90, 100, "TTL", k[1])
	wantReply(t, c, 1, "EXPIRE", k[0], "50")
	wantReply(t, c, 1, "PERSIST", k[0])
	wantReply(t, c, -1, "TTL", k[0])
	wantReply(t, c, "string", "TYPE", k[0])
	wantReply(t, c, 8, "STRLEN", k[0])
	wantReply(t, c, 1, "SETNX", k[2], "v2")
	wantReply(t, c, 0, "SETNX", k[2], "v2b")
	wantReply(t, c, "v2", "GETSET", k[2], "v2c")
	wantReply(t, c, "v2c", "GETEX", k[2], "EX", "100")
	wantReply(t, c, "OK", "SETEX", k[3], "100", "v3")
	wantReply(t, c, "OK", "SET", k[3], "v3b", "KEEPTTL")
	wantIntIn(t, c, 90, 100, "TTL", k[3])

	// Reply types survive the trip: status stays status, bulk stays bulk.
	raw := p.raw(t)
	for _, tt := range []struct {
		args []string
		want interface{}
	}{
		{[]string{"SET", k[3], "v3c"}, status("OK")},
		{[]string{"SETEX", k[3], "100", "v3d"}, status("OK")},
		{[]string{"TYPE", k[3]}, status("string")},
		{[]string{"SET", k[3], "v3e", "GET"}, "v3d"},
		{[]string{"GET", k[3]}, "v3e"},
	} {
		if got := raw.do(tt.args...); got != tt.want {
			t.Errorf("%v = %#v, want %#v", tt.args, got, tt.want)
		}
	}

	// Multi-key commands mix session and plain keys, across slots.
	mustDo(t, c, "SESS.SET", "live", `{"n":1}`)
	wantReply(t, c, "OK", "MSET", k[4], "v4", "sess:m", `{"n":2}`)
	p.wantStored(t, k[4], "v4")
	p.wantTTL(t, "sess:m", defaultTTL) // session keys still obey the policy
	wantReply(t, c, []interface{}{"not json", "v1", `{"n":1}`, nil, "v4"}, "MGET", k[0], k[1], "sess:live", k[5], k[4])
	wantReply(t, c, 4, "EXISTS", k[0], k[1], "sess:live", k[5], k[0])
	wantReply(t, c, 3, "DEL", k[0], k[1], "sess:live", k[5])
	p.wantMissing(t, k[0])
	p.wantMissing(t, k[1])
	p.wantTombstone(t, "sess:live")
	wantReply(t, c, "v4", "GETDEL", k[4])
	p.wantMissing(t, k[4])

	// Redis's own errors come back verbatim.
	if err := up.direct.HSet(bg, k[5], "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c, "WRONGTYPE Operation against a key holding the wrong kind of value", "GET", k[5])
}
