package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/store"
	"github.com/sessproxy/sessproxy/store/codec"
)

// NamespaceConfig is a [[namespace]] block: a session namespace beside the
// default one ([session], [codec], [ttl], [tombstone]). A block starts
// from the built-in defaults (not from the file's top-level sections),
// then its preset, then its own keys.
type NamespaceConfig struct {
	// Name is what SESS.* … NS <name> calls it; default: its preset's name.
	Name         string          `toml:"name"`
	Preset       string          `toml:"preset"`
	Prefix       string          `toml:"prefix"`
	OwnerField   string          `toml:"owner_field"`
	LockSuffixes []string        `toml:"lock_suffixes"`
	HashIDs      bool            `toml:"hash_ids"`
	Codec        CodecConfig     `toml:"codec"`
	TTL          TTLConfig       `toml:"ttl"`
	Tombstone    TombstoneConfig `toml:"tombstone"`
}

// newNamespace is a block as the built-in defaults and preset make it,
// before its own keys are decoded over it. hashIDs is server.hash_ids,
// the block's default.
func newNamespace(presetName string, hashIDs bool) (NamespaceConfig, *Config, error) {
	base := defaultConfig()
	if presetName != "" {
		p, err := findPreset(presetName)
		if err != nil {
			return NamespaceConfig{}, nil, err
		}
		if err := p.apply(&base); err != nil {
			return NamespaceConfig{}, nil, err
		}
	}
	return NamespaceConfig{Name: presetName, Preset: presetName, Prefix: base.Session.Prefix, OwnerField: base.Session.OwnerField,
		LockSuffixes: base.Session.LockSuffixes, HashIDs: hashIDs, Codec: base.Codec, TTL: base.TTL, Tombstone: base.Tombstone}, &base, nil
}

// namespaceView is one namespace's settings wherever the file keeps them,
// with the TOML keys its errors name.
type namespaceView struct {
	name       string
	sessionKey string // "session." for the default, "namespace[i]." for a block
	sectionKey string // "" for the default, "namespace[i]." for a block
	prefix     string
	ownerField string
	locks      []string
	hashIDs    bool
	codec      CodecConfig
	ttl        TTLConfig
	tombstone  TombstoneConfig
}

// namespaceViews are the default namespace's settings, then each block's.
func (c *Config) namespaceViews() []namespaceView {
	views := []namespaceView{{name: commands.DefaultNamespace, sessionKey: "session.", prefix: c.Session.Prefix,
		ownerField: c.Session.OwnerField, locks: c.Session.LockSuffixes, hashIDs: c.Server.HashIDs,
		codec: c.Codec, ttl: c.TTL, tombstone: c.Tombstone}}
	for i, ns := range c.Namespaces {
		key := fmt.Sprintf("namespace[%d].", i)
		views = append(views, namespaceView{name: ns.Name, sessionKey: key, sectionKey: key, prefix: ns.Prefix,
			ownerField: ns.OwnerField, locks: ns.LockSuffixes, hashIDs: ns.HashIDs, codec: ns.Codec, ttl: ns.TTL, tombstone: ns.Tombstone})
	}
	return views
}

// validateNamespaces checks every namespace's settings, and that names and
// prefixes are unique.
func (c *Config) validateNamespaces(bad func(key, why string), fail func(error)) {
	names := map[string]bool{commands.DefaultNamespace: true}
	if c.Session.Preset != "" {
		names[c.Session.Preset] = true // the default answers to it too
	}
	prefixes := map[string]string{}
	for i, v := range c.namespaceViews() {
		if i > 0 {
			switch {
			case v.name == "":
				bad(v.sessionKey+"name", "required (or a preset, whose name it takes)")
			case names[v.name]:
				bad(v.sessionKey+"name", fmt.Sprintf("%q is taken (by the default namespace, or another block)", v.name))
			case strings.ContainsAny(v.name, " \t\r\n"):
				bad(v.sessionKey+"name", "must not hold whitespace")
			}
			names[v.name] = true
		}
		if other, ok := prefixes[v.prefix]; ok && v.prefix != "" {
			bad(v.sessionKey+"prefix", fmt.Sprintf("%q is also the prefix of namespace %q", v.prefix, other))
		}
		prefixes[v.prefix] = v.name
		v.validate(bad, fail, c.Server.MaxRequestBytes)
	}
}

