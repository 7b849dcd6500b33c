// Package store is sessproxy's only door to Redis: it owns the go-redis
// clients for every upstream mode (embedded, standalone, cluster, and a
// Sentinel-managed master), the Lua scripts that make tombstone checks
// atomic, and the per-slot splitting a Redis Cluster needs.
package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Upstream modes.
const (
	ModeEmbedded   = "embedded"
	ModeStandalone = "standalone"
	ModeCluster    = "cluster"
	ModeSentinel   = "sentinel"
)

// Options configure the upstream connection.
type Options struct {
	// Mode is embedded, standalone, cluster or sentinel. default: embedded
	Mode string
	// Addrs are host:port of the server (standalone), seed nodes (cluster)
	// or the sentinels (sentinel). default: none
	Addrs []string
	// MasterName is the master the sentinels watch (sentinel only): the
	// store asks them for its address, and again after a failover.
	// default: none (required in sentinel mode)
	MasterName string
	// Username and Password authenticate to the upstream's data nodes (in
	// sentinel mode, the master). default: none
	Username string
	Password string
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// (sentinel only), which have their own requirepass or ACL users.
	// default: none (sentinels without AUTH)
	SentinelUsername string
	SentinelPassword string
	// DB is the database index (standalone and sentinel). default: 0
	DB int
	// TLS, when set, is used to dial the upstream (in sentinel mode the
	// sentinels as well as the master). default: nil (plain TCP)
	TLS *tls.Config
	// PoolSize is the number of connections per upstream node. default: 10 per CPU
	PoolSize int
	// AutoPipeline merges the commands of all clients into shared upstream
	// pipelines (go-redis's auto-pipeliner), instead of one pooled round
	// trip per client batch. default: false (the config file's default is
	// true)
	AutoPipeline bool
	// Combine merges different clients' single writes into shared script
	// calls and single reads into shared MGETs (the combiners, combine.go).
	// Needs AutoPipeline. default: false (the config file's default is
	// true)
	Combine bool
	// Lanes is the least number of shared pipelines in flight at once
	// (lanes.go), with AutoPipeline outside a cluster, or per master in
	// one: the proxy asks for one per event loop, so that every loop's
	// round has a lane of its own. default: one per two CPUs, at least one
	Lanes int
	// MaxPinned bounds the upstream connections held for clients'
	// transactions (WATCH, MULTI), per node, in a pool apart from PoolSize.
	// default: 1000
	MaxPinned int
	// DialTimeout, ReadTimeout and WriteTimeout bound each upstream call so a
	// dead upstream turns into an error reply, not a hung client.
	// default: 5s, 3s, 3s
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// Logger receives go-redis's own messages (a failed dial, say), at warn
	// level, and the failover client's routine news of its sentinels at
	// info. default: nil, go-redis's default (stderr)
	Logger *zap.Logger
	// Metrics counts the upstream commands that failed. default: none
	Metrics Metrics
}

func (o *Options) init() {
	if o.Mode == "" {
		o.Mode = ModeEmbedded
	}
	if o.MaxPinned == 0 {
		o.MaxPinned = 1000
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 3 * time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 3 * time.Second
	}
}

// Store is a connected upstream.
type Store struct {
	opts     Options
	client   redis.UniversalClient
	cluster  *redis.ClusterClient // set in cluster mode
	embedded *miniredis.Miniredis // set in embedded mode
	ap       *redis.AutoPipeliner // with AutoPipeline in a cluster
	writes   *groupCommit[op]     // with Combine: merges clients' single writes
	reads    *groupCommit[op]     // with Combine: merges clients' single reads
	lanes    *lanes               // with AutoPipeline outside a cluster
	nodes    *clusterLanes        // with AutoPipeline in a cluster
	// migrating holds the slots a node recently answered TRYAGAIN for
	// (a slot migration in progress), each until when its runs go one key
	// per command.
	migrating sync.Map // int → time.Time
	tx        txClient // the pinned connections of transactions (tx.go)
	// killing: a SCRIPT KILL round is under way (killTimedOutScript).
	killing atomic.Bool
	stop    chan struct{}
	stopped sync.WaitGroup
}

