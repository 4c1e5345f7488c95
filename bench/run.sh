#!/usr/bin/env bash
# run.sh: sesh against its peers, side by side in one run, on this machine.
#
#   bash bench/run.sh            # everything, about 16 minutes on 2 vCPUs
#   DURATION=2s COUNT=3 MEM_N=200000 bash bench/run.sh    # a quick look
#
# Steps (STEPS, default "load bench lost trips mem instr"; add "profile" for
# CPU and allocation profiles of sesh):
#   load   end to end: for each pair and workload, a fresh loadserver on
#          127.0.0.1, its sessions fetched with curl, then wrk (THREADS,
#          CONNS, WARMUP discarded, then DURATION measured); ROUNDS rounds,
#          every other one in reverse order
#   bench  go test -bench BenchmarkWorkload, COUNT times (interleaved runs
#          of one test binary, -benchtime BENCHTIME); medians are reported
#   lost   200 parallel increments of one session per pair (cmd/lostupdate)
#   trips  the Redis round-trip counting tests (TestRedisRoundTrips)
#   mem    memory stores at MEM_N sessions: bytes per session, and load
#          latency during a sweep of MEM_N expired sessions (cmd/memstat;
#          sesh back to back and paced 2 ms apart, scs's own cleanup;
#          then the sweeps again under chrt --fifo 1 where allowed,
#          isolated from the machine's other processes, with the kernel's
#          real-time throttling off while they run, each ended after
#          ISOLATE_TIMEOUT seconds (300) at most; ISOLATE=0 skips)
#   instr  instructions per request in process, counted by valgrind's
#          callgrind (within 0.3% on any run of the same binary, 2% on
#          new, whatever else the machine does): BenchmarkWorkload serial, for
#          INSTR_PAIRS (net/http, the floors and sesh-memstore), INSTR_N
#          requests
#   profile  CPU and alloc profiles of sesh-memstore rmw/read/new, with
#          `go tool pprof -top` summaries, in $OUT/profiles
#
# Then cmd/report prints the results as markdown, also kept in
# $OUT/results.md. Everything goes to $OUT (default
# bench/results/<UTC time>). The Redis pairs get a private redis-server on
# 127.0.0.1 (ports 6390-6399, stopped at the end) if one is installed;
# REDIS=shared uses SESH_TEST_REDIS instead, or the server that
# ../scripts/testservers.sh finds or starts; NO_REDIS=1 leaves the Redis
# pairs out. PAIRS limits the pairs and WORKLOADS the workloads
# (space-separated). NICE=-5 (root)
# runs the measured processes at a higher priority than other work on a
# shared machine. wrk is the Debian
# package (installed with apt-get when missing and root). No load goes
# anywhere but 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")"

: "${DURATION:=5s}" "${WARMUP:=1s}" "${THREADS:=2}" "${CONNS:=32}" "${ROUNDS:=2}" "${SESSIONS:=1000}"
: "${COUNT:=5}" "${BENCHTIME:=200ms}" "${MEM_N:=1000000}" "${STEPS:=load bench lost trips mem instr}"
: "${INSTR_PAIRS:=nethttp floor floor-sealed floor-design sesh-memstore}" "${INSTR_N:=10000}"
: "${PAIRS:=nethttp floor floor-sealed floor-design sesh-memstore scs-memstore gorilla-cookie gorilla-fs sesh-redis scs-goredis}"
: "${OUT:=results/$(date -u +%Y%m%dT%H%M%SZ)}"
: "${WORKLOADS:=rmw read new}"

say() { echo "run.sh: $*" >&2; }
# NICE runs the measured processes at that niceness (root may use a
# negative one on a machine shared with other work); default unchanged.
# (Background jobs use "${NICE_CMD[@]}" directly, so that $! is the pid of
# the process itself and not of a subshell.)
NICE_CMD=()
[ -z "${NICE:-}" ] || NICE_CMD=(nice -n "$NICE")
run() { "${NICE_CMD[@]}" "$@"; }
die() {
	say "error: $*"
	exit 1
}

# Redis: a private redis-server on a free loopback port when one is
# installed (no other traffic, no persistence; REDIS=shared skips it), else
# SESH_TEST_REDIS, else one from ../scripts/testservers.sh.
REDIS_PID=""
if [ "${NO_REDIS:-}" = 1 ]; then
	PAIRS=$(echo "$PAIRS" | tr ' ' '\n' | grep -v -e redis | xargs || true)
	unset SESH_TEST_REDIS
