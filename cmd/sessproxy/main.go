// Command sessproxy is a Redis-protocol proxy that puts web sessions under
// policy: bounded TTLs, tombstones that keep logged-out sessions dead, and
// validated payloads.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/metrics"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// shutdownGrace bounds how long SIGTERM waits for clients to finish.
const shutdownGrace = 10 * time.Second

func main() {
	startProfiling()
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sessproxy:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(proxy.GCPercent)
	}
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "sessproxy", version)
			return nil
		case "sweep":
			var dryRun bool
			cfg, err := configFromFlags("sweep", args[1:], func(fs *flag.FlagSet) {
				fs.BoolVar(&dryRun, "dry-run", false, "report what would be fixed, change nothing")
			})
			if err != nil {
				return err
			}
			return sweep(cfg, dryRun, stdout, os.Stderr)
		case "presets":
			printPresets(stdout)
			return nil
		case "check":
			cfg, err := configFromFlags("check", args[1:], nil)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, "# config is valid; effective configuration (secrets masked):")
			for _, n := range cfg.notes() {
				fmt.Fprintln(stdout, "# note:", n)
			}
			return toml.NewEncoder(stdout).Encode(cfg.masked())
		}
	}
	load := configLoader(args)
	cfg, err := load()
	if err != nil {
		return err
	}
	return serve(cfg, load)
}

// configLoader reads the configuration of `sessproxy args`: at start, and
// again on SIGHUP, so flags given on the command line keep overriding the
// file.
func configLoader(args []string) func() (Config, error) {
	return func() (Config, error) { return configFromFlags("sessproxy", args, nil) }
}

// configFromFlags loads -config and applies the flags that override it;
// extra registers a subcommand's own flags.
func configFromFlags(name string, args []string, extra func(*flag.FlagSet)) (Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if extra != nil {
		extra(fs)
	}
	path := fs.String("config", "", "TOML config file (default: built-in defaults, embedded upstream)")
	listen := fs.String("listen", "", "listen address, overrides server.listen")
	upstream := fs.String("upstream", "", "comma-separated upstream addresses, overrides upstream.addrs")
	mode := fs.String("mode", "", "embedded, standalone, cluster or sentinel (-upstream then lists the sentinels), overrides upstream.mode")
	masterName := fs.String("master-name", "", "the master's name in sentinel mode, overrides upstream.master_name")
	level := fs.String("log-level", "", "debug, info, warn or error, overrides log.level")
	metricsAddr := fs.String("metrics-addr", "", `metrics and health address, overrides metrics.addr ("" turns the server off)`)
	var presetNames []string
	fs.Func("preset", "a framework's settings (connect-redis, phpredis, redis-rack, django-redis, flask-session, gorilla-redistore, connect-redis-session, alt-session; `sessproxy presets` prints them), under the config file's", func(s string) error {
		presetNames = append(presetNames, s)
		return nil
	})
	codecFormat := fs.String("codec", "", "json, msgpack or raw, overrides codec.format")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	// The first -preset is the default namespace's; each further one adds
	// a namespace named after it, after the file's [[namespace]] blocks.
	var presetName string
	if len(presetNames) > 0 {
		presetName = presetNames[0]
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := loadConfig(*path, presetName)
	if err != nil {
		return cfg, err
	}
	for _, name := range presetNames[min(1, len(presetNames)):] {
		ns, base, err := newNamespace(name, cfg.Server.HashIDs)
		if err != nil {
			return cfg, err
		}
		cfg.Namespaces = append(cfg.Namespaces, ns)
		if base.Session.OutsidePrefix == commands.OutsidePassthrough {
			cfg.Session.OutsidePrefix = commands.OutsidePassthrough // its framework shares the server (django-redis's cache)
		}
	}
	if *listen != "" {
		cfg.Server.Listen = *listen
	}
	if *upstream != "" {
		cfg.Upstream.Addrs = strings.Split(*upstream, ",")
		if *mode == "" && cfg.Upstream.Mode == store.ModeEmbedded {
			cfg.Upstream.Mode = store.ModeStandalone
		}
	}
	if *mode != "" {
		cfg.Upstream.Mode = *mode
	}
	if *masterName != "" {
		cfg.Upstream.MasterName = *masterName
	}
	if *level != "" {
		cfg.Log.Level = *level
	}
	if *codecFormat != "" {
		cfg.Codec.Format = *codecFormat
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "metrics-addr" { // set, even to "": off
			cfg.Metrics.Addr = *metricsAddr
		}
	})
	return cfg, cfg.validate()
}

