#!/usr/bin/env bash
# Fuzzes the service against its own OpenAPI document with schemathesis.
#
# Builds csbs-api, starts it on a free port with a fresh SQLite database in a temporary folder,
# loads a few backups, mints one token with the administrator and service roles (so that every
# route, ingest included, is reachable), and lets schemathesis call every operation of
# /openapi.json; then runs stateful sequences along the document's links as a tenant, an
# administrator and a backup engine, each with its own token. A run fails on any answer that
# is a 5xx, that does not match its declared schema, headers or content type, whose status the
# document does not list, a 405 without a correct Allow, or a created item that cannot be read.
#
#   bash scripts/fuzz-api.sh                      # the short CI pass
#   CSBS_FUZZ_MAX_EXAMPLES=500 bash scripts/fuzz-api.sh   # a longer hunt
#
# Environment:
#   CSBS_FUZZ_MAX_EXAMPLES  test cases per operation and phase (default 50)
#   CSBS_FUZZ_SEED          hypothesis seed (default: fixed, so CI runs are repeatable;
#                           "random" for a new one each run)
#   CSBS_FUZZ_MODE          positive, negative or all (default all: both passes below)
#   CSBS_FUZZ_NEGATIVE_WRITES  0 keeps invalid data away from the ingest writes (default 1)
#   CSBS_FUZZ_KEEP          1 keeps the temporary folder (database, service log, reports)
#   CSBS_FUZZ_POSTGRES_URL  fuzz on PostgreSQL instead of SQLite: an administrator's URL
#                           (postgres://postgres@127.0.0.1:5432/postgres); a database is made
#                           for the run and dropped after it (needs psql)
#   CSBS_FUZZ_REPORTS       schemathesis report formats (default junit; e.g. junit,har)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MAX_EXAMPLES="${CSBS_FUZZ_MAX_EXAMPLES:-50}"
SEED="${CSBS_FUZZ_SEED:-20261127}"
MODE="${CSBS_FUZZ_MODE:-all}"
# Pinned: checks, their names and the command line change between releases.
SCHEMATHESIS_VERSION="4.32.5"
PROJECT="0123456789abcdef0123456789abcdef"
started=$(date +%s)

say() { printf 'fuzz-api: %s\n' "$*" >&2; }

# --- schemathesis, in its own virtualenv --------------------------------------------------------
# Python 3.12 or later: on 3.11, hypothesis' strategy descriptions can hit a CPython bug
# ("AST constructor recursion depth mismatch") that aborts whole operations.
pick_python() {
    local candidate
    for candidate in "${CSBS_FUZZ_PYTHON:-}" python3.13 python3.12 \
        "$(pyenv root 2>/dev/null)"/versions/3.1[3-9]*/bin/python3 \
        "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3 python3; do
        [ -n "$candidate" ] || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    return 1
}
PYTHON=$(pick_python) || {
    say "schemathesis needs Python 3.12 or later; set CSBS_FUZZ_PYTHON to one"
    exit 1
}
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV="${HOME}/.cache/csbs-fuzz/py$PY_VERSION-schemathesis$SCHEMATHESIS_VERSION"
if ! "$VENV/bin/schemathesis" --version >/dev/null 2>&1; then
    say "installing schemathesis $SCHEMATHESIS_VERSION for Python $PY_VERSION into $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# --- the service ------------------------------------------------------------------------------
