package store

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
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
