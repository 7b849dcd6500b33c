package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// A sentinel can name as master a server that is not one: a sentinel cut
// off during a failover names the old master (a replica once it rejoins)
// until it hears of the new one, and a misconfigured sentinel may watch
// another setup under the same name. go-redis asks every sentinel at once,
// keeps the first that answers and asks it alone from then on, without
// checking the answer; so one such sentinel that answers first pins the
// proxy to a replica, every write failing READONLY for as long as it
// says so, while the other sentinels name the real master. Redis's
// guidelines for Sentinel clients say to check the role of the server a
// sentinel named. The store's dialer in sentinel mode does (ROLE on each
// new connection): a replica is closed, the configured sentinels are asked
// in turn, and the first server they name whose ROLE is master is used.

// errNotMaster: no sentinel named a server whose ROLE is master.
var errNotMaster = errors.New("no sentinel named a server that is a master")

// sentinelDialer is the failover client's dialer: go-redis calls it with
// the address a sentinel named (and for its sentinel connections).
func (s *Store) sentinelDialer() func(context.Context, string, string) (net.Conn, error) {
	base := s.upstreamDialer()
	sentinels := make(map[string]bool, len(s.opts.Addrs))
	for _, a := range s.opts.Addrs {
		sentinels[a] = true
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := base(ctx, network, addr)
		if err != nil || sentinels[addr] {
			// A configured sentinel is not checked: ROLE would need its
			// AUTH, and the master's password must not be tried on it.
			return c, err
		}
		if s.serverRole(ctx, c) != "slave" {
			// A master, a sentinel, or a role not known (ROLE refused, an
			// ACL user without it): go-redis goes on as before.
			return c, nil
		}
		c.Close()
		return s.dialNamedMaster(ctx, network, addr)
	}
}

// dialNamedMaster asks each configured sentinel for the master and dials
// the first server named, other than replica, whose ROLE is master.
func (s *Store) dialNamedMaster(ctx context.Context, network, replica string) (net.Conn, error) {
	base := s.upstreamDialer()
	for _, sentinel := range s.opts.Addrs {
		addr, err := s.askSentinel(ctx, sentinel)
		if err != nil || addr == replica {
			continue
		}
		c, err := base(ctx, network, addr)
		if err != nil {
			continue
		}
		if s.serverRole(ctx, c) == "master" {
			if s.opts.Logger != nil {
				s.opts.Logger.Warn("a sentinel named a replica as the master; using the master another sentinel named",
					zap.String("master_name", s.opts.MasterName), zap.String("replica", replica), zap.String("master", addr))
			}
			return c, nil
		}
		c.Close()
	}
	return nil, fmt.Errorf("sentinel master %s: %s is a replica and %w", s.opts.MasterName, replica, errNotMaster)
}

// askSentinel is one sentinel's answer to SENTINEL GET-MASTER-ADDR-BY-NAME.
func (s *Store) askSentinel(ctx context.Context, addr string) (string, error) {
	c := redis.NewSentinelClient(&redis.Options{
		Addr: addr, Username: s.opts.SentinelUsername, Password: s.opts.SentinelPassword,
		TLSConfig: s.opts.TLS, Dialer: s.upstreamDialer(),
		DialTimeout: s.opts.DialTimeout, ReadTimeout: s.opts.ReadTimeout, WriteTimeout: s.opts.WriteTimeout,
		MaxRetries: -1, PoolSize: 1, Protocol: 2, DisableIdentity: true,
	})
	defer c.Close()
	hostPort, err := c.GetMasterAddrByName(ctx, s.opts.MasterName).Result()
	if err != nil {
		return "", err
	}
	if len(hostPort) != 2 {
		return "", fmt.Errorf("sentinel %s answered %q", addr, hostPort)
	}
	return net.JoinHostPort(hostPort[0], hostPort[1]), nil
}

// serverRole is the first element of ROLE's reply on c ("master",
// "slave", "sentinel"), after AUTH with the master's credentials when
// ROLE asks for it; "" when it cannot tell. It reads exactly the replies
// to what it sent, so go-redis finds the connection as dialled.
func (s *Store) serverRole(ctx context.Context, c net.Conn) string {
	deadline := time.Now().Add(s.opts.ReadTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	defer c.SetDeadline(time.Time{})
	r := bufio.NewReaderSize(c, 512)
	role, err := roundTrip(c, r, "ROLE")
	if strings.HasPrefix(role, "-NOAUTH") && s.opts.Password != "" {
		args := []string{"AUTH", s.opts.Password}
		if s.opts.Username != "" {
			args = []string{"AUTH", s.opts.Username, s.opts.Password}
		}
		if ok, err := roundTrip(c, r, args...); err != nil || ok != "OK" {
			return ""
		}
		role, err = roundTrip(c, r, "ROLE")
	}
	if err != nil || strings.HasPrefix(role, "-") {
		return ""
	}
	return role
}

// roundTrip sends args and reads the whole reply: a simple string's or
// an error's line (an error with its '-'), or an array's first bulk string.
func roundTrip(w io.Writer, r *bufio.Reader, args ...string) (string, error) {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return "", err
	}
	first := ""
	err := skipReply(r, func(s string) {
		if first == "" {
			first = s
		}
	})
	return first, err
}

// skipReply reads one reply whole, giving see each line's text and bulk
// string in order. Only ROLE's and AUTH's small replies come this way;
// the connection's scanner bounds every item.
func skipReply(r *bufio.Reader, see func(string)) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return errors.New("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		see(line[1:])
	case '-':
		see(line)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		see(string(buf[:n]))
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return err
		}
		for range n {
			if err := skipReply(r, see); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}
