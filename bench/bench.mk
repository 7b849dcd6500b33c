# make bench: redis-benchmark figures for direct Redis, sessproxy and twemproxy in front
# of one fresh redis-server (see bench/bench.sh for what it runs). Tune with
# BENCH_N (requests per run, default 100000) and BENCH_ROUNDS (median of, default 3):
#   make bench BENCH_N=20000 BENCH_ROUNDS=1
.PHONY: bench

# Exported so `make bench BENCH_N=…` and `BENCH_N=… make bench` both reach the script.
export BENCH_N BENCH_ROUNDS BENCH_CLIENTS BENCH_KEYS BENCH_TIMEOUT PROXY_BIN PROXY_CMD PROXY_STANDIN
export BENCH_CPUS_REDIS BENCH_CPUS_PROXY BENCH_CPUS_CLIENT BENCH_GOMAXPROCS BENCH_DRY_RUN

bench:
	bash bench/bench.sh

# make bench-multicore: bench.sh with Redis, redis-benchmark and the proxy each pinned to
# cores of their own, GOMAXPROCS 2 and 8, 50 and 256 clients (8 or more cores; see
# bench/multicore.sh; its dry run: bash bench/multicore.sh --dry-run).
.PHONY: bench-multicore
bench-multicore:
	bash bench/multicore.sh
