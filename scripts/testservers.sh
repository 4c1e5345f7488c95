#!/usr/bin/env bash
# testservers.sh: the servers that the store tests talk to.
#
#   bash scripts/testservers.sh run -- CMD ARGS...
#	makes sure a server of each kind below is reachable on loopback,
#	exports its SESH_TEST_* variable, runs CMD, stops what it started
#	itself (and only that), and exits with CMD's status.
#   bash scripts/testservers.sh env
#	prints `export ...` lines for the servers already reachable; starts
#	nothing. For interactive use: eval "$(bash scripts/testservers.sh env)"
#
# For each kind, in order: reuse a server that answers; else start one
# from installed binaries, with its files in a fresh `mktemp -d` directory;
# else, when root, apt-get install the Debian package and start it. A
# server that cannot be had is an error (non-zero exit, before CMD runs).
#
#   SESH_TEST_POSTGRES        postgres://postgres@127.0.0.1:5432/test?sslmode=disable
#   SESH_TEST_MYSQL           root@tcp(127.0.0.1:3306)/test
#   SESH_TEST_REDIS           redis://127.0.0.1:6379/0
#   SESH_TEST_REDIS_CLUSTER   three masters, no replicas (127.0.0.1:7101,7102,7103
#                             unless taken)
#   SESH_TEST_REDIS_SENTINEL  one sentinel (127.0.0.1:26479 unless taken) watching
#                             SESH_TEST_REDIS_SENTINEL_MASTER=seshmaster on a spare port
#   SESH_TEST_MEMCACHED       127.0.0.1:11311
#
# Every server started here listens on 127.0.0.1 only. Output is one line
# per server on stderr. TESTSERVERS_ONLY="redis memcached ..." limits the
# kinds (postgres mysql redis cluster sentinel memcached chromium); default
# all. chromium is no server: it is Debian's headless browser for the demo's
# browser tests, installed when missing, and exported as SESH_TEST_CHROMIUM.
set -euo pipefail

prog=testservers
KINDS=${TESTSERVERS_ONLY:-postgres mysql redis cluster sentinel memcached chromium}
WAIT_STEPS=${TESTSERVERS_WAIT_STEPS:-300} # polls of 0.1 s: 30 s per server

tmp=""
cleanups=() # commands run in reverse order on exit
pidfiles=() # pid files of the daemons started here, stopped on exit
apt_updated=false

say() { echo "$prog: $*" >&2; }
die() {
	say "error: $*"
	exit 1
}

on_exit() {
	local status=$? i
	set +e
	for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do
		eval "${cleanups[i]}" >/dev/null 2>&1
	done
	stop_pidfiles "${pidfiles[@]}"
	if [ -n "$tmp" ]; then
		rm -rf "$tmp"
	fi
	exit "$status"
}