elif [ "${REDIS:-private}" = private ] && command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
	for port in $(seq 6390 6399); do
		if ! timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$port" 2>/dev/null; then
			break
		fi
		port=""
	done
	[ -n "$port" ] || die "no free port for a private Redis in 6390..6399"
	"${NICE_CMD[@]}" redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --logfile "" >/dev/null 2>&1 &
	REDIS_PID=$!
	for ((i = 0; i < 100; i++)); do
		[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && break
		sleep 0.05
	done
	export SESH_TEST_REDIS=redis://127.0.0.1:$port/0
	say "private redis-server on 127.0.0.1:$port"
elif [ -z "${SESH_TEST_REDIS:-}" ]; then
	[ -z "${RUN_SH_UNDER_TESTSERVERS:-}" ] || die "testservers.sh set no SESH_TEST_REDIS"
	export RUN_SH_UNDER_TESTSERVERS=1 TESTSERVERS_ONLY=redis
	exec bash ../scripts/testservers.sh run -- bash "$0" "$@"
fi

# apt_install PKG: installs a Debian package, as root; fails otherwise.
apt_install() {
	[ "$(id -u)" -eq 0 ] || return 1
	say "installing $1"
	apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

if ! command -v wrk >/dev/null; then
	apt_install wrk || die "wrk is not installed and could not be (apt-get install wrk, as root)"
fi
command -v curl >/dev/null || die "curl is not installed"

mkdir -p "$OUT/bin" "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
BIN=$OUT/bin
say "results in $OUT"
go build -o "$BIN/" ./cmd/loadserver ./cmd/memstat ./cmd/lostupdate ./cmd/report
go test -c -o "$BIN/bench.test" .

# loadavg: the load average, and the share of time tasks waited for a CPU
# over the last minute (PSI), when the kernel reports it.
loadavg() {
	local psi
	psi=$(sed -n 's/^some avg10=[0-9.]* avg60=\([0-9.]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null || true)
	echo "$(cut -d' ' -f1-3 /proc/loadavg)${psi:+, CPU pressure $psi%}"
}
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
cat >"$OUT/meta.json" <<EOF
{"date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "machine": "$(uname -sm)", "cpus": $(nproc),
 "cpu": "$cpu", "go": "$(go env GOVERSION)",
 "wrk": "-t$THREADS -c$CONNS -d$DURATION (after a $WARMUP warm-up), $SESSIONS sessions per server",
 "rounds": $ROUNDS, "count": $COUNT, "benchtime": "$BENCHTIME", "mem_n": $MEM_N,
 "pairs": "$PAIRS", "redis": "${SESH_TEST_REDIS:-none}${REDIS_PID:+ (private)}", "nice": "${NICE:-0}",
 "load_before": "$(loadavg)", "load_after": "LOAD_AFTER"}
EOF

has_step() { [[ " $STEPS " == *" $1 "* ]]; }

SERVER_PID=""
stop_server() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
	fi
}

# Linux stops real-time threads that have held a CPU for
# sched_rt_runtime_us of the last second (950000 by default) until the
# second is over: a loader that spins under chrt --fifo loses its CPU
# for 50 ms every second, and one such stall decides a p99 of loads 100 µs
# apart. The isolated rows run with it off (-1), as root, and put back
# whatever was there (in cleanup too, should the run stop).
RT_KNOB=/proc/sys/kernel/sched_rt_runtime_us
RT_SAVED=""
rt_throttle() {
	local v
	v=$(cat "$RT_KNOB" 2>/dev/null) || v=""
	case $v in
	-1) echo off ;;
	"") echo unknown ;;
	*) echo "on, $v µs a second" ;;
	esac
}
rt_unthrottle() {
	local v
	v=$(cat "$RT_KNOB" 2>/dev/null) || return 0
	[ "$v" != -1 ] || return 0
	echo -1 >"$RT_KNOB" 2>/dev/null && RT_SAVED=$v || say "memory: could not turn off real-time throttling"
}
rt_restore() {
	[ -z "$RT_SAVED" ] || echo "$RT_SAVED" >"$RT_KNOB" || say "error: could not put back $RT_KNOB = $RT_SAVED"
	RT_SAVED=""
}

cleanup() {
	rt_restore
	stop_server
	if [ -n "$REDIS_PID" ]; then
		kill "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
	fi
}
trap cleanup EXIT

