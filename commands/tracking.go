package commands

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessproxy/sessproxy/internal/resp"
	"github.com/sessproxy/sessproxy/store"
	"go.uber.org/zap"
)

// Client-side caching: CLIENT TRACKING, CACHING, TRACKINGINFO, GETREDIR,
// and the RESP3 `invalidate` pushes (docs/commands.md, "Client-side
// caching").
//
// The proxy keeps Redis's tracking table itself, for its own clients: the
// upstream keys each tracking client read (default mode: every read;
// OPTIN: the reads after CLIENT CACHING YES; OPTOUT: all but those after
// CLIENT CACHING NO), with the names the client read them by, bounded by
// Options.TrackingMaxKeys. BCAST clients keep prefixes instead. What was
// written comes from one upstream connection per master in
// CLIENT TRACKING ON BCAST PREFIX <session prefix> (store/invalidate.go),
// which sees every write, through this proxy, another one or straight to
// Redis; each invalidated key goes to the clients that read it, and leaves
// the table, as in Redis.
//
// A client's own write through this proxy is answered as Redis does:
// the invalidation push comes before the write's reply (or, NOLOOP, not at
// all). While the upstream connection is not up (embedded mode, which has
// no tracking, or a master being reconnected) the proxy invalidates from
// the writes it makes itself, for every client; when the connection is
// lost and when it is back every client is sent a flush (`invalidate`
// with a null), as Redis does to a client whose connection drops.
//
// Order: a read registers its keys when it is dispatched, before it runs
// upstream, and pushes queued while a client's batch runs are written
// after that batch's replies (proxy/push.go), so an invalidation never
// reaches a client ahead of the read whose value it invalidates.

// Pusher writes a push frame to a client outside its request cycle; it
// must not block. The proxy gives each client one (Client.SetPusher).
type Pusher interface {
	Push(frame []byte)
}

// SetPusher gives the client its out-of-band writer; call before serving
// it.
func (c *Client) SetPusher(p Pusher) { c.pusher = p }

// defaultTrackingMaxKeys is Redis's tracking-table-max-keys default.
const defaultTrackingMaxKeys = 1000000

// defaultTrackingMaxBytes bounds the table's names as well as their count:
// a million keys of a megabyte each (outside the prefix, passed through)
// fit the count, and 200 of them already held 206 MB.
const defaultTrackingMaxBytes = 64 << 20

// trackingEntryBytes is what the table's maps take per entry besides the
// name itself, roughly: a bucket's slot, a string header, a slice's.
const trackingEntryBytes = 64

func keyCost(key string) int64 { return int64(len(key)) + trackingEntryBytes }

// bcastEntryBytes is what a BCAST prefix costs besides its bytes: its
// entry in the client's list and in the tracker's index, whose map of
// followers it owns. Measured: 8 clients' 6.4 million prefixes of 14
// bytes held 1695 MiB, 277 bytes each.
const bcastEntryBytes = 256

func prefixesCost(prefixes []string) int64 {
	n := int64(0)
	for _, p := range prefixes {
		n += int64(len(p)) + bcastEntryBytes
	}
	return n
}

func namesCost(names []string) int64 {
	n := int64(0)
	for _, s := range names {
		n += int64(len(s)) + trackingEntryBytes
	}
	return n
}

// clientTracking is one client's CLIENT TRACKING state. The options are
// fixed while it is in the tracker (CLIENT TRACKING ON again replaces it);
// keys is the tracker's, behind its lock; caching and own are the
// connection goroutine's.
type clientTracking struct {
	bcast, optin, optout, noloop bool
	prefixes                     []string            // BCAST's, in byte order (Redis lists them so)
	keys                         map[string]struct{} // upstream keys read

	redirect *Client // REDIRECT's target; nil: the client itself (redirect.go)

	caching int8     // CLIENT CACHING for the next command: 1 YES, -1 NO
	own     []string // names to invalidate in-band, before the reply
}

// trackedKey is a key argument: its upstream key, the name the client
// gave (a SESS.* id, or a key), and its full unhashed key for BCAST
// prefixes.
type trackedKey struct {
	upstream, name, full string
}

