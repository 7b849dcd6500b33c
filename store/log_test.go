package store

import (
	"context"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// go-redis's own messages reach the store's logger, not stderr.
func TestGoRedisMessagesGoToTheLogger(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: every dial fails
	core, logs := observer.New(zap.WarnLevel)
	_, err = Open(context.Background(), Options{Mode: ModeStandalone, Addrs: []string{addr},
		DialTimeout: time.Second, Logger: zap.New(core)})
	if err == nil {
		t.Fatal("Open succeeded with nothing listening")
	}
	for _, e := range logs.All() {
		if e.LoggerName == "upstream" && strings.Contains(e.Message, "failed to dial") {
			return
		}
	}
	t.Fatalf("no go-redis dial failure in the log: %v", logs.All())
}

// The failover client's routine news is info; a switched master a warning.
func TestSentinelNewsIsInfo(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	l := redisLog{zap.New(core)}
	l.Printf(context.Background(), "sentinel: selected addr=%s masterAddr=%s", "127.0.0.1:26379", "127.0.0.1:6379")
	l.Printf(context.Background(), "sentinel: discovered new sentinel=%q for master=%q", "127.0.0.1:26380", "m")
	l.Printf(context.Background(), "sentinel: new master=%q addr=%q", "m", "127.0.0.1:6380")
	var levels []zapcore.Level
	for _, e := range logs.All() {
		levels = append(levels, e.Level)
	}
	if want := []zapcore.Level{zap.InfoLevel, zap.InfoLevel, zap.WarnLevel}; !reflect.DeepEqual(levels, want) {
		t.Fatalf("levels = %v, want %v", levels, want)
	}
}
