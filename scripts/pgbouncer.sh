#!/usr/bin/env bash
# Starts (or stops) a PgBouncer in front of the local PostgreSQL, for the tests:
#
#   scripts/pgbouncer.sh start MODE PORT   MODE: session or transaction
#   scripts/pgbouncer.sh stop PORT
#
# Every database of the server is reachable through it (a `*` fallback entry), as the users
# of $CSBS_PGBOUNCER_USERS (default postgres) without a password (auth_type = trust: loopback
# only, for tests). Installs Debian's pgbouncer
# package (1.18 on Debian 12) when it is missing. Its files live in $CSBS_PGBOUNCER_DIR
# (default /tmp/csbs-pgbouncer-PORT); it runs as the `postgres` user, since PgBouncer refuses to
# run as root. Then run the tests through it:
#
#   CSBS_TEST_PGBOUNCER_URL=postgres://postgres@127.0.0.1:PORT \
#   CSBS_TEST_PGBOUNCER_POOL_MODE=MODE cargo test -p csbs-api
set -euo pipefail

usage() {
    echo "usage: $0 start session|transaction PORT | stop PORT" >&2
    exit 2
}

POSTGRES_HOST="${CSBS_PGBOUNCER_SERVER_HOST:-127.0.0.1}"
POSTGRES_PORT="${CSBS_PGBOUNCER_SERVER_PORT:-5432}"

install_pgbouncer() {
    command -v pgbouncer >/dev/null 2>&1 && return 0
    echo "installing pgbouncer (Debian package)" >&2
    # The package's own service would start on the default port; the tests start their own.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
    rm -f /usr/sbin/policy-rc.d
}

start() {
    local mode="$1" port="$2" dir
    case "$mode" in session | transaction) ;; *) usage ;; esac
    dir="${CSBS_PGBOUNCER_DIR:-/tmp/csbs-pgbouncer-$port}"
    install_pgbouncer
    stop "$port"
    mkdir -p "$dir"
    # trust still takes only the users the auth file lists.
    # shellcheck disable=SC2086 # a list of names, split on purpose
    printf '"%s" ""\n' ${CSBS_PGBOUNCER_USERS:-postgres} >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=$POSTGRES_HOST port=$POSTGRES_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = $mode
; Each test has a database of its own, each database a pool: many small pools.
max_client_conn = 2000
default_pool_size = 8
max_db_connections = 0
; Pools of dropped test databases go away soon.
autodb_idle_timeout = 60
server_reset_query = DISCARD ALL
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
    chown -R postgres:postgres "$dir"
    pgbouncer -d -u postgres "$dir/pgbouncer.ini"
    for _ in $(seq 1 50); do
        if pg_isready -q -h 127.0.0.1 -p "$port" -d postgres 2>/dev/null; then
            echo "pgbouncer $(pgbouncer --version | head -n 1 | awk '{print $2}') in $mode mode on 127.0.0.1:$port" >&2
            return 0
        fi
        sleep 0.1
    done
    cat "$dir/pgbouncer.log" >&2 || true
    echo "pgbouncer did not start on port $port" >&2
    exit 1
}

stop() {
    local port="$1" dir pid
    dir="${CSBS_PGBOUNCER_DIR:-/tmp/csbs-pgbouncer-$port}"
    [ -f "$dir/pgbouncer.pid" ] || return 0
    pid="$(cat "$dir/pgbouncer.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    rm -f "$dir/pgbouncer.pid"
}

case "${1:-}" in
    start) [ $# = 3 ] || usage; start "$2" "$3" ;;
    stop) [ $# = 2 ] || usage; stop "$2" ;;
    *) usage ;;
esac
