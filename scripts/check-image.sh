#!/usr/bin/env bash
# Builds the container image from the real Dockerfile with podman, then runs what was built.
#
#   1. base images: the local stand-ins of scripts/image-stand-ins.sh, unless they are present
#      (pulled from a registry, or made by an earlier run)
#   2. podman build --isolation chroot --pull=never: the Dockerfile as it is
#   3. the image's file system (podman export of a created, never started, container) is
#      entered with chroot as the image's user (65532), with the image's environment and its
#      entry point, twice:
#        - as the image starts by default: SQLite in its data volume, a generated secret
#        - against the local PostgreSQL (DATABASE_URL), as docker-compose.yml runs it
#      and each run must pass `csbs-api healthcheck`, answer /readyz 200, store an item through
#      the ingest API and count it, and leave its files in the data folder owned by 65532;
#      SIGTERM must stop it cleanly.
#
# This machine's sandbox refuses `podman run` (the runtime's rlimit calls), hence chroot: it
# runs the same binary on the same files, without the container's namespaces. The only
# setting changed from the image's is the listening address (a free loopback port).
#
# Needs root, podman and debootstrap (installed from Debian's packages when missing), curl,
# python3 and, for the PostgreSQL
# run, the server at $CSBS_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# Cargo's registry and target folders are cache mounts of the build: a second build on the same
# machine compiles only what changed.
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${CSBS_IMAGE:-localhost/csbs-api:check}"
ADMIN_URL="${CSBS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PROJECT="image-check"

log() { printf '\n== %s\n' "$*" >&2; }
die() {
    echo "FAILED: $*" >&2
    exit 1
}

WORK="$(mktemp -d)"
FS="$WORK/rootfs"
SERVER_PID=""
MOUNTED=()
DATABASE=""

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount -l "${MOUNTED[$i]}" 2>/dev/null || true
    done
    if [ -n "$DATABASE" ]; then
        psql "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- build ------------------------------------------------------------------------------------

missing=()
for tool in podman debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bash "$ROOT_DIR/scripts/image-stand-ins.sh"

log "podman build $IMAGE"
started=$SECONDS
# Docker's image format, which keeps the HEALTHCHECK (OCI's has no such field).
podman build --isolation chroot --pull=never --layers --format docker -t "$IMAGE" "$ROOT_DIR" >&2
echo "image built in $((SECONDS - started)) s" >&2

# --- the image's file system, its user and environment -----------------------------------------

container="$(podman create "$IMAGE")"
mkdir -p "$FS"
podman export "$container" | tar -C "$FS" -x
podman rm "$container" >/dev/null

image_user="$(podman image inspect --format '{{.Config.User}}' "$IMAGE")"
[ "$image_user" = "65532:65532" ] || die "the image runs as '$image_user', not 65532:65532"
mapfile -t IMAGE_ENV < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
healthcheck="$(podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$IMAGE")"
[ "$healthcheck" = '["CMD","/app/csbs-api","healthcheck"]' ] ||
    die "unexpected health check '$healthcheck'"
entrypoint="$(podman image inspect --format '{{join .Config.Entrypoint " "}}' "$IMAGE")"
[ "$entrypoint" = "/app/csbs-api" ] || die "unexpected entry point '$entrypoint'"
data_dir="$(printf '%s\n' "${IMAGE_ENV[@]}" | sed -n 's/^CSBS__DATA_DIR=//p')"
[ -n "$data_dir" ] || die "the image sets no CSBS__DATA_DIR"
[ "$(stat -c %u:%g "$FS$data_dir")" = "65532:65532" ] ||
    die "$data_dir in the image is owned by $(stat -c %u:%g "$FS$data_dir"), not 65532"
[ ! -e "$FS/bin/sh" ] || echo "note: the runtime image has a shell (/bin/sh)" >&2

# What a container gets from its engine: /proc (the binary finds config/ from its own path),
# /dev, and the host's name resolution.
for dir in proc dev; do
    mkdir -p "$FS/$dir"
    mount --bind "/$dir" "$FS/$dir"
    MOUNTED+=("$FS/$dir")
