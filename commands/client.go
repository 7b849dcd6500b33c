package commands

import (
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client is the state of one client connection. Its own goroutine reads
// and writes it; CLIENT LIST reads other clients' fields, so the fields it
// shows are behind mu or atomic.
type Client struct {
	ID        int64
	Addr      string
	LocalAddr string
	created   time.Time

	// Owned by the connection's goroutine.
	authed bool
	role   Role
	// authConf is the configuration authed and role were decided under;
	// when a reload swaps it, the next batch decides them again.
	authConf   *reloadable
	closeAfter bool            // QUIT: close once the replies before it are sent
	tx         *txState        // in WATCH or MULTI (multi.go)
	scratch    []byte          // lower-cased command name for the registry lookup
	tracking   *clientTracking // CLIENT TRACKING on (tracking.go)
	pusher     Pusher          // writes pushes out of band (tracking.go)
	sub        subscription    // SUBSCRIBE __redis__:invalidate (redirect.go)

	lastActive atomic.Int64 // unix nanoseconds

	mu      sync.Mutex
	name    string
	user    string
	libName string
	libVer  string
	proto   int
	lastCmd string
}

// login marks the client authenticated as user with role under conf.
func (c *Client) login(user string, role Role, conf *reloadable) {
	c.authed, c.role, c.authConf = true, role, conf
	c.setUser(user)
}

// setUser records the user name. Only the connection's goroutine writes
// it, so that goroutine reads it without the lock (userName).
func (c *Client) setUser(user string) {
	c.mu.Lock()
	c.user = user
	c.mu.Unlock()
}

// userName is the user the client authenticated as; connection goroutine
// only.
func (c *Client) userName() string { return c.user }

// Proto is the protocol version the client negotiated (2 or 3).
func (c *Client) Proto() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proto
}

// Closing reports whether the client sent QUIT and must be closed once the
// replies queued before it are written.
func (c *Client) Closing() bool { return c.closeAfter }

// Touch records activity for CLIENT LIST's idle field.
func (c *Client) Touch(now time.Time) { c.lastActive.Store(now.UnixNano()) }

// info is the CLIENT INFO / CLIENT LIST line, in Redis's format.
func (c *Client) info(now time.Time, db int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	idle := now.Sub(time.Unix(0, c.lastActive.Load()))
	var b strings.Builder
	b.WriteString("id=" + strconv.FormatInt(c.ID, 10))
	b.WriteString(" addr=" + c.Addr + " laddr=" + c.LocalAddr + " fd=-1")
	b.WriteString(" name=" + c.name)
	b.WriteString(" age=" + strconv.Itoa(int(now.Sub(c.created).Seconds())))
	b.WriteString(" idle=" + strconv.Itoa(int(idle.Seconds())))
	b.WriteString(" flags=N db=" + strconv.Itoa(db))
	b.WriteString(" sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r")
	cmd := c.lastCmd
	if cmd == "" {
		cmd = "NULL"
	}
	b.WriteString(" cmd=" + cmd + " user=" + c.user + " redir=-1 resp=" + strconv.Itoa(c.proto))
	b.WriteString(" lib-name=" + c.libName + " lib-ver=" + c.libVer)
	return b.String()
}

// clients is the set of connected clients, for CLIENT LIST and INFO.
type clients struct {
	nextID atomic.Int64
	mu     sync.Mutex
	byID   map[int64]*Client
}

func (cs *clients) add(c *Client) {
	c.ID = cs.nextID.Add(1)
	cs.mu.Lock()
	cs.byID[c.ID] = c
	cs.mu.Unlock()
}

func (cs *clients) remove(c *Client) {
	cs.mu.Lock()
	delete(cs.byID, c.ID)
	cs.mu.Unlock()
}

func (cs *clients) count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.byID)
}

func (cs *clients) list() []*Client {
	cs.mu.Lock()
	out := make([]*Client, 0, len(cs.byID))
	for _, c := range cs.byID {
		out = append(out, c)
	}
	cs.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