// Open connects to the upstream and loads the scripts. In embedded mode it
// starts an in-process miniredis first.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts.init()
	setRedisLogger(opts.Logger)
	s := &Store{opts: opts, stop: make(chan struct{})}
	switch opts.Mode {
	case ModeEmbedded:
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start embedded upstream: %w", err)
		}
		s.embedded = m
		s.client = redis.NewClient(s.clientOptions(m.Addr()))
		s.stopped.Add(1)
		go s.advanceEmbeddedClock()
	case ModeStandalone:
		if len(opts.Addrs) != 1 {
			return nil, fmt.Errorf("standalone upstream needs exactly one address, got %d", len(opts.Addrs))
		}
		s.client = redis.NewClient(s.clientOptions(opts.Addrs[0]))
	case ModeCluster:
		if len(opts.Addrs) == 0 {
			return nil, errors.New("cluster upstream needs at least one seed address")
		}
		s.cluster = s.newCluster(opts.PoolSize)
		s.client = s.cluster
	case ModeSentinel:
		if len(opts.Addrs) == 0 {
			return nil, errors.New("sentinel upstream needs at least one sentinel address")
		}
		if opts.MasterName == "" {
			return nil, errors.New("sentinel upstream needs a master name")
		}
		// A *redis.Client like standalone's, whose dialer asks the
		// sentinels for the master: pipelines, the auto-pipeliner,
		// forEachMaster and the scripts work unchanged. go-redis follows
		// +switch-master and drops its connections to the old master.
		s.client = s.newFailover(opts.PoolSize)
	default:
		return nil, fmt.Errorf("unknown upstream mode %q", opts.Mode)
	}
	if err := s.loadScripts(ctx); err != nil {
		s.Close()
		return nil, err
	}
	switch {
	case opts.AutoPipeline && s.cluster == nil:
		s.lanes = newLanes(s, s.client.(*redis.Client), laneCount(opts.Lanes))
	case opts.AutoPipeline:
		// A cluster: each master has lanes (clusterTransport), and
		// go-redis's auto-pipeliner takes what they do not, routing each
		// command to its node and following MOVED and ASK. Ordered (one stream, submission order, so each client's batch
		// keeps its order) and full duplex: the next batch is written while
		// the previous one's replies are read, so Redis and the proxy work
		// at the same time instead of taking turns.
		apOpts := redis.DefaultAutoPipelineOptions()
		apOpts.FullDuplex = true
		ap, err := s.client.(interface {
			AsyncAutoPipelineWithOptions(*redis.AutoPipelineOptions) (*redis.AutoPipeliner, error)
		}).AsyncAutoPipelineWithOptions(apOpts)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("start auto-pipelining: %w", err)
		}
		s.ap = ap
		s.nodes = &clusterLanes{s: s, n: laneCount(opts.Lanes), nodes: make(map[*redis.Client]*lanes)}
	}
	if opts.AutoPipeline && opts.Combine {
		s.writes = newCombiner(s)
		s.reads = newCombiner(s)
	}
	return s, nil
}

// newCluster returns a cluster client of poolSize connections per node.
// Its node clients never send a command again (MaxRetries -1, go-redis's
// default in a cluster; clientOptions says why). go-redis's own routing
// (a batch of several slots, a command outside a batch) may still send a
// command again on another attempt after a connection failure: its
// redirect loop retries those too, and MaxRedirects also bounds MOVED.
func (s *Store) newCluster(poolSize int) *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:      ownAddrs(s.opts.Addrs),
		Username:   s.opts.Username,
		Password:   s.opts.Password,
		TLSConfig:  s.opts.TLS,
		Dialer:     s.upstreamDialer(),
		PoolSize:   poolSize,
		MaxRetries: -1,
		// Batches bound their whole wait by a deadline (Batch.sendDeadline).
		ContextTimeoutEnabled: true,
		DialTimeout:           s.opts.DialTimeout,
		ReadTimeout:           s.opts.ReadTimeout,
		WriteTimeout:          s.opts.WriteTimeout,
		Protocol:              2,
		DisableIdentity:       true,
		// A backstop only: a failing command reloads the slot map at
		// once (reloadOnFailure). go-redis's 60s default left the
		// slots of a failed-over master on the dead node that long.
		ClusterStateReloadInterval: clusterStateReloadInterval,
		// One dial attempt: a refused dial means the node is down, and
		// a failed command reloads the slot map. go-redis's five
		// attempts, each of a command's replays, held every command
		// to a dead master for about a second and a half before it
		// failed, and so delayed finding the promoted replica.
		DialerRetries: 1,
	})
}

