// Package commands turns client commands into store operations: the
// registry, the session namespace, the TTL policy and tombstone rules, and
// the replies.
package commands

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/internal/resp"
	"github.com/sessproxy/sessproxy/store"
	"github.com/sessproxy/sessproxy/store/codec"
	"go.uber.org/zap"
)

// Outside-prefix modes.
const (
	OutsideDeny        = "deny"
	OutsidePassthrough = "passthrough"
)

// Tombstone write modes.
const (
	OnWriteError  = "error"
	OnWriteIgnore = "ignore"
)

// Role is what an authenticated user may run.
type Role string

// Roles.
const (
	RoleAdmin    Role = "admin"    // everything, including SESS.CLEAR and SESS.SWEEP
	RoleApp      Role = "app"      // sessions and plain commands
	RoleReadonly Role = "readonly" // reads only
)

// User is a named user of [[users]].
type User struct {
	Name     string
	Password string
	Role     Role
}

// Options configure the command engine.
type Options struct {
	// Prefix is the session namespace. default: "sess:"
	Prefix string
	// OwnerField is the JSON path of a session's owner (e.g.
	// "passport.user"); set, it turns on the owner index behind
	// SESS.BYOWNER and SESS.DESTROYOWNER. default: "" (off)
	OwnerField string
	// OutsidePrefix is "deny" or "passthrough" for keys outside Prefix.
	// default: deny
	OutsidePrefix string
	// LockSuffixes make a key under Prefix that ends in one of them a lock
	// (phpredis's session locking writes <prefix><sid>_LOCK), not a
	// session: any value, a TTL within Policy.LockMax, no tombstone, never
	// listed or counted as a session (docs/commands.md, "Locks"). Empty:
	// no locks, every such key is a session. default: ["_LOCK"]
	// (session.lock_suffixes)
	LockSuffixes []string
	// Policy is the TTL policy. It, RequirePass and Users are what Reload
	// can change in a running engine.
	Policy ttl.Policy
	// Tombstones on: destroying writes a tombstone that refuses writes for
	// Grace. default: true, 5m
	Tombstones bool
	Grace      time.Duration
	// TombstoneFormat is store.TombstoneString (the string TOMBSTONE,
	// connect-redis-session's) or store.TombstoneTyped (a set, which lets
	// a write be Redis's own SET … GET rather than a script). Both are
	// recognised whatever the setting. default: string (the config file's
	// default is typed)
	TombstoneFormat store.TombstoneFormat
	// TombstoneTransition is how long after start a namespace of the typed
	// format keeps writing through scripts that see both formats, before
	// its common-case writes become SET … GET: every proxy of a fleet
	// must be switched within it, or a string tombstone written after it
	// could be overwritten. 0: the namespace's grace; negative: none.
	// default: 0
	TombstoneTransition time.Duration
	// OnWrite is "error" (refuse writes to a tombstoned id) or "ignore"
	// (reply success, write nothing). default: error
	OnWrite string
	// Codec validates and encodes payloads. default: json
	Codec codec.Codec
	// MaxHashBytes bounds a hash session: the lengths of its fields and
	// values together (codec.max_payload_bytes). default: 0 (no bound)
	MaxHashBytes int
	// MaxHashFields bounds a hash session's number of fields
	// (codec.max_hash_fields). Measuring MaxHashBytes reads the whole hash
	// on Redis at every write, so this also bounds what a write costs
	// Redis; set it whenever MaxHashBytes is set. default: 0 (no bound)
	MaxHashFields int
	// RequirePass is the password of the default user. default: none
	RequirePass string
	// Users are named users with roles. default: none
	Users []User
	// HashIDs stores sessions under the SHA-256 of their id; clients keep
	// using the clear id. default: false
	HashIDs bool
	// DB is the database SELECT accepts. default: 0
	DB int
	// Version is sessproxy's version, for INFO.
	Version string
	// ScriptsMode is "policy" (EVAL and friends run the client's script
	// wrapped in the session policy) or "deny" (every script command is
	// refused). default: policy ([scripts] mode)
	ScriptsMode string
	// Logger logs upstream failures and panics. default: no-op
	Logger *zap.Logger
	// MaxTransactions bounds the clients in WATCH or MULTI, each holding
	// an upstream connection (server.max_transactions). default: 1000
	MaxTransactions int
	// MaxTxCommands bounds the commands one transaction queues
	// (server.max_transaction_commands). default: 10000
	MaxTxCommands int
	// MaxTxBytes bounds the bytes of the arguments one transaction queues
	// (server.max_transaction_bytes): they are held until EXEC, outside
	// the in-flight budget. default: 64 MiB
	MaxTxBytes int64
	// Metrics counts commands, refusals, clamps and clients, and times the
	// commands. default: none (and no clock read for them)
	Metrics Metrics
	// Namespaces are the session namespaces beside the default one, which
	// the fields above describe ([[namespace]]). Their prefixes differ from
	// each other and from Prefix. default: none
	Namespaces []Namespace
	// DefaultAlias is a second name of the default namespace for NS (the
	// preset it was built from). default: none
	DefaultAlias string
	// TrackingMaxKeys bounds the keys the proxy tracks for its CLIENT
	// TRACKING clients; past it some key is invalidated to make room, as
	// Redis's tracking-table-max-keys. default: 1000000
	TrackingMaxKeys int
	// TrackingMaxBytes bounds the same table's key names and client names
	// together (with a per-entry allowance for the maps), evicting as for
	// TrackingMaxKeys, and apart from them all clients' BCAST prefixes,
	// refusing those past it. default: 64 MiB
	TrackingMaxBytes int64
}

