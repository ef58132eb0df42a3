#!/usr/bin/env bash
# Soak: a bounded load (wrk, loopback only) against a release build on PostgreSQL, sampling the
# service's resident memory. Fails on any error answer or on memory that keeps growing.
#
#   scripts/soak.sh [SECONDS] [ITEMS]      defaults: 60 s, 100000 items
#
# Needs the local PostgreSQL (CSBS_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-60}"
items="${2:-100000}"
. scripts/wrk-service.sh
prepare_service csbs_soak

"$binary" seed --items "$items" --projects 20 --seed 7 >/dev/null
start_service

tenant="$(psql "$url" -Atc "SELECT project_id FROM item_counts GROUP BY 1 ORDER BY sum(n) DESC LIMIT 1")"
token="$("$binary" token --project-id "$tenant" --ttl 1h)"
cat >"$work/mix.lua" <<LUA
local paths = {
  "/v1/$tenant/checkpoint_items/count",
  "/v1/$tenant/checkpoint_items/count?status=available",
  "/v1/$tenant/checkpoint_items/count?start_time=2024-01-01T00:00:00Z&end_time=2024-06-30T12:00:00Z",
  "/v1/$tenant/checkpoint_items?limit=50",
  "/v1/$tenant/checkpoint_items?limit=20&name=auto",
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], { ["X-Auth-Token"] = "$token" })
end
LUA

rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
: >"$work/rss"
( for _ in $(seq 1 $((duration / 5))); do sleep 5; rss >>"$work/rss"; done ) &
sampler=$!
wrk -t2 -c16 -d"${duration}s" --latency -s "$work/mix.lua" "http://127.0.0.1:$port" | tee "$work/wrk.txt"
wait "$sampler" || true

echo "resident memory (KiB), every 5 s: $(tr '\n' ' ' <"$work/rss")"
errors="$(awk '/Non-2xx or 3xx responses/ {print $5}' "$work/wrk.txt")"
socket_errors="$(grep -c 'Socket errors' "$work/wrk.txt" || true)"
python3 - "$work/rss" "${errors:-0}" "$socket_errors" <<'PY'
import sys
samples = [int(x) for x in open(sys.argv[1]).read().split()]
errors, socket_errors = int(sys.argv[2]), int(sys.argv[3])
failed = False
if errors or socket_errors:
    print(f"FAILED: {errors} error answers, socket errors reported: {socket_errors}")
    failed = True
if len(samples) >= 4:
    settled = samples[len(samples) // 3:]
    growth = (settled[-1] - settled[0]) / settled[0]
    print(f"resident memory: peak {max(samples) / 1024:.1f} MiB, growth after warm-up {growth * 100:.1f}%")
    if growth > 0.10:
        print("FAILED: resident memory keeps growing")
        failed = True
sys.exit(1 if failed else 0)
PY
