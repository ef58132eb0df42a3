#!/usr/bin/env bash
# Single-item ingest: what a backup engine does, measured against a release build on
# PostgreSQL. Two connections (wrk, loopback only) each create a new item (PUT, version 1,
# `protecting`, created now, in one of the seeded tenants) and then complete it (POST status
# `available`, version 2), over and over, into a table already holding ITEMS seeded backups.
# Prints the requests per second and the latency distribution; fails on any error answer.
#
#   scripts/ingest-bench.sh [SECONDS] [ITEMS]      defaults: 30 s, 1000000 items
#
# CSBS_BINARY picks the build (default target/release/csbs-api), so that two versions are
# measured with the same load. SYNCHRONOUS_COMMIT=off has the service's sessions (and the
# seed's) commit without waiting for the WAL flush: the run then measures the CPU cost of a
# write (service and PostgreSQL) without the disk's flush latency, which varies by tens of
# percent from one minute to the next on a shared disk. Compare two builds in alternating
# runs either way. Needs the local PostgreSQL (CSBS_TEST_POSTGRES_URL, default
# postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-30}"
items="${2:-1000000}"
. scripts/wrk-service.sh
prepare_service csbs_ingest_bench
if [ -n "${SYNCHRONOUS_COMMIT:-}" ]; then
    DATABASE_URL="$url?options=-c%20synchronous_commit%3D$SYNCHRONOUS_COMMIT"
fi

started=$SECONDS
"$binary" seed --items "$items" --projects 50 --seed 7 >/dev/null
echo "seeded $items items in $((SECONDS - started)) s"
psql "$url" -q -c "VACUUM (ANALYZE)"
start_service

tenants="$(psql "$url" -Atc "SELECT string_agg('\"' || project_id || '\"', ',') FROM \
    (SELECT project_id FROM item_counts GROUP BY 1 ORDER BY sum(n) DESC) AS t")"
token="$("$binary" token --project-id csbs-engine --role csbs_service --ttl 2h)"
cat >"$work/ingest.lua" <<LUA
local tenants = { $tenants }
local headers = { ["X-Auth-Token"] = "$token", ["Content-Type"] = "application/json" }
local n = 0
local threads = 0

-- Each thread's own number (a global of its Lua state), so that ids never collide.
setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

-- A version-4-shaped id unique to this thread and request.
local function new_id()
  n = n + 1
  return string.format("%08x-0000-4000-8000-%04x%08x", os.time(), thread_id, n)
end

-- The item created by the last answered PUT, to be completed next. It is set from the answer,
-- not from the request: wrk builds one request per thread before the run that it never sends.
local sent, created = nil, nil

request = function()
  if created then
    local path = created
    created, sent = nil, nil
    return wrk.format("POST", path .. "/status", headers, '{"status":"available","version":2}')
  end
  local id = new_id()
  local tenant = tenants[(n % #tenants) + 1]
  sent = "/ingest/v1/" .. tenant .. "/checkpoint_items/" .. id
  local body = string.format(
    '{"id":"%s","name":"autobackup-%d","status":"protecting","version":1,' ..
    '"checkpoint_id":"%s","resource_id":"%s","resource_type":"OS::Nova::Server",' ..
    '"resource_name":"ecs-web-%d","created_at":"%s",' ..
    '"extend_info":{"resource_az":"eu-de-0%d","image_type":"backup"}}',
    id, n, id, string.format("00000000-0000-4000-8000-%012x", n % 997), n % 997,
    os.date("!%Y-%m-%dT%H:%M:%S"), 1 + n % 3)
  return wrk.format("PUT", sent, headers, body)
end

-- The first few error answers go to the failure message.
local errors = 0
response = function(status, headers, body)
  if status == 201 and sent then
    created = sent
  end
  if status >= 300 and errors < 3 then
    errors = errors + 1
    io.stderr:write("answer " .. status .. ": " .. body .. "\n")
  end
end
LUA

wrk -t2 -c2 -d"${duration}s" --latency -s "$work/ingest.lua" "http://127.0.0.1:$port" | tee "$work/wrk.txt"
errors="$(awk '/Non-2xx or 3xx responses/ {print $5}' "$work/wrk.txt")"
if [ -n "$errors" ] || grep -q 'Socket errors' "$work/wrk.txt"; then
    echo "FAILED: ${errors:-0} error answers; the service said:" >&2
    tail -n 20 "$work/service.log" >&2
    exit 1
fi
stored="$(psql "$url" -Atc "SELECT count(*) FROM backup_items WHERE name LIKE 'autobackup-%' AND version = 2")"
echo "items created and completed: $stored"