// tracker is the engine's tracking table.
type tracker struct {
	active atomic.Int32 // clients with tracking on: 0 keeps Dispatch's cost to one load
	once   sync.Once    // starts the upstream connections

	mu      sync.Mutex
	clients map[*Client]*clientTracking
	keys    map[string]map[*Client][]string // upstream key → readers → their names
	max     int
	// bytes is what keys holds (keyCost, namesCost), bounded by maxBytes.
	bytes, maxBytes int64
	// BCAST prefixes, indexed as Redis keeps them in one radix tree, so
	// that a write costs its key's length, not a scan of every client's
	// prefixes: a client may register hundreds of thousands. A key's
	// followers are under its own prefixes, one per length a prefix has
	// (bcastFollowers).
	bcast        map[string]map[*Client]struct{} // prefix → the clients following it
	bcastLengths []prefixLength                  // ascending
	// bcastBytes is what every client's prefixes cost (prefixesCost),
	// bounded by maxBytes apart from the keys': a prefix, unlike a key,
	// cannot be invalidated to make room, so one past the bound is
	// refused. Unbounded, 8 clients that each sent 24 MB of prefixes held
	// 1695 MiB for as long as they stayed.
	bcastBytes int64
	// The upstream tracking connections: with none up, or one down, the
	// proxy invalidates from its own writes.
	unsupported bool
	conns       map[string]bool // master → up
	ready       chan struct{}   // closed once every master's connection was up
}

// trackingReadyWait bounds how long the first CLIENT TRACKING ON waits for
// the upstream tracking connections, so that its +OK means invalidations
// flow.
const trackingReadyWait = 2 * time.Second

// healthy reports whether every master's writes reach the proxy; t.mu
// held.
func (t *tracker) healthy() bool {
	if t.unsupported || len(t.conns) == 0 {
		return false
	}
	for _, up := range t.conns {
		if !up {
			return false
		}
	}
	return true
}

// start opens the upstream tracking connections, the first time a client
// turns tracking on.
func (e *Engine) startTracking() {
	e.tracking.once.Do(func() {
		prefixes := e.trackingPrefixes()
		e.tracking.mu.Lock()
		ready := make(chan struct{})
		e.tracking.ready = ready
		e.tracking.mu.Unlock()
		err := e.store.WatchInvalidations(prefixes, upstreamFeed{e})
		if err == nil {
			select {
			case <-ready:
			case <-time.After(trackingReadyWait):
			}
		} else {
			e.tracking.mu.Lock()
			e.tracking.unsupported = true
			e.tracking.mu.Unlock()
			if !errors.Is(err, store.ErrTrackingUnsupported) {
				e.opts.Logger.Warn("client tracking: no upstream invalidations", zap.Error(err))
			}
		}
	})
}

// upstreamFeed is the store's InvalidationHandler.
type upstreamFeed struct{ e *Engine }

var _ store.InvalidationHandler = upstreamFeed{}

func (f upstreamFeed) Invalidate(keys []string) {
	t := &f.e.tracking
	t.mu.Lock()
	defer t.mu.Unlock()
	if keys == nil {
		t.flushLocked()
		return
	}
	out := map[*Client][]string{}
	for _, k := range keys {
		t.invalidateLocked(k, out, nil)
	}
	for _, k := range keys {
		t.bcastFollowers(k, func(cl *Client) { out[cl] = append(out[cl], k) })
	}
	for cl, names := range out {
		cl.deliver(t.clients[cl], names)
	}
}

func (f upstreamFeed) Tracking(master string, state store.TrackingState) {
	t := &f.e.tracking
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns = map[string]bool{}
	}
	switch state {
	case store.TrackingUp:
		t.conns[master] = true
	case store.TrackingDown:
		t.conns[master] = false
	case store.TrackingGone:
		delete(t.conns, master)
	}
	if t.ready != nil && t.healthy() {
		close(t.ready)
		t.ready = nil
	}
	// Writes were missed, or will be: as Redis does to a client whose
	// connection drops, every client forgets everything.
	t.flushLocked()
}