# start_server PAIR: a loadserver on a free loopback port; sets SERVER_URL.
start_server() {
	local log=$OUT/logs/server-$1.out i
	: >"$log" # before the background job starts: it may open it late
	"${NICE_CMD[@]}" "$BIN/loadserver" -pair "$1" >"$log" 2>>"$OUT/logs/server-$1.err" &
	SERVER_PID=$!
	SERVER_URL=""
	for ((i = 0; i < 200; i++)); do
		SERVER_URL=$(sed -n 's/^listening on //p' "$log")
		[ -n "$SERVER_URL" ] && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	die "loadserver -pair $1 did not start: $(cat "$OUT/logs/server-$1.err")"
}

# load_one ROUND PAIR WORKLOAD
load_one() {
	local round=$1 pair=$2 wl=$3 cookies=$OUT/logs/cookies.txt line
	start_server "$pair"
	[[ $SERVER_URL == http://127.0.0.1:* ]] || die "loadserver is not on 127.0.0.1: $SERVER_URL"
	: >"$cookies"
	if [ "$wl" != new ]; then
		curl -sSf "$SERVER_URL/_cookies?n=$SESSIONS" >"$cookies" || die "$pair: fetching sessions failed"
	fi
	run wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s wrk/session.lua "$SERVER_URL/$wl" -- "$cookies" >/dev/null
	line=$(run wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s wrk/session.lua "$SERVER_URL/$wl" -- "$cookies" |
		tee -a "$OUT/logs/wrk.txt" | grep '^{') || die "$pair $wl: wrk failed"
	stop_server
	echo "{\"round\":$round,\"pair\":\"$pair\",\"workload\":\"$wl\",${line#\{}" >>"$OUT/wrk.jsonl"
	say "round $round $pair $wl: $(echo "$line" | sed 's/.*"rps":\([0-9.]*\).*/\1/') req/s"
}

if has_step load; then
	items=()
	for wl in $WORKLOADS; do
		for pair in $PAIRS; do
			items+=("$pair $wl")
		done
	done
	: >"$OUT/wrk.jsonl"
	for ((round = 1; round <= ROUNDS; round++)); do
		if ((round % 2 == 1)); then
			order=("${items[@]}")
		else
			order=()
			for ((i = ${#items[@]} - 1; i >= 0; i--)); do order+=("${items[i]}"); done
		fi
		for item in "${order[@]}"; do
			# shellcheck disable=SC2086
			load_one "$round" $item
		done
	done
fi

if has_step bench; then
	re=$(echo "$PAIRS" | xargs | tr ' ' '|')
	: >"$OUT/gobench.txt"
	for ((i = 1; i <= COUNT; i++)); do
		say "go benchmarks, run $i of $COUNT"
		run "$BIN/bench.test" -test.run '^$' -test.bench "^BenchmarkWorkload/($re)/" \
			-test.benchtime "$BENCHTIME" >>"$OUT/gobench.txt"
	done
fi

if has_step lost; then
	say "lost updates"
	run "$BIN/lostupdate" >"$OUT/lostupdate.jsonl"
fi

if has_step trips && [ -n "${SESH_TEST_REDIS:-}" ]; then
	say "Redis round trips"
	run "$BIN/bench.test" -test.run '^TestRedisRoundTrips' -test.v -test.count=1 >"$OUT/roundtrips.txt" ||
		say "TestRedisRoundTrips FAILED: see $OUT/roundtrips.txt"
fi

# memstat_row plain|isolated MODE LIB [ARGS...]: one cmd/memstat row.
# Isolated, it runs under chrt --fifo 1, watched by a timeout at a higher
# real-time priority: nothing of the machine's at a normal priority could
# stop a run that kept both CPUs.
memstat_row() {
	local how=$1 pre=(run)
	shift
	if [ "$how" = isolated ]; then
		pre=(chrt --fifo 2 timeout "${ISOLATE_TIMEOUT:-300}" chrt --fifo 1)
		say "memory: $*, $MEM_N sessions, isolated (chrt --fifo 1, real-time throttling $(rt_throttle))"
	else
		say "memory: $*, $MEM_N sessions"
	fi
	"${pre[@]}" "$BIN/memstat" -mode "$1" -lib "$2" -n "$MEM_N" "${@:3}" >>"$OUT/memstat.jsonl"
}

if has_step mem; then
	: >"$OUT/memstat.jsonl"
	for m in "bytes sesh" "bytes scs" "sweep sesh" "sweep sesh -pace 2ms" "sweep scs"; do
		# shellcheck disable=SC2086
		memstat_row plain $m
	done
	# The sweeps again, isolated: under SCHED_FIFO the machine's other
	# processes and kernel threads cannot take the loader's CPU, so what
	# is left is what the sweep itself costs the loads.
	if [ "${ISOLATE:-1}" = 1 ] && chrt --fifo 1 true 2>/dev/null; then
		rt_unthrottle
		for m in "sweep sesh" "sweep sesh -pace 2ms" "sweep scs"; do
			# shellcheck disable=SC2086
			memstat_row isolated $m
		done
		rt_restore
	else
		say "memory: no isolated sweeps (ISOLATE=0, or chrt --fifo needs root)"
	fi
fi

# callgrind_instr PAIR WORKLOAD N: instructions counted by callgrind for
# the serial benchmark at -benchtime Nx (setup included). Asynchronous
# preemption is off: callgrind cannot follow Go's preemption signals. The
# collector runs stopped-the-world, in the counted thread, when the heap
# reaches its goal: concurrent marking would depend on timing, and the
# count with it (5-10% between runs on a busy machine, against 0.3%).
callgrind_instr() {
	local f=$OUT/callgrind.tmp log=$OUT/logs/callgrind-$1-$2-$3.txt
	GODEBUG=asyncpreemptoff=1,gcstoptheworld=1 GOMAXPROCS=1 valgrind --tool=callgrind --callgrind-out-file="$f" \
		"$BIN/bench.test" -test.run '^$' -test.bench "^BenchmarkWorkload\$/^$1\$/^$2\$/^serial\$" -test.benchtime "${3}x" >"$log" 2>&1 ||
		die "callgrind failed on $1 $2: see $log"
	grep -q '^PASS$' "$log" || die "callgrind: the benchmark did not pass on $1 $2: see $log"
	awk '/^totals:/ {print $2}' "$f"
	rm -f "$f"
}

if has_step instr; then
	command -v valgrind >/dev/null || apt_install valgrind || true
	if command -v valgrind >/dev/null; then
		: >"$OUT/instr.jsonl"
		for wl in $WORKLOADS; do
			for p in $INSTR_PAIRS; do
				[[ " $PAIRS " == *" $p "* ]] || continue
				say "instructions: $p $wl ($INSTR_N requests under callgrind)"
				# The run of N+2 requests less the run of 2: both call
				# the benchmark twice (b.N = 1, then b.N = n), so setup
				# and the first calls cancel out.
				two=$(callgrind_instr "$p" "$wl" 2)
				many=$(callgrind_instr "$p" "$wl" $((INSTR_N + 2)))
				((many > two)) || die "callgrind: $((INSTR_N + 2)) requests of $p $wl counted $many instructions, 2 requests $two"
				echo "{\"pair\":\"$p\",\"workload\":\"$wl\",\"n\":$INSTR_N,\"instr\":$(((many - two) / INSTR_N))}" >>"$OUT/instr.jsonl"
			done
		done
	else
		say "instructions: no valgrind, step skipped"
	fi
fi

if has_step profile; then
	mkdir -p "$OUT/profiles"
	for wl in $WORKLOADS; do
		say "profiling sesh-memstore $wl"
		p=$OUT/profiles/$wl
		run "$BIN/bench.test" -test.run '^$' -test.bench "^BenchmarkWorkload/sesh-memstore/$wl/serial\$" \
			-test.benchtime 3s -test.cpuprofile "$p.cpu" -test.memprofile "$p.mem" -test.memprofilerate 512 \
			-test.outputdir "$OUT/profiles" >"$p.bench.txt"
		go tool pprof -top -nodecount 40 "$BIN/bench.test" "$p.cpu" >"$p.cpu.top.txt" 2>/dev/null
		go tool pprof -top -cum -nodecount 60 "$BIN/bench.test" "$p.cpu" >"$p.cpu.cum.txt" 2>/dev/null
		go tool pprof -top -sample_index=alloc_objects -nodecount 40 "$BIN/bench.test" "$p.mem" >"$p.allocs.top.txt" 2>/dev/null
		go tool pprof -top -sample_index=alloc_space -nodecount 40 "$BIN/bench.test" "$p.mem" >"$p.bytes.top.txt" 2>/dev/null
	done
fi

sed -i "s|LOAD_AFTER|$(loadavg)|" "$OUT/meta.json"
"$BIN/report" -dir "$OUT" | tee "$OUT/results.md"