// serve runs the proxy until SIGTERM or SIGINT; SIGHUP reloads what
// reloader can change from load.
func serve(cfg Config, load func() (Config, error)) error {
	log, level, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	// Signals are caught from the start, the upstream's dial included: a
	// SIGHUP sent meanwhile must reload once the proxy runs, not kill it
	// (SIGHUP's default).
	stop, hup := make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(stop)
	defer signal.Stop(hup)

	var reg *metrics.Registry
	if cfg.Metrics.Addr != "" {
		reg = metrics.NewRegistry()
	}
	st, engine, err := open(cfg, log, reg)
	if err != nil {
		return err
	}
	defer st.Close()
	proxyOpts := cfg.proxyOptions()
	proxyOpts.Logger = log
	if os.Getenv("GOMEMLIMIT") == "" {
		// Set once at start: a reload keeps server.* restart-only values.
		debug.SetMemoryLimit(proxy.MemoryLimit(proxyOpts))
	}
	if st.Mode() == store.ModeEmbedded {
		log.Warn("upstream is the embedded in-memory Redis (miniredis): data is not persistent and is lost on exit; set upstream.mode for a real Redis")
	}

	srv := proxy.New(engine, proxyOpts)
	if err := srv.Listen(); err != nil {
		return err
	}
	var metricsFailed <-chan error // nil, never ready, with metrics off
	metricsAddr := ""              // the bound address, for the log (metrics.addr may say port 0)
	if reg != nil {
		ms, err := listenMetrics(cfg.Metrics.Addr, reg, srv, log)
		if err != nil {
			_ = srv.Shutdown(context.Background()) // closes the listeners; no client yet
			return err
		}
		metricsAddr = ms.Addr().String()
		failed := make(chan error, 1)
		go func() { failed <- ms.Serve() }()
		metricsFailed = failed
		// Stopped after the proxy has drained, so /readyz answers 503
		// meanwhile; a probe takes at most its ready timeout.
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = ms.Shutdown(ctx)
		}()
	}
	upstream := []zap.Field{zap.String("upstream_mode", st.Mode()), zap.Strings("upstream_addrs", st.Addrs())}
	if name := st.MasterName(); name != "" {
		// upstream_addrs are then the sentinels.
		upstream = append(upstream, zap.String("upstream_master_name", name))
	}
	log.Info("sessproxy listening", append(upstream, zap.String("addr", srv.Addr().String()),
		zap.String("unix", cfg.Server.Unix), zap.String("metrics_addr", metricsAddr), zap.String("version", version))...)

	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	r := &reloader{load: load, current: cfg, engine: engine, level: level, log: log}
	var failed error
	for running := true; running; {
		select {
		case err := <-served:
			return err
		case <-hup:
			r.reload()
		case failed = <-metricsFailed:
			// Returned, and reported by main, once the clients are drained.
			log.Info("shutting down", zap.String("reason", "metrics server failed"))
			running = false
		case sig := <-stop:
			log.Info("shutting down", zap.String("signal", sig.String()))
			running = false
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("stopped")
	return failed
}

// listenMetrics binds the server of /metrics, /healthz and /readyz.
// /readyz is 503 while the proxy drains, or when the upstream does not
// answer a PING.
func listenMetrics(addr string, reg *metrics.Registry, srv *proxy.Server, log *zap.Logger) (*metrics.Server, error) {
	ms := metrics.NewServer(reg, metrics.ServerOptions{Addr: addr, Logger: log, Ready: srv.Ready})
	if err := ms.Listen(); err != nil {
		return nil, fmt.Errorf("metrics.addr: %w", err)
	}
	return ms, nil
}

// open connects to the upstream and builds the command engine on it; reg,
// when not nil, receives their metrics.
func open(cfg Config, log *zap.Logger, reg *metrics.Registry) (*store.Store, *commands.Engine, error) {
	storeOpts, err := cfg.storeOptions()
	if err != nil {
		return nil, nil, err
	}
	cmdOpts, err := cfg.commandOptions()
	if err != nil {
		return nil, nil, err
	}
	cmdOpts.Logger, storeOpts.Logger = log, log
	if reg != nil {
		cmdOpts.Metrics, storeOpts.Metrics = reg, reg
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeOpts.DialTimeout+storeOpts.ReadTimeout)
	defer cancel()
	st, err := store.Open(ctx, storeOpts)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to upstream: %w", err)
	}
	if cmdOpts.TypedTombstones() {
		if err := st.CheckNativeWrites(ctx); err != nil {
			st.Close()
			return nil, nil, fmt.Errorf("check upstream: %w", err)
		}
	}
	if cmdOpts.ScriptsMode == commands.ScriptsPolicy {
		node, version, err := st.MutableScriptLibraries(ctx)
		if err != nil {
			st.Close()
			return nil, nil, fmt.Errorf("check upstream: %w", err)
		}
		if node != "" {
			log.Warn("upstream runs a Redis older than 7.0: a client's script can change the Lua libraries later scripts see, and so what the script policy's checks call; set [scripts] mode = \"deny\" if clients you do not trust may send scripts (docs/commands.md, Scripts)",
				zap.String("node", node), zap.String("redis_version", version))
		}
	}
	return st, commands.New(st, cmdOpts), nil
}