// flushLocked sends every tracking client a flush and empties the table.
func (t *tracker) flushLocked() {
	if len(t.clients) == 0 {
		return
	}
	frame := invalidation(nil)
	for cl, ct := range t.clients {
		clear(ct.keys)
		if ct.redirect != nil {
			cl.deliver(ct, nil)
		} else {
			cl.push(frame)
		}
	}
	t.keys = map[string]map[*Client][]string{}
	t.bytes = 0
}

// invalidateLocked takes an upstream key out of the table, adding its
// readers' names to out; skip (the writer, who read it again since its
// write) keeps reading it.
func (t *tracker) invalidateLocked(key string, out map[*Client][]string, skip *Client) {
	readers := t.keys[key]
	if readers == nil {
		return
	}
	delete(t.keys, key)
	t.bytes -= keyCost(key)
	for cl, names := range readers {
		if cl == skip {
			t.keys[key] = map[*Client][]string{cl: names}
			t.bytes += keyCost(key)
			continue
		}
		t.bytes -= namesCost(names)
		if ct := t.clients[cl]; ct != nil {
			delete(ct.keys, key)
		}
		out[cl] = append(out[cl], names...)
	}
}

// prefixLength is a length of the tracker's BCAST prefixes and how many
// have it, so that it goes when the last of them does.
type prefixLength struct{ n, prefixes int }

// bcastFollowers calls f for each BCAST client with a prefix that key
// starts with: it looks key's own prefixes up, one for each length a
// prefix has, up to key's. A client's prefixes do not overlap
// (prefixOverlap), so at most one of them starts key, and f sees each
// client once. t.mu held.
func (t *tracker) bcastFollowers(key string, f func(*Client)) {
	for _, l := range t.bcastLengths {
		if l.n > len(key) {
			break
		}
		for cl := range t.bcast[key[:l.n]] {
			f(cl)
		}
	}
}

// bcastLength finds length n in t.bcastLengths: its index, or where it
// goes.
func (t *tracker) bcastLength(n int) (int, bool) {
	return slices.BinarySearchFunc(t.bcastLengths, n, func(l prefixLength, n int) int { return l.n - n })
}

// followLocked adds cl's BCAST prefixes to the index; t.mu held.
func (t *tracker) followLocked(cl *Client, prefixes []string) {
	if t.bcast == nil {
		t.bcast = map[string]map[*Client]struct{}{}
	}
	for _, p := range prefixes {
		followers := t.bcast[p]
		if followers == nil {
			followers = map[*Client]struct{}{}
			t.bcast[p] = followers
			i, found := t.bcastLength(len(p))
			if !found {
				t.bcastLengths = slices.Insert(t.bcastLengths, i, prefixLength{n: len(p)})
			}
			t.bcastLengths[i].prefixes++
		}
		if _, ok := followers[cl]; !ok {
			followers[cl] = struct{}{}
			t.bcastBytes += int64(len(p)) + bcastEntryBytes
		}
	}
}

// unfollowLocked takes cl's BCAST prefixes out of the index; t.mu held.
func (t *tracker) unfollowLocked(cl *Client, prefixes []string) {
	for _, p := range prefixes {
		followers := t.bcast[p]
		if _, ok := followers[cl]; !ok {
			continue
		}
		delete(followers, cl)
		t.bcastBytes -= int64(len(p)) + bcastEntryBytes
		if len(followers) > 0 {
			continue
		}
		delete(t.bcast, p)
		i, _ := t.bcastLength(len(p))
		if t.bcastLengths[i].prefixes--; t.bcastLengths[i].prefixes == 0 {
			t.bcastLengths = slices.Delete(t.bcastLengths, i, i+1)
		}
	}
}

// push sends a frame to a RESP3 client out of band; RESP2 clients get
// none, as in Redis without REDIRECT.
func (c *Client) push(frame []byte) {
	if c.pusher != nil && c.Proto() == 3 {
		c.pusher.Push(frame)
	}
}

// invalidation is the push `>2 invalidate [names…]`; nil names: the
// flush, `invalidate` with a null.
func invalidation(names []string) []byte {
	w := resp.Writer{Proto: 3}
	w.Buf = append(w.Buf, ">2\r\n$10\r\ninvalidate\r\n"...)
	if names == nil {
		w.Null()
		return w.Buf
	}
	w.Array(len(names))
	for _, n := range names {
		w.BulkString(n)
	}
	return w.Buf
}

