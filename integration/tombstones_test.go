package integration

import (
	"strconv"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
)

func testTombstoneOnDestroy(t *testing.T, up *upstream) { tombstoneOnDestroy(t, up, nil) }
func testTypedTombstoneOnDestroy(t *testing.T, up *upstream) {
	tombstoneOnDestroy(t, up, typedTombstones)
}

func tombstoneOnDestroy(t *testing.T, up *upstream, tweak func(*commands.Options, *proxy.Options)) {
	p := startProxy(t, up, tweak)
	c := p.client(t)

	wantReply(t, c, "OK", "SESS.SET", "d1", `{"n":1}`)
	wantReply(t, c, 1, "SESS.DESTROY", "d1")
	p.wantTombstone(t, "sess:d1")

	// Destroying a session that never existed writes the tombstone too, so
	// a write still in flight cannot create it.
	wantReply(t, c, 0, "SESS.DESTROY", "never")
	p.wantTombstone(t, "sess:never")
	wantReply(t, c, 0, "SESS.DESTROY", "d1")
	p.wantTombstone(t, "sess:d1")

	// Many ids, over several slots and nodes in a cluster.
	keys := up.spreadKeys(t, "sess:multi-", 4)
	ids := make([]interface{}, len(keys))
	for i, k := range keys {
		ids[i] = k[len("sess:"):]
	}
	wantReply(t, c, "OK", "SESS.SET", ids[0], `{}`)
	wantReply(t, c, "OK", "SESS.SET", ids[2], `{}`)
	wantReply(t, c, 2, append([]interface{}{"SESS.DESTROY"}, ids...)...)
	for _, k := range keys {
		p.wantTombstone(t, k)
	}
	wantReply(t, c, 0, "DBSIZE")
	wantErr(t, c, "ERR wrong number of arguments for 'sess.destroy' command", "SESS.DESTROY")
}

// destroyedError is the refusal of a write to a tombstoned session.
func destroyedError(sid string) string { return "TOMBSTONE session " + sid + " was destroyed" }

func testTombstoneRefusesWrites(t *testing.T, up *upstream) { tombstoneRefusesWrites(t, up, nil) }
func testTypedTombstoneRefusesWrites(t *testing.T, up *upstream) {
	tombstoneRefusesWrites(t, up, typedTombstones)
}

func tombstoneRefusesWrites(t *testing.T, up *upstream, tweak func(*commands.Options, *proxy.Options)) {
	p := startProxy(t, up, tweak)
	c := p.client(t)
	const sid, key, payload = "victim", "sess:victim", `{"n":2}`
	wantReply(t, c, "OK", "SESS.SET", sid, `{"n":1}`)
	wantReply(t, c, 1, "SESS.DESTROY", sid)

	now := time.Now()
	writes := [][]interface{}{
		{"SESS.SET", sid, payload},
		{"SESS.SET", sid, payload, "TTL", "60"},
		{"SESS.TOUCH", sid},
		{"SESS.TOUCH", sid, payload},
		{"SET", key, payload},
		{"SET", key, payload, "EX", "60"},
		{"SET", key, payload, "NX"},
		{"SET", key, payload, "XX"},
		{"SET", key, payload, "GET"},
		{"SET", key, payload, "KEEPTTL"},
		{"SET", key, payload, "PXAT", strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10)},
		{"SETEX", key, "60", payload},
		{"PSETEX", key, "60000", payload},
		{"SETNX", key, payload},
		{"GETSET", key, payload},
		{"MSET", key, payload},
		{"EXPIRE", key, "60"},
		{"EXPIRE", key, "0"},
		{"PEXPIRE", key, "60000"},
		{"EXPIREAT", key, strconv.FormatInt(now.Add(time.Hour).Unix(), 10)},
		{"PEXPIREAT", key, strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10)},
		{"GETEX", key, "EX", "60"},
		{"GETEX", key, "PXAT", strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10)},
	}
	for _, args := range writes {
		wantErr(t, c, destroyedError(sid), args...)
	}
	p.wantTombstone(t, key) // neither replaced nor given a longer life

	// MSET refuses the tombstoned key and writes the others.
	other := up.spreadKeys(t, "sess:other-", 2)[1]
	wantErr(t, c, destroyedError(sid), "MSET", other, payload, key, payload)
	p.wantStored(t, other, payload)
	p.wantTombstone(t, key)
}

func testTombstoneReadsSeeNothing(t *testing.T, up *upstream) { tombstoneReadsSeeNothing(t, up, nil) }
func testTypedTombstoneReadsSeeNothing(t *testing.T, up *upstream) {
	tombstoneReadsSeeNothing(t, up, typedTombstones)
}