// sweep runs `sessproxy sweep`: the policy TTL for every key under the
// prefix that has none or one above ttl.max. Progress goes to a terminal
// on stderr; the summary to stdout.
func sweep(cfg Config, dryRun bool, stdout io.Writer, stderr *os.File) error {
	st, engine, err := open(cfg, zap.NewNop(), nil)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts := commands.SweepOptions{DryRun: dryRun}
	if isTerminal(stderr) {
		// The upstream's key count is only an estimate of the pages to
		// come (it counts keys outside the prefix too), enough for a bar.
		total, _ := st.UpstreamKeys(ctx)
		opts.Progress = func(s commands.SweepStats) { fmt.Fprint(stderr, "\r"+progressBar(s.Scanned, total)+" "+summary(s)) }
		defer fmt.Fprintln(stderr)
	}
	stats, err := engine.Sweep(ctx, opts)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	line := summary(stats)
	if dryRun {
		line += " (dry run: nothing changed)"
	}
	fmt.Fprintln(stdout, line)
	return nil
}

func summary(s commands.SweepStats) string {
	return fmt.Sprintf("scanned=%d fixed=%d skipped=%d", s.Scanned, s.Fixed, s.Skipped)
}

func progressBar(done, total int64) string {
	const width = 30
	if total < done {
		total = done
	}
	filled := width
	if total > 0 {
		filled = int(done * width / total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "]"
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newLogger builds the logger; its level can be changed while it runs
// (SIGHUP) through the AtomicLevel.
func newLogger(cfg LogConfig) (*zap.Logger, zap.AtomicLevel, error) {
	level, err := parseLevel(cfg.Level)
	if err != nil {
		return nil, zap.AtomicLevel{}, fmt.Errorf("invalid log.level: %w", err)
	}
	zc := zap.NewProductionConfig()
	if cfg.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.Development = false
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.DisableStacktrace = true
	zc.Sampling = nil
	log, err := zc.Build()
	return log, zc.Level, err
}

func parseLevel(s string) (zapcore.Level, error) {
	var l zapcore.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("unknown level %q (debug, info, warn, error)", s)
	}
	return l, nil
}
