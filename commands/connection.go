package commands

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sessproxy/sessproxy/store"
)

// redisVersion is the Redis version sessproxy reports to clients: the
// command semantics it follows. Clients use it to pick features.
const redisVersion = "7.0.15"

// PING [message]
func (e *Engine) ping(c *Call) {
	switch len(c.Args) {
	case 1:
		c.Out.Simple("PONG")
	case 2:
		c.Out.Bulk(c.Args[1])
	default:
		c.Out.Error(errArity("ping"))
	}
}

// ECHO message
func (e *Engine) echo(c *Call) { c.Out.Bulk(c.Args[1]) }

// QUIT: +OK, then the proxy closes the connection after the replies before it.
func (e *Engine) quit(c *Call) {
	c.Client.closeAfter = true
	c.Out.OK()
}

// READONLY, READWRITE: accepted so cluster-aware clients can connect; the
// proxy routes reads itself.
func (e *Engine) okReply(c *Call) { c.Out.OK() }

// RESET: back to the state of a new connection.
func (e *Engine) reset(c *Call) {
	c.Client.sub.on.Store(false)
	e.resetAuth(c.Client, c.conf)
	e.endTx(c.Client)
	c.Client.mu.Lock()
	c.Client.name, c.Client.proto = "", 2
	c.Client.mu.Unlock()
	c.Out.Reset(2)
	c.Out.Simple("RESET")
}

// AUTH [username] password
func (e *Engine) auth(c *Call) {
	user, pass := "default", ""
	switch len(c.Args) {
	case 2:
		pass = string(c.Args[1])
	case 3:
		user, pass = string(c.Args[1]), string(c.Args[2])
	default:
		c.Out.Error(msgSyntax)
		return
	}
	if len(c.Args) == 2 && !c.conf.authRequired() {
		// Redis's reply to AUTH <password> with no password configured;
		// AUTH default <password> succeeds there (see authenticate).
		c.Out.Error(msgNoPassword)
		return
	}
	if err := e.authenticate(c, user, pass); err != nil {
		c.Out.Error(msgWrongPass)
		return
	}
	c.Out.OK()
}

// HELLO [protover [AUTH username password] [SETNAME clientname]]
func (e *Engine) hello(c *Call) {
	proto := 0
	if len(c.Args) > 1 {
		n, ok := parseInt(c.Args[1])
		if !ok {
			c.Out.Error(msgProtoNotInt)
			return
		}
		if n != 2 && n != 3 {
			c.Out.Error(msgNoProto)
			return
		}
		proto = int(n)
	}
	var user, pass, name string
	var auth, setName bool
	for i := 2; i < len(c.Args); i++ {
		opt := string(bytes.ToUpper(c.Args[i]))
		switch {
		case opt == "AUTH" && i+2 < len(c.Args):
			auth, user, pass = true, string(c.Args[i+1]), string(c.Args[i+2])
			i += 2
		case opt == "SETNAME" && i+1 < len(c.Args):
			setName, name = true, string(c.Args[i+1])
			i++
		default:
			c.Out.Error(errHelloOption(string(c.Args[i])))
			return
		}
	}
	if auth {
		if err := e.authenticate(c, user, pass); err != nil {
			c.Out.Error(msgWrongPass)
			return
		}
	}
	if !c.Client.authed {
		c.Out.Error(msgHelloNoAuth)
		return
	}
	if msg := clientNameError("client name", name); setName && msg != "" {
		c.Out.Error(msg)
		return
	}
	c.Client.mu.Lock()
	if proto != 0 {
		c.Client.proto = proto
	}
	if setName {
		c.Client.name = name
	}
	proto = c.Client.proto
	c.Client.mu.Unlock()
	// The switch applies to HELLO's own reply, as in Redis, and to every
	// command after it, pipelined or not.
	c.Out.Proto = proto
	c.Out.Map(7)
	c.Out.BulkString("server")
	c.Out.BulkString("redis")
	c.Out.BulkString("version")
	c.Out.BulkString(redisVersion)
	c.Out.BulkString("proto")
	c.Out.Int(int64(proto))
	c.Out.BulkString("id")
	c.Out.Int(c.Client.ID)
	c.Out.BulkString("mode")
	c.Out.BulkString("standalone")
	c.Out.BulkString("role")
	c.Out.BulkString("master")
	c.Out.BulkString("modules")
	c.Out.Array(0)
}

