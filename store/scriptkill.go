package store

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// A client's script that never ends (`while true do end`) holds Redis: once
// busy-reply-threshold passes (lua-time-limit, 5 s by default) Redis
// answers every other command, every session's, BUSY until it gets SCRIPT
// KILL, which the proxy does not serve to clients (it would kill any
// client's script). Its client has been answered an upstream error once
// upstream.read_timeout passed, so what the script does is no one's answer
// any more: the store sends SCRIPT KILL itself, to every master, and Redis
// serves again from its threshold on. SCRIPT KILL stops only a script that
// has not written; one that has (UNKILLABLE) is left to the operator
// (SHUTDOWN NOSAVE), logged at ERROR. Before, one such script made Redis
// answer BUSY for as long as it ran, for ever (TestRunawayScriptIsKilled).

// scriptKillTries bounds the SCRIPT KILLs sent for one timed-out script:
// Redis reads one only once its threshold has passed, which may be after
// the call's read_timeout, so a call that timed out is sent again.
const scriptKillTries = 10

// killTimedOutScript sends SCRIPT KILL to every master when err, a
// client's script's error, says its reply did not come in time; at most
// one such round runs at a time, in the background (Close waits for it).
func (s *Store) killTimedOutScript(err error) {
	if !timedOut(err) || s.embedded != nil || !s.killing.CompareAndSwap(false, true) {
		return
	}
	s.stopped.Add(1)
	go func() {
		defer s.stopped.Done()
		defer s.killing.Store(false)
		for try := 0; try < scriptKillTries; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.ReadTimeout)
			kerr := s.forEachMaster(ctx, s.killScript)
			cancel()
			if !timedOut(kerr) {
				return
			}
			select {
			case <-s.stop:
				return
			case <-time.After(s.opts.ReadTimeout / 2):
			}
		}
	}()
}

// killScript sends SCRIPT KILL to c and logs what it did; a timeout is
// returned (Redis has not read it yet), nothing else.
func (s *Store) killScript(ctx context.Context, c *redis.Client) error {
	err := c.ScriptKill(ctx).Err()
	switch {
	case timedOut(err):
		return err
	case err == nil:
		s.logWarn("a client's script ran past upstream.read_timeout: SCRIPT KILL sent, Redis serves again", zap.String("node", s.nodeName(c)))
	case strings.HasPrefix(err.Error(), "NOTBUSY"): // it ended on its own
	case strings.HasPrefix(err.Error(), "UNKILLABLE"):
		if s.opts.Logger != nil {
			s.opts.Logger.Error("a client's script that wrote runs past upstream.read_timeout: Redis answers BUSY until it ends or SHUTDOWN NOSAVE", zap.String("node", s.nodeName(c)))
		}
	default:
		s.logWarn("a client's script ran past upstream.read_timeout: SCRIPT KILL failed", zap.String("node", s.nodeName(c)), zap.Error(err))
	}
	return nil
}

func (s *Store) logWarn(msg string, fields ...zap.Field) {
	if s.opts.Logger != nil {
		s.opts.Logger.Warn(msg, fields...)
	}
}

// timedOut reports whether err is a reply that did not come in time.
func timedOut(err error) bool {
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout()
}
