// Package redistest starts real redis-server processes on free 127.0.0.1 ports for
// integration tests: a standalone server, a 3-master Redis Cluster, or a master with
// a replica watched by Redis Sentinel. Every process is killed and its directory
// removed by Stop (or by the t.Cleanup that Standalone, Cluster and Sentinel
// register), so a test never leaves a server behind.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long a fresh redis-server may take to answer PING.
	readyTimeout = 10 * time.Second
	// pollInterval is the pause between readiness probes.
	pollInterval = 20 * time.Millisecond
	// clusterBusOffset is what Redis adds to a node's port for its cluster bus.
	clusterBusOffset = 10000
	// startAttempts covers the race between FreePort closing its probe listener and
	// redis-server binding the port: another process may take it in between.
	startAttempts = 3
)

// Server is one running redis-server.
type Server struct {
	Addr string // "127.0.0.1:port"
	Port int
	Dir  string // working directory: redis.log, and nodes.conf for cluster nodes
	// Password is the server's requirepass, which the helpers AUTH with; "" = none.
	Password string

	args     []string      // redis-server's arguments, for Start
	cmd      *exec.Cmd     // the running (or last) process
	exited   chan struct{} // closed once that process has been reaped
	stopOnce sync.Once
}

// Standalone starts one redis-server and registers a t.Cleanup that stops it.
func Standalone(t testing.TB) *Server {
	t.Helper()
	RequireBinaries(t)
	s, err := StartStandalone()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StandaloneWith is Standalone with extra redis-server flags, such as
// "--appendonly", "yes" for a server that keeps what it acknowledged
// across a Kill and Start.
func StandaloneWith(t testing.TB, extra ...string) *Server {
	t.Helper()
	RequireBinaries(t)
	s, err := startServer(extra...)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartStandalone starts one redis-server; the caller must Stop it. It is meant for
// TestMain, where there is no testing.TB to hang a cleanup on.
func StartStandalone() (*Server, error) {
	return startServer()
}

// Stop kills the server, waits for it to exit (so its ports are free when Stop
// returns) and removes its directory. It is safe to call more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		// No graceful shutdown: SIGKILL cannot hang, and what a server
		// persisted goes with its directory.
		s.Kill()
		_ = os.RemoveAll(s.Dir)
	})
}

// Kill sends the server SIGKILL (kill -9: no shutdown, no final save) and
// waits for it to exit, keeping its directory, so Start can bring it back
// with what it had persisted: its AOF, a cluster node's nodes.conf.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill() // an error only when it has exited already
	<-s.exited
}

// Running reports whether the server's process is up.
func (s *Server) Running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Command sends one command to s (after AUTH when s has a password) over a
// fresh connection and returns its reply: a simple or bulk string, an
// integer, or a Redis error reply as the error.
func (s *Server) Command(args ...string) (string, error) {
	return s.command(args...)
}

// HasInfoLine reports whether INFO's reply info has the line want.
func HasInfoLine(info, want string) bool { return hasInfoLine(info, want) }

// Start starts a killed server again, on its port, in its directory, with
// its flags, and returns once it answers PING.
func (s *Server) Start() error {
	return s.launch()
}

// RequireBinaries fails the test when redis-server or redis-cli is missing. It never
// skips: a silently skipped integration suite looks like a passing one.
func RequireBinaries(t testing.TB) {
	t.Helper()
	if err := lookBinaries(); err != nil {
		t.Fatal(err)
	}
}

func lookBinaries() error {
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found on PATH: run `make test` (it installs redis-server and redis-tools with apt-get) or apt-get install -y redis-server redis-tools", bin)
		}
	}
	return nil
}

// handedOut remembers every port FreePort returned, so two servers started by the
// same test binary never get the same port even if the kernel offers it twice.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a free TCP port on 127.0.0.1 whose cluster bus port (port+10000)
// is free as well, so the result is usable for cluster nodes too.
func FreePort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		ok := port < 65536-clusterBusOffset && !handedOut.ports[port]
		if ok {
			bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+clusterBusOffset)))
			ok = err == nil
			if ok {
				bus.Close()
			}
		}
		l.Close()
		if ok {
			handedOut.ports[port] = true
			return port, nil
		}
	}
	return 0, errors.New("find free port: no port p with p and p+10000 both free after 100 tries")
}

// startServer starts redis-server with the common flags plus extra, retrying on a
// fresh port when the chosen one was taken before redis-server could bind it.
func startServer(extra ...string) (*Server, error) {
	return startWithConfig("", "", extra...)
}