// SELECT index: only the configured database.
func (e *Engine) selectDB(c *Call) {
	n, ok := parseInt(c.Args[1])
	switch {
	case !ok:
		c.Out.Error(msgNotInteger)
	case n != int64(e.opts.DB):
		c.Out.Error(errSelect(e.opts.DB))
	default:
		c.Out.OK()
	}
}

// CLIENT subcommand …
func (e *Engine) client(c *Call) {
	sub := string(bytes.ToUpper(c.Args[1]))
	cl := c.Client
	switch {
	case sub == "SETNAME" && len(c.Args) == 3:
		name := string(c.Args[2])
		if msg := clientNameError("client name", name); msg != "" {
			c.Out.Error(msg)
			return
		}
		cl.mu.Lock()
		cl.name = name
		cl.mu.Unlock()
		c.Out.OK()
	case sub == "GETNAME" && len(c.Args) == 2:
		cl.mu.Lock()
		name := cl.name
		cl.mu.Unlock()
		if name == "" {
			c.Out.Null()
		} else {
			c.Out.BulkString(name)
		}
	case sub == "ID" && len(c.Args) == 2:
		c.Out.Int(cl.ID)
	case sub == "SETINFO" && len(c.Args) == 4:
		attr, val := string(bytes.ToUpper(c.Args[2])), string(c.Args[3])
		if msg := clientNameError(strings.ToLower(attr), val); msg != "" {
			c.Out.Error(msg)
			return
		}
		cl.mu.Lock()
		defer cl.mu.Unlock()
		switch attr {
		case "LIB-NAME":
			cl.libName = val
		case "LIB-VER":
			cl.libVer = val
		default:
			c.Out.Error(errUnrecognizedOption(string(c.Args[2])))
			return
		}
		c.Out.OK()
	case sub == "INFO" && len(c.Args) == 2:
		c.Out.Verbatim(cl.info(time.Now(), e.opts.DB) + "\n")
	case sub == "LIST":
		var b strings.Builder
		now := time.Now()
		for _, other := range e.clients.list() {
			b.WriteString(other.info(now, e.opts.DB))
			b.WriteByte('\n')
			if int64(b.Len()) > c.Out.Room() {
				break // past the reply limit: the client gets its error, not the list
			}
		}
		c.Out.Verbatim(b.String())
	case sub == "TRACKING" || sub == "CACHING" || sub == "TRACKINGINFO" || sub == "GETREDIR":
		e.clientTrackingCmd(c, sub) // tracking.go
	case (sub == "NO-EVICT" || sub == "NO-TOUCH") && len(c.Args) == 3:
		// Accepted and not acted on (the proxy's clients are not Redis's);
		// anything but ON or OFF is Redis's syntax error.
		if on := strings.ToUpper(string(c.Args[2])); on != "ON" && on != "OFF" {
			c.Out.Error(msgSyntax)
			return
		}
		c.Out.OK()
	case sub == "HELP":
		help := []string{
			"CLIENT <subcommand> [<arg> ...]. Subcommands are:",
			"GETNAME", "SETNAME <name>", "ID", "INFO", "LIST", "SETINFO <LIB-NAME|LIB-VER> <value>",
			"NO-EVICT (ON|OFF)", "NO-TOUCH (ON|OFF)",
			"TRACKING (ON|OFF) [BCAST] [PREFIX <prefix> ...] [OPTIN] [OPTOUT] [NOLOOP]", "CACHING (YES|NO)", "TRACKINGINFO", "GETREDIR",
		}
		c.Out.Array(len(help))
		for _, h := range help {
			c.Out.Simple(h)
		}
	default:
		c.Out.Error(errUnknownSubcommand("CLIENT", string(c.Args[1])))
	}
}

