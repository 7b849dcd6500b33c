# make test: everything CI runs. It installs what it needs on a fresh
# Debian machine (as root), then vets and runs every test with the race
# detector, integration tests against real redis-server processes included,
# the fault tests on their own (printing their figures), the memory-bound
# tests without it, then each fuzz target briefly.
GO ?= go
# How long make fuzz runs each fuzz target.
FUZZTIME ?= 1m

# Every fuzz target, as package:name (go test -fuzz takes one at a time).
FUZZ_TARGETS = ./proxy/:FuzzRequestScanner ./proxy/:FuzzHeaderInt ./proxy/:FuzzParseInline ./proxy/:FuzzServerConnection ./commands/:FuzzDispatch ./commands/:FuzzFieldCommandsOnePass ./store/codec/:FuzzValidate ./internal/glob/:FuzzMatch

.PHONY: test deps vet build run fuzz chaos php

test: deps vet
	# The fault tests and PHP's sessions run on their own below (chaos, php),
	# to print their figures; not twice.
	$(GO) test -race -count=1 -timeout 9m -skip '^TestChaos|^Test(Standalone|Cluster|Sentinel)$$/^PHP' ./...
	# The proxy package again with a goroutine per client (server.event_loops
	# = -1): by default plaintext clients are served from event loops, and
	# TLS and handed-over clients by goroutines, so both ways must hold.
	SESSPROXY_TEST_EVENT_LOOPS=-1 $(GO) test -race -count=1 -timeout 5m ./proxy/
	$(MAKE) chaos
	$(MAKE) php
	# Memory bounds (10,000 idle clients, unread replies) are measured
	# without the race detector, whose shadow memory inflates RSS.
	$(GO) test -count=1 -run '^TestMemory' -v ./proxy/
	SESSPROXY_TEST_EVENT_LOOPS=-1 $(GO) test -count=1 -run '^TestMemory' -v ./proxy/
	# The request path under new inputs for a moment each (the seeds
	# already ran above); a crasher lands in testdata/fuzz/ to commit.
	$(MAKE) fuzz FUZZTIME=5s

# The fault tests (kill -9 of upstream nodes under load, failovers, a slot
# migration, the tombstone race), run on their own so that their figures
# are printed (go test shows a passing package's log only with -v); the
# whole log when one fails.
chaos:
	@log=$$(mktemp); \
	if $(GO) test -race -count=1 -timeout 6m -run '^TestChaos' -v ./integration/ >$$log 2>&1; then \
		grep -E '^\s+chaos_test.go:[0-9]+: chaos |^(ok|FAIL)' $$log | sed -E 's/^\s+chaos_test.go:[0-9]+: //'; rm -f $$log; \
	else cat $$log; rm -f $$log; exit 1; fi

# PHP native sessions with phpredis's locking, on their own to print their
# timelines ('php locking:' lines); the whole log when one fails.
php:
	@log=$$(mktemp); \
	if $(GO) test -race -count=1 -timeout 3m -run '^Test(Standalone|Cluster|Sentinel)$$/^PHP' -v ./integration/ >$$log 2>&1; then \
		grep -E '^\s+php_test.go:[0-9]+: php locking: |^(ok|FAIL)' $$log | sed -E 's/^\s+php_test.go:[0-9]+: //'; rm -f $$log; \
	else cat $$log; rm -f $$log; exit 1; fi

# Each fuzz target for FUZZTIME: the request scanner against redcon's
# reader, a real server over TCP, the engine's dispatch, the field commands
# (SESS.FGET/FMGET/FSET/FDEL) against per-field gjson and sjson calls, the
# payload validator against encoding/json, and the glob matcher against a
# copy of Redis's.
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) $${t%%:*}; \
	done; \
	echo "fuzz FuzzServerConnection for $(FUZZTIME), a goroutine per client"; \
	SESSPROXY_TEST_EVENT_LOOPS=-1 $(GO) test -run '^$$' -fuzz '^FuzzServerConnection$$' -fuzztime $(FUZZTIME) ./proxy/

vet:
	$(GO) vet ./...

# Real redis-server, redis-cli and tmux (interactive redis-cli) for the
# integration tests, php-cli with phpredis (PHP native sessions), redis-py
# and redis-rb for the scripts in integration/clients (Debian's packages, so
# for /usr/bin/python3 and ruby), the frameworks those scripts drive
# (redis-rack, Django with django-redis, Flask with Flask-Session), and the
# node clients (npm ci); never skipped.
deps:
	@if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v tmux >/dev/null; then \
		echo "installing redis-server, redis-tools and tmux"; \
		apt-get install -y redis-server redis-tools tmux || { apt-get update && apt-get install -y redis-server redis-tools tmux; }; \
	fi
	@if ! command -v php >/dev/null || ! php -m | grep -qx redis; then \
		echo "installing php-cli and php-redis"; \
		apt-get install -y php-cli php-redis || { apt-get update && apt-get install -y php-cli php-redis; }; \
	fi
	@if ! /usr/bin/python3 -c 'import redis' 2>/dev/null || ! ruby -e 'require "redis"' 2>/dev/null; then \
		echo "installing python3-redis and ruby-redis"; \
		apt-get install -y python3-redis ruby-redis || { apt-get update && apt-get install -y python3-redis ruby-redis; }; \
	fi
	@if ! ruby -e 'require "rack/session/redis"' 2>/dev/null; then \
		echo "installing ruby-redis-rack"; \
		apt-get install -y ruby-redis-rack || { apt-get update && apt-get install -y ruby-redis-rack; }; \
	fi
	@if ! /usr/bin/python3 -c 'import django, django_redis, flask, flask_session' 2>/dev/null; then \
		echo "installing python3-django, python3-django-redis, python3-flask and python3-flask-session"; \
		apt-get install -y python3-django python3-django-redis python3-flask python3-flask-session || { apt-get update && apt-get install -y python3-django python3-django-redis python3-flask python3-flask-session; }; \
	fi
	npm ci --prefix integration/node --no-audit --no-fund

build:
	$(GO) build -o bin/sessproxy ./cmd/sessproxy

run:
	$(GO) run ./cmd/sessproxy

-include bench/bench.mk