// ownAddrs is a copy of addrs for one go-redis client. go-redis keeps the
// slice it is given and appends the nodes (sentinels) it discovers to it:
// two clients sharing one backing array (the store's and its transaction
// pool's, or a caller's) would write each other's address lists.
func ownAddrs(addrs []string) []string {
	return slices.Clip(slices.Clone(addrs))
}

// newFailover returns a client of the master the sentinels watch, with
// poolSize connections, that never sends a command again (clientOptions).
func (s *Store) newFailover(poolSize int) *redis.Client {
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:       s.opts.MasterName,
		SentinelAddrs:    ownAddrs(s.opts.Addrs),
		SentinelUsername: s.opts.SentinelUsername,
		SentinelPassword: s.opts.SentinelPassword,
		Username:         s.opts.Username,
		Password:         s.opts.Password,
		DB:               s.opts.DB,
		TLSConfig:        s.opts.TLS,
		Dialer:           s.sentinelDialer(),
		PoolSize:         poolSize,
		MaxRetries:       -1,
		// Batches bound their whole wait by a deadline (Batch.sendDeadline).
		ContextTimeoutEnabled: true,
		DialTimeout:           s.opts.DialTimeout,
		ReadTimeout:           s.opts.ReadTimeout,
		WriteTimeout:          s.opts.WriteTimeout,
		Protocol:              2,
		DisableIdentity:       true,
	})
}

// clientOptions are a standalone (or embedded) upstream's. MaxRetries -1:
// go-redis would send again a command (a whole pipeline) whose connection
// failed after it was written, which runs a forwarded INCR, LPUSH or
// script twice behind its client's back; the proxy answers an error and
// leaves the retry to the client, as Redis itself would. The sentinel
// client (newFailover) and a cluster's node clients (go-redis's default
// there) do the same.
func (s *Store) clientOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr:         addr,
		Username:     s.opts.Username,
		Password:     s.opts.Password,
		DB:           s.opts.DB,
		TLSConfig:    s.opts.TLS,
		Dialer:       s.upstreamDialer(),
		PoolSize:     s.opts.PoolSize,
		DialTimeout:  s.opts.DialTimeout,
		ReadTimeout:  s.opts.ReadTimeout,
		WriteTimeout: s.opts.WriteTimeout,
		MaxRetries:   -1,
		// Batches bound their whole wait by a deadline (Batch.sendDeadline).
		ContextTimeoutEnabled: true,
		Protocol:              2,
		DisableIdentity:       true,
	}
}

// advanceEmbeddedClock moves miniredis's clock forward: miniredis only
// expires keys when told time has passed, and the embedded upstream must
// honour TTLs like a real Redis.
func (s *Store) advanceEmbeddedClock() {
	defer s.stopped.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			s.embedded.FastForward(now.Sub(last))
			last = now
		}
	}
}

// Mode is the upstream mode in use.
func (s *Store) Mode() string { return s.opts.Mode }

// MasterName is the master the sentinels watch, "" outside sentinel mode.
func (s *Store) MasterName() string {
	if s.opts.Mode != ModeSentinel {
		return ""
	}
	return s.opts.MasterName
}

// Addrs describes where the upstream is, for INFO and logs: the embedded
// server, the configured server or cluster seeds, or the sentinels.
func (s *Store) Addrs() []string {
	if s.embedded != nil {
		return []string{s.embedded.Addr()}
	}
	return s.opts.Addrs
}

// Close disconnects and stops the embedded upstream.
func (s *Store) Close() error {
	close(s.stop)
	s.stopped.Wait()
	err := s.client.Close()
	s.tx.once.Do(func() {}) // no pool created from here on
	switch {
	case s.tx.client != nil:
		_ = s.tx.client.Close()
	case s.tx.cluster != nil:
		_ = s.tx.cluster.Close()
	}
	if s.embedded != nil {
		s.embedded.Close()
	}
	return err
}