func tombstoneReadsSeeNothing(t *testing.T, up *upstream, tweak func(*commands.Options, *proxy.Options)) {
	p := startProxy(t, up, tweak)
	c := p.client(t)
	keys := up.spreadKeys(t, "sess:read-", 2)
	victim, other := keys[0], keys[1]
	wantReply(t, c, "OK", "SET", victim, `{"n":1}`)
	wantReply(t, c, "OK", "SET", other, `{"n":2}`)
	wantReply(t, c, 1, "DEL", victim)
	p.wantTombstone(t, victim)
	sid := victim[len("sess:"):]

	reads := []struct {
		args []interface{}
		want interface{}
	}{
		{[]interface{}{"GET", victim}, nil},
		{[]interface{}{"SESS.GET", sid}, nil},
		{[]interface{}{"EXISTS", victim}, 0},
		{[]interface{}{"EXISTS", victim, other}, 1},
		{[]interface{}{"SESS.EXISTS", sid}, 0},
		{[]interface{}{"TTL", victim}, -2},
		{[]interface{}{"PTTL", victim}, -2},
		{[]interface{}{"SESS.TTL", sid}, -2},
		{[]interface{}{"TYPE", victim}, "none"},
		{[]interface{}{"STRLEN", victim}, 0},
		{[]interface{}{"MGET", victim, other, victim}, []interface{}{nil, `{"n":2}`, nil}},
		{[]interface{}{"GETEX", victim}, nil},
		{[]interface{}{"DBSIZE"}, 1},
		// Destroying again: nothing was live.
		{[]interface{}{"GETDEL", victim}, nil},
		{[]interface{}{"DEL", victim}, 0},
		{[]interface{}{"SESS.DESTROY", sid}, 0},
	}
	for _, tt := range reads {
		wantReply(t, c, tt.want, tt.args...)
	}
	p.wantTombstone(t, victim)
}

func testTombstoneOnWriteIgnore(t *testing.T, up *upstream) { tombstoneOnWriteIgnore(t, up, nil) }
func testTypedTombstoneOnWriteIgnore(t *testing.T, up *upstream) {
	tombstoneOnWriteIgnore(t, up, typedTombstones)
}

func tombstoneOnWriteIgnore(t *testing.T, up *upstream, tweak func(*commands.Options, *proxy.Options)) {
	p := startProxy(t, up, func(o *commands.Options, po *proxy.Options) {
		o.OnWrite = commands.OnWriteIgnore
		if tweak != nil {
			tweak(o, po)
		}
	})
	c := p.client(t)
	const sid, key, payload = "victim", "sess:victim", `{"n":2}`
	wantReply(t, c, "OK", "SESS.SET", sid, `{"n":1}`)
	wantReply(t, c, 1, "SESS.DESTROY", sid)

	// Each write answers as if it succeeded and writes nothing.
	writes := []struct {
		args []interface{}
		want interface{}
	}{
		{[]interface{}{"SESS.SET", sid, payload}, "OK"},
		{[]interface{}{"SESS.SET", sid, payload, "TTL", "60"}, "OK"},
		{[]interface{}{"SESS.TOUCH", sid}, 1},
		{[]interface{}{"SESS.TOUCH", sid, payload}, 1},
		{[]interface{}{"SET", key, payload}, "OK"},
		{[]interface{}{"SET", key, payload, "EX", "60"}, "OK"},
		{[]interface{}{"SET", key, payload, "GET"}, nil},
		{[]interface{}{"SETEX", key, "60", payload}, "OK"},
		{[]interface{}{"PSETEX", key, "60000", payload}, "OK"},
		{[]interface{}{"SETNX", key, payload}, 0},
		{[]interface{}{"GETSET", key, payload}, nil},
		{[]interface{}{"MSET", key, payload}, "OK"},
		{[]interface{}{"EXPIRE", key, "60"}, 1},
		{[]interface{}{"PEXPIRE", key, "60000"}, 1},
		{[]interface{}{"GETEX", key, "EX", "60"}, nil},
	}
	for _, tt := range writes {
		wantReply(t, c, tt.want, tt.args...)
	}
	p.wantTombstone(t, key)
	wantReply(t, c, nil, "SESS.GET", sid)
	wantReply(t, c, nil, "GET", key)
}

func testTombstonesDisabled(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.Tombstones = false })
	c := p.client(t)

	wantReply(t, c, "OK", "SESS.SET", "a", `{"n":1}`)
	wantReply(t, c, 1, "SESS.DESTROY", "a")
	p.wantMissing(t, "sess:a")
	wantReply(t, c, 0, "SESS.DESTROY", "a")
	p.wantMissing(t, "sess:a")

	// Without tombstones a destroyed id can be written again at once.
	wantReply(t, c, "OK", "SESS.SET", "a", `{"n":2}`)
	p.wantStored(t, "sess:a", `{"n":2}`)
	wantReply(t, c, 1, "DEL", "sess:a")
	p.wantMissing(t, "sess:a")

	wantReply(t, c, "OK", "SET", "sess:b", `{"n":3}`)
	wantReply(t, c, `{"n":3}`, "GETDEL", "sess:b")
	p.wantMissing(t, "sess:b")
	wantReply(t, c, "OK", "SET", "sess:c", `{"n":4}`)
	wantReply(t, c, 1, "UNLINK", "sess:c")
	p.wantMissing(t, "sess:c")
	if keys := p.allKeys(t); len(keys) != 0 {
		t.Errorf("upstream keys = %q, want none", keys)
	}
}
