package commands

import (
	"container/list"
	"crypto/sha1"
	"encoding/hex"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/sessproxy/sessproxy/store"
	"go.uber.org/zap"
)

// Scripts (SPEC §12.2): EVAL, EVALSHA and their _RO forms run the client's
// script upstream wrapped in the session policy (scriptwrap.go). The SHA-1
// a client sees is its own script's, as phpredis and redis-py compute it
// locally; the proxy maps it to the wrapped script in a bounded cache
// (scriptCache), which SCRIPT LOAD and EVAL fill and SCRIPT EXISTS and
// SCRIPT FLUSH answer from. docs/commands.md, "Scripts", has the rules.

// Script modes (Options.ScriptsMode, [scripts] mode).
const (
	ScriptsPolicy = "policy" // scripts run wrapped in the policy
	ScriptsDeny   = "deny"   // every script command is refused
)

// The script cache's bounds: past either, the least recently used script
// is forgotten, and its EVALSHA answers NOSCRIPT until an EVAL or SCRIPT
// LOAD brings it back (clients fall back to EVAL on NOSCRIPT).
const (
	maxCachedScripts     = 1000
	maxCachedScriptBytes = 20 << 20 // the client's text and the wrapped one
)

// cachedScript is a client's script as the proxy runs it.
type cachedScript struct {
	hash     string // SHA-1 of the client's text, lower-case hex
	upstream *store.UserScript
	lines    int // lines of the client's text
	size     int
	noWrites bool // its shebang line declares flags=no-writes: run as read-only
}

// scriptCache maps client SHA-1s to wrapped scripts, least recently used
// first out. It is shared by every client, as Redis's script cache is.
type scriptCache struct {
	mu     sync.Mutex
	byHash map[string]*list.Element // of *cachedScript
	lru    list.List                // front: most recently used
	bytes  int
	// parsing holds a place for each script being parsed (parseSlots).
	parsing     chan struct{}
	parsingOnce sync.Once
}

// parseSlots is how many scripts are parsed at once. A parse is CPU work
// that holds up to 50 times the script's text (256 KiB at most: about 25
// MB), and the in-flight budget counts only the request's bytes: clients
// with goroutines of their own could otherwise parse a thousand scripts at
// once on a few cores, none the faster. The rest wait for a place.
func parseSlots() int { return max(2, runtime.GOMAXPROCS(0)) }

// get returns the script whose client SHA-1 is hash, or nil.
func (sc *scriptCache) get(hash string) *cachedScript {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	el, ok := sc.byHash[strings.ToLower(hash)]
	if !ok {
		return nil
	}
	sc.lru.MoveToFront(el)
	return el.Value.(*cachedScript)
}

// exists reports whether hash is cached, without counting as a use.
func (sc *scriptCache) exists(hash string) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	_, ok := sc.byHash[strings.ToLower(hash)]
	return ok
}

// load returns the cached script of source, wrapping and caching it when
// it is new, or the error reply for a script that does not compile; fresh
// when it was new.
func (sc *scriptCache) load(source string) (s *cachedScript, msg string, fresh bool) {
	sum := sha1.Sum([]byte(source))
	hash := hex.EncodeToString(sum[:])
	if s := sc.get(hash); s != nil {
		return s, "", false
	}
	wrapped, msg := sc.wrap(source)
	if msg != "" {
		return nil, msg, false
	}
	s = &cachedScript{hash: hash, upstream: store.NewUserScript(wrapped), lines: userLines(source), size: len(source) + len(wrapped),
		noWrites: declaresNoWrites(source)}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if el, ok := sc.byHash[hash]; ok { // loaded meanwhile by another client
		sc.lru.MoveToFront(el)
		return el.Value.(*cachedScript), "", false
	}
	if sc.byHash == nil {
		sc.byHash = make(map[string]*list.Element)
	}
	sc.byHash[hash] = sc.lru.PushFront(s)
	sc.bytes += s.size
	for sc.lru.Len() > 1 && (sc.lru.Len() > maxCachedScripts || sc.bytes > maxCachedScriptBytes) {
		old := sc.lru.Back()
		sc.lru.Remove(old)
		gone := old.Value.(*cachedScript)
		delete(sc.byHash, gone.hash)
		sc.bytes -= gone.size
	}
	return s, "", true
}

// wrap is wrapScript once a place to parse is free (parseSlots).
func (sc *scriptCache) wrap(source string) (string, string) {
	sc.parsingOnce.Do(func() { sc.parsing = make(chan struct{}, parseSlots()) })
	sc.parsing <- struct{}{}
	defer func() { <-sc.parsing }()
	return wrapScript(source)
}

