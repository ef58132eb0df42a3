#!/usr/bin/env python3
"""How much memory the service's prepared statements cost the PostgreSQL server.

Each distinct query shape (filters given, sort, marker) is prepared once per connection, and
its plan lives in the server process of that connection. This starts the release binary on a
scratch database with a pool of 8 connections, seeds it, and lets 8 clients send distinct
shapes (every sort order of three keys, and combinations of filters with many values each)
while it samples the private memory of the service's server processes.

    python3 scripts/statement-memory.py [--shapes 260] [--values 20] [--items 20000]

Needs the local PostgreSQL (trust auth on 127.0.0.1:5432) and psql; builds the release binary
if it is missing. Prints one line every ten seconds and a summary. Not part of CI.
"""

import argparse
import itertools
import json
import os
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "csbs-api"
DATABASE = "csbs_statement_memory"
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atq"]

args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
args.add_argument("--shapes", type=int, default=260, help="distinct shapes per client")
args.add_argument("--values", type=int, default=20, help="values per text filter")
args.add_argument("--items", type=int, default=20000)
args.add_argument("--port", type=int, default=18181)
options = args.parse_args()

if not BIN.exists():
    subprocess.run(["cargo", "build", "--release", "-p", "csbs-api"], cwd=ROOT, check=True)

subprocess.run(PSQL + ["-c", f"DROP DATABASE IF EXISTS {DATABASE}"], check=True)
subprocess.run(PSQL + ["-c", f"CREATE DATABASE {DATABASE}"], check=True)
work = Path(subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip())
env = dict(
    os.environ,
    DATABASE_URL=f"postgres://postgres@127.0.0.1/{DATABASE}",
    CSBS__SERVER__BIND=f"127.0.0.1:{options.port}",
    CSBS__AUTH__HMAC_SECRET="statement-memory-" + "x" * 32,
    CSBS__DATABASE__MAX_CONNECTIONS="8",
    CSBS__DATABASE__MIN_IDLE_CONNECTIONS="8",
    CSBS__DATA_DIR=str(work),
    CSBS__LOG__FILTER="warn",
)
seeded = subprocess.run(
    [BIN, "seed", "--items", str(options.items), "--projects", "5"],
    env=env, check=True, capture_output=True, text=True,
)
tenant = seeded.stdout.split()[0]
token = subprocess.run(
    [BIN, "token", "--project-id", tenant], env=env, check=True, capture_output=True, text=True
).stdout.strip()
service = subprocess.Popen([BIN, "serve"], env=env)


def backends():
    out = subprocess.run(
        PSQL + ["-c", f"SELECT pid FROM pg_stat_activity WHERE datname = '{DATABASE}' "
                      "AND pid <> pg_backend_pid()"],
        capture_output=True, text=True,
    ).stdout
    return [int(pid) for pid in out.split()]


def private_mib():
    """Private (not shared-buffer) memory of the service's server processes."""
    kib = 0
    for pid in backends():
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith(("Private_Dirty", "Private_Clean")):
                    kib += int(line.split()[1])
        except FileNotFoundError:
            pass
    return kib / 1024


keys = ["created_at", "updated_at", "name", "status", "protected_at"]
sorts = [
    ",".join(f"{key}:{'desc' if bits >> i & 1 else 'asc'}" for i, key in enumerate(triple))
    for triple in itertools.permutations(keys, 3)
    for bits in range(8)
]
filters = ["status", "name", "resource_name", "resource_id", "resource_type", "az",
           "image_type", "policy_id"]


def shape(n):
    """The n-th distinct shape: a sort order, and a set of filters with many values each."""
    chosen = {filters[n % len(filters)]} | {
        f for k, f in enumerate(filters) if (n // len(sorts)) >> k & 1
    }
    query = [("sort", sorts[n % len(sorts)]), ("limit", "10")]
    for name in sorted(chosen):
        if name == "status":
            query += [("status", s) for s in ["available", "error", "protecting", "deleting"]]
        else:
            query += [(name, f"value-{name}-{v}") for v in range(options.values)]
    return query


def get(path, query):
    url = f"http://127.0.0.1:{options.port}{path}?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, headers={"X-Auth-Token": token})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, response.status
        json.load(response)


for _ in range(100):
    try:
        get("/readyz", [])
        break
    except OSError:
        time.sleep(0.2)

sent = [0]


def client(c):
    for j in range(options.shapes):
        query = shape(c * options.shapes + j)
        get(f"/v1/{tenant}/checkpoint_items", query)
        get(f"/v1/{tenant}/checkpoint_items/count", query)
        sent[0] += 1


start_mib = private_mib()
print(f"{len(backends())} server processes, {start_mib:.0f} MiB private before", flush=True)
threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
started = time.time()
peak = start_mib
for thread in threads:
    thread.start()
while any(thread.is_alive() for thread in threads):
    time.sleep(10)
    now = private_mib()
    peak = max(peak, now)
    print(f"t={time.time() - started:.0f}s shapes {sent[0]} private {now:.0f} MiB", flush=True)
for thread in threads:
    thread.join()
end_mib = private_mib()
service.terminate()
service.wait()
subprocess.run(PSQL + ["-c", f"DROP DATABASE IF EXISTS {DATABASE}"])
print(
    f"{sent[0]} shapes ({2 * sent[0]} statements) from 8 clients, {options.values} values per "
    f"text filter: private memory {start_mib:.0f} MiB before, {peak:.0f} MiB at the peak, "
    f"{end_mib:.0f} MiB at the end"
)