// track is Dispatch's hook while any client tracks: before the command it
// registers a tracking client's reads; the function it returns, run once
// the handler has returned, arranges for a write's invalidations to go
// out after it ran, the writer's own in-band ahead of its reply.
func (e *Engine) track(c *Call, cmd *Command) func() {
	cl := c.Client
	ct := cl.tracking
	if cmd == nil {
		return func() {}
	}
	if cmd.Name == "reset" {
		e.trackingOff(cl)
		return func() {}
	}
	t := cl.tx
	if t != nil && t.multi && cmd.Flags&flagTxControl == 0 {
		return func() {} // queued: EXEC dispatches it again
	}
	inner := t != nil && t.executing // a command EXEC is running
	if ct != nil && !ct.bcast && cmd.Flags&flagRead != 0 && cmd.Flags&flagWrite == 0 && cl.authed && ct.wants() {
		if keys := e.keysOf(c, cmd, c.Args); len(keys) > 0 {
			e.tracking.read(cl, ct, keys)
		}
	}
	var written []trackedKey
	if cmd.Flags&flagWrite != 0 && cl.authed {
		written = e.keysOf(c, cmd, c.Args)
		if ct != nil && len(written) > 0 {
			e.tracking.writing(cl, written)
		}
	}
	return func() {
		if ct != nil && !inner && cmd.Name != "client" && cmd.Name != "multi" {
			ct.caching = 0 // CLIENT CACHING applies to one command, or one transaction
		}
		if len(written) == 0 && (ct == nil || inner) {
			return
		}
		after := func() {
			if len(written) > 0 {
				e.tracking.wrote(cl, written)
			}
			if ct := cl.tracking; ct != nil && !inner && len(ct.own) > 0 {
				switch {
				case ct.redirect != nil:
					cl.deliver(ct, ct.own) // to the target, out of band
				case c.Out.Proto == 3:
					c.Out.Buf = append(invalidation(ct.own), c.Out.Buf...)
				}
				ct.own = nil
			}
		}
		if then := c.then; then != nil {
			c.then = func() { then(); after() }
			return
		}
		after()
	}
}

// wants reports whether the command about to run is tracked (OPTIN,
// OPTOUT and CLIENT CACHING).
func (ct *clientTracking) wants() bool {
	switch {
	case ct.optin:
		return ct.caching > 0
	case ct.optout:
		return ct.caching >= 0
	}
	return true
}

// read adds keys to the table for cl, evicting other keys (with their
// invalidations) past the table's bound.
func (t *tracker) read(cl *Client, ct *clientTracking, keys []trackedKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clients[cl] != ct {
		return
	}
	for _, k := range keys {
		readers := t.keys[k.upstream]
		if readers == nil {
			t.evictLocked(k.upstream, 1)
			readers = map[*Client][]string{}
			t.keys[k.upstream] = readers
			t.bytes += keyCost(k.upstream)
		}
		names := readers[cl]
		if !contains(names, k.name) {
			readers[cl] = append(names, k.name)
			t.bytes += int64(len(k.name)) + trackingEntryBytes
		}
		ct.keys[k.upstream] = struct{}{}
		t.evictLocked(k.upstream, 0)
	}
}

// evictLocked makes room for more keys, as Redis does past
// tracking-table-max-keys: some other key than keep is invalidated for its
// readers until the table holds at most max - room keys and maxBytes.
func (t *tracker) evictLocked(keep string, room int) {
	for len(t.keys) > t.max-room || t.bytes > t.maxBytes {
		evicted := false
		for k := range t.keys { // Go's map order: a random key
			if k == keep {
				continue
			}
			out := map[*Client][]string{}
			t.invalidateLocked(k, out, nil)
			for cl, names := range out {
				cl.deliver(t.clients[cl], names)
			}
			evicted = true
			break
		}
		if !evicted {
			return // keep alone is left: it stays, whatever it holds
		}
	}
}

