package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store"
	"github.com/sessproxy/sessproxy/store/codec"
)

// Config is the TOML file. config.example.toml documents every key with
// its default; a test keeps the two in step.
type Config struct {
	Server    ServerConfig    `toml:"server"`
	Upstream  UpstreamConfig  `toml:"upstream"`
	Session   SessionConfig   `toml:"session"`
	TTL       TTLConfig       `toml:"ttl"`
	Tombstone TombstoneConfig `toml:"tombstone"`
	Scripts   ScriptsConfig   `toml:"scripts"`
	Codec     CodecConfig     `toml:"codec"`
	Log       LogConfig       `toml:"log"`
	Metrics   MetricsConfig   `toml:"metrics"`
	Users     []UserConfig    `toml:"users"`
	// Namespaces are the [[namespace]] blocks (namespaces.go).
	Namespaces []NamespaceConfig `toml:"namespace"`
}

type ServerConfig struct {
	Listen              string   `toml:"listen"`
	Unix                string   `toml:"unix"`
	TLSCert             string   `toml:"tls_cert"`
	TLSKey              string   `toml:"tls_key"`
	RequirePass         string   `toml:"requirepass"`
	MaxClients          int      `toml:"max_clients"`
	IdleTimeout         Duration `toml:"idle_timeout"`
	RequestTimeout      Duration `toml:"request_timeout"`
	MaxRequestBytes     int64    `toml:"max_request_bytes"`
	MaxInflightBytes    int64    `toml:"max_inflight_bytes"`
	MaxClientReplyBytes int64    `toml:"max_client_reply_bytes"`
	EventLoops          int      `toml:"event_loops"`
	HashIDs             bool     `toml:"hash_ids"`
	// MaxTransactions bounds the clients in WATCH or MULTI, each holding
	// an upstream connection; MaxTransactionCommands the commands one
	// transaction queues.
	MaxTransactions        int `toml:"max_transactions"`
	MaxTransactionCommands int `toml:"max_transaction_commands"`
	// MaxTransactionBytes bounds the bytes of the arguments one
	// transaction queues.
	MaxTransactionBytes int64 `toml:"max_transaction_bytes"`
	// TrackingMaxKeys bounds CLIENT TRACKING's table of keys read.
	TrackingMaxKeys int `toml:"tracking_max_keys"`
}

type UpstreamConfig struct {
	Mode             string            `toml:"mode"`
	Addrs            []string          `toml:"addrs"`
	MasterName       string            `toml:"master_name"`
	Username         string            `toml:"username"`
	Password         string            `toml:"password"`
	SentinelUsername string            `toml:"sentinel_username"`
	SentinelPassword string            `toml:"sentinel_password"`
	DB               int               `toml:"db"`
	PoolSize         int               `toml:"pool_size"`
	AutoPipeline     bool              `toml:"auto_pipeline"`
	Combine          bool              `toml:"combine"`
	DialTimeout      Duration          `toml:"dial_timeout"`
	ReadTimeout      Duration          `toml:"read_timeout"`
	WriteTimeout     Duration          `toml:"write_timeout"`
	TLS              UpstreamTLSConfig `toml:"tls"`
}