// Engine runs commands against a store.
type Engine struct {
	opts Options // its namespaces' settings are in spaces and conf, RequirePass and Users in conf
	// conf is what Reload swaps; a pipeline loads it once per batch.
	conf     atomic.Pointer[reloadable]
	store    *store.Store
	registry map[string]*Command
	clients  clients
	started  time.Time
	stats    stats
	metrics  Metrics
	measured bool // Options.Metrics was set: time the commands
	// transactions counts the clients in WATCH or MULTI
	// (Options.MaxTransactions).
	transactions atomic.Int64
	unknown      CommandMetrics // the recorder of names outside the registry
	// unsupported counts the Redis commands sessproxy does not serve, by
	// name; unsupportedOther every other name outside the registry.
	unsupported      map[string]Counter
	unsupportedOther Counter
	scripts          scriptCache // client SHA-1 → wrapped script (scripts.go)
	refusals         refusalLog  // rate limit of the refused writes' log lines (refusal.go)
	failures         failureLog  // rate limit of the upstream failures' log line (failurelog.go)
	ops              opsRate     // INFO's instantaneous_ops_per_sec (connection.go)
	// spaces are the namespaces, the default first (namespace.go);
	// byLength the same, longest prefix first, for matching keys.
	spaces, byLength []*space
	tracking         tracker // CLIENT TRACKING's table (tracking.go)
}

type stats struct {
	connections atomic.Int64
	rejected    atomic.Int64
	commands    atomic.Int64
}