done
mkdir -p "$FS/etc"
cp /etc/hosts "$FS/etc/hosts"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Runs the image's binary in its file system as its user with its environment and $EXTRA_ENV.
in_image() {
    env -i "${IMAGE_ENV[@]}" "${EXTRA_ENV[@]}" chroot --userspec=65532:65532 "$FS" /app/csbs-api "$@"
}

check_run() {
    local what="$1"
    local port base token service_token item status count
    port="$(free_port)"
    base="http://127.0.0.1:$port"
    EXTRA_ENV+=("CSBS__SERVER__BIND=127.0.0.1:$port")
    log "run: $what"
    # Not through in_image: a function in the background is a subshell, whose pid $! would be.
    env -i "${IMAGE_ENV[@]}" "${EXTRA_ENV[@]}" chroot --userspec=65532:65532 "$FS" \
        /app/csbs-api serve >"$WORK/serve.log" 2>&1 &
    SERVER_PID=$!

    local ready=""
    for _ in $(seq 1 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            cat "$WORK/serve.log" >&2
            die "$what: the service exited while starting"
        fi
        if in_image healthcheck 2>/dev/null; then
            ready=1
            break
        fi
        sleep 0.2
    done
    [ -n "$ready" ] || { cat "$WORK/serve.log" >&2; die "$what: healthcheck never passed"; }
    echo "healthcheck: passed" >&2

    status="$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")"
    [ "$status" = 200 ] || die "$what: /readyz answered $status"

    token="$(in_image token --project-id "$PROJECT")"
    service_token="$(in_image token --project-id "$PROJECT" --role csbs_service)"
    item="$(head -n 1 "$ROOT_DIR/examples/items.jsonl")"
    local id body
    id="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["id"])' "$item")"
    body="$(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); d.pop("project_id"); d["version"] = 1; print(json.dumps(d))' "$item")"
    status="$(curl -s -o "$WORK/put.json" -w '%{http_code}' -X PUT \
        -H "X-Auth-Token: $service_token" -H 'Content-Type: application/json' \
        --data "$body" "$base/ingest/v1/$PROJECT/checkpoint_items/$id")"
    [ "$status" = 201 ] || { cat "$WORK/put.json" >&2; die "$what: the write answered $status"; }

    count="$(curl -s -H "X-Auth-Token: $token" "$base/v1/$PROJECT/checkpoint_items/count" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])')"
    [ "$count" = 1 ] || die "$what: count is $count after one write"
    echo "write: 201; count: $count" >&2

    local foreign
    foreign="$(find "$FS$data_dir" ! -user 65532 -print)"
    [ -z "$foreign" ] || die "$what: files in $data_dir not owned by 65532: $foreign"
    echo "data folder: $(find "$FS$data_dir" -mindepth 1 -printf '%P ')(all owned by 65532)" >&2

    kill -TERM "$SERVER_PID"
    local code=0
    wait "$SERVER_PID" || code=$?
    SERVER_PID=""
    [ "$code" = 0 ] || { cat "$WORK/serve.log" >&2; die "$what: exit status $code after SIGTERM"; }
    echo "SIGTERM: exited 0" >&2
}

EXTRA_ENV=()
check_run "the image's defaults (SQLite in $data_dir)"
# The volume is writable by the image's user: the database and the development secret are in it.
for file in csbs.db hmac-secret; do
    [ -f "$FS$data_dir/$file" ] || die "the default run left no $file in $data_dir"
done

DATABASE="csbs_image_check_$$"
psql "$ADMIN_URL" -q -c "CREATE DATABASE $DATABASE" >/dev/null
pg_url="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$ADMIN_URL" "$DATABASE")"
# A new data volume, as a new compose project gets.
find "$FS$data_dir" -mindepth 1 -delete
EXTRA_ENV=("DATABASE_URL=$pg_url" "CSBS__AUTH__HMAC_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')")
check_run "against PostgreSQL, as docker-compose.yml runs it"

log "image checks passed"
