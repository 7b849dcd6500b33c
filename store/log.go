package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// redisLog hands go-redis's own messages (a dial that failed, a pool or
// cluster hiccup) to the proxy's logger, so they come out in its format
// and at its level rather than as bare lines on stderr. They hold
// addresses, command names and error text, never payloads.
type redisLog struct{ log *zap.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...interface{}) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	if isSentinelNews(msg) {
		l.log.Info(msg)
		return
	}
	l.log.Warn(msg)
}

// isSentinelNews reports whether msg is the failover client telling which
// sentinel it asks or that it found another: every start says so, and
// nothing is wrong. A new master ("sentinel: new master=…") stays a warning.
func isSentinelNews(msg string) bool {
	return strings.HasPrefix(msg, "sentinel: selected ") || strings.HasPrefix(msg, "sentinel: discovered new sentinel")
}

// setRedisLogger routes go-redis's messages to log. go-redis has one
// logger per process, so the last store opened with a Logger sets it.
func setRedisLogger(log *zap.Logger) {
	if log != nil {
		redis.SetLogger(redisLog{log.Named("upstream")})
	}
}