# stop_pidfiles FILE...: stops the processes whose pids the files hold, all
# at once, waiting up to 10 s for them to exit (a zombie counts as exited:
# daemons are reaped by init, at its own pace).
stop_pidfiles() {
	local f pid pids=() left i
	for f in "$@"; do
		if [ -s "$f" ] && pid=$(cat "$f") && kill "$pid" 2>/dev/null; then
			pids+=("$pid")
		fi
	done
	for ((i = 0; i < 100; i++)); do
		left=()
		for pid in "${pids[@]}"; do
			if [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
				left+=("$pid")
			fi
		done
		[ ${#left[@]} -eq 0 ] && return 0
		sleep 0.1
	done
	kill -9 "${left[@]}" 2>/dev/null
	return 0
}

tmpdir() {
	if [ -z "$tmp" ]; then
		tmp=$(mktemp -d "${TMPDIR:-/tmp}/sesh-testservers.XXXXXX")
		chmod 755 "$tmp"
	fi
}

have() { command -v "$1" >/dev/null 2>&1; }

# wait_for DESCRIPTION CMD...: polls CMD every 0.1 s until it succeeds, for
# at most WAIT_STEPS polls.
wait_for() {
	local what=$1 i
	shift
	for ((i = 0; i < WAIT_STEPS; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	die "$what: not ready after $((WAIT_STEPS / 10)) s"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# apt_install PACKAGE...: installs Debian packages (root only).
apt_install() {
	[ "$(id -u)" -eq 0 ] || return 1
	have apt-get || return 1
	if ! $apt_updated; then
		apt-get update -qq >/dev/null 2>&1 || return 1
		apt_updated=true
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

# need_bin BINARY PACKAGE: makes sure BINARY is installed, installing
# PACKAGE if not, in which case it sets how=installed.
need_bin() {
	if have "$1" || [ -x "$1" ]; then
		return 0
	fi
	apt_install "$2" || die "$1 is not installed and package $2 could not be installed"
	have "$1" || [ -x "$1" ] || die "package $2 installed no $1"
	how=installed
}

### Redis helpers (redis-cli is in the redis-tools package)

rcli() { # rcli PORT ARGS...
	local port=$1
	shift
	timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

redis_pong() { [ "$(rcli "$1" ping)" = PONG ]; }

# start_redis PORT ARGS...: a redis-server daemon on 127.0.0.1:PORT with its
# files in $tmp, stopped on exit by its pid.
start_redis() {
	local port=$1
	shift
	tmpdir
	redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
		--dir "$tmp" --pidfile "$tmp/redis-$port.pid" --logfile "$tmp/redis-$port.log" "$@" \
		</dev/null >/dev/null 2>&1 || die "redis-server on port $port did not start (see $tmp/redis-$port.log)"
	pidfiles+=("$tmp/redis-$port.pid")
	wait_for "redis-server on port $port" redis_pong "$port"
}

# need_redis: redis-server and redis-cli, installed if missing (sets how).
need_redis() {
	need_bin redis-server redis-server
	need_bin redis-cli redis-tools
}

### PostgreSQL

PG_URL="postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

pg_ok() { psql "$PG_URL" -Atqc 'select 1' >/dev/null 2>&1; }

setup_postgres() {
	local how=started ver
	export SESH_TEST_POSTGRES=$PG_URL
	if have psql && pg_ok; then
		say "postgres 127.0.0.1:5432 reused"
		return
	fi
	if [ -z "$(ls /etc/postgresql 2>/dev/null)" ] || ! have pg_ctlcluster; then
		apt_install postgresql || die "postgres: not running and the postgresql package could not be installed"
		how=installed
	fi
	ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1 || true)
	[ -n "$ver" ] || die "postgres: no cluster in /etc/postgresql"
	if ! pg_isready -q -h 127.0.0.1 -p 5432; then
		if port_open 5432; then
			die "postgres: port 5432 is taken by something that is not PostgreSQL"
		fi
		pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1 </dev/null ||
			die "postgres: pg_ctlcluster $ver main start failed"
		cleanups+=("pg_ctlcluster --skip-systemctl-redirect $ver main stop")
	fi
	wait_for "postgres" pg_isready -q -h 127.0.0.1 -p 5432
	if ! pg_ok; then
		# A fresh cluster: trust loopback, and make the test database.
		local hba=/etc/postgresql/$ver/main/pg_hba.conf
		if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
			sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
			runuser -u postgres -- psql -qc 'select pg_reload_conf()' >/dev/null 2>&1
			sleep 0.5
		fi
		runuser -u postgres -- psql -qc 'create database test' >/dev/null 2>&1 || true
	fi
	pg_ok || die "postgres: cannot connect to $PG_URL"
	say "postgres 127.0.0.1:5432 $how"
}

### MariaDB / MySQL

MYSQL_DSN="root@tcp(127.0.0.1:3306)/test"

# The client and admin tool: MariaDB's names, or MySQL's.
my_cli() { if have mariadb; then echo mariadb; else echo mysql; fi; }
my_admin() { if have mariadb-admin; then echo mariadb-admin; else echo mysqladmin; fi; }
my_ok() { timeout 5 "$(my_cli)" -h127.0.0.1 -P3306 -uroot -e 'select 1' test >/dev/null 2>&1; }
my_ping() { timeout 5 "$(my_admin)" "$@" ping >/dev/null 2>&1; }

setup_mysql() {
	local how=started
	export SESH_TEST_MYSQL=$MYSQL_DSN
	if my_ok; then
		say "mysql 127.0.0.1:3306 reused"
		return
	fi
	if ! [ -x /usr/sbin/mariadbd ] || ! { have mariadb || have mysql; }; then
		apt_install mariadb-server mariadb-client || die "mysql: not running and mariadb-server could not be installed"
		how=installed
	fi
	if ! my_ping -h127.0.0.1 -P3306 -uroot && ! my_ping -uroot; then
		if port_open 3306; then
			die "mysql: port 3306 is taken by a server root cannot log in to"
		fi
		tmpdir
		install -d -o mysql -g mysql /run/mysqld 2>/dev/null || true
		start-stop-daemon --start --oknodo --background --make-pidfile --pidfile "$tmp/mariadb.pid" \
			--exec /usr/sbin/mariadbd </dev/null >/dev/null 2>&1 || die "mysql: mariadbd did not start"
		pidfiles+=("$tmp/mariadb.pid")
	fi
	wait_for "mysql" my_ping -uroot
	if ! my_ok; then
		# A fresh install: root over TCP with no password, and the test
		# database, set up over the socket (unix_socket auth as root).
		timeout 10 "$(my_cli)" -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
			GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
			CREATE DATABASE IF NOT EXISTS test;" >/dev/null 2>&1 || true
	fi
	my_ok || die "mysql: cannot connect as $MYSQL_DSN"
	say "mysql 127.0.0.1:3306 $how"
}

### Redis standalone

setup_redis() {
	local how=started
	export SESH_TEST_REDIS=redis://127.0.0.1:6379/0
	if have redis-cli && redis_pong 6379; then
		say "redis 127.0.0.1:6379 reused"
		return
	fi
	need_redis
	if redis_pong 6379; then # the install started one
		say "redis 127.0.0.1:6379 reused"
		return
	fi
	port_open 6379 && die "redis: port 6379 is taken by something that does not answer PING"
	start_redis 6379
	say "redis 127.0.0.1:6379 $how"
}

### Redis Cluster

cluster_ok() { # cluster_ok PORT...: every node says cluster_state:ok
	local p
	for p in "$@"; do
		rcli "$p" cluster info | grep -q '^cluster_state:ok' || return 1
	done
}

setup_cluster() {
	local how=started base ports p addrs
	need_redis
	for base in 7101 7111 7121 7131 7141; do
		ports=("$base" "$((base + 1))" "$((base + 2))")
		addrs="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
		if cluster_ok "${ports[@]}" &&
			[ "$(rcli "$base" cluster info | tr -d '\r' | sed -n 's/^cluster_size://p')" = 3 ]; then
			export SESH_TEST_REDIS_CLUSTER=$addrs
			say "redis cluster $addrs reused"
			return
		fi
		local free=true
		for p in "${ports[@]}" "$((base + 10000))" "$((base + 10001))" "$((base + 10002))"; do
			if port_open "$p"; then
				free=false
			fi
		done
		$free && break
		ports=()
	done
	[ ${#ports[@]} -eq 3 ] || die "redis cluster: no three free ports in 7101..7143"
	tmpdir
	for p in "${ports[@]}"; do
		start_redis "$p" --cluster-enabled yes --cluster-config-file "$tmp/nodes-$p.conf" \
			--cluster-node-timeout 5000
	done
	timeout 60 redis-cli --cluster create "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" \
		"127.0.0.1:${ports[2]}" --cluster-replicas 0 --cluster-yes </dev/null >"$tmp/cluster-create.log" 2>&1 ||
		die "redis cluster: create failed: $(tail -3 "$tmp/cluster-create.log")"
	wait_for "redis cluster" cluster_ok "${ports[@]}"
	export SESH_TEST_REDIS_CLUSTER=$addrs
	say "redis cluster $addrs $how"
}

### Redis Sentinel

SENTINEL_MASTER=seshmaster

# sentinel_master PORT: the master address the sentinel on PORT knows for
# seshmaster, as "host port", if that master answers.
sentinel_master() {
	local addr
	addr=$(rcli "$1" sentinel get-master-addr-by-name "$SENTINEL_MASTER" | tr '\n' ' ')
	set -- $addr
	[ $# -eq 2 ] && [ "$1" = 127.0.0.1 ] && redis_pong "$2" && echo "$1 $2"
}

setup_sentinel() {
	local how=started sport mport p
	need_redis
	export SESH_TEST_REDIS_SENTINEL_MASTER=$SENTINEL_MASTER
	sport=""
	for p in 26479 26480 26481 26482 26483; do
		if sentinel_master "$p" >/dev/null; then
			export SESH_TEST_REDIS_SENTINEL=127.0.0.1:$p
			say "redis sentinel 127.0.0.1:$p ($SENTINEL_MASTER) reused"
			return
		fi
		if [ -z "$sport" ] && ! port_open "$p"; then
			sport=$p
		fi
	done
	[ -n "$sport" ] || die "redis sentinel: no free port in 26479..26483"
	mport=""
	for p in 6479 6480 6481 6482 6483 6484 6485 6486 6487 6488; do
		if ! port_open "$p"; then
			mport=$p
			break
		fi
	done
	[ -n "$mport" ] || die "redis sentinel: no free port for its master in 6479..6488"
	start_redis "$mport"
	# Sentinel rewrites its configuration file, so it lives in $tmp.
	cat >"$tmp/sentinel.conf" <<-EOF
		bind 127.0.0.1
		port $sport
		daemonize yes
		dir $tmp
		pidfile $tmp/sentinel.pid
		logfile $tmp/sentinel.log
		sentinel monitor $SENTINEL_MASTER 127.0.0.1 $mport 1
		sentinel down-after-milliseconds $SENTINEL_MASTER 5000
		sentinel failover-timeout $SENTINEL_MASTER 60000
	EOF
	redis-server "$tmp/sentinel.conf" --sentinel </dev/null >/dev/null 2>&1 ||
		die "redis sentinel: redis-server --sentinel did not start (see $tmp/sentinel.log)"
	pidfiles+=("$tmp/sentinel.pid")
	wait_for "redis sentinel" sentinel_master "$sport"
	export SESH_TEST_REDIS_SENTINEL=127.0.0.1:$sport
	say "redis sentinel 127.0.0.1:$sport ($SENTINEL_MASTER on 127.0.0.1:$mport) $how"
}

### memcached

MC_PORT=11311

mc_ok() {
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf "version\r\n" >&3 &&
		IFS= read -r -t 2 line <&3 && [[ $line == VERSION* ]]' "$MC_PORT" 2>/dev/null
}

setup_memcached() {
	local how=started bin
	export SESH_TEST_MEMCACHED=127.0.0.1:$MC_PORT
	if mc_ok; then
		say "memcached 127.0.0.1:$MC_PORT reused"
		return
	fi
	port_open "$MC_PORT" && die "memcached: port $MC_PORT is taken by something that is not memcached"
	bin=$(command -v memcached || echo /usr/bin/memcached)
	if ! [ -x "$bin" ]; then
		need_bin memcached memcached
		bin=$(command -v memcached)
	fi
	tmpdir
	local user=()
	[ "$(id -u)" -eq 0 ] && user=(-u root)
	"$bin" -d -l 127.0.0.1 -p "$MC_PORT" -U 0 -m 64 -I 1m -P "$tmp/memcached.pid" "${user[@]}" \
		</dev/null >/dev/null 2>&1 || die "memcached did not start"
	pidfiles+=("$tmp/memcached.pid")
	wait_for "memcached" mc_ok
	say "memcached 127.0.0.1:$MC_PORT $how"
}

### Chromium, for the browser tests

setup_chromium() {
	local how=found bin
	bin=$(command -v chromium || echo /usr/bin/chromium)
	if ! [ -x "$bin" ]; then
		need_bin chromium chromium
		bin=$(command -v chromium)
	fi
	export SESH_TEST_CHROMIUM=$bin
	say "chromium $bin $how"
}

### env: report what is already reachable

print_env() {
	local p base
	if have psql && pg_ok; then echo "export SESH_TEST_POSTGRES='$PG_URL'"; fi
	if my_ok; then echo "export SESH_TEST_MYSQL='$MYSQL_DSN'"; fi
	if have redis-cli; then
		if redis_pong 6379; then echo "export SESH_TEST_REDIS='redis://127.0.0.1:6379/0'"; fi
		for base in 7101 7111 7121 7131 7141; do
			if cluster_ok "$base" "$((base + 1))" "$((base + 2))"; then
				echo "export SESH_TEST_REDIS_CLUSTER='127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))'"
				break
			fi
		done
		for p in 26479 26480 26481 26482 26483; do
			if sentinel_master "$p" >/dev/null; then
				echo "export SESH_TEST_REDIS_SENTINEL='127.0.0.1:$p'"
				echo "export SESH_TEST_REDIS_SENTINEL_MASTER='$SENTINEL_MASTER'"
				break
			fi
		done
	fi
	if mc_ok; then echo "export SESH_TEST_MEMCACHED='127.0.0.1:$MC_PORT'"; fi
	if have chromium; then echo "export SESH_TEST_CHROMIUM='$(command -v chromium)'"; fi
}

usage() {
	echo "usage: $0 run -- CMD [ARGS...] | $0 env" >&2
	exit 2
}

case "${1:-}" in
env)
	print_env
	;;
run)
	shift
	[ "${1:-}" = -- ] && shift
	[ $# -gt 0 ] || usage
	trap on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	for kind in $KINDS; do
		case $kind in
		postgres) setup_postgres ;;
		mysql) setup_mysql ;;
		redis) setup_redis ;;
		cluster) setup_cluster ;;
		sentinel) setup_sentinel ;;
		memcached) setup_memcached ;;
		chromium) setup_chromium ;;
		*) die "unknown kind $kind in TESTSERVERS_ONLY" ;;
		esac
	done
	set +e
	"$@"
	exit $?
	;;
*)
	usage
	;;
esac