type UpstreamTLSConfig struct {
	Enabled            bool   `toml:"enabled"`
	CA                 string `toml:"ca"`
	Cert               string `toml:"cert"`
	Key                string `toml:"key"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
}

type SessionConfig struct {
	// Preset names the framework whose settings apply under this file's
	// (presets.go); the -preset flag sets it too.
	Preset        string   `toml:"preset"`
	Prefix        string   `toml:"prefix"`
	OwnerField    string   `toml:"owner_field"`
	OutsidePrefix string   `toml:"outside_prefix"`
	LockSuffixes  []string `toml:"lock_suffixes"`
}

type TTLConfig struct {
	Default    Duration     `toml:"default"`
	Min        Duration     `toml:"min"`
	Max        Duration     `toml:"max"`
	FromCookie bool         `toml:"from_cookie"`
	Touch      bool         `toml:"touch"`
	Persist    string       `toml:"persist"`
	Idle       Duration     `toml:"idle"`
	Absolute   Duration     `toml:"absolute"`
	LockMax    Duration     `toml:"lock_max"`
	Rules      []RuleConfig `toml:"rules"`
	// RequireExpires: see ttl.Policy.RequireExpires.
	RequireExpires bool `toml:"require_expires"`
}

type RuleConfig struct {
	Field  string   `toml:"field"`
	Equals string   `toml:"equals"`
	TTL    Duration `toml:"ttl"`
}

type TombstoneConfig struct {
	Enabled bool     `toml:"enabled"`
	Grace   Duration `toml:"grace"`
	OnWrite string   `toml:"on_write"`
	// Format is "typed" (a set: writes are Redis's own SET … GET) or
	// "string" (the value TOMBSTONE, connect-redis-session's).
	Format string `toml:"format"`
	// Transition is how long after start a typed namespace keeps its
	// scripted writes, which see string tombstones too: "0s" is the grace.
	Transition Duration `toml:"transition"`
}

// ScriptsConfig is [scripts]: EVAL, EVALSHA and friends.
type ScriptsConfig struct {
	// Mode is "policy" (scripts run wrapped in the session policy) or
	// "deny" (every script command is refused).
	Mode string `toml:"mode"`
}

type CodecConfig struct {
	Format           string   `toml:"format"`
	Compress         string   `toml:"compress"`
	CompressMinBytes int      `toml:"compress_min_bytes"`
	EncryptKeys      []string `toml:"encrypt_keys"`
	MaxPayloadBytes  int      `toml:"max_payload_bytes"`
	// MaxHashFields bounds a hash session's fields. The byte bound above
	// is measured by reading the whole hash on Redis at every write; this
	// bound is checked first, in constant time, so that reading never
	// runs over more fields than this.
	MaxHashFields int `toml:"max_hash_fields"`
}

type LogConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

type MetricsConfig struct {
	Addr string `toml:"addr"`
}

type UserConfig struct {
	Name     string `toml:"name"`
	Password string `toml:"password"`
	Role     string `toml:"role"`
}

// defaultConfig is the configuration with no file: SPEC's defaults.
func defaultConfig() Config {
	return Config{
		Server: ServerConfig{
			Listen:                 "127.0.0.1:6380",
			MaxClients:             10000,
			RequestTimeout:         Duration(10 * time.Second),
			MaxRequestBytes:        8 << 20,
			MaxInflightBytes:       256 << 20,
			MaxClientReplyBytes:    64 << 20,
			MaxTransactions:        1000,
			MaxTransactionCommands: 10000,
			MaxTransactionBytes:    64 << 20,
			TrackingMaxKeys:        1000000,
		},
		Upstream: UpstreamConfig{
			Mode:         store.ModeEmbedded,
			Addrs:        []string{},
			AutoPipeline: true,
			Combine:      true,
			DialTimeout:  Duration(5 * time.Second),
			ReadTimeout:  Duration(3 * time.Second),
			WriteTimeout: Duration(3 * time.Second),
		},
		Session: SessionConfig{Prefix: "sess:", OutsidePrefix: commands.OutsideDeny, LockSuffixes: []string{"_LOCK"}},
		TTL: TTLConfig{
			Default:    Duration(24 * time.Hour),
			Min:        Duration(time.Second),
			Max:        Duration(30 * 24 * time.Hour),
			FromCookie: true,
			Touch:      true,
			Persist:    ttl.PersistDeny,
			LockMax:    Duration(commands.DefaultLockMax),
			Rules:      []RuleConfig{},
		},
		Tombstone: TombstoneConfig{Enabled: true, Grace: Duration(5 * time.Minute), OnWrite: commands.OnWriteError,
			Format: string(store.TombstoneTyped)},
		Scripts: ScriptsConfig{Mode: commands.ScriptsPolicy},
		Codec: CodecConfig{Format: codec.FormatJSON, Compress: codec.CompressNone, CompressMinBytes: codec.DefaultCompressMinBytes,
			EncryptKeys: []string{}, MaxPayloadBytes: 1 << 20, MaxHashFields: 1024},
		Log:     LogConfig{Level: "info", Format: "console"},
		Metrics: MetricsConfig{Addr: "127.0.0.1:9380"},
		Users:   []UserConfig{},
	}
}

// loadConfig reads path over the defaults and the preset (-preset, or the
// file's session.preset). Unknown keys are errors, so a typo does not
// silently leave a default in place.
func loadConfig(path, presetName string) (Config, error) {
	cfg := defaultConfig()
	var text []byte
	if path != "" {
		var err error
		if text, err = os.ReadFile(path); err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		var probe struct {
			Session struct {
				Preset        string  `toml:"preset"`
				OutsidePrefix *string `toml:"outside_prefix"`
			} `toml:"session"`
			Server struct {
				HashIDs bool `toml:"hash_ids"`
			} `toml:"server"`
			Namespace []struct {
				Preset string `toml:"preset"`
			} `toml:"namespace"`
		}
		if _, err := toml.Decode(string(text), &probe); err != nil {
			return cfg, fmt.Errorf("read config %s: %w", path, err)
		}
		switch file := probe.Session.Preset; {
		case presetName == "":
			presetName = file
		case file != "" && file != presetName:
			return cfg, fmt.Errorf("read config %s: session.preset = %q, but -preset %s", path, file, presetName)
		}
		// Each block starts from the defaults and its preset; decoding the
		// file fills the slice in place, over them.
		for i, b := range probe.Namespace {
			ns, base, err := newNamespace(b.Preset, probe.Server.HashIDs)
			if err != nil {
				return cfg, fmt.Errorf("read config %s: namespace[%d]: %w", path, i, err)
			}
			cfg.Namespaces = append(cfg.Namespaces, ns)
			// outside_prefix is the proxy's: a block's preset (django-redis,
			// whose cache shares the server) sets it unless the file does.
			if probe.Session.OutsidePrefix == nil && base.Session.OutsidePrefix != commands.OutsideDeny {
				cfg.Session.OutsidePrefix = base.Session.OutsidePrefix
			}
		}
	}
	if presetName != "" {
		p, err := findPreset(presetName)
		if err != nil {
			return cfg, err
		}
		if err := p.apply(&cfg); err != nil {
			return cfg, err
		}
		cfg.Session.Preset = presetName
	}
	if path == "" {
		return cfg, nil
	}
	md, err := toml.Decode(string(text), &cfg)
	if err != nil {
		return cfg, fmt.Errorf("read config %s: %w", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return cfg, fmt.Errorf("read config %s: unknown key %s", path, strings.Join(keys, ", "))
	}
	return cfg, nil
}

// validate checks values the types cannot; every error names its key.
func (c *Config) validate() error {
	var errs []error
	bad := func(key, why string) { errs = append(errs, fmt.Errorf("invalid %s: %s", key, why)) }
	if c.Server.Listen == "" {
		bad("server.listen", "must not be empty")
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		bad("server.tls_cert", "tls_cert and tls_key go together")
	}
	if c.Server.MaxClients <= 0 {
		bad("server.max_clients", "must be > 0")
	}
	if c.Server.IdleTimeout < 0 {
		bad("server.idle_timeout", "must be >= 0")
	}
	if c.Server.RequestTimeout < 0 {
		bad("server.request_timeout", "must be >= 0")
	}
	if c.Server.MaxRequestBytes < 1024 || c.Server.MaxRequestBytes > 1<<30 {
		bad("server.max_request_bytes", "must be between 1024 and 1073741824")
	}
	if c.Server.MaxInflightBytes < 1<<20 {
		bad("server.max_inflight_bytes", "must be >= 1048576")
	}
	if c.Server.MaxClientReplyBytes < 1<<20 {
		bad("server.max_client_reply_bytes", "must be >= 1048576")
	}
	if c.Server.EventLoops < -1 || c.Server.EventLoops > 1024 {
		bad("server.event_loops", "must be -1 (none), 0 (one per two CPUs) or up to 1024")
	}
	if c.Server.MaxTransactions <= 0 {
		bad("server.max_transactions", "must be > 0")
	}
	if c.Server.TrackingMaxKeys <= 0 {
		bad("server.tracking_max_keys", "must be > 0")
	}
	if c.Server.MaxTransactionCommands <= 0 {
		bad("server.max_transaction_commands", "must be > 0")
	}
	if c.Server.MaxTransactionBytes <= 0 {
		bad("server.max_transaction_bytes", "must be > 0")
	}
	switch c.Upstream.Mode {
	case store.ModeEmbedded:
	case store.ModeStandalone:
		if len(c.Upstream.Addrs) != 1 {
			bad("upstream.addrs", "standalone mode needs exactly one address")
		}
	case store.ModeCluster:
		if len(c.Upstream.Addrs) == 0 {
			bad("upstream.addrs", "cluster mode needs at least one seed address")
		}
	case store.ModeSentinel:
		if len(c.Upstream.Addrs) == 0 {
			bad("upstream.addrs", "sentinel mode needs at least one sentinel address")
		}
		if c.Upstream.MasterName == "" {
			bad("upstream.master_name", "required in sentinel mode")
		}
	default:
		bad("upstream.mode", `must be "embedded", "standalone", "cluster" or "sentinel"`)
	}
	if c.Upstream.Mode != store.ModeSentinel {
		// Set in another mode they would be ignored: the mode is probably
		// not the one meant.
		for _, k := range []struct{ key, value string }{
			{"upstream.master_name", c.Upstream.MasterName},
			{"upstream.sentinel_username", c.Upstream.SentinelUsername},
			{"upstream.sentinel_password", c.Upstream.SentinelPassword},
		} {
			if k.value != "" {
				bad(k.key, "only for sentinel mode")
			}
		}
	}
	if c.Upstream.DB < 0 || (c.Upstream.DB != 0 && c.Upstream.Mode == store.ModeCluster) {
		bad("upstream.db", "must be >= 0, and 0 in cluster mode")
	}
	if c.Upstream.PoolSize < 0 {
		bad("upstream.pool_size", "must be >= 0")
	}
	if c.Session.OutsidePrefix != commands.OutsideDeny && c.Session.OutsidePrefix != commands.OutsidePassthrough {
		bad("session.outside_prefix", `must be "deny" or "passthrough"`)
	}
	c.validateNamespaces(bad, func(err error) { errs = append(errs, err) })
	if c.Scripts.Mode != commands.ScriptsPolicy && c.Scripts.Mode != commands.ScriptsDeny {
		bad("scripts.mode", `must be "policy" or "deny"`)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", err.Error())
	}
	if c.Log.Format != "console" && c.Log.Format != "json" {
		bad("log.format", `must be "console" or "json"`)
	}
	if c.Metrics.Addr != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Addr); err != nil || !validPort(port) {
			bad("metrics.addr", `must be host:port (e.g. "127.0.0.1:9380"), or "" to turn the metrics server off`)
		} else if c.Metrics.Addr == c.Server.Listen && port != "0" {
			bad("metrics.addr", "must differ from server.listen")
		}
	}
	for i, u := range c.Users {
		key := fmt.Sprintf("users[%d]", i)
		if u.Name == "" || u.Password == "" {
			bad(key, "name and password are required")
		}
		if u.Name == "default" && c.Server.RequirePass != "" {
			bad(key+".name", `"default" is the server.requirepass user`)
		}
		switch commands.Role(u.Role) {
		case commands.RoleAdmin, commands.RoleApp, commands.RoleReadonly:
		default:
			bad(key+".role", `must be "admin", "app" or "readonly"`)
		}
	}
	return errors.Join(errs...)
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

// masked returns the configuration with secrets replaced, for printing.
func (c Config) masked() Config {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "********"
	}
	c.Server.RequirePass = mask(c.Server.RequirePass)
	c.Upstream.Password = mask(c.Upstream.Password)
	c.Upstream.SentinelPassword = mask(c.Upstream.SentinelPassword)
	maskKeys := func(ks []string) []string {
		keys := make([]string, len(ks))
		for i, k := range ks {
			id, _, _ := strings.Cut(k, ":")
			keys[i] = id + ":" + mask(k)
		}
		return keys
	}
	c.Codec.EncryptKeys = maskKeys(c.Codec.EncryptKeys)
	c.Namespaces = append([]NamespaceConfig(nil), c.Namespaces...)
	for i := range c.Namespaces {
		c.Namespaces[i].Codec.EncryptKeys = maskKeys(c.Namespaces[i].Codec.EncryptKeys)
	}
	users := make([]UserConfig, len(c.Users))
	for i, u := range c.Users {
		u.Password = mask(u.Password)
		users[i] = u
	}
	c.Users = users
	return c
}

func (c *Config) storeOptions() (store.Options, error) {
	opts := store.Options{
		Mode:             c.Upstream.Mode,
		Addrs:            c.Upstream.Addrs,
		MasterName:       c.Upstream.MasterName,
		Username:         c.Upstream.Username,
		Password:         c.Upstream.Password,
		SentinelUsername: c.Upstream.SentinelUsername,
		SentinelPassword: c.Upstream.SentinelPassword,
		DB:               c.Upstream.DB,
		PoolSize:         c.Upstream.PoolSize,
		MaxPinned:        c.Server.MaxTransactions,
		AutoPipeline:     c.Upstream.AutoPipeline,
		Combine:          c.Upstream.Combine,
		// A lane per event loop: each loop's round in flight at once.
		Lanes:        max(c.Server.EventLoops, 0),
		DialTimeout:  time.Duration(c.Upstream.DialTimeout),
		ReadTimeout:  time.Duration(c.Upstream.ReadTimeout),
		WriteTimeout: time.Duration(c.Upstream.WriteTimeout),
	}
	t := c.Upstream.TLS
	if !t.Enabled {
		return opts, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return opts, fmt.Errorf("invalid upstream.tls.ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return opts, fmt.Errorf("invalid upstream.tls.ca: no certificate in %s", t.CA)
		}
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return opts, fmt.Errorf("invalid upstream.tls.cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	opts.TLS = cfg
	return opts, nil
}

func (c *Config) commandOptions() (commands.Options, error) {
	views := c.namespaceViews()
	namespaces := make([]commands.Namespace, len(views))
	for i, v := range views {
		ns, err := v.options()
		if err != nil {
			return commands.Options{}, err
		}
		namespaces[i] = ns
	}
	def := namespaces[0]
	users := make([]commands.User, len(c.Users))
	for i, u := range c.Users {
		users[i] = commands.User{Name: u.Name, Password: u.Password, Role: commands.Role(u.Role)}
	}
	return commands.Options{
		Prefix:              def.Prefix,
		OwnerField:          def.OwnerField,
		OutsidePrefix:       c.Session.OutsidePrefix,
		LockSuffixes:        def.LockSuffixes,
		Policy:              def.Policy,
		Tombstones:          def.Tombstones,
		Grace:               def.Grace,
		OnWrite:             def.OnWrite,
		TombstoneFormat:     def.TombstoneFormat,
		TombstoneTransition: def.TombstoneTransition,
		ScriptsMode:         c.Scripts.Mode,
		Codec:               def.Codec,
		MaxHashBytes:        def.MaxHashBytes,
		MaxHashFields:       def.MaxHashFields,
		RequirePass:         c.Server.RequirePass,
		Users:               users,
		MaxTransactions:     c.Server.MaxTransactions,
		MaxTxCommands:       c.Server.MaxTransactionCommands,
		MaxTxBytes:          c.Server.MaxTransactionBytes,
		TrackingMaxKeys:     c.Server.TrackingMaxKeys,
		HashIDs:             def.HashIDs,
		DB:                  c.Upstream.DB,
		Version:             version,
		Namespaces:          namespaces[1:],
		DefaultAlias:        c.Session.Preset,
	}, nil
}

type codecOptions codec.Options

// notes are what an operator should know about the effective
// configuration beyond its validity.
func (c *Config) notes() []string {
	var notes []string
	if c.TTL.Absolute > 0 {
		notes = append(notes, "ttl.absolute needs the storage envelope: every session is stored with a small binary header holding its creation time, so readers that bypass sessproxy no longer see plain JSON")
	}
	if c.Codec.Format != codec.FormatJSON || c.Codec.Compress != codec.CompressNone || len(c.Codec.EncryptKeys) > 0 {
		notes = append(notes, "the codec settings store sessions with a binary header: readers that bypass sessproxy no longer see plain JSON (sessproxy reads every format, so switching back is lazy)")
	}
	if c.Upstream.Mode == store.ModeEmbedded {
		notes = append(notes, "upstream.mode is embedded: sessions live in memory and are lost on exit")
	}
	return notes
}

// build makes the codec; codec.New's errors start with the key's name
// inside [codec] (of the namespace block at section, "" for the default).
func (o codecOptions) build(section string) (codec.Codec, error) {
	cd, err := codec.New(codec.Options(o))
	if err != nil {
		return nil, fmt.Errorf("invalid %scodec.%w", section, err)
	}
	return cd, nil
}

func (c *Config) proxyOptions() proxy.Options {
	return proxy.Options{
		Listen:              c.Server.Listen,
		Unix:                c.Server.Unix,
		TLSCert:             c.Server.TLSCert,
		TLSKey:              c.Server.TLSKey,
		MaxClients:          c.Server.MaxClients,
		IdleTimeout:         time.Duration(c.Server.IdleTimeout),
		RequestTimeout:      requestTimeout(c.Server.RequestTimeout),
		MaxRequestBytes:     c.Server.MaxRequestBytes,
		MaxInflightBytes:    c.Server.MaxInflightBytes,
		MaxClientReplyBytes: c.Server.MaxClientReplyBytes,
		EventLoops:          c.Server.EventLoops,
	}
}

// requestTimeout maps the file's 0 (off) to proxy.Options' negative: its
// zero means the default.
func requestTimeout(d Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return time.Duration(d)
}

// Duration is a time.Duration written as a string ("24h", "5m"), with "d"
// for days as well since TTLs are often counted in days ("30d").
type Duration time.Duration

// UnmarshalText parses Go duration syntax plus a whole-days suffix.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return fmt.Errorf("invalid duration %q", s)
		}
		*d = Duration(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes whole days as "30d", the rest in Go syntax.
func (d Duration) MarshalText() ([]byte, error) {
	v := time.Duration(d)
	if v > 0 && v%(24*time.Hour) == 0 {
		return []byte(strconv.Itoa(int(v/(24*time.Hour))) + "d"), nil
	}
	return []byte(v.String()), nil
}
