# What the wrk runs (soak.sh, ingest-bench.sh) share, sourced by them: a release build of the
# service on a fresh PostgreSQL database and a free loopback port.
#
#   prepare_service DATABASE     wrk and the binary at hand, the database made anew; sets
#                                binary, work, url, port, admin_url and the service's
#                                environment
#   start_service                serves (log in $work/service.log), drops the database at
#                                exit, returns once the service is ready; sets pid

prepare_service() {
    database="$1"
    admin_url="${CSBS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
    binary="${CSBS_BINARY:-target/release/csbs-api}"
    command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
    [ -x "$binary" ] || cargo build --release -q -p csbs-api
    work="$(mktemp -d)"
    psql "$admin_url" -q -c "DROP DATABASE IF EXISTS $database" -c "CREATE DATABASE $database"
    url="${admin_url%/*}/$database"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    export DATABASE_URL="$url" CSBS__DATA_DIR="$work" CSBS__LOG__FILTER=warn \
        CSBS__SERVER__BIND="127.0.0.1:$port"
}

start_service() {
    "$binary" serve >"$work/service.log" 2>&1 &
    pid=$!
    trap stop_service EXIT
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0
        sleep 0.2
    done
    echo "the service did not get ready; it said:" >&2
    tail -n 20 "$work/service.log" >&2
    return 1
}

stop_service() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    psql "$admin_url" -q -c "DROP DATABASE IF EXISTS $database" || true
    rm -rf "$work"
}