// forEachMaster runs fn on every master: the one server outside a cluster,
// each master concurrently in one.
func (s *Store) forEachMaster(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
	if s.cluster == nil {
		return fn(ctx, s.client.(*redis.Client))
	}
	masters, err := s.clusterMasters(ctx)
	if err != nil {
		return err
	}
	errs := make(chan error, len(masters))
	var wg sync.WaitGroup
	for _, m := range masters {
		wg.Go(func() { errs <- fn(ctx, m) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// clusterMasters are the masters the cluster serves its slots on, as the
// proxy's own slot map names them (so their pooled connections serve).
// Not go-redis's ForEachMaster: it reloads the slot map there and then,
// and a reload racing the one a failed command asked for (see failed)
// races on go-redis's node list. When the proxy's map disagrees with the
// cluster's (a slot just moved), it asks for a reload and looks again
// until the map agrees, for at most clusterMapWait: go-redis reloads at
// most once every 200 ms, so the reload a MOVED asked for can still be
// waiting its turn.
func (s *Store) clusterMasters(ctx context.Context) ([]*redis.Client, error) {
	deadline := time.Now().Add(clusterMapWait)
	for {
		masters, err := s.clusterMastersNow(ctx)
		if !errors.Is(err, errStaleSlotMap) || time.Now().After(deadline) {
			return masters, err
		}
		s.cluster.ReloadState(context.Background())
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(clusterMapPoll):
		}
	}
}

const (
	// clusterMapWait bounds how long clusterMasters waits for a reload;
	// clusterMapPoll is how often it looks again meanwhile.
	clusterMapWait = time.Second
	clusterMapPoll = 20 * time.Millisecond
)

// errStaleSlotMap: the proxy's slot map disagrees with the cluster's.
var errStaleSlotMap = errors.New("slot map reloading")

// clusterMastersNow is clusterMasters as the slot map stands.
func (s *Store) clusterMastersNow(ctx context.Context) ([]*redis.Client, error) {
	slots, err := s.cluster.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster slots: %w", err)
	}
	var masters []*redis.Client
	seen := make(map[*redis.Client]bool)
	for _, r := range slots {
		if len(r.Nodes) == 0 {
			continue
		}
		node, err := s.cluster.MasterForKey(ctx, keyForSlot(r.Start))
		if err != nil {
			return nil, fmt.Errorf("route slot %d: %w", r.Start, err)
		}
		if addr := node.Options().Addr; addr != r.Nodes[0].Addr {
			return nil, fmt.Errorf("slots %d-%d: the proxy routes them to %s, the cluster serves them on %s (%w)", r.Start, r.End, addr, r.Nodes[0].Addr, errStaleSlotMap)
		}
		if !seen[node] {
			seen[node] = true
			masters = append(masters, node)
		}
	}
	return masters, nil
}

// loadScripts puts every script in every master's script cache, so EVALSHA
// normally hits; NOSCRIPT (a restarted or failed-over node) is handled by
// the batch's sender (sender.recover).
func (s *Store) loadScripts(ctx context.Context) error {
	return s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		for _, sc := range allScripts {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return fmt.Errorf("load scripts on %s: %w", s.nodeName(c), err)
			}
		}
		return nil
	})
}

// reloadScripts loads the proxy's scripts, then users (clients' scripts),
// on every master: what a NOSCRIPT asks for (sender.recover).
func (s *Store) reloadScripts(ctx context.Context, users []*UserScript) error {
	if err := s.loadScripts(ctx); err != nil {
		return err
	}
	return s.loadUserScripts(ctx, users)
}

// nodeName names a master in errors: its address, or in sentinel mode the
// master's name (the failover client's own Addr is a placeholder, and the
// master's address changes with a failover).
func (s *Store) nodeName(c *redis.Client) string {
	if s.opts.Mode == ModeSentinel {
		return "sentinel master " + s.opts.MasterName
	}
	return c.Options().Addr
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

func isTryAgain(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "TRYAGAIN")
}

// clusterStateReloadInterval is how old go-redis lets its cluster slot map
// get before it reloads it unasked.
const clusterStateReloadInterval = 5 * time.Second

// migrationHold is how long after a TRYAGAIN a slot's runs go one key per
// command. Each TRYAGAIN costs a run go-redis's retries, so one per slot per
// hold.
const migrationHold = time.Second

// slotMigrating reports whether slot's runs (MGETs, write script calls)
// should go one key per command.
func (s *Store) slotMigrating(slot int) bool {
	if slot < 0 {
		return false
	}
	until, ok := s.migrating.Load(slot)
	return ok && time.Now().Before(until.(time.Time))
}

func (s *Store) markMigrating(slot int) {
	s.migrating.Store(slot, time.Now().Add(migrationHold))
}
