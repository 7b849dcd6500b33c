package redistest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// MasterName is the name the sentinels monitor the master under.
	MasterName = "sessmaster"
	// sentinelTimeout bounds how long the replica may take to sync and the
	// sentinels to find the replica and each other, and how long a failover
	// may take to promote the replica.
	sentinelTimeout = 30 * time.Second
)

// SentinelInfo is a master, one replica of it, and sentinels watching the master
// under MasterName with quorum 1. After a Failover the replica is the master.
type SentinelInfo struct {
	Addrs     []string // "127.0.0.1:port" of every sentinel, what a failover client needs
	Sentinels []*Server
	// Data is the master and the replica, in the order they were started; which
	// one is the master now is MasterAddr's answer.
	Data []*Server
}

// SentinelOptions shape a sentinel setup.
type SentinelOptions struct {
	// Sentinels is how many sentinels watch the master. default: 1
	Sentinels int
	// Password is the master's and the replica's requirepass (and so the
	// replica's masterauth and the sentinels' auth-pass). default: none
	Password string
	// SentinelPassword is the sentinels' own requirepass. default: none
	SentinelPassword string
	// DataFlags are extra redis-server flags for the master and the
	// replica. default: none
	DataFlags []string
}

// Sentinel starts a master, a replica and sentinels and registers a t.Cleanup
// that stops them.
func Sentinel(t testing.TB, opts SentinelOptions) *SentinelInfo {
	t.Helper()
	RequireBinaries(t)
	s, err := StartSentinel(opts)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartSentinel starts a master, a replica and sentinels, and returns once the
// replica is in sync and every sentinel knows the master, the replica and the
// other sentinels; the caller must Stop it. It is meant for TestMain.
func StartSentinel(opts SentinelOptions) (*SentinelInfo, error) {
	n := opts.Sentinels
	if n == 0 {
		n = 1
	}
	si := &SentinelInfo{}
	// Redis waits 5s by default for more replicas before a diskless full sync.
	data := []string{"--repl-diskless-sync-delay", "0"}
	if opts.Password != "" {
		data = append(data, "--requirepass", opts.Password, "--masterauth", opts.Password)
	}
	data = append(data, opts.DataFlags...)
	master, err := startWithConfig("", opts.Password, data...)
	if err != nil {
		return nil, fmt.Errorf("start sentinel's master: %w", err)
	}
	si.Data = append(si.Data, master)
	replica, err := startWithConfig("", opts.Password, append(data, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))...)
	if err != nil {
		si.Stop()
		return nil, fmt.Errorf("start sentinel's replica: %w", err)
	}
	si.Data = append(si.Data, replica)
	if err := waitInfo(replica, "replication", "master_link_status:up"); err != nil {
		si.Stop()
		return nil, fmt.Errorf("replica %s: %w", replica.Addr, err)
	}

	// down-after-milliseconds is short so a killed master is noticed quickly;
	// failover-timeout bounds a stuck failover before a sentinel tries again.
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 1\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 10000\n", MasterName, master.Port)
	if opts.Password != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\n", MasterName, opts.Password)
	}
	if opts.SentinelPassword != "" {
		// sentinel-pass is what a sentinel AUTHs with to the others.
		conf += fmt.Sprintf("requirepass %[1]s\nsentinel sentinel-pass %[1]s\n", opts.SentinelPassword)
	}
	for range n {
		s, err := startWithConfig(conf, opts.SentinelPassword, "--sentinel")
		if err != nil {
			si.Stop()
			return nil, fmt.Errorf("start sentinel: %w", err)
		}
		si.Sentinels = append(si.Sentinels, s)
		si.Addrs = append(si.Addrs, s.Addr)
	}
	want := fmt.Sprintf("master0:name=%s,status=ok,address=%s,slaves=1,sentinels=%d", MasterName, master.Addr, n)
	for _, s := range si.Sentinels {
		if err := waitInfo(s, "sentinel", want); err != nil {
			si.Stop()
			return nil, fmt.Errorf("sentinel %s: %w", s.Addr, err)
		}
	}
	return si, nil
}

