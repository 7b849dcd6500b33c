#!/usr/bin/env bash
# multicore.sh — bench.sh on a machine of 8 or more cores, each process on cores of its
# own (taskset): redis-server on core 0, redis-benchmark on core 1, and the process under
# test — sessproxy, twemproxy, the floors, one loaded at a time — on the cores from 2.
# sessproxy and the Go floors run with GOMAXPROCS 2 (cores 2-3) and 8 (cores 2-9, or as
# many as the machine has past core 1), each with 50 and 256 clients: four bench.sh runs,
# the same workloads, rounds and ratios (to direct Redis, and to the floors), one after
# the other. On a 2-core development VM every process shares both cores, so its ratios
# say little about how the proxy scales; this is the run that does.
#
#   bash bench/multicore.sh              # or: BENCH_N=20000 BENCH_ROUNDS=1 bash bench/multicore.sh
#   bash bench/multicore.sh --dry-run    # print the commands, start nothing
#
# Environment (defaults in brackets), beside bench.sh's own (BENCH_N, BENCH_ROUNDS, …):
#   MULTICORE_PROCS    the GOMAXPROCS values [2 8]
#   MULTICORE_CLIENTS  the redis-benchmark -c values [50 256]
#   MULTICORE_CPUS     with --dry-run only: the core count to plan for [nproc]
#
# bench/epollfloor is one thread whatever GOMAXPROCS says, like twemproxy: its column is
# what one event loop reaches, not how Go scales.
# redis-benchmark and Redis are single-threaded, as in bench.sh: at 256 clients the
# direct column may be redis-benchmark's limit rather than Redis's; compare ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

dry=
case ${1:-} in
--dry-run) dry=1 ;;
"") ;;
*) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac

cpus=$(nproc)
if [[ -n $dry && -n ${MULTICORE_CPUS:-} ]]; then
	cpus=$MULTICORE_CPUS
fi
if ((cpus < 8)); then
	echo "multicore.sh: this machine has $cpus cores; it needs 8 or more, so that Redis," >&2
	echo "redis-benchmark and the proxy each have cores of their own. Use bench/bench.sh" >&2
	echo "here (or --dry-run with MULTICORE_CPUS=8 to see the commands)." >&2
	exit 1
fi
command -v taskset >/dev/null || { echo "multicore.sh: taskset not found (util-linux)" >&2; exit 1; }

procs=(${MULTICORE_PROCS:-2 8})
clients=(${MULTICORE_CLIENTS:-50 256})

# One sessproxy build for the four runs.
workdir=$(mktemp -d "${TMPDIR:-/tmp}/sessproxy-multicore.XXXXXX")
trap 'rm -rf "$workdir"' EXIT
bin=${PROXY_BIN:-}
if [[ -z $bin && -z ${PROXY_CMD:-} ]]; then
	bin=$workdir/sessproxy
	if [[ -z $dry ]]; then
		echo "building ./cmd/sessproxy" >&2
		go build -o "$bin" ./cmd/sessproxy
	fi
fi

status=0
for p in "${procs[@]}"; do
	# The proxy's cores: 2 .. 2+p-1, within the machine.
	last=$((2 + p - 1))
	((last < cpus)) || last=$((cpus - 1))
	proxy_cpus=2-$last
	for c in "${clients[@]}"; do
		echo "=== multicore: GOMAXPROCS=$p (proxy CPUs $proxy_cpus), $c clients; redis CPU 0, redis-benchmark CPU 1"
		((last - 1 >= p)) || echo "    (the proxy has $((last - 1)) cores for GOMAXPROCS=$p)"
		BENCH_CPUS_REDIS=0 BENCH_CPUS_CLIENT=1 BENCH_CPUS_PROXY=$proxy_cpus BENCH_GOMAXPROCS=$p \
			BENCH_CLIENTS=$c PROXY_BIN=$bin BENCH_DRY_RUN=$dry bash bench/bench.sh || status=1
		echo
	done
done
exit $status