// New returns an engine serving st.
func New(st *store.Store, opts Options) *Engine {
	if opts.Prefix == "" {
		opts.Prefix = "sess:"
	}
	if opts.OutsidePrefix == "" {
		opts.OutsidePrefix = OutsideDeny
	}
	if opts.OnWrite == "" {
		opts.OnWrite = OnWriteError
	}
	if opts.ScriptsMode == "" {
		opts.ScriptsMode = ScriptsPolicy
	}
	if opts.Codec == nil {
		opts.Codec = codec.Plain()
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.MaxTransactions <= 0 {
		opts.MaxTransactions = defaultMaxTransactions
	}
	if opts.MaxTxBytes <= 0 {
		opts.MaxTxBytes = defaultMaxTxBytes
	}
	if opts.MaxTxCommands <= 0 {
		opts.MaxTxCommands = defaultMaxTxCommands
	}
	e := &Engine{store: st, started: time.Now(), metrics: opts.Metrics, measured: opts.Metrics != nil}
	if e.metrics == nil {
		e.metrics = nopMetrics{}
	}
	e.refusals.now = time.Now
	e.failures.now = time.Now
	e.conf.Store(newReloadable(opts))
	for i, ns := range opts.namespaces() {
		e.spaces = append(e.spaces, newSpace(i, ns, e.started))
	}
	e.spaces[0].alias = opts.DefaultAlias
	e.byLength = slices.Clone(e.spaces)
	slices.SortStableFunc(e.byLength, func(a, b *space) int { return len(b.prefix) - len(a.prefix) })
	// The namespaces' settings live in e.spaces and conf from here: the
	// fields are cleared so that nothing reads them by mistake.
	opts.Policy, opts.RequirePass, opts.Users = ttl.Policy{}, "", nil
	opts.Prefix, opts.OwnerField, opts.LockSuffixes, opts.Codec = "", "", nil, nil
	opts.Tombstones, opts.Grace, opts.OnWrite, opts.MaxHashBytes, opts.MaxHashFields, opts.HashIDs = false, 0, "", 0, 0, false
	opts.TombstoneFormat, opts.TombstoneTransition = "", 0
	opts.Namespaces = nil
	e.opts = opts
	e.clients.byID = make(map[int64]*Client)
	e.registry = make(map[string]*Command)
	for _, cmd := range e.table() {
		if strings.HasPrefix(cmd.Name, "sess.") {
			cmd.Flags |= flagNS // every SESS.* takes a trailing NS <name>
		}
		cmd.metrics = e.metrics.Command(cmd.Name)
		e.registry[cmd.Name] = cmd
	}
	e.unknown = e.metrics.Command(UnknownCommand)
	e.unsupported = make(map[string]Counter)
	for _, name := range redisCommandNames {
		if e.registry[name] == nil {
			e.unsupported[name] = e.metrics.Unsupported(name)
		}
	}
	e.unsupportedOther = e.metrics.Unsupported(UnknownCommand)
	return e
}

// Connect registers a new client connection.
func (e *Engine) Connect(addr, localAddr string) *Client {
	now := time.Now()
	c := &Client{Addr: addr, LocalAddr: localAddr, created: now, proto: 2}
	c.Touch(now)
	e.resetAuth(c, e.conf.Load())
	e.clients.add(c)
	e.stats.connections.Add(1)
	e.metrics.ClientConnected()
	return c
}

// Disconnect forgets a closed client connection.
func (e *Engine) Disconnect(c *Client) {
	c.sub.gone.Store(true)
	e.trackingOff(c)
	e.endTx(c)
	e.clients.remove(c)
	e.metrics.ClientDisconnected()
}

// Ping checks that the upstream answers.
func (e *Engine) Ping(ctx context.Context) error { return e.store.Ping(ctx) }

// Rejected counts a connection refused before it was served (max_clients,
// or the server draining).
func (e *Engine) Rejected() {
	e.stats.rejected.Add(1)
	e.metrics.ConnectionRefused()
}

// Closed counts a client the proxy closed for reason.
func (e *Engine) Closed(reason CloseReason) { e.metrics.ClientClosed(reason) }

// resetAuth puts a client in its state before AUTH: authenticated as the
// default user when no password is configured.
func (e *Engine) resetAuth(c *Client, conf *reloadable) {
	c.authed, c.role, c.authConf = !conf.authRequired(), RoleAdmin, conf
	c.setUser("default")
}

var errAuth = errors.New("authentication failed")

// authenticate checks a user name and password; the default user's
// password is requirepass. Names and passwords are compared through their
// SHA-256, hashed in advance, against every user without stopping at a
// match: how long AUTH takes says neither which users exist nor anything
// of a password.
func (e *Engine) authenticate(c *Call, user, pass string) error {
	conf := c.conf
	if !conf.authRequired() {
		// Redis's default user without requirepass is "nopass": AUTH default
		// <anything> (and HELLO … AUTH default …) opens it, so a client
		// configured with a password still connects; no other user exists.
		if user != "default" {
			return errAuth
		}
		c.Client.login(user, RoleAdmin, conf)
		return nil
	}
	name, secret := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	found, at := 0, 0
	for i := range conf.credentials {
		cr := &conf.credentials[i]
		match := subtle.ConstantTimeCompare(name[:], cr.name[:]) & subtle.ConstantTimeCompare(secret[:], cr.pass[:])
		at = subtle.ConstantTimeSelect(match, i, at) // the last match wins, as [[users]] order always did
		found |= match
	}
	if found == 0 {
		return errAuth
	}
	c.Client.login(user, conf.credentials[at].role, conf)
	return nil
}

// Call is one command of a client's pipelined batch. The proxy dispatches
// every command of the batch (handlers answer at once or queue store
// operations on Batch and register a Then), executes the batch in one
// upstream round trip, then runs the Thens in order.
type Call struct {
	Ctx    context.Context
	Client *Client
	Args   [][]byte
	Out    *resp.Writer
	Batch  *store.Batch
	conf   *reloadable // the TTL policy and users this command runs under
	meter  Meter       // the proxy's account of the replies held; nil: none
	round  *Round      // the round Batch belongs to; nil: the client's own batch
	then   func()
	cmd    *Command // the registry entry Dispatch found; nil for an unknown name
	result Result   // how it ended, once its reply is written
	ns     *space   // the namespace a SESS.* command named with NS; nil: the default
}

// space is the namespace a SESS.* command acts on: the one its NS named,
// else the default.
func (c *Call) space(e *Engine) *space {
	if c.ns != nil {
		return c.ns
	}
	return e.spaces[0]
}

// takeNS strips a trailing NS <name> from a SESS.* command's arguments and
// records the namespace. Only when what is left still has the command's
// arity: SESS.SET ns payload is the session "ns". It answers the error
// and returns false for a name no namespace has.
func (e *Engine) takeNS(c *Call) bool {
	n := len(c.Args)
	if n < 3 || !bytes.EqualFold(c.Args[n-2], []byte("NS")) || !arityOK(c.cmd.Arity, n-2) {
		return true
	}
	sp := e.spaceNamed(string(c.Args[n-1]))
	if sp == nil {
		c.Out.Error(errNoNamespace(string(c.Args[n-1])))
		return false
	}
	c.ns, c.Args = sp, c.Args[:n-2]
	return true
}

// Then registers fn to write the reply once the batch has executed. A
// Then may queue a follow-up (the check after a miss) and register another
// Then: it runs after the batch has executed once more (finish).
func (c *Call) Then(fn func()) { c.then = fn }

// Finish runs the function registered with Then, if any.
func (c *Call) Finish() {
	if fn := c.then; fn != nil {
		c.then = nil
		fn()
	}
}

// maxFollowUps bounds the follow-ups one command's Thens chain; none
// chains more than two.
const maxFollowUps = 4

// finishPass runs the pending Then of each of calls once; it says whether
// some queued a follow-up, which needs the batch executed again.
func (e *Engine) finishPass(calls []Call) (more bool) {
	for i := range calls {
		if calls[i].then != nil {
			e.guard(&calls[i], (*Call).Finish)
			more = more || calls[i].then != nil
		}
	}
	return more
}

// finish runs the calls' Thens to the end: the follow-ups a pass queues
// go out together, in one execution of the batch (exec), before the next
// pass.
func (e *Engine) finish(calls []Call, exec func()) {
	for pass := 0; e.finishPass(calls); pass++ {
		if pass == maxFollowUps {
			for i := range calls {
				if calls[i].then != nil {
					// A bug, not a client's doing: answer it, keep serving.
					calls[i].then = nil
					calls[i].Out.Reset(calls[i].Out.Proto)
					calls[i].Out.Error(msgInternal)
				}
			}
			return
		}
		exec()
	}
}

// exec executes everything queued so far, for the few handlers that need a
// result before they can decide what to queue next (or that call the store
// directly and must see the writes queued before them).
func (c *Call) exec() error { return c.Batch.Exec(c.Ctx) }

// Dispatch classifies, authorises and routes one command. Its reply, or the
// Then that will write it, is on c when it returns.
func (e *Engine) Dispatch(c *Call) {
	cmd := e.lookup(c.Client, c.Args[0])
	c.cmd = cmd
	if cmd == nil {
		e.countUnsupported(c.Client)
	}
	if cmd != nil && cmd.Flags&flagNS != 0 && !e.takeNS(c) {
		if t := c.Client.tx; t != nil && t.multi {
			t.aborted = true
		}
		return
	}
	if c.Client.sub.on.Load() && c.Client.Proto() == 2 {
		// RESP2 subscribed mode, as in Redis: the connection carries
		// messages, and only these commands.
		switch {
		case cmd == nil || !subscribedAllows(cmd.Name):
			c.Out.Error(errSubscribedOnly(string(c.Args[0])))
			return
		case cmd.Name == "ping" && len(c.Args) <= 2:
			subscribedPing(c)
			return
		}
	}
	if e.tracking.active.Load() > 0 {
		defer e.track(c, cmd)()
	}
	if t := c.Client.tx; t != nil && t.multi && (cmd == nil || cmd.Flags&flagTxControl == 0) {
		e.queue(c, cmd)
		return
	}
	switch {
	case cmd == nil:
		c.Out.Error(errUnknownCommand(string(c.Args[0])))
		return
	case !c.Client.authed && cmd.Flags&flagNoAuth == 0:
		c.Out.Error(msgNoAuth)
		return
	case !arityOK(cmd.Arity, len(c.Args)):
		c.Out.Error(errArity(cmd.Name))
		return
	case !c.Client.role.may(cmd.Flags):
		c.Out.Error(errNoPermission(cmd.Name))
		return
	}
	e.stats.commands.Add(1)
	if cmd.Flags&flagFlush != 0 && !e.flushBefore(c) {
		e.execNotRun(c)
		return
	}
	cmd.Handler(c)
}

// maxCommandName is longer than any command's name, the proxy's or
// Redis's (the longest are about 20 bytes).
const maxCommandName = 64

// lookup finds a command by name, case-insensitively, without allocating.
// A name longer than any command's is unknown without being copied: the
// client's scratch grew to the longest name it ever sent and kept it for
// the client's life (4 MiB a client, outside every budget, for one request
// each).
func (e *Engine) lookup(cl *Client, name []byte) *Command {
	cl.scratch = cl.scratch[:0]
	if len(name) > maxCommandName {
		return nil
	}
	for _, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		cl.scratch = append(cl.scratch, ch)
	}
	return e.registry[string(cl.scratch)]
}