// startWithConfig is startServer with a config file holding conf, written to the
// server's directory and passed first (redis-server wants the file before the
// flags). A sentinel needs one: it records what it learns by rewriting its file.
// password is the requirepass that conf or extra set, for the readiness probe.
func startWithConfig(conf, password string, extra ...string) (*Server, error) {
	if err := lookBinaries(); err != nil {
		return nil, err
	}
	var err error
	for range startAttempts {
		var s *Server
		var port int
		if port, err = FreePort(); err != nil {
			return nil, err
		}
		s, err = startOnce(port, conf, password, extra)
		if err == nil {
			return s, nil
		}
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	return nil, err
}

// Restart stops s and starts a fresh, empty standalone redis-server on the
// same port: an upstream that went away and came back. The caller stops the
// new server.
func (s *Server) Restart() (*Server, error) {
	s.Stop()
	return startOnce(s.Port, "", "", nil)
}

func startOnce(port int, conf, password string, extra []string) (*Server, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("redistest-%d-", port))
	if err != nil {
		return nil, fmt.Errorf("create dir for redis-server: %w", err)
	}
	var args []string
	if conf != "" {
		confPath := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("write redis-server config: %w", err)
		}
		args = append(args, confPath)
	}
	args = append(args,
		"--save", "", "--appendonly", "no",
		"--dir", dir, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--daemonize", "no",
	)
	s := &Server{
		Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Port:     port,
		Dir:      dir,
		Password: password,
		args:     append(args, extra...),
	}
	if err := s.launch(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// launch starts redis-server with s's flags in s's directory, appending to
// its redis.log, and waits for it to answer PING. On failure the process
// is gone and the directory kept.
func (s *Server) launch() error {
	logPath := filepath.Join(s.Dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("open redis-server log: %w", err)
	}
	cmd := exec.Command("redis-server", s.args...)
	cmd.Dir = s.Dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	if err := s.waitReady(); err != nil {
		// Read the log before the caller removes it: it holds the reason (bad flag, port in use).
		log, _ := os.ReadFile(logPath)
		s.Kill()
		return fmt.Errorf("redis-server on port %d: %w\n--- redis.log ---\n%s", s.Port, err, log)
	}
	return nil
}

// waitReady polls PING until the server answers PONG, it exits, or readyTimeout
// passes. Polling rather than sleeping keeps fast machines fast and slow ones correct.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("exited during startup (%v)", s.cmd.ProcessState)
		default:
		}
		reply, err := s.command("PING")
		if err == nil && reply == "PONG" {
			return nil
		}
		lastErr = err // a -LOADING reply or a refused dial: keep polling
		time.Sleep(pollInterval)
	}
	return fmt.Errorf("no PONG within %v (last error: %v)", readyTimeout, lastErr)
}

// command sends one command to s, after AUTH when s has a password.
func (s *Server) command(args ...string) (string, error) {
	return commandAuth(s.Addr, s.Password, args...)
}

// command sends one command over a fresh connection and returns the reply as a
// string. It understands only the reply types the helpers need (simple string,
// error, integer, bulk string), which keeps the package free of a client dependency.
func command(addr string, args ...string) (string, error) {
	return commandAuth(addr, "", args...)
}

// commandAuth is command on a connection that first sends AUTH password, unless
// password is "".
func commandAuth(addr, password string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))

	var req strings.Builder
	encode := func(args ...string) {
		fmt.Fprintf(&req, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if password != "" {
		encode("AUTH", password)
	}
	encode(args...)
	if _, err := conn.Write([]byte(req.String())); err != nil {
		return "", err
	}

	r := bufio.NewReader(conn)
	if password != "" {
		if _, err := readReply(r); err != nil {
			return "", fmt.Errorf("AUTH: %w", err)
		}
	}
	return readReply(r)
}

// readReply reads one reply of the kinds command understands.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad bulk length %q", line)
		}
		if n < 0 {
			return "", errNil
		}
		buf := make([]byte, n+2) // payload plus trailing CRLF
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unsupported reply %q", line)
}

// errNil is command's result for a null bulk reply.
var errNil = errors.New("nil reply")

// Signal sends the server's process sig: SIGSTOP freezes it (a stalled
// upstream: connections stay open, nothing is answered), SIGCONT resumes it.
func (s *Server) Signal(sig os.Signal) error {
	return s.cmd.Process.Signal(sig)
}
