package integration

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// proxyLog keeps an in-process proxy's log lines (its warnings: upstream
// failures, refused writes, closed clients) and prints them when the test
// failed, so that a failure seen only in CI says what the proxy saw.
// It is bounded: past maxProxyLogBytes it keeps counting lines, not text.
// The lines hold no payloads, as the proxy's log never does.
type proxyLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	dropped int
}

const maxProxyLogBytes = 256 << 10

func (l *proxyLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len()+len(p) > maxProxyLogBytes {
		l.dropped++
		return len(p), nil
	}
	return l.buf.Write(p)
}

func (l *proxyLog) Sync() error { return nil }

// newProxyLog returns a logger into a proxyLog, whose lines the test's
// cleanup prints if it failed, with the error replies up's masters have
// counted (INFO errorstats, since the servers started): the proxy relays
// Redis's own error replies without logging them. Register it before the
// proxy's shutdown, so that it runs after it and holds the shutdown's
// lines too.
func newProxyLog(t *testing.T, up *upstream) *zap.Logger {
	t.Helper()
	l := &proxyLog{}
	enc := zap.NewDevelopmentEncoderConfig()
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), l, zap.DebugLevel)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		up.logErrorStats(t)
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.buf.Len() == 0 {
			t.Logf("the proxy logged nothing")
			return
		}
		t.Logf("the proxy's log:\n%s", l.buf.String())
		if l.dropped > 0 {
			t.Logf("and %d more lines past %d bytes", l.dropped, maxProxyLogBytes)
		}
	})
	return zap.New(core)
}

// logErrorStats logs each master's INFO errorstats.
func (u *upstream) logErrorStats(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := u.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		stats, err := c.Info(ctx, "errorstats").Result()
		if err != nil {
			return err
		}
		t.Logf("%s master %s, INFO errorstats since it started:\n%s", u.name, c.Options().Addr, stats)
		return nil
	})
	if err != nil {
		t.Logf("%s: INFO errorstats: %v", u.name, err)
	}
}