// declaresNoWrites reports whether a script's shebang line (Redis 7:
// "#!lua flags=no-writes,allow-stale") has the no-writes flag.
func declaresNoWrites(source string) bool {
	if !strings.HasPrefix(source, "#!") {
		return false
	}
	line, _, _ := strings.Cut(source, "\n")
	for _, field := range strings.Fields(line) {
		if flags, ok := strings.CutPrefix(field, "flags="); ok {
			for _, f := range strings.Split(flags, ",") {
				if f == "no-writes" {
					return true
				}
			}
		}
	}
	return false
}

// flush forgets every script.
func (sc *scriptCache) flush() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	clear(sc.byHash)
	sc.lru.Init()
	sc.bytes = 0
}

// EVAL script numkeys [key …] [arg …], and EVAL_RO.
func (e *Engine) eval(c *Call)   { e.runScript(c, false, false) }
func (e *Engine) evalRO(c *Call) { e.runScript(c, false, true) }

// EVALSHA sha1 numkeys [key …] [arg …], and EVALSHA_RO.
func (e *Engine) evalsha(c *Call)   { e.runScript(c, true, false) }
func (e *Engine) evalshaRO(c *Call) { e.runScript(c, true, true) }

func (e *Engine) runScript(c *Call, bySHA, readOnly bool) {
	if e.opts.ScriptsMode == ScriptsDeny {
		c.Out.Error(errScriptsDenied(string(c.Args[0])))
		return
	}
	n, ok := parseInt(c.Args[2])
	switch {
	case !ok:
		c.Out.Error(msgNotInteger)
		return
	case n < 0:
		c.Out.Error(msgNegativeKeys)
		return
	case n > int64(len(c.Args)-3):
		c.Out.Error(msgTooManyKeys)
		return
	}
	var s *cachedScript
	if bySHA {
		if s = e.scripts.get(string(c.Args[1])); s == nil {
			c.Out.Error(msgNoScript)
			return
		}
	} else {
		var msg string
		var fresh bool
		if s, msg, fresh = e.scripts.load(string(c.Args[1])); msg != "" {
			c.Out.Error(msg)
			return
		}
		if fresh {
			e.preload(c, s)
		}
	}
	keyArgs, userArgs := c.Args[3:3+n], c.Args[3+n:]
	refs, ok := e.resolveAll(c, keyArgs, 1)
	if !ok {
		return
	}
	keys := make([]string, len(refs))
	for i, r := range refs {
		keys[i] = r.key
	}
	if e.store.Mode() == store.ModeCluster {
		for _, k := range keys {
			if store.Slot(k) != store.Slot(keys[0]) {
				c.Out.Error(msgCrossSlot)
				return
			}
		}
	}
	// The script runs in the namespace of its KEYS (the default without
	// any), one namespace per script.
	var sp *space
	for _, r := range refs {
		if r.ns != nil && sp != nil && r.ns != sp {
			c.Out.Error(msgScriptNamespaces)
			return
		}
		if r.ns != nil {
			sp = r.ns
		}
	}
	if sp == nil {
		sp = e.spaces[0]
	}
	var clear []string // the clients' names of the keys, when they are not what is stored
	if sp.hashIDs {
		clear = make([]string, len(keyArgs))
		for i, k := range keyArgs {
			clear[i] = string(k)
		}
	}
	// A script that declares no-writes is read-only to Redis whichever
	// command runs it: the wrapper must not write either.
	args := append(e.scriptPolicyArgs(c.conf, sp, readOnly || s.noWrites, clear), userArgs...)
	res := c.Batch.Eval(s.upstream, readOnly, keys, args)
	c.Then(func() {
		v, err := res.Result()
		switch {
		case err != nil && store.UpstreamReply(err):
			msg := s.clientError(err.Error())
			if reason, key, ok := e.scriptRefusal(sp, msg); ok && !readOnly {
				e.refuse(c, reason, key, msg)
				return
			}
			c.Out.Error(msg)
		case err != nil:
			e.fail(c, keyRef{}, err)
		default:
			c.Out.Value(v)
		}
	})
}