// writing takes the keys w is about to write out of its own tracked
// keys, before the write runs: the upstream's echo of the write then finds
// w no longer reading them, and w's invalidation goes in-band ahead of the
// write's reply (not at all with NOLOOP), as Redis does.
func (t *tracker) writing(w *Client, keys []trackedKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	wt := t.clients[w]
	if wt == nil {
		return
	}
	for _, k := range keys {
		readers := t.keys[k.upstream]
		names, ok := readers[w]
		if !ok {
			continue
		}
		delete(readers, w)
		t.bytes -= namesCost(names)
		if len(readers) == 0 {
			delete(t.keys, k.upstream)
			t.bytes -= keyCost(k.upstream)
		}
		delete(wt.keys, k.upstream)
		if !wt.noloop {
			wt.addOwn(names...)
		}
	}
}

// wrote invalidates, once the write ran, the keys w wrote for the other
// clients when the upstream's echo of the write will not: its tracking
// connection is down, or there is none (embedded).
func (t *tracker) wrote(w *Client, keys []trackedKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.healthy() {
		return
	}
	wt := t.clients[w]
	out := map[*Client][]string{}
	for _, k := range keys {
		t.invalidateLocked(k.upstream, out, w)
		t.bcastFollowers(k.full, func(cl *Client) {
			if cl != w {
				out[cl] = append(out[cl], k.full)
			} else if !wt.noloop {
				wt.addOwn(k.full)
			}
		})
	}
	for cl, names := range out {
		cl.deliver(t.clients[cl], names)
	}
}

func (ct *clientTracking) addOwn(names ...string) {
	for _, n := range names {
		if !contains(ct.own, n) {
			ct.own = append(ct.own, n)
		}
	}
}

func contains(names []string, n string) bool {
	for _, m := range names {
		if m == n {
			return true
		}
	}
	return false
}

