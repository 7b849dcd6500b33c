package store

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/redis/go-redis/v9"
)

// Metrics is told about the store's upstream commands that failed; the
// metrics package implements it. It runs on the request path: it must not
// block or allocate.
type Metrics interface {
	UpstreamError(kind FailureKind)
}

// FailureKind is why an upstream command failed without an answer from
// Redis. Redis's own error replies (WRONGTYPE, NOSCRIPT…) and nil replies
// are answers, not failures.
type FailureKind uint8

// Failure kinds.
const (
	FailureTimeout    FailureKind = iota // no answer in time: dial, read, write or pool timeout
	FailureConnection                    // refused, reset or closed connection, and the like
	NumFailureKinds                      // how many kinds there are, for arrays indexed by kind
)

func (k FailureKind) String() string {
	if k == FailureTimeout {
		return "timeout"
	}
	return "connection"
}

// observe counts err when it is a failure of the upstream command itself.
// A cancelled context is the proxy giving up (a shutdown past its
// deadline), not the upstream failing.
func (s *Store) observe(err error) {
	if err == nil || err == redis.Nil || s.opts.Metrics == nil {
		return
	}
	var reply redis.Error
	var netErr net.Error
	switch {
	case errors.As(err, &reply), errors.Is(err, context.Canceled):
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, redis.ErrPoolTimeout),
		errors.As(err, &netErr) && netErr.Timeout():
		s.opts.Metrics.UpstreamError(FailureTimeout)
	default:
		s.opts.Metrics.UpstreamError(FailureConnection)
	}
}

// Ping checks that the upstream answers: the server, or every master of a
// cluster. Its failures are not counted as upstream errors: it is a
// readiness probe, not a client's command.
func (s *Store) Ping(ctx context.Context) error {
	return s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		if err := c.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("ping %s: %w", s.nodeName(c), err)
		}
		return nil
	})
}