// Stop stops every sentinel and data node. It is safe to call more than once.
func (si *SentinelInfo) Stop() {
	for _, s := range si.Sentinels {
		s.Stop()
	}
	for _, s := range si.Data {
		s.Stop()
	}
}

// MasterAddr is the master's address as the first sentinel reports it.
func (si *SentinelInfo) MasterAddr() (string, error) {
	info, err := si.Sentinels[0].command("INFO", "sentinel")
	if err != nil {
		return "", fmt.Errorf("INFO sentinel on %s: %w", si.Addrs[0], err)
	}
	_, rest, ok := strings.Cut(info, "name="+MasterName+",")
	if !ok {
		return "", fmt.Errorf("sentinel %s does not monitor %s: %q", si.Addrs[0], MasterName, info)
	}
	_, rest, ok = strings.Cut(rest, "address=")
	addr, _, _ := strings.Cut(rest, ",")
	if !ok || addr == "" {
		return "", fmt.Errorf("sentinel %s reports no address for %s: %q", si.Addrs[0], MasterName, info)
	}
	return addr, nil
}

// Failover asks the first sentinel to promote the replica (SENTINEL FAILOVER) and
// returns the new master's address once every sentinel reports it and it answers
// role:master. A sentinel answers NOGOODSLAVE until it has fresh INFO from the
// replica, so the request is repeated until it is accepted.
func (si *SentinelInfo) Failover() (string, error) {
	old, err := si.MasterAddr()
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(sentinelTimeout)
	for {
		_, err := si.Sentinels[0].command("SENTINEL", "FAILOVER", MasterName)
		if err == nil {
			break
		}
		if !strings.HasPrefix(err.Error(), "NOGOODSLAVE") || time.Now().After(deadline) {
			return "", fmt.Errorf("SENTINEL FAILOVER %s: %w", MasterName, err)
		}
		time.Sleep(pollInterval)
	}
	return si.WaitNewMaster(old)
}

// WaitNewMaster waits until every sentinel reports a master other than old and
// that master answers role:master, and returns its address: after a Failover, or
// after the master was stopped and the sentinels noticed (down-after-milliseconds
// is 1s) and promoted the replica.
func (si *SentinelInfo) WaitNewMaster(old string) (string, error) {
	deadline := time.Now().Add(sentinelTimeout)
	for {
		addr, err := si.MasterAddr()
		if err == nil && addr != old && si.agree(addr) {
			if err := waitInfo(si.node(addr), "replication", "role:master"); err != nil {
				return "", fmt.Errorf("promoted %s: %w", addr, err)
			}
			return addr, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("sentinels still report master %s after %v (last error %v)", old, sentinelTimeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// agree reports whether every sentinel reports addr as the master.
func (si *SentinelInfo) agree(addr string) bool {
	for _, s := range si.Sentinels {
		info, err := s.command("INFO", "sentinel")
		if err != nil || !strings.Contains(info, "address="+addr+",") {
			return false
		}
	}
	return true
}

// node is the data node at addr; a Server with no password for an address the
// setup did not start.
func (si *SentinelInfo) node(addr string) *Server {
	for _, s := range si.Data {
		if s.Addr == addr {
			return s
		}
	}
	return &Server{Addr: addr}
}

// waitInfo polls INFO section on s until it has the line want, or
// sentinelTimeout passes.
func waitInfo(s *Server, section, want string) error {
	deadline := time.Now().Add(sentinelTimeout)
	for {
		info, err := s.command("INFO", section)
		if err == nil && hasInfoLine(info, want) {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("not there")
			}
			return fmt.Errorf("INFO %s lacks %q after %v (%v):\n%s", section, want, sentinelTimeout, err, info)
		}
		time.Sleep(pollInterval)
	}
}

// hasInfoLine reports whether info has a line that is want, so slaves=1 does not
// accept slaves=10.
func hasInfoLine(info, want string) bool {
	for _, line := range strings.Split(info, "\r\n") {
		if line == want {
			return true
		}
	}
	return false
}