// keysOf lists the session (or passthrough) keys among a command's
// arguments, by its registry entry; refused or invalid ones are left out.
func (e *Engine) keysOf(c *Call, cmd *Command, args [][]byte) []trackedKey {
	if !arityOK(cmd.Arity, len(args)) {
		return nil
	}
	var pos []int
	switch {
	case cmd.Keys != nil:
		var ok bool
		if pos, ok = cmd.Keys(args); !ok {
			return nil
		}
	case cmd.FirstKey > 0:
		last := cmd.LastKey
		if last < 0 {
			last += len(args)
		}
		for i := cmd.FirstKey; i <= last && i < len(args); i += max(cmd.Step, 1) {
			pos = append(pos, i)
		}
	}
	keys := make([]trackedKey, 0, len(pos))
	ids := strings.HasPrefix(cmd.Name, "sess.")
	for _, i := range pos {
		if k, ok := e.trackedKeyOf(c.space(e), args[i], ids); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// trackedKeyOf maps a key argument (a SESS.* id of namespace ids when id)
// to its upstream key as resolve and sessionKey do, without answering
// anything.
func (e *Engine) trackedKeyOf(ids *space, arg []byte, id bool) (trackedKey, bool) {
	name := string(arg)
	if id {
		if ids.lockSuffix(arg) != "" || checkSessionID(name) != "" {
			return trackedKey{}, false
		}
		return trackedKey{upstream: ids.storageKey(name), name: name, full: ids.prefix + name}, true
	}
	sp := e.spaceFor(arg)
	if sp == nil {
		if e.opts.OutsidePrefix != OutsidePassthrough {
			return trackedKey{}, false
		}
		return trackedKey{upstream: name, name: name, full: name}, true
	}
	rest := name[len(sp.prefix):]
	if suffix := sp.lockSuffix([]byte(rest)); suffix != "" {
		sid := rest[:len(rest)-len(suffix)]
		if checkSessionID(sid) != "" {
			return trackedKey{}, false
		}
		return trackedKey{upstream: sp.storageKey(sid) + suffix, name: name, full: name}, true
	}
	if checkSessionID(rest) != "" {
		return trackedKey{}, false
	}
	return trackedKey{upstream: sp.storageKey(rest), name: name, full: name}, true
}

// trackingOff turns cl's tracking off and forgets its keys (CLIENT
// TRACKING OFF, RESET, disconnect).
func (e *Engine) trackingOff(cl *Client) {
	t := &e.tracking
	t.mu.Lock()
	defer t.mu.Unlock()
	ct := t.clients[cl]
	if ct == nil {
		return
	}
	for k := range ct.keys {
		if readers := t.keys[k]; readers != nil {
			t.bytes -= namesCost(readers[cl])
			delete(readers, cl)
			if len(readers) == 0 {
				delete(t.keys, k)
				t.bytes -= keyCost(k)
			}
		}
	}
	if ct.bcast {
		t.unfollowLocked(cl, ct.prefixes)
	}
	delete(t.clients, cl)
	cl.tracking = nil
	t.active.Add(-1)
}

// trackingOptions are CLIENT TRACKING's arguments.
type trackingOptions struct {
	on                           bool
	bcast, optin, optout, noloop bool
	redirect                     []byte // REDIRECT <id>
	prefixes                     []string
}

// parseTrackingOptions parses CLIENT TRACKING ON|OFF [options]; it returns
// the error reply, or "".
func parseTrackingOptions(args [][]byte) (trackingOptions, string) {
	var o trackingOptions
	switch strings.ToUpper(string(args[0])) {
	case "ON":
		o.on = true
	case "OFF":
	default:
		return o, msgSyntax
	}
	for i := 1; i < len(args); i++ {
		switch strings.ToUpper(string(args[i])) {
		case "REDIRECT":
			if i+1 >= len(args) {
				return o, msgSyntax
			}
			o.redirect = args[i+1]
			i++
		case "BCAST":
			o.bcast = true
		case "OPTIN":
			o.optin = true
		case "OPTOUT":
			o.optout = true
		case "NOLOOP":
			o.noloop = true
		case "PREFIX":
			if i+1 >= len(args) {
				return o, msgSyntax
			}
			o.prefixes = append(o.prefixes, string(args[i+1]))
			i++
		default:
			return o, msgSyntax
		}
	}
	return o, ""
}

// clientTrackingCmd answers CLIENT TRACKING, CACHING, TRACKINGINFO and
// GETREDIR.
func (e *Engine) clientTrackingCmd(c *Call, sub string) {
	cl := c.Client
	switch {
	case sub == "TRACKING" && len(c.Args) >= 3:
		o, msg := parseTrackingOptions(c.Args[2:])
		if msg == "" {
			msg = e.setTracking(cl, o)
		}
		if msg != "" {
			c.Out.Error(msg)
			return
		}
		c.Out.OK()
	case sub == "CACHING" && len(c.Args) == 3:
		ct := cl.tracking
		yes := bytes.EqualFold(c.Args[2], []byte("yes"))
		switch {
		case !yes && !bytes.EqualFold(c.Args[2], []byte("no")):
			c.Out.Error(msgSyntax)
		case ct == nil || !(ct.optin || ct.optout):
			c.Out.Error(msgCachingMode)
		case yes && !ct.optin:
			c.Out.Error(msgCachingYes)
		case !yes && !ct.optout:
			c.Out.Error(msgCachingNo)
		default:
			ct.caching = -1
			if yes {
				ct.caching = 1
			}
			c.Out.OK()
		}
	case sub == "TRACKINGINFO" && len(c.Args) == 2:
		e.trackingInfo(c)
	case sub == "GETREDIR" && len(c.Args) == 2:
		switch ct := cl.tracking; {
		case ct == nil:
			c.Out.Int(-1)
		case ct.redirect != nil:
			c.Out.Int(ct.redirect.ID)
		default:
			c.Out.Int(0)
		}
	default:
		c.Out.Error(errUnknownSubcommand("CLIENT", string(c.Args[1])))
	}
}

// setTracking applies CLIENT TRACKING with Redis's checks and messages.
func (e *Engine) setTracking(cl *Client, o trackingOptions) string {
	if !o.on {
		e.trackingOff(cl)
		return ""
	}
	old := cl.tracking
	switch {
	case !o.bcast && len(o.prefixes) > 0:
		return msgPrefixNeedsBcast
	case old != nil && old.bcast != o.bcast:
		return msgTrackingBcastSwitch
	case o.bcast && (o.optin || o.optout):
		return msgBcastOptIn
	case o.optin && o.optout:
		return msgOptInOptOut
	case old != nil && (o.optin && old.optout || o.optout && old.optin):
		return msgOptSwitch
	}
	var existing, added []string // BCAST's
	if o.bcast {
		if old != nil {
			existing = old.prefixes
		}
		if msg := prefixOverlap(existing, o.prefixes); msg != "" {
			return msg
		}
		added = o.prefixes
		if len(existing) == 0 && len(added) == 0 {
			added = []string{""} // BCAST alone: every key
		}
	}
	var target *Client
	if o.redirect != nil {
		var msg string
		if target, msg = e.redirectTarget(o.redirect); msg != "" {
			return msg
		}
	}
	e.startTracking()
	t := &e.tracking
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clients == nil {
		t.clients = map[*Client]*clientTracking{}
		t.keys = map[string]map[*Client][]string{}
		t.max = e.opts.TrackingMaxKeys
		if t.max <= 0 {
			t.max = defaultTrackingMaxKeys
		}
		t.maxBytes = e.opts.TrackingMaxBytes
		if t.maxBytes <= 0 {
			t.maxBytes = defaultTrackingMaxBytes
		}
	}
	// The index holds what t.clients does: old's prefixes already (a
	// client cannot switch BCAST while tracking), unless it is no longer
	// there.
	follow := added
	if old != nil && t.clients[cl] != old {
		follow = append(slices.Clone(existing), added...)
	}
	if o.bcast && t.bcastBytes+prefixesCost(follow) > t.maxBytes {
		return errTrackingPrefixesTooLarge(t.maxBytes)
	}
	var prefixes []string
	if o.bcast {
		// In place, under t.mu, where trackingOff reads old's.
		prefixes = mergePrefixes(existing, added)
	}
	ct := &clientTracking{bcast: o.bcast, optin: o.optin, optout: o.optout, noloop: o.noloop, prefixes: prefixes,
		keys: map[string]struct{}{}, redirect: target}
	if old != nil {
		ct.keys, ct.own = old.keys, old.own
	} else {
		t.active.Add(1)
	}
	if ct.bcast {
		t.followLocked(cl, follow)
	}
	t.clients[cl] = ct
	cl.tracking = ct
	return ""
}

// overlap reports whether two BCAST prefixes overlap (one starts the
// other).
func overlap(p, q string) bool { return strings.HasPrefix(p, q) || strings.HasPrefix(q, p) }

// prefixOverlap is Redis's refusal of BCAST prefixes that overlap ("" when
// none do): it names the first new prefix, in the client's order, that
// overlaps an existing one or a later new one, and the existing one first
// in byte order (Redis walks them in its radix tree), else the first later
// new one it overlaps. existing is in byte order and free of overlaps
// (it passed this check).
//
// Redis compares every pair, n² for n prefixes, which one 8 MiB request of
// 270,000 prefixes makes minutes of a core. Here the new ones are sorted
// and checked in one pass, and each is looked up among the existing ones
// by binary search: a client's later calls cost what they add, not a sort
// of all it has (with 800,000 prefixes each one more took 80 to 280 ms).
//
// In byte order, anything sorted between a and a string x that starts with
// a also starts with a. So a string that starts others starts the one
// sorted right after it, and the strings of the set that start x are all
// still on a stack of nested ones (each starting the next) when the pass
// reaches x. The pass thus marks every new prefix that overlaps another.
// Among the existing ones, which do not overlap each other, the one that
// starts p is the last one up to p, and those p starts follow p, the
// first of them first: at most one of the two kinds exists.
func prefixOverlap(existing, added []string) string {
	if len(added) == 0 {
		return ""
	}
	// overlapsExisting is the existing prefix first in byte order that p
	// overlaps.
	overlapsExisting := func(p string) (string, bool) {
		i, found := slices.BinarySearch(existing, p)
		if found {
			return p, true
		}
		if i > 0 && strings.HasPrefix(p, existing[i-1]) {
			return existing[i-1], true
		}
		if i < len(existing) && strings.HasPrefix(existing[i], p) {
			return existing[i], true
		}
		return "", false
	}
	type entry struct {
		s     string
		added int // index in added
	}
	entries := make([]entry, 0, len(added))
	for i, p := range added {
		entries = append(entries, entry{p, i})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.s, b.s) })
	first := len(added) // the first new prefix that overlaps another
	mark := func(e entry) {
		if e.added < first {
			first = e.added
		}
	}
	var nested []entry // each a prefix of the next
	for _, e := range entries {
		for len(nested) > 0 && !strings.HasPrefix(e.s, nested[len(nested)-1].s) {
			nested = nested[:len(nested)-1]
		}
		if len(nested) > 0 {
			mark(e)
			mark(nested[len(nested)-1])
		}
		nested = append(nested, e)
		if _, ok := overlapsExisting(e.s); ok {
			mark(e)
		}
	}
	if first == len(added) {
		return ""
	}
	p := added[first]
	if q, ok := overlapsExisting(p); ok {
		return errPrefixOverlap(p, q, "an existing")
	}
	// Not an existing one, nor an earlier new one (that one would be
	// first): a later new one.
	for _, q := range added[first+1:] {
		if overlap(p, q) {
			return errPrefixOverlap(p, q, "another provided")
		}
	}
	return ""
}

