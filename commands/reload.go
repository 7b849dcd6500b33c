package commands

import (
	"crypto/sha256"
	"slices"
	"time"

	"github.com/sessproxy/sessproxy/commands/ttl"
)

// reloadable is the part of the configuration a running engine can swap
// (SIGHUP): the TTL policy and the users. It is never modified once built,
// so a batch that loaded it reads it without locks.
type reloadable struct {
	// policies are the namespaces' TTL policies, by space.index (the
	// default's first).
	policies    []ttl.Policy
	requirePass string
	users       []User
	// credentials are the SHA-256 of every user's name and password (the
	// default user's first, when it has requirepass), hashed once here so
	// that AUTH takes the same time whoever it names (authenticate).
	credentials []credential
}

type credential struct {
	name, pass [sha256.Size]byte
	role       Role
}

func newReloadable(opts Options) *reloadable {
	r := &reloadable{requirePass: opts.RequirePass, users: slices.Clone(opts.Users)}
	for _, ns := range opts.namespaces() {
		p := ns.Policy
		p.Rules = slices.Clone(p.Rules)
		if p.LockMax <= 0 {
			p.LockMax = DefaultLockMax
		}
		r.policies = append(r.policies, p)
	}
	if r.requirePass != "" {
		r.credentials = append(r.credentials, newCredential("default", r.requirePass, RoleAdmin))
	}
	for _, u := range r.users {
		r.credentials = append(r.credentials, newCredential(u.Name, u.Password, u.Role))
	}
	return r
}

// DefaultLockMax is ttl.lock_max when the policy gives none.
const DefaultLockMax = 5 * time.Minute

func newCredential(name, pass string, role Role) credential {
	return credential{name: sha256.Sum256([]byte(name)), pass: sha256.Sum256([]byte(pass)), role: role}
}

func (r *reloadable) authRequired() bool {
	return r.requirePass != "" || len(r.users) > 0
}

// role is the role of the user called name, and whether that user exists.
// The default user exists when it has requirepass or when no password is
// configured at all (Redis's "nopass" default user).
func (r *reloadable) role(name string) (Role, bool) {
	if name == "default" && (r.requirePass != "" || !r.authRequired()) {
		return RoleAdmin, true
	}
	for _, u := range r.users {
		if u.Name == name {
			return u.Role, true
		}
	}
	return "", false
}

// Reload swaps in opts' Policy (its namespaces' too, matched by name: a
// namespace added or removed needs a restart), RequirePass and Users; its
// other fields need a restart and are ignored. Commands already dispatched finish under
// the configuration they started with; each client's next batch runs
// under the new one. Connected clients are not dropped: see reauthorise.
func (e *Engine) Reload(opts Options) {
	r := newReloadable(opts)
	byName := make(map[string]ttl.Policy, len(r.policies))
	for i, ns := range opts.namespaces() {
		byName[ns.Name] = r.policies[i]
	}
	running := e.conf.Load()
	r.policies = make([]ttl.Policy, len(e.spaces))
	for i, sp := range e.spaces {
		p, ok := byName[sp.name]
		if !ok {
			p = running.policies[i]
		}
		r.policies[i] = p
	}
	e.conf.Store(r)
}

// reauthorise brings a client's authentication up to date with conf, as a
// Redis user expects after ACL changes: a password change keeps the
// clients already authenticated; a changed role applies to the next
// command; a removed user's clients are back in the state of a new
// connection (-NOAUTH until they AUTH again, or the default user when no
// password is required any more). Redis would disconnect them (ACL
// DELUSER); the proxy keeps the connection so no client is dropped.
//
// A client let in because no password was required (it never gave one,
// or gave AUTH default <anything>, which then checks nothing) must
// authenticate once a reload requires a password: the operator turned
// authentication on for every client. Redis's CONFIG SET requirepass
// would leave such connections in, with the admin role here.
func (e *Engine) reauthorise(c *Client, conf *reloadable) {
	if !c.authed || !c.authConf.authRequired() && conf.authRequired() {
		e.resetAuth(c, conf)
		return
	}
	role, ok := conf.role(c.userName())
	if !ok {
		e.resetAuth(c, conf)
		return
	}
	c.role, c.authConf = role, conf
}
