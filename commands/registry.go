package commands

import (
	"strings"
	"time"
)

// Command is a registry entry.
type Command struct {
	Name  string // lower case, as COMMAND reports it
	Arity int    // Redis convention: exact when positive, minimum when negative
	Flags flag
	// FirstKey, LastKey and Step locate key arguments, for COMMAND INFO
	// and COMMAND GETKEYS.
	FirstKey, LastKey, Step int
	// Keys finds the key arguments of a command whose keys move with its
	// other arguments (COMMAND INFO flag movablekeys); false for arguments
	// that name no keys validly.
	Keys    func(args [][]byte) ([]int, bool)
	Handler func(*Call)
	metrics CommandMetrics // resolved when the engine is built
}

type flag uint16

const (
	flagRead      flag = 1 << iota // reads session data
	flagWrite                      // changes session data; refused to the readonly role
	flagAdmin                      // admin role only
	flagNoAuth                     // allowed before AUTH
	flagConn                       // answered by the proxy itself, never forwarded
	flagTxControl                  // runs at once between MULTI and EXEC, never queued (multi.go)
	flagNS                         // takes a trailing NS <name> (every SESS.*, set in New)
	flagNoTx                       // refused inside MULTI: it must run the batch mid-way, reads the store directly, or changes the connection (multi.go)
	flagFlush                      // runs the commands queued before it first, so it sees their writes: it reads the store directly or pins a connection (Dispatch)
	flagOwnConn                    // needs a connection goroutine of its own: it pins an upstream connection, pushes, or scans the keyspace (needsOwnConn)
)

// needsOwnConn says whether args is a command the proxy's event loop must
// not run: it would pin an upstream connection for the client (MULTI,
// WATCH), make the connection carry pushes (SUBSCRIBE, CLIENT TRACKING), or
// take many round trips while every other client of the loop waits (KEYS,
// SESS.ALL…, and a multi-key command large enough to run in chunks). The
// loop hands such a client over to a goroutine of its own, for the rest
// of its life, before the command runs.
func (e *Engine) needsOwnConn(cl *Client, args [][]byte) bool {
	cmd := e.lookup(cl, args[0])
	if cmd == nil || cmd.Flags&flagOwnConn == 0 {
		return false
	}
	switch cmd.Name {
	case "client":
		return len(args) > 1 && strings.EqualFold(string(args[1]), "tracking")
	case "mget", "del", "unlink", "exists":
		return len(args)-1 > maxChunkKeys // chunks.go
	case "sess.destroy", "sess.exists":
		// A trailing NS <name> counts as two ids here: at worst a client
		// whose command runs as one chunk is handed over all the same.
		return len(args)-1 > maxChunkKeys
	case "mset":
		return (len(args)-1)/2 > maxChunkKeys
	}
	return true
}