// validate checks one namespace's settings.
func (v namespaceView) validate(bad func(key, why string), fail func(error), maxRequestBytes int64) {
	if v.prefix == "" {
		bad(v.sessionKey+"prefix", "must not be empty")
	}
	for i, s := range v.locks {
		if s == "" {
			bad(fmt.Sprintf("%slock_suffixes[%d]", v.sessionKey, i), "must not be empty (lock_suffixes = [] turns locks off)")
		}
	}
	t, k := v.ttl, v.sectionKey+"ttl."
	if t.Min <= 0 {
		bad(k+"min", "must be > 0")
	}
	if t.Max < t.Min {
		bad(k+"max", "must be >= ttl.min")
	}
	if t.Default < t.Min || t.Default > t.Max {
		bad(k+"default", "must be within [ttl.min, ttl.max]")
	}
	if t.Idle < 0 || (t.Idle > 0 && (t.Idle < t.Min || t.Idle > t.Max)) {
		bad(k+"idle", "must be 0 (off) or within [ttl.min, ttl.max]")
	}
	if t.Absolute < 0 || (t.Absolute > 0 && t.Absolute < t.Min) {
		bad(k+"absolute", "must be 0 (off) or >= ttl.min")
	}
	if t.LockMax < Duration(time.Millisecond) {
		bad(k+"lock_max", "must be >= 1ms")
	}
	if t.RequireExpires && (!t.FromCookie || (v.codec.Format != codec.FormatJSON && v.codec.Format != codec.FormatMsgpack)) {
		bad(k+"require_expires", `needs ttl.from_cookie = true and codec.format = "json" or "msgpack": the TTL it requires is cookie.expires`)
	}
	if t.Persist != ttl.PersistDeny && t.Persist != ttl.PersistClamp {
		bad(k+"persist", `must be "deny" or "clamp"`)
	}
	for i, r := range t.Rules {
		if r.Field == "" {
			bad(fmt.Sprintf("%srules[%d].field", k, i), "must not be empty")
		}
		if r.TTL <= 0 {
			bad(fmt.Sprintf("%srules[%d].ttl", k, i), "must be > 0")
		}
	}
	k = v.sectionKey + "tombstone."
	if v.tombstone.Enabled && v.tombstone.Grace <= 0 {
		bad(k+"grace", "must be > 0 when tombstones are enabled")
	}
	if v.tombstone.OnWrite != commands.OnWriteError && v.tombstone.OnWrite != commands.OnWriteIgnore {
		bad(k+"on_write", `must be "error" or "ignore"`)
	}
	if f := store.TombstoneFormat(v.tombstone.Format); f != store.TombstoneTyped && f != store.TombstoneString {
		bad(k+"format", `must be "typed" or "string"`)
	}
	if v.tombstone.Transition < 0 {
		bad(k+"transition", "must be >= 0")
	}
	if _, err := v.codecOptions().build(v.sectionKey); err != nil {
		fail(err)
	}
	k = v.sectionKey + "codec."
	if v.codec.MaxPayloadBytes <= 0 {
		bad(k+"max_payload_bytes", "must be > 0")
	}
	if int64(v.codec.MaxPayloadBytes) > maxRequestBytes {
		bad(k+"max_payload_bytes", "must be <= server.max_request_bytes")
	}
	// No "0 = unbounded": without the bound every hash write would cost
	// Redis time in proportion to the hash (docs/limits.md).
	if v.codec.MaxHashFields <= 0 {
		bad(k+"max_hash_fields", "must be > 0")
	}
}

func (v namespaceView) codecOptions() codecOptions {
	return codecOptions{
		Format:           v.codec.Format,
		Compress:         v.codec.Compress,
		CompressMinBytes: v.codec.CompressMinBytes,
		EncryptKeys:      v.codec.EncryptKeys,
		MaxPayloadBytes:  v.codec.MaxPayloadBytes,
		// The creation time ttl.absolute needs is kept in the header.
		Envelope: v.ttl.Absolute > 0,
	}
}

// options are the namespace as the command engine takes it.
func (v namespaceView) options() (commands.Namespace, error) {
	cd, err := v.codecOptions().build(v.sectionKey)
	if err != nil {
		return commands.Namespace{}, err
	}
	t := v.ttl
	rules := make([]ttl.Rule, len(t.Rules))
	for i, r := range t.Rules {
		rules[i] = ttl.Rule{Field: r.Field, Equals: r.Equals, TTL: time.Duration(r.TTL)}
	}
	return commands.Namespace{
		Name:         v.name,
		Prefix:       v.prefix,
		OwnerField:   v.ownerField,
		LockSuffixes: v.locks,
		Policy: ttl.Policy{
			Default:        time.Duration(t.Default),
			Min:            time.Duration(t.Min),
			Max:            time.Duration(t.Max),
			FromCookie:     t.FromCookie,
			Rules:          rules,
			Touch:          t.Touch,
			Persist:        t.Persist,
			Idle:           time.Duration(t.Idle),
			Absolute:       time.Duration(t.Absolute),
			LockMax:        time.Duration(t.LockMax),
			RequireExpires: t.RequireExpires,
		},
		Tombstones:          v.tombstone.Enabled,
		Grace:               time.Duration(v.tombstone.Grace),
		OnWrite:             v.tombstone.OnWrite,
		TombstoneFormat:     store.TombstoneFormat(v.tombstone.Format),
		TombstoneTransition: time.Duration(v.tombstone.Transition),
		Codec:               cd,
		// A hash session's fields are stored as the application sent
		// them; the same bound applies to their total.
		MaxHashBytes:  v.codec.MaxPayloadBytes,
		MaxHashFields: v.codec.MaxHashFields,
		HashIDs:       v.hashIDs,
	}, nil
}