// countUnsupported counts a name outside the registry, which lookup left
// lower-cased in the client's scratch: under its own name when Redis has
// such a command, else as unknown, so random names cannot grow the metric.
func (e *Engine) countUnsupported(cl *Client) {
	if m := e.unsupported[string(cl.scratch)]; m != nil {
		m.Inc()
		return
	}
	e.unsupportedOther.Inc()
}

// CommandName is the registry name of a command, for logs (never the
// arguments: they may hold session payloads).
func (e *Engine) CommandName(c *Call) string {
	if cmd := e.lookup(c.Client, c.Args[0]); cmd != nil {
		return cmd.Name
	}
	return "unknown"
}

// arityOK follows Redis's convention: n exact when positive, at least -n
// when negative.
func arityOK(arity, n int) bool {
	if arity >= 0 {
		return n == arity
	}
	return n >= -arity
}

func (r Role) may(f flag) bool {
	switch r {
	case RoleAdmin:
		return true
	case RoleApp:
		return f&flagAdmin == 0
	case RoleReadonly:
		return f&(flagAdmin|flagWrite) == 0
	}
	return false
}

// fail answers an error from the store: Redis's own error replies go back
// verbatim, the rest is the proxy's failure, logged once here.
func (e *Engine) fail(c *Call, ref keyRef, err error) {
	var decode *decodeError
	var abort *store.ExecAbortError
	switch {
	case errors.As(err, &decode):
		c.Out.Error(decode.Error())
	case errors.Is(err, store.ErrDryRun):
		c.Out.Error(errNeedsResult(e.CommandName(c)))
	case errors.Is(err, store.ErrReplyTooLarge):
		c.Out.Exceed() // the client is closed with the reply limit's error
	case errors.Is(err, store.ErrTombstoned):
		e.refuse(c, RefusedTombstone, ref.key, errTombstoned(ref.sid))
	case errors.As(err, &abort):
		c.Out.Error(errExecAbort(abort.Abort, abort.Queued))
	case store.UpstreamReply(err):
		c.Out.Error(err.Error())
	default:
		if ok, suppressed := e.failures.admit(); ok {
			fields := []zap.Field{zap.String("command", e.CommandName(c)), zap.Error(err)}
			if suppressed > 0 {
				fields = append(fields, zap.Int("suppressed", suppressed))
			}
			e.opts.Logger.Warn("upstream command failed", fields...)
		}
		c.Out.Error(errUpstream(err))
	}
}

// ignoredTombstone reports whether a refused write must be answered as a
// success (tombstone.on_write = "ignore").
// It logs and counts the refusal when it is.
func (e *Engine) ignoredTombstone(c *Call, ref keyRef, err error) bool {
	if ref.ns != nil && ref.ns.onWrite == OnWriteIgnore && errors.Is(err, store.ErrTombstoned) {
		e.refused(c, RefusedTombstone, ref.key)
		return true
	}
	return false
}
