#!/usr/bin/env python3
"""Fault test: the service under steady load while PostgreSQL stops and starts again.

Asserts that while the database is away every answer is 503 with the JSON error body (no 500,
no crash, no wait longer than the pool timeout), that the service answers 200 again within
five seconds of the database's return, that no acknowledged ingest write was lost, and that
a service started while the database is down reports not-ready and becomes ready by itself.

Needs the local PostgreSQL cluster (stopped and started with pg_ctlcluster, so run it as a
user allowed to) and builds the binary with cargo. Usage: python3 scripts/pg-outage.py
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from service_harness import Service, build_binary, item, request, wait_for

ADMIN_URL = os.environ.get("CSBS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "csbs_outage_test"
POOL_TIMEOUT_MS = 1500
OUTAGE_SECONDS = 5
RECOVERY_LIMIT_SECONDS = 5.0


def cluster():
    return sorted(os.listdir("/etc/postgresql"))[0]


def pg_ctl(action):
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster(), "main", action]
                   + (["-m", "fast"] if action == "stop" else []), check=True)


def pg_ready():
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]).returncode == 0


def psql(sql):
    subprocess.run(["psql", ADMIN_URL, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def start(binary, database_url, data_dir):
    return Service(binary, database_url, data_dir, CSBS__DATABASE__POOL_TIMEOUT_MS=str(POOL_TIMEOUT_MS))


def main():
    binary = build_binary()
    if not pg_ready():
        pg_ctl("start")
        wait_for(pg_ready, 30, "PostgreSQL")
    psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    psql(f"CREATE DATABASE {DATABASE}")
    database_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
    data_dir = tempfile.mkdtemp(prefix="csbs-outage-")
    failures = []
    service = None
    try:
        # Part 1: an outage under load.
        service = start(binary, database_url, data_dir)
        wait_for(lambda: request("GET", service.base + "/readyz", "")[0] == 200, 30, "readiness")
        # Signed with the secret the service generated in the data folder.
        reader = service.token("--project-id", "tenant-a")
        engine = service.token("--project-id", "engine", "--role", "csbs_service")
        stop = threading.Event()
        outage = {"down_at": None, "restart_at": None, "up_at": None}
        answers = []  # (time, kind, status, seconds, body, retry_after)
        acknowledged = []
        lock = threading.Lock()

        def load(kind):
            checkpoint = str(uuid.uuid4())
            while not stop.is_set():
                if kind == "count":
                    status, body, seconds, headers = request(
                        "GET", service.base + "/v1/tenant-a/checkpoint_items/count", reader)
                else:
                    new = item(checkpoint)
                    status, body, seconds, headers = request(
                        "PUT", f"{service.base}/ingest/v1/tenant-a/checkpoint_items/{new['id']}", engine, new)
                    if status in (200, 201):
                        with lock:
                            acknowledged.append(new["id"])
                with lock:
                    answers.append((time.time(), kind, status, seconds, body, headers.get("retry-after")))
                time.sleep(0.02)

        threads = [threading.Thread(target=load, args=(k,)) for k in ("count", "count", "ingest")]
        for t in threads:
            t.start()
        time.sleep(2)
        pg_ctl("stop")
        outage["down_at"] = time.time()
        time.sleep(OUTAGE_SECONDS)
        outage["restart_at"] = time.time()
        pg_ctl("start")
        wait_for(pg_ready, 30, "PostgreSQL to come back")
        outage["up_at"] = time.time()
        # Recovery: the first 200 of a count after the database is back.
        wait_for(lambda: any(a[0] > outage["up_at"] and a[1] == "count" and a[2] == 200 for a in list(answers)),
                 RECOVERY_LIMIT_SECONDS, "a 200 within five seconds of the database's return")
        recovered_at = min(a[0] for a in answers if a[0] > outage["up_at"] and a[1] == "count" and a[2] == 200)
        time.sleep(2)
        stop.set()
        for t in threads:
            t.join()

        statuses = sorted({a[2] for a in answers})
        during = [a for a in answers if outage["down_at"] + 0.5 < a[0] - a[3] and a[0] < outage["restart_at"]]
        if not during:
            failures.append("no request was answered while the database was down")
        for when, kind, status, seconds, body, retry_after in answers:
            if status == 0 or (status >= 500 and status != 503):
                failures.append(f"{kind}: {status} {body}")
            if seconds > POOL_TIMEOUT_MS / 1000 + 1.5:
                failures.append(f"{kind}: answered after {seconds:.2f} s")
        for when, kind, status, seconds, body, retry_after in during:
            if status != 503:
                failures.append(f"{kind} while down: {status} {body}")
                continue
            parsed = json.loads(body)
            if parsed.get("error_code") != "CSBS.9998" or not retry_after:
                failures.append(f"{kind} while down: body {body}, Retry-After {retry_after}")
        if service.process.poll() is not None:
            failures.append("the service died")

        lost = []
        for item_id in acknowledged:
            status, body, _, _ = request("GET", f"{service.base}/ingest/v1/tenant-a/checkpoint_items/{item_id}", engine)
            if status != 200:
                lost.append((item_id, status))
        if lost:
            failures.append(f"{len(lost)} acknowledged writes lost: {lost[:5]}")
        print(f"outage: {len(answers)} answers, statuses {statuses}, {len(during)} while down, "
              f"{len(acknowledged)} writes acknowledged, 200 again {recovered_at - outage['up_at']:.2f} s "
              f"after the database returned, slowest answer {max(a[3] for a in answers):.2f} s")
        service.stop()
        if service.process.returncode != 0:
            failures.append(f"the service exited {service.process.returncode} on SIGTERM")
        service = None

        # Part 2: start while the database is down, become ready by itself.
        pg_ctl("stop")
        service = start(binary, database_url, data_dir)
        status, body, seconds, _ = request("GET", service.base + "/readyz", "")
        if status != 503:
            failures.append(f"/readyz while the database is down: {status} {body}")
        status, body, seconds, _ = request("GET", service.base + "/v1/tenant-a/checkpoint_items/count", reader)
        if status != 503 or json.loads(body).get("error_code") != "CSBS.9998":
            failures.append(f"count while the database is down: {status} {body}")
        pg_ctl("start")
        wait_for(pg_ready, 30, "PostgreSQL to come back")
        back = time.time()
        wait_for(lambda: request("GET", service.base + "/readyz", "")[0] == 200, 15, "readiness after a cold start")
        print(f"cold start: ready {time.time() - back:.2f} s after the database came up")
        status, body, _, _ = request("GET", service.base + "/v1/tenant-a/checkpoint_items/count", reader)
        if status != 200 or json.loads(body)["count"] != len(acknowledged):
            failures.append(f"count after recovery: {status} {body}, expected {len(acknowledged)}")
    finally:
        if service is not None:
            service.stop()
        if not pg_ready():
            pg_ctl("start")
            wait_for(pg_ready, 30, "PostgreSQL")
        psql(f"DROP DATABASE IF EXISTS {DATABASE}")

    if failures:
        print("FAILED:")
        for failure in failures[:30]:
            print("  " + failure)
        sys.exit(1)
    print("outage test passed")


if __name__ == "__main__":
    main()
