#!/usr/bin/env bash
# A real Keystone on a loopback port, for the Keystone tests and for trying the service in an
# OpenStack-style set-up: `scripts/keystone.sh start`, `stop` or `status`.
#
# start: installs Debian's keystone (22.x), uwsgi and curl when missing (service start-up suppressed
# during the install, so no web server is pulled in or started, and no system service is left
# running), configures it in a folder of its own (SQLite, Fernet keys), runs db_sync,
# fernet_setup, credential_setup and bootstrap, serves it with uwsgi in the background, and
# creates the accounts, projects, roles and the `data-protect` catalog entry the tests need
# (scripts/keystone-provision.py). Run again, it does only what is missing. It writes the
# environment file the tests read (CSBS_TEST_KEYSTONE_ENV, see below).
#
# Settings (environment):
#   CSBS_KEYSTONE_DIR   state folder (config, database, keys, logs)   /var/tmp/csbs-keystone
#   CSBS_KEYSTONE_PORT  Keystone's loopback port                      5050
#   CSBS_API_PORT       the service's port in the data-protect endpoint 8080
set -euo pipefail

STATE_DIR="${CSBS_KEYSTONE_DIR:-/var/tmp/csbs-keystone}"
PORT="${CSBS_KEYSTONE_PORT:-5050}"
API_PORT="${CSBS_API_PORT:-8080}"
URL="http://127.0.0.1:${PORT}/v3"
CONF="$STATE_DIR/keystone.conf"
PID_FILE="$STATE_DIR/uwsgi.pid"
ENV_FILE="$STATE_DIR/keystone.env"
HERE="$(cd "$(dirname "$0")" && pwd)"

say() { echo "keystone.sh: $*" >&2; }

install_packages() {
    if command -v keystone-manage >/dev/null 2>&1 &&
        [ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] &&
        command -v curl >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        say "Keystone is not installed, and installing it needs root"
        exit 1
    fi
    # Debian starts a package's services on install unless policy-rc.d says no (101). Keep a
    # policy that is already there (container images ship one); remove only our own.
    local own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=yes
    fi
    say "installing keystone and uwsgi from Debian's packages"
    local status=0
    {
        apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                keystone uwsgi-core uwsgi-plugin-python3 curl
    } >"${TMPDIR:-/tmp}/csbs-keystone-apt.log" 2>&1 || status=$?
    if [ -n "$own_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    if [ "$status" != 0 ]; then
        tail -n 30 "${TMPDIR:-/tmp}/csbs-keystone-apt.log" >&2
        say "apt-get failed ($status)"
        exit 1
    fi
}

# A secret made once and kept in the state folder, so that every run agrees.
secret() {
    local file="$STATE_DIR/secrets/$1"
    if [ ! -s "$file" ]; then
        (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(16))' >"$file")
    fi
    cat "$file"
}

configure() {
    mkdir -p "$STATE_DIR/fernet-keys" "$STATE_DIR/credential-keys" "$STATE_DIR/secrets"
    chmod 700 "$STATE_DIR/secrets"
    cat >"$CONF" <<EOF
# Written by scripts/keystone.sh; rewritten on every start.
[DEFAULT]
log_file = $STATE_DIR/keystone.log

[database]
connection = sqlite:///$STATE_DIR/keystone.db

[token]
provider = fernet
expiration = 3600

[fernet_tokens]
key_repository = $STATE_DIR/fernet-keys

[fernet_receipts]
key_repository = $STATE_DIR/fernet-keys

[credential]
key_repository = $STATE_DIR/credential-keys

[cache]
enabled = false
EOF
    local manage=(keystone-manage --config-file "$CONF")
    "${manage[@]}" db_sync
    # oslo.db opens a real transaction for every read, and Keystone sometimes leaves one open
    # until the garbage collector closes its connection; in SQLite's default journal that read
    # lock makes the next write wait and fail ("database is locked"). In WAL mode readers never
    # block the writer. The mode is kept in the database file.
    python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' \
        "$STATE_DIR/keystone.db"
    if [ -z "$(ls -A "$STATE_DIR/fernet-keys")" ]; then
        "${manage[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    fi
    if [ -z "$(ls -A "$STATE_DIR/credential-keys")" ]; then
        "${manage[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    fi
    "${manage[@]}" bootstrap \
        --bootstrap-password "$(secret admin)" \
        --bootstrap-username admin \
        --bootstrap-project-name admin \
        --bootstrap-role-name admin \
        --bootstrap-service-name keystone \
        --bootstrap-region-id RegionOne \
        --bootstrap-admin-url "$URL" \
        --bootstrap-public-url "$URL" \
        --bootstrap-internal-url "$URL" >/dev/null
}

running() {
    [ -s "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

answers() {
    curl -sf -o /dev/null --max-time 2 "$URL"
}

serve() {
    if running && answers; then
        return
    fi
    if running; then
        stop
    fi
    # Plain HTTP (--http-socket), as many deployments run it: it drops idle keep-alive
    # connections without a word, which the service's validator must survive. One process:
    # SQLite takes one writer at a time, and threads of one process share its engine.
    uwsgi --plugin python3 \
        --http-socket "127.0.0.1:$PORT" \
        --wsgi-file /usr/bin/keystone-wsgi-public \
        --env "OS_KEYSTONE_CONFIG_FILES=$CONF" \
        --master --processes 1 --threads 4 --lazy-apps --need-app \
        --buffer-size 65535 --die-on-term \
        --pidfile "$PID_FILE" \
        --daemonize "$STATE_DIR/uwsgi.log"
    for _ in $(seq 1 120); do
        answers && return
        sleep 0.5
    done
    tail -n 30 "$STATE_DIR/uwsgi.log" >&2 || true
    say "Keystone did not answer at $URL within 60 s"
    exit 1
}

provision() {
    KEYSTONE_URL="$URL" \
        KEYSTONE_ADMIN_PASSWORD="$(secret admin)" \
        KEYSTONE_SERVICE_PASSWORD="$(secret service)" \
        KEYSTONE_USER_PASSWORD="$(secret users)" \
        CSBS_ENDPOINT="http://127.0.0.1:${API_PORT}/v1/\$(project_id)s" \
        KEYSTONE_ENV_FILE="$ENV_FILE" \
        python3 "$HERE/keystone-provision.py"
}

stop() {
    if running; then
        local pid
        pid="$(cat "$PID_FILE")"
        kill -TERM "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
    fi
    rm -f "$PID_FILE"
}

case "${1:-start}" in
    start)
        install_packages
        mkdir -p "$STATE_DIR"
        if ! running; then
            configure
        fi
        serve
        provision
        say "Keystone answers at $URL; the tests read $ENV_FILE"
        echo "CSBS_TEST_KEYSTONE_ENV=$ENV_FILE"
        ;;
    stop)
        stop
        say "stopped"
        ;;
    status)
        if running && answers; then
            say "running at $URL (pid $(cat "$PID_FILE"))"
        else
            say "not running"
            exit 1
        fi
        ;;
    *)
        echo "usage: $0 [start|stop|status]" >&2
        exit 2
        ;;
esac
