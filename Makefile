# make test: everything CI runs. It installs what it needs on a fresh
# Debian machine (as root), then vets and runs every test with the race
# detector, integration tests against real redis-server processes included,
# and the memory-bound tests without it.
GO ?= go

.PHONY: test deps vet build run

test: deps vet
	$(GO) test -race -count=1 -timeout 9m ./...
	# Memory bounds (10,000 idle clients, unread replies) are measured
	# without the race detector, whose shadow memory inflates RSS.
	$(GO) test -count=1 -run '^TestMemory' -v ./proxy/

vet:
	$(GO) vet ./...

# Real redis-server, redis-cli and tmux (interactive redis-cli) for the
# integration tests, and the node clients (npm ci); never skipped.
deps:
	@if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v tmux >/dev/null; then \
		echo "installing redis-server, redis-tools and tmux"; \
		apt-get install -y redis-server redis-tools tmux || { apt-get update && apt-get install -y redis-server redis-tools tmux; }; \
	fi
	npm ci --prefix integration/node --no-audit --no-fund

build:
	$(GO) build -o bin/sessproxy ./cmd/sessproxy

run:
	$(GO) run ./cmd/sessproxy

-include bench/bench.mk
