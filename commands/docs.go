package commands

import (
	"strings"

	"github.com/sessproxy/sessproxy/internal/resp"
)

// doc is a command's COMMAND DOCS entry. redis-cli (7.0 and later) reads
// summary, since, group and arguments at startup in interactive mode to
// build its help and the argument hints it shows as one types.
type doc struct {
	summary, since, group, complexity string
	// args is the argument syntax, docSyntax:
	//
	//	name:type             an argument (type: key, string, integer, double, pattern, unix-time)
	//	TOKEN                 a pure token (NX, KEEPTTL)
	//	TOKEN=name:type       an argument after its token (COUNT=count:integer)
	//	[ … ]                 optional
	//	( … )                 a group: one item, or a block of several
	//	a | b                 inside [ ] or ( ): one of
	//	name: or TOKEN=name:  before [ or ( names the group (and gives it a token)
	//	…...                  after an item: it repeats
	args string
}

// sessproxyVersion is the "since" of sessproxy's own commands.
const sessproxyVersion = "1.0.0"

// sessDocs are the entries of sessproxy's own commands and of the Redis
// commands it serves differently, or that Redis 7.0 lacks; the rest are
// Redis's own (redisDocs, docs_redis.go).
var sessDocs = map[string]doc{
	"sess.set":          {summary: "Store a session (its TTL from the policy, or TTL seconds clamped into [ttl.min, ttl.max]); refused with TOMBSTONE while the id is destroyed", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the payload's size", args: "sid:key payload:string [TTL=seconds:integer]"},
	"sess.get":          {summary: "Get a session's payload (a hash session's fields as a JSON object)", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the payload's size", args: "sid:key"},
	"sess.touch":        {summary: "Refresh a session's TTL, from the given payload or the stored one", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the payload's size", args: "sid:key [payload:string]"},
	"sess.destroy":      {summary: "Destroy sessions, leaving a tombstone that refuses late writes for tombstone.grace", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the number of sessions", args: "sid:key..."},
	"sess.ttl":          {summary: "Get a session's TTL in seconds (-2: missing or destroyed)", since: sessproxyVersion, group: "sessions", complexity: "O(1)", args: "sid:key"},
	"sess.exists":       {summary: "Count the given sessions that exist", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the number of sessions", args: "sid:key..."},
	"sess.fget":         {summary: "Get a top-level field of a session as JSON", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the payload's size", args: "sid:key field:string"},
	"sess.fmget":        {summary: "Get top-level fields of a session as JSON", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the payload's size", args: "sid:key field:string..."},
	"sess.fset":         {summary: "Set top-level fields of a session (atomic read-modify-write), creating it when missing", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the payload's size", args: "sid:key data:(field:string json:string)..."},
	"sess.fdel":         {summary: "Remove top-level fields of a session", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the payload's size", args: "sid:key field:string..."},
	"sess.byowner":      {summary: "List the ids of the live sessions of an owner (session.owner_field)", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the owner's sessions", args: "owner:string"},
	"sess.destroyowner": {summary: "Destroy every session of an owner (log out everywhere)", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the owner's sessions", args: "owner:string"},
	"sess.ids":          {summary: "List the ids of every live session, on every master", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the number of keys under the prefix", args: ""},
	"sess.all":          {summary: "List every live session: id, payload, …", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the number of keys under the prefix", args: ""},
	"sess.length":       {summary: "Count the live sessions", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the number of keys under the prefix", args: ""},
	"sess.scan":         {summary: "Incrementally iterate the ids of the live sessions, across every master", since: sessproxyVersion, group: "sessions", complexity: "O(1) for every call. O(N) for a complete iteration", args: "cursor:integer [COUNT=count:integer]"},
	"sess.clear":        {summary: "Destroy every session (admin role)", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the number of keys under the prefix", args: ""},
	"sess.sweep":        {summary: "Give the policy TTL to keys under the prefix without one, or above ttl.max (admin role)", since: sessproxyVersion, group: "sessions", complexity: "O(N) where N is the number of keys under the prefix", args: "[DRYRUN] [COUNT=count:integer]"},

	// Redis commands served differently.
	"dbsize":      {summary: "Return the number of live sessions", since: "1.0.0", group: "server", complexity: "O(N) where N is the number of keys under the prefix", args: ""},
	"keys":        {summary: "Find the keys under the session prefix matching a pattern (served by SCAN; tombstones never listed)", since: "1.0.0", group: "generic", complexity: "O(N) where N is the number of keys under the prefix", args: "pattern:pattern"},
	"scan":        {summary: "Incrementally iterate the keys under the session prefix, across every master (tombstones never listed)", since: "2.8.0", group: "generic", complexity: "O(1) for every call. O(N) for a complete iteration", args: "cursor:integer [MATCH=pattern:pattern] [COUNT=count:integer] [TYPE=type:string]"},
	"subscribe":   {summary: "Listen for redirected client-side caching invalidations (the __redis__:invalidate channel only)", since: "2.0.0", group: "pubsub", complexity: "O(N) where N is the number of channels to subscribe to", args: "channel:string..."},
	"unsubscribe": {summary: "Stop listening for redirected invalidations", since: "2.0.0", group: "pubsub", complexity: "O(N) where N is the number of channels to unsubscribe", args: "[channel:string]..."},
	"memory":      {summary: "A container for memory commands (USAGE)", since: "4.0.0", group: "server", complexity: "Depends on subcommand.", args: ""},
	"fcall":       {summary: "Not served: Redis functions run outside the session policy; use EVAL", since: "7.0.0", group: "scripting", complexity: "O(1)", args: "function:string numkeys:integer [key:key]... [arg:string]..."},
	"fcall_ro":    {summary: "Not served: Redis functions run outside the session policy; use EVAL_RO", since: "7.0.0", group: "scripting", complexity: "O(1)", args: "function:string numkeys:integer [key:key]... [arg:string]..."},
	"function":    {summary: "Not served: Redis functions run outside the session policy; use EVAL and SCRIPT LOAD", since: "7.0.0", group: "scripting", complexity: "O(1)", args: "subcommand:string [arg:string]..."},

	// Subcommands Redis 7.0 lacks.
	"client|setinfo":  {summary: "Set client or connection specific info", since: "7.2.0", group: "connection", complexity: "O(1)", args: "attr:(LIB-NAME=libname:string | LIB-VER=libver:string)"},
	"client|no-touch": {summary: "Controls whether commands sent by the client will alter the LRU/LFU of the keys they access", since: "7.2.0", group: "connection", complexity: "O(1)", args: "enabled:(ON | OFF)"},
}

// subcommand is a subcommand's COMMAND INFO entry (Redis 7 lists them
// under their container command).
type subcommand struct {
	name                    string // "client|setname"
	arity                   int
	firstKey, lastKey, step int
}

// subcommands are the subcommands each container command serves.
var subcommands = map[string][]subcommand{
	"client": {{name: "client|getname", arity: 2}, {name: "client|help", arity: 2}, {name: "client|id", arity: 2},
		{name: "client|info", arity: 2}, {name: "client|list", arity: -2}, {name: "client|no-evict", arity: 3},
		{name: "client|no-touch", arity: 3}, {name: "client|setinfo", arity: 4}, {name: "client|setname", arity: 3}},
	"command": {{name: "command|count", arity: 2}, {name: "command|docs", arity: -2}, {name: "command|getkeys", arity: -3},
		{name: "command|help", arity: 2}, {name: "command|info", arity: -2}, {name: "command|list", arity: -2}},
	"memory": {{name: "memory|help", arity: 2}, {name: "memory|usage", arity: -3, firstKey: 2, lastKey: 2, step: 1}},
	"script": {{name: "script|exists", arity: -3}, {name: "script|flush", arity: -2}, {name: "script|load", arity: 3}},
}

// docOf is the COMMAND DOCS entry of a command or subcommand name.
func docOf(name string) (doc, bool) {
	if d, ok := sessDocs[name]; ok {
		return d, true
	}
	d, ok := redisDocs[name]
	return d, ok
}

// docArg is one argument of a COMMAND DOCS entry, parsed from docSyntax.
type docArg struct {
	name, typ, token   string
	optional, multiple bool
	args               []*docArg // a oneof's or block's
}

// parseDocArgs parses docSyntax. The table is constant and a test parses
// every entry, so a malformed one panics rather than returning an error.
func parseDocArgs(s string) []*docArg {
	for _, c := range []string{"[", "]", "(", ")", "|"} {
		s = strings.ReplaceAll(s, c, " "+c+" ")
	}
	s = strings.ReplaceAll(s, "...", " ... ")
	p := docParser{toks: strings.Fields(s)}
	args := p.seq()
	if p.i != len(p.toks) {
		panic("doc syntax: unexpected " + p.toks[p.i] + " in " + s)
	}
	return args
}

type docParser struct {
	toks []string
	i    int
}

func (p *docParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *docParser) next() string {
	t := p.peek()
	p.i++
	return t
}

// seq parses items up to a closing bracket, a | or the end.
func (p *docParser) seq() []*docArg {
	var items []*docArg
	for {
		switch t := p.peek(); t {
		case "", "]", ")", "|":
			return items
		}
		a := p.item()
		if p.peek() == "..." {
			p.next()
			a.multiple = true
		}
		items = append(items, a)
	}
}

func (p *docParser) item() *docArg {
	t := p.next()
	label := ""
	if strings.HasSuffix(t, ":") {
		label, t = strings.TrimSuffix(t, ":"), p.next()
	}
	switch t {
	case "[":
		a := p.group(label, "]")
		a.optional = true
		return a
	case "(":
		return p.group(label, ")")
	}
	if label != "" {
		panic("doc syntax: label " + label + " before " + t)
	}
	token, rest, hasToken := strings.Cut(t, "=")
	if !hasToken {
		token, rest = "", t
	}
	name, typ, typed := strings.Cut(rest, ":")
	if !typed {
		return &docArg{name: strings.ToLower(t), typ: "pure-token", token: t}
	}
	return &docArg{name: name, typ: typ, token: token}
}

// group parses the inside of [ ] or ( ): one item, a block, or a oneof.
func (p *docParser) group(label, closing string) *docArg {
	alts := [][]*docArg{p.seq()}
	for p.peek() == "|" {
		p.next()
		alts = append(alts, p.seq())
	}
	if t := p.next(); t != closing {
		panic("doc syntax: " + t + " where " + closing + " was expected")
	}
	token, name, _ := strings.Cut(label, "=")
	if name == "" {
		token, name = "", label
	}
	if len(alts) == 1 && len(alts[0]) == 1 && label == "" {
		return alts[0][0]
	}
	a := &docArg{name: name, typ: "block", token: token}
	if len(alts) == 1 {
		a.args = alts[0]
	} else {
		a.typ = "oneof"
		for _, alt := range alts {
			if len(alt) == 1 {
				a.args = append(a.args, alt[0])
			} else {
				a.args = append(a.args, &docArg{name: alt[0].name, typ: "block", args: alt})
			}
		}
	}
	if a.name == "" {
		names := make([]string, len(a.args))
		for i, sub := range a.args {
			names[i] = sub.name
		}
		a.name = strings.Join(names, "-")
	}
	return a
}

// writeDoc writes one COMMAND DOCS entry: a map, as Redis 7's.
func writeDoc(out *resp.Writer, name string, d doc) {
	args := parseDocArgs(d.args)
	subs := subcommands[name]
	n := 4
	if len(args) > 0 {
		n++
	}
	if len(subs) > 0 {
		n++
	}
	out.Map(n)
	out.BulkString("summary")
	out.BulkString(d.summary)
	out.BulkString("since")
	out.BulkString(d.since)
	out.BulkString("group")
	out.BulkString(d.group)
	out.BulkString("complexity")
	out.BulkString(d.complexity)
	if len(args) > 0 {
		out.BulkString("arguments")
		writeDocArgs(out, args)
	}
	if len(subs) > 0 {
		out.BulkString("subcommands")
		out.Map(len(subs))
		for _, s := range subs {
			sd, _ := docOf(s.name)
			out.BulkString(s.name)
			writeDoc(out, s.name, sd)
		}
	}
}

func writeDocArgs(out *resp.Writer, args []*docArg) {
	out.Array(len(args))
	for _, a := range args {
		var flags []string
		if a.optional {
			flags = append(flags, "optional")
		}
		if a.multiple {
			flags = append(flags, "multiple")
		}
		n := 2
		if a.token != "" {
			n++
		}
		if len(flags) > 0 {
			n++
		}
		if len(a.args) > 0 {
			n++
		}
		out.Map(n)
		out.BulkString("name")
		out.BulkString(a.name)
		out.BulkString("type")
		out.BulkString(a.typ)
		if a.token != "" {
			out.BulkString("token")
			out.BulkString(a.token)
		}
		if len(flags) > 0 {
			// Simple strings: redis-cli asserts each flag is a status reply.
			out.BulkString("flags")
			out.Set(len(flags))
			for _, f := range flags {
				out.Simple(f)
			}
		}
		if len(a.args) > 0 {
			out.BulkString("arguments")
			writeDocArgs(out, a.args)
		}
	}
}

// hint renders arguments as redis-cli shows them (its cliAddArgument),
// for tests and docs/commands.md.
func hint(args []*docArg) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = hintArg(a)
	}
	return strings.Join(parts, " ")
}

func hintArg(a *docArg) string {
	var repeat string
	switch a.typ {
	case "oneof", "block":
		sep := " "
		if a.typ == "oneof" {
			sep = "|"
		}
		parts := make([]string, len(a.args))
		for i, sub := range a.args {
			parts[i] = hintArg(sub)
		}
		repeat = strings.Join(parts, sep)
	case "pure-token":
	default:
		repeat = a.name
	}
	token := a.token
	if token != "" && a.typ != "pure-token" {
		token += " "
	}
	s := token + repeat
	if a.multiple {
		s += " [" + repeat + " ...]"
	}
	if a.optional {
		s = "[" + s + "]"
	}
	return s
}