say "building csbs-api"
cargo build --quiet -p csbs-api
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/csbs-api"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/csbs-fuzz.XXXXXX")
SERVICE_PID=""
PG_DATABASE=""
cleanup() {
    status=$?
    if [ -n "$SERVICE_PID" ] && kill -0 "$SERVICE_PID" 2>/dev/null; then
        kill "$SERVICE_PID" 2>/dev/null || true
        wait "$SERVICE_PID" 2>/dev/null || true
    fi
    if [ -n "$PG_DATABASE" ]; then
        psql "$CSBS_FUZZ_POSTGRES_URL" -q -c "DROP DATABASE IF EXISTS $PG_DATABASE" >/dev/null 2>&1 || true
    fi
    if [ "${CSBS_FUZZ_KEEP:-0}" = 1 ] || [ "$status" -ne 0 ]; then
        say "kept $WORK (service.log, report/)"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The service, `import` and `token` share these settings: one database, one signing secret.
export CSBS__DATA_DIR="$WORK/data"
export DATABASE_URL="sqlite://$WORK/csbs.db"
if [ -n "${CSBS_FUZZ_POSTGRES_URL:-}" ]; then
    PG_DATABASE="csbs_fuzz_$(basename "$WORK" | tr -dc '[:alnum:]' | tr '[:upper:]' '[:lower:]')"
    psql "$CSBS_FUZZ_POSTGRES_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DATABASE" >/dev/null
    DATABASE_URL="${CSBS_FUZZ_POSTGRES_URL%/*}/$PG_DATABASE"
fi
export CSBS__SERVER__BIND="127.0.0.1:0"
export CSBS__SERVER__WORKERS=2
export CSBS__SERVER__SHUTDOWN_GRACE_SECONDS=1
export CSBS__LOG__FORMAT=json
export CSBS__AUTH__HMAC_SECRET
CSBS__AUTH__HMAC_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
unset CSBS_ENV RUST_LOG

# A few backups of one tenant, the ids of the document's examples among them, so that the
# examples phase reads, changes and deletes real items. Every status and shape the service
# answers with: nulls, unknown keys, floats with their digits, empty and IPv6 addresses.
cat >"$WORK/items.jsonl" <<EOF
{"project_id": "$PROJECT", "policy_id": "5f5c3bbb-8a1c-4d1e-9d5c-6a4f0e8e1a01", "id": "7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12", "name": "backup-c2c", "description": "nightly", "status": "available", "checkpoint_id": "2eefe592-8424-4778-8d0d-962c8a5dd6a4", "resource_id": "f8ddc472-cf00-4384-851e-5f2a68c33762", "resource_type": "OS::Nova::Server", "created_at": "2018-08-14T07:53:15.663766", "updated_at": "2018-08-17T04:33:58.025327", "protected_at": null, "tags": [], "backup_data": {"eip": "80.158.17.102", "private_ip": "192.168.0.209", "ram": 8192, "vcpus": 4, "disk": 0, "imagetype": "gold", "cloudservicetype": "QEMU", "__openstack_region_name": ""}, "extend_info": {"auto_trigger": false, "incremental": false, "progress": 100, "size": 146184, "average_speed": 25.2, "space_saving_ratio": 6.50, "copy_status": "na", "copy_from": null, "fail_code": {}, "fail_op": "", "fail_reason": "", "image_type": "backup", "resource_az": "eu-de-02", "resource_name": "ecs-web-01", "resource_type": "OS::Nova::Server", "finished_at": "2018-08-14T08:31:08.720800", "supported_restore_mode": "backup", "support_lld": true, "hypervisor_type": "QEMU", "taskid": "1afcab08-9f97-11e8-9526-286ed488ca8c", "os_images_data": [], "volume_backups": [{"id": "0f0e8c43-9fd6-4d5e-9a43-7d1bb3c1fb21", "name": "vol-1", "status": "available", "bootable": true, "incremental": false, "image_type": "backup", "size": 40960, "average_speed": 12.5, "space_saving_ratio": 1.5e3, "source_volume_id": "b5f0a4a2-1a0c-4cf0-a3a4-1d8a5c0f9d10", "source_volume_size": 40, "source_volume_name": "sys", "snapshot_id": "e3b0c442-98fc-4c14-9afb-f4c8996fb924"}]}}
{"project_id": "$PROJECT", "id": "1c4a9bd0-3a5e-4b0b-8f8e-2b2b8c6f7d01", "name": "backup-web-02", "status": "error", "checkpoint_id": "2eefe592-8424-4778-8d0d-962c8a5dd6a4", "resource_id": "f8ddc472-cf00-4384-851e-5f2a68c33762", "resource_type": "OS::Nova::Server", "created_at": "2019-01-02T03:04:05Z", "tags": [{"key": "env", "value": "prod"}], "backup_data": {"eip": "", "private_ip": "2001:DB8::0:1"}, "extend_info": {"fail_code": {"Code": "BackupService.6999", "Description": "timeout"}, "fail_reason": "timeout", "progress": 40, "future_key": {"nested": [1, 2.50, null]}}, "unknown_top_level": "kept"}
{"project_id": "$PROJECT", "id": "9a3e7c5d-0f2b-4c8e-a1d6-4b5c6d7e8f90", "name": "backup-db-01", "status": "protecting", "checkpoint_id": "3c2d1e0f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "resource_id": "0d5c8f1e-2b3a-4c5d-9e8f-7a6b5c4d3e2f", "resource_type": "OS::Cinder::Volume", "created_at": "2020-02-29T23:59:59.5+02:00", "extend_info": {"progress": 12.5, "resource_az": "eu-de-01", "image_type": "replication", "copy_status": "copying"}}
{"project_id": "$PROJECT", "id": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", "name": "backup-old", "status": "deleted", "checkpoint_id": "4d3e2f1a-6b7c-4d8e-9f0a-1b2c3d4e5f60", "resource_id": "f8ddc472-cf00-4384-851e-5f2a68c33762", "resource_type": "OS::Nova::Server", "created_at": "2017-04-15T04:20:37.277880", "protected_at": "2017-04-15T05:00:00", "extend_info": null, "backup_data": null, "tags": null, "description": null}
{"project_id": "$PROJECT", "id": "6f7a8b9c-0d1e-4f2a-b3c4-d5e6f7a8b9c0", "name": "backup-restoring", "status": "waiting_delete", "checkpoint_id": "4d3e2f1a-6b7c-4d8e-9f0a-1b2c3d4e5f60", "resource_id": "f8ddc472-cf00-4384-851e-5f2a68c33762", "resource_type": "OS::Nova::Server", "created_at": "2021-06-30T12:00:00.000001"}
{"project_id": "other-tenant_1", "id": "7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12", "name": "same id, other tenant", "status": "available", "checkpoint_id": "2eefe592-8424-4778-8d0d-962c8a5dd6a4", "resource_id": "r-1", "resource_type": "OS::Nova::Server", "created_at": "2022-12-31T23:59:59.999999"}
EOF
say "loading $(wc -l <"$WORK/items.jsonl") backups"
"$BIN" import "$WORK/items.jsonl" >"$WORK/import.log" 2>&1 || {
    cat "$WORK/import.log" >&2
    exit 1
}
TOKEN=$("$BIN" token --project-id "$PROJECT" --role admin --role csbs_service --ttl 2h 2>/dev/null)
# The stateful passes run as each kind of caller alone: the tenant itself, an administrator
# (of another project), and a backup engine (the service role).
TENANT_TOKEN=$("$BIN" token --project-id "$PROJECT" --ttl 2h 2>/dev/null)
ADMIN_TOKEN=$("$BIN" token --project-id ops --role admin --ttl 2h 2>/dev/null)
SERVICE_TOKEN=$("$BIN" token --project-id engines --role csbs_service --ttl 2h 2>/dev/null)

"$BIN" serve >"$WORK/service.log" 2>&1 &
SERVICE_PID=$!
PORT=""
for _ in $(seq 1 100); do
    PORT=$(sed -n 's/.*"message":"listening","port":\([0-9]*\).*/\1/p' "$WORK/service.log" | head -n 1)
    if [ -n "$PORT" ] && curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
        break
    fi
    kill -0 "$SERVICE_PID" 2>/dev/null || {
        cat "$WORK/service.log" >&2
        say "the service did not start"
        exit 1
    }
    sleep 0.2
done
[ -n "$PORT" ] || {
    say "the service reported no port"
    exit 1
}
BASE="http://127.0.0.1:$PORT"
say "service at $BASE (pid $SERVICE_PID) on ${DATABASE_URL%%:*}; $MAX_EXAMPLES examples per operation, mode $MODE, seed $SEED"

# --- the run ----------------------------------------------------------------------------------
# Generated data alone rarely names a stored item or the tenant that holds them, and reuses
# a few idempotency keys everywhere (so most writes would replay or conflict). These hooks
# steer part of the cases towards the stored data; the rest stay as generated.
cat >"$WORK/hooks.py" <<'PYTHON'
import os
import re
import uuid
import zlib
from collections.abc import MutableMapping

import schemathesis

PROJECT = os.environ["CSBS_FUZZ_PROJECT"]
ITEMS = os.environ["CSBS_FUZZ_ITEMS"].split(",")
RECORDS = os.environ["CSBS_FUZZ_RECORDS"].split(",")
PROJECT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
KEY = re.compile(r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$")


def pick(value, choices, salt):
    """`value`, or for about half of the cases one of `choices`; chosen from the case's text
    (not at random) so that a seed replays the same run."""
    digest = zlib.crc32(f"{salt}:{value}".encode())
    return choices[(digest >> 1) % len(choices)] if digest % 2 else value


@schemathesis.hook
def map_case(context, case):
    path = case.path_parameters if isinstance(case.path_parameters, MutableMapping) else {}
    # The coverage phase sends many bodies and queries with the same path: choose per case.
    salt = repr((case.body, case.query))
    creates = case.method == "PUT" or case.path.endswith("/checkpoint_items") and case.method == "POST"
    for key, choices, valid in (
        ("project_id", [PROJECT], PROJECT_ID),
        # A PUT to a new id creates an item; to a stored one it mostly conflicts.
        ("checkpoint_item_id", [] if creates else ITEMS, UUID),
        ("checkpoint_id", RECORDS, UUID),
    ):
        value = path.get(key)
        if not (isinstance(value, str) and valid.match(value)):
            continue
        if choices:
            path[key] = pick(value, choices, key + salt)
        elif key == "checkpoint_item_id":
            # The examples name a stored item; a new id, made from the body, creates one.
            path[key] = pick(value, [str(uuid.uuid5(uuid.NAMESPACE_URL, salt))], key + salt)
    query = case.query if isinstance(case.query, MutableMapping) else {}
    marker = query.get("marker")
    if isinstance(marker, str) and UUID.match(marker):
        query["marker"] = pick(marker, ITEMS, "marker" + salt)
    # Coverage cases share one key; a key reused with another request is (rightly) 409.
    headers = case.headers if isinstance(case.headers, MutableMapping) else {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and KEY.match(key):
        headers["Idempotency-Key"] = str(uuid.uuid4())
    # Ids the body repeats must be the path's; a generated one never is.
    body = case.body
    items = body.get("checkpoint_items") if isinstance(body, dict) else None
    for item in ([body] if isinstance(body, dict) else []) + (items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("project_id"), str) and PROJECT_ID.match(item["project_id"]):
            item["project_id"] = path.get("project_id", item["project_id"])
        if item is body and isinstance(item.get("id"), str) and UUID.match(item["id"]):
            item["id"] = path.get("checkpoint_item_id", item["id"])
        # A new item starts at version 1; any other version of it is (rightly) 409.
        if creates and isinstance(item.get("version"), int) and item["version"] >= 1:
            item["version"] = pick(item["version"], [1], "version" + salt)
    return case
PYTHON
export SCHEMATHESIS_HOOKS="$WORK/hooks.py"
export CSBS_FUZZ_PROJECT="$PROJECT"
# The tenant's item ids and the backup records of the loaded items, for the hooks.
read -r CSBS_FUZZ_ITEMS CSBS_FUZZ_RECORDS < <(python3 - "$WORK/items.jsonl" "$PROJECT" <<'PYTHON'
import json, sys
items = [json.loads(line) for line in open(sys.argv[1])]
ids = [i["id"] for i in items if i["project_id"] == sys.argv[2]]
records = sorted({i["checkpoint_id"] for i in items})
print(",".join(ids), ",".join(records))
PYTHON
)
export CSBS_FUZZ_ITEMS CSBS_FUZZ_RECORDS

seed_args=(--seed "$SEED")
[ "$SEED" = random ] && seed_args=()
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method,allow_header_conformance
FUZZ_TOKEN=$TOKEN
fuzz() {
    local name=$1
    shift
    (
        # Hypothesis keeps files in the working folder: keep them out of the tree.
        cd "$WORK"
        "$VENV/bin/schemathesis" run "$BASE/openapi.json" \
            --checks "$CHECKS" \
            --header "X-Auth-Token: $FUZZ_TOKEN" \
            --max-examples "$MAX_EXAMPLES" \
            "${seed_args[@]}" \
            --workers 2 \
            --request-timeout 10 \
            --generation-database none \
            --report "${CSBS_FUZZ_REPORTS:-junit}" \
            --report-dir "$WORK/report/$name" \
            --no-color \
            "$@"
    )
}

# Invalid data goes to every route, the ingest writes included (the service checks the types
# of every known item field). CSBS_FUZZ_NEGATIVE_WRITES=0 leaves the ingest writes out.
negative_filter=()
[ "${CSBS_FUZZ_NEGATIVE_WRITES:-1}" = 0 ] && negative_filter=(--exclude-operation-id ingest_put_item
    --exclude-operation-id ingest_change_status --exclude-operation-id ingest_bulk)

results=()
failed=0
record() {
    if [ "$1" -eq 0 ]; then results+=("$2: passed"); else
        results+=("$2: FAILED")
        failed=1
    fi
}
# Invalid data first, so that the valid pass reads back whatever the invalid one got stored.
if [ "$MODE" != positive ]; then
    say "pass 1: invalid data against every operation${negative_filter[*]:+ but the ingest writes}"
    status=0
    fuzz negative --mode negative --phases examples,coverage,fuzzing "${negative_filter[@]}" || status=$?
    record "$status" "invalid data"
fi
if [ "$MODE" != negative ]; then
    say "pass 2: valid data against every operation, and stateful sequences"
    status=0
    fuzz positive --mode positive || status=$?
    record "$status" "valid data"
fi

# Stateful sequences along the document's links (create, read back, change status, list,
# show, delete the record), once per kind of caller. Each step is checked as above, and a
# created item must then be readable (ensure_resource_availability). `use_after_free` is not
# checked: deleting a backup record asks for deletion, its items stay readable (in
# `waiting_delete`) until the engine reports them `deleted`.
if [ "$MODE" != negative ]; then
    for caller in tenant administrator service; do
        case $caller in
            tenant) FUZZ_TOKEN=$TENANT_TOKEN ;;
            administrator) FUZZ_TOKEN=$ADMIN_TOKEN ;;
            service) FUZZ_TOKEN=$SERVICE_TOKEN ;;
        esac
        say "pass 3: stateful sequences as the $caller"
        status=0
        CHECKS="$CHECKS,ensure_resource_availability" fuzz "stateful-$caller" --mode positive --phases stateful || status=$?
        record "$status" "stateful, $caller"
    done
    FUZZ_TOKEN=$TOKEN
fi

# --- summary ----------------------------------------------------------------------------------
server_errors=$(grep -c '"status":5[0-9][0-9]' "$WORK/service.log" || true)
requests=$(grep -c '"message":"request"' "$WORK/service.log" || true)
elapsed=$(($(date +%s) - started))
for result in "${results[@]}"; do
    echo "fuzz-api: $result"
done
echo "fuzz-api: $requests requests served, $server_errors answered 5xx, ${elapsed}s in all"
if [ "$failed" -ne 0 ]; then
    echo "fuzz-api: FAILED; the service log and the JUnit reports are in $WORK" >&2
    exit 1
fi
echo "fuzz-api: passed"