// preload loads a script new to the proxy on every master before its first
// EVALSHA, so that its first run does not meet NOSCRIPT. A NOSCRIPT is
// recovered (loaded, sent again) unless, in the pipeline the proxy shares
// between clients, a later write to one of its keys already ran: then it
// keeps its error, as sending it again would reorder it after that write.
// phpredis's lock release met exactly that: its EVAL of the release script
// ran in one pipeline with another PHP process's SET NX polling the same
// lock, got NOSCRIPT, and the lock stayed until it expired ("Failed to
// release session lock", TestSentinel and TestCluster/PHPSessionLocking,
// now and then). If loading fails here, that recovery still applies.
func (e *Engine) preload(c *Call, s *cachedScript) {
	if err := e.store.LoadUserScript(c.Ctx, s.upstream); err != nil {
		e.opts.Logger.Warn("script not loaded ahead of its first run", zap.String("sha", s.hash), zap.Error(err))
	}
}

// clientError rewrites an error reply of the wrapped script as the
// client's script's: Redis names the wrapped script's SHA-1, and a line of
// the wrapper when the wrapper raised the error.
func (s *cachedScript) clientError(msg string) string {
	return s.clientErrorLines(strings.ReplaceAll(msg, s.upstream.Hash(), s.hash))
}

// clientErrorLines drops the line from an error the wrapper raised.
func (s *cachedScript) clientErrorLines(msg string) string {
	const at = ", on @user_script:"
	i := strings.LastIndex(msg, at)
	if i < 0 {
		return msg
	}
	j := i + len(at)
	k := j
	for k < len(msg) && '0' <= msg[k] && msg[k] <= '9' {
		k++
	}
	if line, err := strconv.Atoi(msg[j:k]); err == nil && line > s.lines {
		msg = msg[:i] + msg[k:]
	}
	return msg
}

// SCRIPT LOAD script | EXISTS sha1 [sha1 …] | FLUSH [ASYNC|SYNC]: the
// proxy's cache. FLUSH leaves the upstream's script cache alone: the
// proxy's own scripts live there, and a script the proxy has forgotten is
// never called.
func (e *Engine) script(c *Call) {
	if e.opts.ScriptsMode == ScriptsDeny {
		c.Out.Error(errScriptsDenied("script"))
		return
	}
	sub := strings.ToLower(string(c.Args[1]))
	switch sub {
	case "load":
		if len(c.Args) != 3 {
			c.Out.Error(errArity("script|load"))
			return
		}
		s, msg, fresh := e.scripts.load(string(c.Args[2]))
		if msg != "" {
			c.Out.Error(msg)
			return
		}
		if fresh {
			e.preload(c, s)
		}
		c.Out.BulkString(s.hash)
	case "exists":
		if len(c.Args) < 3 {
			c.Out.Error(errArity("script|exists"))
			return
		}
		c.Out.Array(len(c.Args) - 2)
		for _, h := range c.Args[2:] {
			if e.scripts.exists(string(h)) {
				c.Out.Int(1)
			} else {
				c.Out.Int(0)
			}
		}
	case "flush":
		switch {
		case len(c.Args) > 3:
			c.Out.Error(errArity("script|flush"))
			return
		case len(c.Args) == 3 && !strings.EqualFold(string(c.Args[2]), "async") && !strings.EqualFold(string(c.Args[2]), "sync"):
			c.Out.Error(msgScriptFlushMode)
			return
		}
		e.scripts.flush()
		c.Out.OK()
	default:
		c.Out.Error(errUnknownSubcommand("SCRIPT", string(c.Args[1])))
	}
}

// FCALL, FCALL_RO, FUNCTION: Redis functions live upstream, loaded once
// and called by name, where no wrapper can put the policy around them.
func (e *Engine) functions(c *Call) {
	c.Out.Error(errFunctionsRefused(string(c.Args[0])))
}

// scriptWriteRefusal is why a script may not write session values (SET
// family, hash writes, the EXPIRE family) under conf, or "". DEL, reads
// and locks are never concerned.
func (e *Engine) scriptWriteRefusal(conf *reloadable, sp *space) string {
	switch {
	case !sp.codec.AsGiven():
		return msgScriptCodecValues
	case sp.ownerField != "":
		return msgScriptOwnerWrites
	case conf.policies[sp.index].Absolute > 0:
		return msgScriptAbsolute
	}
	return ""
}

// scriptReadRefusal is why a script may not read session values under
// conf, or "": a stored value it could not decode, or a read that would
// slide the expiry past ttl.absolute.
func (e *Engine) scriptReadRefusal(conf *reloadable, sp *space) string {
	p := &conf.policies[sp.index]
	switch {
	case !sp.codec.AsGiven():
		return msgScriptCodecValues
	case p.Absolute > 0 && p.Idle > 0:
		return msgScriptAbsoluteIdle
	}
	return ""
}