// mergePrefixes adds added to existing (which are in byte order, and
// overlap neither each other nor added), in byte order, in existing's
// array when it has room, so that a client's later calls cost about what
// they add: the merge runs from the back and moves only the existing
// prefixes that sort after the smallest new one.
func mergePrefixes(existing, added []string) []string {
	added = slices.Sorted(slices.Values(added))
	out := slices.Grow(existing, len(added))[:len(existing)+len(added)]
	i, j := len(existing)-1, len(added)-1
	for k := len(out) - 1; j >= 0; k-- {
		if i >= 0 && existing[i] > added[j] {
			out[k], i = existing[i], i-1
		} else {
			out[k], j = added[j], j-1
		}
	}
	return out
}

// trackingInfo answers CLIENT TRACKINGINFO as Redis does: flags, redirect,
// prefixes.
func (e *Engine) trackingInfo(c *Call) {
	ct := c.Client.tracking
	var flags []string
	redirect := int64(-1)
	var prefixes []string
	if ct == nil {
		flags = []string{"off"}
	} else {
		redirect = 0
		if ct.redirect != nil {
			redirect = ct.redirect.ID
		}
		flags = append(flags, "on")
		for _, f := range []struct {
			on   bool
			name string
		}{{ct.bcast, "bcast"}, {ct.optin, "optin"}, {ct.optout, "optout"},
			{ct.caching > 0, "caching-yes"}, {ct.caching < 0, "caching-no"}, {ct.noloop, "noloop"}} {
			if f.on {
				flags = append(flags, f.name)
			}
		}
		prefixes = ct.prefixes
	}
	c.Out.Map(3)
	c.Out.BulkString("flags")
	c.Out.Set(len(flags))
	for _, f := range flags {
		c.Out.BulkString(f)
	}
	c.Out.BulkString("redirect")
	c.Out.Int(redirect)
	c.Out.BulkString("prefixes")
	c.Out.Array(len(prefixes))
	for _, p := range prefixes {
		c.Out.BulkString(p)
	}
}

// TrackedKeys is the size of the tracking table, for tests and INFO.
func (e *Engine) TrackedKeys() int {
	e.tracking.mu.Lock()
	defer e.tracking.mu.Unlock()
	return len(e.tracking.keys)
}

// trackingPrefixes are the BCAST prefixes of the upstream tracking
// connections: every namespace's, none (every key) under passthrough.
func (e *Engine) trackingPrefixes() []string {
	if e.opts.OutsidePrefix == OutsidePassthrough {
		return nil
	}
	var prefixes []string
	// Shortest first, so a nested prefix finds its parent: Redis refuses
	// overlapping BCAST prefixes, and the parent covers it.
	for i := len(e.byLength) - 1; i >= 0; i-- {
		p := e.byLength[i].prefix
		if !slices.ContainsFunc(prefixes, func(q string) bool { return strings.HasPrefix(p, q) }) {
			prefixes = append(prefixes, p)
		}
	}
	return prefixes
}