// table is every command sessproxy answers. A name that is not here gets
// an error reply naming it, and the connection stays open.
func (e *Engine) table() []*Command {
	return []*Command{
		// Connection (connection.go).
		{Name: "ping", Arity: -1, Flags: flagConn | flagNoAuth, Handler: e.ping},
		{Name: "echo", Arity: 2, Flags: flagConn, Handler: e.echo},
		{Name: "quit", Arity: -1, Flags: flagConn | flagNoAuth | flagTxControl, Handler: e.quit},
		{Name: "subscribe", Arity: -2, Flags: flagConn | flagNoTx | flagOwnConn, Handler: e.subscribe}, // __redis__:invalidate only (redirect.go)
		{Name: "unsubscribe", Arity: -1, Flags: flagConn | flagNoTx, Handler: e.unsubscribe},           // redirect.go
		{Name: "reset", Arity: 1, Flags: flagConn | flagNoAuth | flagTxControl, Handler: e.reset},
		{Name: "auth", Arity: -2, Flags: flagConn | flagNoAuth | flagNoTx, Handler: e.auth},
		{Name: "hello", Arity: -1, Flags: flagConn | flagNoAuth | flagNoTx, Handler: e.hello},
		{Name: "select", Arity: 2, Flags: flagConn, Handler: e.selectDB},
		{Name: "client", Arity: -2, Flags: flagConn | flagNoTx | flagOwnConn, Handler: e.client},
		{Name: "readonly", Arity: 1, Flags: flagConn, Handler: e.okReply},
		{Name: "readwrite", Arity: 1, Flags: flagConn, Handler: e.okReply},
		{Name: "info", Arity: -1, Flags: flagConn | flagNoTx, Handler: e.info},
		{Name: "command", Arity: -1, Flags: flagConn, Handler: e.command},
		{Name: "time", Arity: 1, Flags: flagConn, Handler: e.time},
		{Name: "memory", Arity: -2, Flags: flagRead, Keys: memoryKeys, Handler: e.memory},                       // keys.go
		{Name: "dbsize", Arity: 1, Flags: flagRead | flagNoTx | flagFlush | flagOwnConn, Handler: e.sessLength}, // bulk.go

		// Transactions (multi.go).
		{Name: "multi", Arity: 1, Flags: flagConn | flagTxControl | flagOwnConn, Handler: e.multi},
		{Name: "exec", Arity: 1, Flags: flagConn | flagTxControl | flagFlush, Handler: e.exec},
		{Name: "discard", Arity: 1, Flags: flagConn | flagTxControl, Handler: e.discard},
		{Name: "watch", Arity: -2, Flags: flagTxControl | flagFlush | flagOwnConn, FirstKey: 1, LastKey: -1, Step: 1, Handler: e.watch},
		{Name: "unwatch", Arity: 1, Flags: flagConn, Handler: e.unwatch},

		// Scripts, run wrapped in the policy (scripts.go, scriptwrap.go).
		{Name: "eval", Arity: -3, Flags: flagWrite, Keys: scriptKeys, Handler: e.eval},
		{Name: "evalsha", Arity: -3, Flags: flagWrite, Keys: scriptKeys, Handler: e.evalsha},
		{Name: "eval_ro", Arity: -3, Flags: flagRead, Keys: scriptKeys, Handler: e.evalRO},
		{Name: "evalsha_ro", Arity: -3, Flags: flagRead, Keys: scriptKeys, Handler: e.evalshaRO},
		{Name: "script", Arity: -2, Flags: flagRead | flagNoTx, Handler: e.script},
		{Name: "fcall", Arity: -3, Flags: flagWrite, Keys: scriptKeys, Handler: e.functions},
		{Name: "fcall_ro", Arity: -3, Flags: flagRead, Keys: scriptKeys, Handler: e.functions},
		{Name: "function", Arity: -2, Flags: flagWrite, Handler: e.functions},

		// Sessions (session.go).
		{Name: "sess.set", Arity: -3, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.sessSet},
		{Name: "sess.get", Arity: 2, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.sessGet},
		{Name: "sess.touch", Arity: -2, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.sessTouch},
		{Name: "sess.destroy", Arity: -2, Flags: flagWrite | flagOwnConn, FirstKey: 1, LastKey: -1, Step: 1, Handler: e.sessDestroy},
		{Name: "sess.ttl", Arity: 2, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.sessTTL},
		{Name: "sess.exists", Arity: -2, Flags: flagRead | flagOwnConn, FirstKey: 1, LastKey: -1, Step: 1, Handler: e.sessExists},

		// Fields (fields.go).
		{Name: "sess.fget", Arity: 3, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.sessFGet},
		{Name: "sess.fmget", Arity: -3, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.sessFMGet},
		{Name: "sess.fset", Arity: -4, Flags: flagWrite | flagNoTx, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.sessFSet},
		{Name: "sess.fdel", Arity: -3, Flags: flagWrite | flagNoTx, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.sessFDel},

		// Owners (owner.go).
		{Name: "sess.byowner", Arity: 2, Flags: flagRead | flagNoTx, Handler: e.sessByOwner},
		{Name: "sess.destroyowner", Arity: 2, Flags: flagWrite | flagNoTx, Handler: e.sessDestroyOwner},

		// Bulk (bulk.go).
		{Name: "sess.ids", Arity: 1, Flags: flagRead | flagNoTx | flagFlush | flagOwnConn, Handler: e.sessIDs},
		{Name: "sess.all", Arity: 1, Flags: flagRead | flagNoTx | flagFlush | flagOwnConn, Handler: e.sessAll},
		{Name: "sess.length", Arity: 1, Flags: flagRead | flagNoTx | flagFlush | flagOwnConn, Handler: e.sessLength},
		{Name: "sess.scan", Arity: -2, Flags: flagRead | flagNoTx | flagFlush | flagOwnConn, Handler: e.sessScan},
		{Name: "sess.clear", Arity: 1, Flags: flagWrite | flagAdmin | flagNoTx | flagFlush | flagOwnConn, Handler: e.sessClear},
		{Name: "sess.sweep", Arity: -1, Flags: flagWrite | flagAdmin | flagNoTx | flagFlush | flagOwnConn, Handler: e.sessSweep},
		{Name: "scan", Arity: -2, Flags: flagRead | flagNoTx | flagFlush | flagOwnConn, Handler: e.scan},
		{Name: "keys", Arity: 2, Flags: flagRead | flagNoTx | flagFlush | flagOwnConn, Handler: e.keys},

		// Strings on session keys (strings.go).
		{Name: "get", Arity: 2, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.get},
		{Name: "mget", Arity: -2, Flags: flagRead | flagOwnConn, FirstKey: 1, LastKey: -1, Step: 1, Handler: e.mget},
		{Name: "set", Arity: -3, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.set},
		{Name: "setex", Arity: 4, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.setexIn(time.Second)},
		{Name: "psetex", Arity: 4, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.setexIn(time.Millisecond)},
		{Name: "setnx", Arity: 3, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.setnx},
		{Name: "getset", Arity: 3, Flags: flagWrite | flagNoTx, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.getset},
		{Name: "getex", Arity: -2, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.getex},
		{Name: "getdel", Arity: 2, Flags: flagWrite | flagNoTx, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.getdel},
		{Name: "mset", Arity: -3, Flags: flagWrite | flagOwnConn, FirstKey: 1, LastKey: -1, Step: 2, Handler: e.mset},
		{Name: "strlen", Arity: 2, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.strlen},

		// Hash sessions (hashes.go).
		{Name: "hset", Arity: -4, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hset},
		{Name: "hsetnx", Arity: 4, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hsetnx},
		{Name: "hmset", Arity: -4, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hmset},
		{Name: "hdel", Arity: -3, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hdel},
		{Name: "hincrby", Arity: 4, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hincrby},
		{Name: "hincrbyfloat", Arity: 4, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hincrbyfloat},
		{Name: "hget", Arity: 3, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hget},
		{Name: "hmget", Arity: -3, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hmget},
		{Name: "hgetall", Arity: 2, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hgetall},
		{Name: "hexists", Arity: 3, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hexists},
		{Name: "hlen", Arity: 2, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hlen},
		{Name: "hkeys", Arity: 2, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hkeys},
		{Name: "hvals", Arity: 2, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hvals},
		{Name: "hstrlen", Arity: 3, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hstrlen},
		{Name: "hscan", Arity: -3, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.hscan},

		// Keys (keys.go).
		{Name: "del", Arity: -2, Flags: flagWrite | flagOwnConn, FirstKey: 1, LastKey: -1, Step: 1, Handler: e.del},
		{Name: "unlink", Arity: -2, Flags: flagWrite | flagOwnConn, FirstKey: 1, LastKey: -1, Step: 1, Handler: e.del},
		{Name: "exists", Arity: -2, Flags: flagRead | flagOwnConn, FirstKey: 1, LastKey: -1, Step: 1, Handler: e.exists},
		{Name: "expire", Arity: -3, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.expire},
		{Name: "pexpire", Arity: -3, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.expire},
		{Name: "expireat", Arity: -3, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.expire},
		{Name: "pexpireat", Arity: -3, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.expire},
		{Name: "persist", Arity: 2, Flags: flagWrite, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.persist},
		{Name: "ttl", Arity: 2, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.ttlIn(time.Second)},
		{Name: "pttl", Arity: 2, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.ttlIn(time.Millisecond)},
		{Name: "type", Arity: 2, Flags: flagRead, FirstKey: 1, LastKey: 1, Step: 1, Handler: e.typeOf},
	}
}