// maxClientNameBytes bounds a client's name and its CLIENT SETINFO
// values, which the proxy keeps for the connection's life: Redis has no
// bound, and 16 idle clients that each set 4 MiB of them held 189 MB,
// outside every budget (docs/limits.md).
const maxClientNameBytes = 1024

// clientNameError is the error for a client name or SETINFO value (what:
// "client name", "lib-name", "lib-ver"), "" for a valid one.
func clientNameError(what, s string) string {
	switch {
	case len(s) > maxClientNameBytes:
		return errClientNameLength(what)
	case !validClientName(s) && what == "client name":
		return msgClientName
	case !validClientName(s):
		return errSetInfoValue(what)
	}
	return ""
}

// validClientName follows Redis: printable ASCII without spaces.
func validClientName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}

// TIME
func (e *Engine) time(c *Call) {
	now := time.Now()
	c.Out.Array(2)
	c.Out.BulkString(strconv.FormatInt(now.Unix(), 10))
	c.Out.BulkString(strconv.Itoa(now.Nanosecond() / 1000))
}

// INFO [section …]: Redis's sections and field names, so redis-cli
// --stat and monitoring agents read it as they read Redis's. The proxy's
// own figures where it is the server the client sees (clients, commands,
// connections); the upstream's where the data is (memory, persistence,
// keyspace, key hits and expiries), summed over every master.
func (e *Engine) info(c *Call) {
	want := map[string]bool{}
	for _, a := range c.Args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	all := len(want) == 0 || want["all"] || want["everything"] || want["default"]
	wants := func(name string) bool { return all || want[name] }
	var up store.UpstreamInfo
	if wants("memory") || wants("persistence") || wants("stats") || wants("keyspace") {
		// One INFO per master: INFO is on every client's connect path
		// (ioredis's ready check) and must stay cheap.
		var err error
		if up, err = e.store.Info(c.Ctx, "memory", "persistence", "stats", "keyspace"); err != nil {
			e.fail(c, keyRef{}, err)
			return
		}
	}
	upField := func(name string) string {
		if v, ok := up.Fields[name]; ok {
			return name + ":" + v
		}
		return name + ":0"
	}
	var b strings.Builder
	section := func(name string, lines ...string) {
		if !wants(strings.ToLower(name)) {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
	}
	uptime := time.Since(e.started)
	section("Server",
		"redis_version:"+redisVersion,
		"sessproxy_version:"+e.opts.Version,
		"redis_mode:standalone",
		"os:"+runtime.GOOS+" "+runtime.GOARCH,
		"process_id:"+strconv.Itoa(os.Getpid()),
		"uptime_in_seconds:"+strconv.Itoa(int(uptime.Seconds())),
		"uptime_in_days:"+strconv.Itoa(int(uptime.Hours()/24)),
	)
	section("Clients",
		"connected_clients:"+strconv.Itoa(e.clients.count()),
		"blocked_clients:0", // the proxy serves no blocking command
	)
	usedMemory, _ := strconv.ParseInt(up.Fields["used_memory"], 10, 64)
	peak, _ := strconv.ParseInt(up.Fields["used_memory_peak"], 10, 64)
	peak = max(peak, usedMemory) // embedded: no peak but the heap now
	maxMemory, _ := strconv.ParseInt(up.Fields["maxmemory"], 10, 64)
	policy := up.Fields["maxmemory_policy"]
	if policy == "" {
		policy = "noeviction"
	}
	section("Memory",
		"used_memory:"+strconv.FormatInt(usedMemory, 10),
		"used_memory_human:"+bytesToHuman(usedMemory),
		upField("used_memory_rss"),
		"used_memory_peak:"+strconv.FormatInt(peak, 10),
		"used_memory_peak_human:"+bytesToHuman(peak),
		upField("used_memory_dataset"),
		"maxmemory:"+strconv.FormatInt(maxMemory, 10),
		"maxmemory_human:"+bytesToHuman(maxMemory),
		"maxmemory_policy:"+policy,
	)
	section("Persistence",
		"loading:0",
		upField("rdb_changes_since_last_save"),
		upField("rdb_bgsave_in_progress"),
		upField("aof_rewrite_in_progress"),
	)
	section("Stats",
		"total_connections_received:"+strconv.FormatInt(e.stats.connections.Load(), 10),
		"total_commands_processed:"+strconv.FormatInt(e.stats.commands.Load(), 10),
		"instantaneous_ops_per_sec:"+strconv.FormatInt(e.opsPerSec(time.Now()), 10),
		"rejected_connections:"+strconv.FormatInt(e.stats.rejected.Load(), 10),
		upField("expired_keys"),
		upField("evicted_keys"),
		upField("keyspace_hits"),
		upField("keyspace_misses"),
	)
	section("Replication", "role:master", "connected_slaves:0")
	upstream := []string{
		"upstream_mode:" + e.store.Mode(),
		"upstream_addrs:" + strings.Join(e.store.Addrs(), ","),
	}
	if name := e.store.MasterName(); name != "" {
		// In sentinel mode upstream_addrs are the sentinels.
		upstream = append(upstream, "upstream_master_name:"+name)
	}
	section("Upstream", upstream...)
	// The default namespace's, as before namespaces; the others' by name.
	sp := e.spaces[0]
	tombstones := "off"
	if sp.tombstones {
		tombstones = sp.grace.String()
	}
	// Whether the typed format's transition is over: writes are SET … GET.
	writes := "scripted"
	if sp.nativeWrites() {
		writes = "native"
	}
	sessions := []string{
		"session_prefix:" + sp.prefix,
		"ttl_default_seconds:" + strconv.Itoa(int(c.policy(sp).Default.Seconds())),
		"ttl_min_seconds:" + strconv.Itoa(int(c.policy(sp).Min.Seconds())),
		"ttl_max_seconds:" + strconv.Itoa(int(c.policy(sp).Max.Seconds())),
		"tombstone_grace:" + tombstones,
		"tombstone_format:" + string(sp.format),
		"tombstone_writes:" + writes,
		"namespaces:" + strconv.Itoa(len(e.spaces)),
	}
	for _, ns := range e.spaces {
		sessions = append(sessions, "namespace_"+ns.name+":prefix="+ns.prefix)
	}
	section("Sessions", sessions...)
	// The upstream's own count (every key of the db: tombstones, locks and
	// keys outside the prefix too), as Redis's INFO reports it; DBSIZE
	// counts the live sessions.
	section("Keyspace", "db"+strconv.Itoa(e.opts.DB)+":keys="+strconv.FormatInt(up.Keys, 10)+
		",expires="+strconv.FormatInt(up.Expires, 10)+",avg_ttl=0")
	c.Out.Verbatim(b.String())
}

// bytesToHuman formats a byte count as Redis's INFO does (1.50M).
func bytesToHuman(n int64) string {
	const k = 1024
	f := float64(n)
	switch {
	case n < k:
		return strconv.FormatInt(n, 10) + "B"
	case n < k*k:
		return strconv.FormatFloat(f/k, 'f', 2, 64) + "K"
	case n < k*k*k:
		return strconv.FormatFloat(f/(k*k), 'f', 2, 64) + "M"
	case n < k*k*k*k:
		return strconv.FormatFloat(f/(k*k*k), 'f', 2, 64) + "G"
	}
	return strconv.FormatFloat(f/(k*k*k*k), 'f', 2, 64) + "T"
}

// opsRate is INFO's instantaneous_ops_per_sec: commands per second over
// the time between two samples at least opsSampleEvery apart, sampled by
// INFO itself (so no goroutine ticks for it).
type opsRate struct {
	mu   sync.Mutex
	at   time.Time
	n    int64
	rate int64
}

const opsSampleEvery = time.Second

func (e *Engine) opsPerSec(now time.Time) int64 {
	r := &e.ops
	r.mu.Lock()
	defer r.mu.Unlock()
	n := e.stats.commands.Load()
	if r.at.IsZero() {
		r.at, r.n = e.started, 0
	}
	if d := now.Sub(r.at); d >= opsSampleEvery {
		r.rate = int64(float64(n-r.n) / d.Seconds())
		r.at, r.n = now, n
	}
	return r.rate
}
