#!/usr/bin/env python3
"""Failover test: the service on a three-member Patroni cluster while its primary dies.

Starts etcd and three Patroni members of PostgreSQL 15 on loopback ports (synchronous
replication on: a commit is acknowledged only once a standby has it), and the service on the
multi-host URL (`host1,host2,host3` with `target_session_attrs=read-write`), every member
also listed as a read replica (`database.replica_urls`). Under a steady
load of counts and acknowledged ingest writes it then
  1. kills the primary with SIGKILL (its Patroni and its PostgreSQL), so that Patroni promotes a
     standby once the leader key expires;
  2. brings the old primary back, which rejoins as a standby;
  3. stops the synchronous standby with SIGSTOP for a while (writes wait for it until
     Patroni names the other standby synchronous, and the service stops reading from it once
     it lags), then lets it go on (and the service reads from it again once it caught up);
  4. switches over with `patronictl switchover`.
It asserts that every answer is 200/201 or a 503 with the JSON body and `Retry-After` (never
a 500, never a refused connection, none slower than the request timeout), that the service
answers 200 again by itself after each change (the figures are printed), that no acknowledged
write is lost, and that `csbs-api counters check` is clean at the end.

Installs Debian's patroni and etcd-server when missing; runs the members as the `postgres`
user. Usage: python3 scripts/patroni-failover.py
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

from service_harness import Service, build_binary, item, request, wait_for

BASE = os.environ.get("CSBS_PATRONI_DIR", "/tmp/csbs-patroni")
PG_BIN = "/usr/lib/postgresql/15/bin"
ETCD_CLIENT, ETCD_PEER = 2479, 2480
MEMBERS = [{"name": f"pg{i}", "pg": 5440 + i, "rest": 8010 + i} for i in (1, 2, 3)]
# Patroni's timings: the leader key lives `ttl` seconds, so a dead primary is replaced after at
# most about that long.
TTL, LOOP_WAIT, RETRY_TIMEOUT = 20, 2, 5
POOL_TIMEOUT_MS, REQUEST_TIMEOUT_MS = 1500, 8000
# After each change the service must answer 200 again within this long of the cluster having
# a writable primary.
RECOVERY_LIMIT_SECONDS = 10.0
# Reads go to a standby while its replay is at most this far behind the primary.
MAX_REPLICA_LAG_MS = 1000
TENANT = "tenant-a"


def install():
    missing = [pkg for tool, pkg in (("patroni", "patroni"), ("etcd", "etcd-server"))
               if shutil.which(tool) is None]
    if missing:
        print(f"installing {' '.join(missing)} (Debian packages)", flush=True)
        # The packages' own services must not start: the test starts its own.
        with open("/usr/sbin/policy-rc.d", "w") as policy:
            policy.write("#!/bin/sh\nexit 101\n")
        os.chmod("/usr/sbin/policy-rc.d", 0o755)
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                           stdout=subprocess.DEVNULL)
        finally:
            os.remove("/usr/sbin/policy-rc.d")


def member_config(member):
    """A member's Patroni configuration (JSON, which is YAML)."""
    return {
        "scope": "csbs",
        "name": member["name"],
        "restapi": {"listen": f"127.0.0.1:{member['rest']}", "connect_address": f"127.0.0.1:{member['rest']}"},
        "etcd3": {"hosts": [f"127.0.0.1:{ETCD_CLIENT}"]},
        "bootstrap": {
            "dcs": {
                "ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY_TIMEOUT,
                "maximum_lag_on_failover": 1048576,
                "synchronous_mode": True,
                "postgresql": {
                    "use_pg_rewind": True,
                    "parameters": {
                        "wal_level": "replica", "hot_standby": "on", "wal_log_hints": "on",
                        "max_wal_senders": 10, "max_replication_slots": 10,
                        # A standby that stops answering is let go after this long.
                        "wal_sender_timeout": "5s",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, "data-checksums"],
            "pg_hba": ["local all all trust", "host replication replicator 127.0.0.1/32 trust",
                       "host all all 127.0.0.1/32 trust"],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{member['pg']}",
            "connect_address": f"127.0.0.1:{member['pg']}",
            "data_dir": f"{BASE}/{member['name']}",
            "bin_dir": PG_BIN,
            "pgpass": f"{BASE}/{member['name']}.pgpass",
            "authentication": {
                "superuser": {"username": "postgres", "password": "postgres"},
                "replication": {"username": "replicator", "password": "replicator"},
                "rewind": {"username": "postgres", "password": "postgres"},
            },
            "parameters": {"unix_socket_directories": BASE},
        },
    }


class Cluster:
    def __init__(self):
        self.processes = {}
        self.etcd = None

    def start(self):
        if os.path.exists(BASE):
            shutil.rmtree(BASE)
        os.makedirs(BASE)
        shutil.chown(BASE, "postgres", "postgres")
        self.etcd_log = open(f"{BASE}/etcd.log", "w")
        self.etcd = subprocess.Popen(
            ["etcd", "--name", "csbs", "--data-dir", f"{BASE}/etcd",
             "--listen-client-urls", f"http://127.0.0.1:{ETCD_CLIENT}",
             "--advertise-client-urls", f"http://127.0.0.1:{ETCD_CLIENT}",
             "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PEER}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PEER}",
             "--initial-cluster", f"csbs=http://127.0.0.1:{ETCD_PEER}"],
            stdout=self.etcd_log, stderr=subprocess.STDOUT)
        wait_for(lambda: http_json(f"http://127.0.0.1:{ETCD_CLIENT}/health") is not None, 30, "etcd")
        for member in MEMBERS:
            with open(f"{BASE}/{member['name']}.yml", "w") as config:
                json.dump(member_config(member), config, indent=1)
            self.start_member(member)
        wait_for(lambda: self.healthy(3), 120, "a leader and two streaming standbys")

    def start_member(self, member):
        log = open(f"{BASE}/{member['name']}.log", "a")
        self.processes[member["name"]] = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", "patroni", f"{BASE}/{member['name']}.yml"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def members(self):
        """The cluster as Patroni reports it: name → (role, state, lag), from any member."""
        for member in MEMBERS:
            cluster = http_json(f"http://127.0.0.1:{member['rest']}/cluster")
            if cluster is not None:
                return {m["name"]: (m["role"], m["state"], m.get("lag")) for m in cluster["members"]}
        return {}

    def leader(self):
        return next((n for n, (role, state, _) in self.members().items()
                     if role == "leader" and state == "running"), None)

    def healthy(self, size):
        """One leader, and `size - 1` standbys caught up, one of them synchronous (only it
        may be promoted in synchronous mode)."""
        members = self.members()
        leaders = [n for n, (role, state, _) in members.items() if role == "leader" and state == "running"]
        standbys = [n for n, (role, state, lag) in members.items()
                    if role in ("replica", "sync_standby") and state in ("streaming", "running") and lag == 0]
        synchronous = [n for n, (role, _, _) in members.items() if role == "sync_standby"]
        return len(leaders) == 1 and len(standbys) == size - 1 and len(synchronous) == 1

    def sync_standby(self):
        return next((n for n, (role, _, _) in self.members().items() if role == "sync_standby"), None)

    def kill(self, name):
        """SIGKILL to the member's Patroni and its PostgreSQL (the postmaster and its children)."""
        member = next(m for m in MEMBERS if m["name"] == name)
        postmaster = postmaster_pid(member)
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        if postmaster:
            subprocess.run(["pkill", "-KILL", "-P", str(postmaster)])
            os.kill(postmaster, signal.SIGKILL)
        self.processes[name].wait()

    def signal_postgres(self, name, sig):
        """`sig` to every process of the member's PostgreSQL."""
        member = next(m for m in MEMBERS if m["name"] == name)
        postmaster = postmaster_pid(member)
        subprocess.run(["pkill", f"-{sig.name[3:]}", "-P", str(postmaster)])
        os.kill(postmaster, sig)

    def patronictl(self, *args):
        return subprocess.run(["patronictl", "-c", f"{BASE}/{MEMBERS[0]['name']}.yml", *args],
                              capture_output=True, text=True)

    def stop(self):
        for name, process in self.processes.items():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for member in MEMBERS:
            pid = postmaster_pid(member)
            if pid:
                subprocess.run(["pkill", "-KILL", "-P", str(pid)])
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.etcd is not None:
            self.etcd.terminate()
            self.etcd.wait(timeout=30)


def postmaster_pid(member):
    try:
        with open(f"{BASE}/{member['name']}/postmaster.pid") as pid_file:
            pid = int(pid_file.readline())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def http_json(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


class Load:
    """Two readers counting and two engines writing new items, each answer recorded."""

    def __init__(self, service, reader, engine):
        self.service, self.reader, self.engine = service, reader, engine
        self.answers = []  # (started, finished, kind, status, seconds, body, retry_after)
        self.acknowledged = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(kind,))
                        for kind in ("count", "count", "write", "write")]

    def run(self, kind):
        checkpoint = str(uuid.uuid4())
        pending = None
        while not self.stopping.is_set():
            started = time.time()
            if kind == "count":
                status, body, seconds, headers = request(
                    "GET", f"{self.service.base}/v1/{TENANT}/checkpoint_items/count", self.reader, timeout=30)
            else:
                # A write answered 503 may have landed: it is sent again as it was, which the
                # service answers as the first time, until it is acknowledged.
                pending = pending or item(checkpoint, "failover")
                status, body, seconds, headers = request(
                    "PUT", f"{self.service.base}/ingest/v1/{TENANT}/checkpoint_items/{pending['id']}",
                    self.engine, pending, timeout=30)
                if status in (200, 201):
                    with self.lock:
                        self.acknowledged.append(pending["id"])
                    pending = None
            with self.lock:
                self.answers.append((started, time.time(), kind, status, seconds, body, headers.get("retry-after")))
            time.sleep(0.02)

    def first_success_after(self, moment, kind):
        with self.lock:
            times = [a[1] for a in self.answers if a[0] > moment and a[2] == kind and a[3] in (200, 201)]
        return min(times) if times else None

    def wait_for_success(self, moment, what):
        wait_for(lambda: all(self.first_success_after(moment, kind) for kind in ("count", "write")),
                 RECOVERY_LIMIT_SECONDS, what)
        return max(self.first_success_after(moment, kind) for kind in ("count", "write"))

    def start(self):
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join()


def metric_lines(service, prefix):
    status, body, _, _ = request("GET", service.base + "/metrics", "")
    return [line for line in body.splitlines() if line.startswith("csbs_" + prefix)] if status == 200 else []


def replica_reads(service):
    return sum(float(line.split()[-1]) for line in metric_lines(service, 'db_reads_total{server="replica"}'))


def replica_usable(service, port):
    """The service's gauge of the replica on `port`: 1 read from, 0 not, None unknown."""
    for line in metric_lines(service, "db_replica_usable"):
        if f":{port}/" in line:
            return int(float(line.split()[-1]))
    return None


def main():
    install()
    binary = build_binary()
    cluster = Cluster()
    service = None
    load = None
    failures = []
    figures = []
    data_dir = tempfile.mkdtemp(prefix="csbs-failover-")
    try:
        started = time.time()
        cluster.start()
        print(f"cluster: {cluster.members()} in {time.time() - started:.1f} s", flush=True)
        hosts = ",".join(f"127.0.0.1:{m['pg']}" for m in MEMBERS)
        url = f"postgres://postgres:postgres@{hosts}/postgres?target_session_attrs=read-write"
        # Every member is also a replica for reads: whichever are standbys at the moment serve
        # them while they keep up.
        replicas = ",".join(f"postgres://postgres:postgres@127.0.0.1:{m['pg']}/postgres" for m in MEMBERS)
        service = Service(binary, url, data_dir,
                          CSBS__DATABASE__POOL_TIMEOUT_MS=str(POOL_TIMEOUT_MS),
                          CSBS__DATABASE__REQUEST_TIMEOUT_MS=str(REQUEST_TIMEOUT_MS),
                          CSBS__DATABASE__REPLICA_URLS=replicas,
                          CSBS__DATABASE__MAX_REPLICA_LAG_MS=str(MAX_REPLICA_LAG_MS))
        wait_for(lambda: request("GET", service.base + "/readyz", "")[0] == 200, 60, "readiness")
        load = Load(service, service.token("--project-id", TENANT),
                    service.token("--project-id", "engine", "--role", "csbs_service"))
        load.start()
        time.sleep(3)
        if replica_reads(service) == 0:
            failures.append(f"no read was served by a replica: {metric_lines(service, 'db_reads_total')}")

        # 1. The primary dies.
        old = cluster.leader()
        killed_at = time.time()
        cluster.kill(old)
        wait_for(lambda: cluster.leader() not in (None, old), TTL + 30, "a new leader")
        promoted_at = time.time()
        back_at = load.wait_for_success(promoted_at, "200s after the promotion")
        figures.append(f"primary {old} killed: {cluster.leader()} promoted after {promoted_at - killed_at:.1f} s, "
                       f"reads and writes answered again {max(back_at - promoted_at, 0):.2f} s after that "
                       f"({back_at - killed_at:.1f} s after the kill)")

        # 2. It comes back, and rejoins as a standby.
        cluster.start_member(next(m for m in MEMBERS if m["name"] == old))
        wait_for(lambda: cluster.healthy(3), 90, f"{old} to rejoin as a standby")
        time.sleep(2)

        # 3. The synchronous standby stops answering for a while.
        sync = cluster.sync_standby()
        if sync is None:
            failures.append(f"no synchronous standby: {cluster.members()}")
        else:
            stopped_at = time.time()
            cluster.signal_postgres(sync, signal.SIGSTOP)
            port = next(m["pg"] for m in MEMBERS if m["name"] == sync)
            try:
                wait_for(lambda: replica_usable(service, port) == 0, 10, f"{sync} taken out of reads")
                out_after = time.time() - stopped_at
            except AssertionError:
                failures.append(f"{sync} stopped but still read from: {metric_lines(service, 'db_replica')}")
                out_after = None
            time.sleep(max(0, 12 - (time.time() - stopped_at)))
            cluster.signal_postgres(sync, signal.SIGCONT)
            resumed_at = time.time()
            try:
                wait_for(lambda: replica_usable(service, port) == 1, 30, f"{sync} back in reads")
                figures.append(f"replica {sync}: out of reads {out_after:.1f} s after it stopped, back "
                               f"{time.time() - resumed_at:.1f} s after it resumed")
            except AssertionError:
                failures.append(f"{sync} resumed but not read from again: {metric_lines(service, 'db_replica')}")
            back_at = load.wait_for_success(resumed_at, "200s after the standby resumed")
            with load.lock:
                writes_while = [a for a in load.answers if stopped_at < a[0] < resumed_at and a[2] == "write"]
            acked_while = sum(1 for a in writes_while if a[3] in (200, 201))
            slowest = max((a[4] for a in writes_while), default=0)
            figures.append(f"synchronous standby {sync} stopped 12 s: {acked_while} of {len(writes_while)} "
                           f"writes acknowledged meanwhile, the slowest after {slowest:.2f} s (commits wait "
                           f"for the standby until wal_sender_timeout lets it go and Patroni names "
                           f"another); synchronous now: {cluster.sync_standby()}")
            wait_for(lambda: cluster.healthy(3), 60, f"{sync} to catch up")

        # 4. A planned switchover.
        leader = cluster.leader()
        # In synchronous mode only the synchronous standby may take over.
        candidate = cluster.sync_standby()
        switched_at = time.time()
        switched = cluster.patronictl("switchover", "--leader", leader, "--candidate", candidate, "--force")
        if switched.returncode != 0:
            raise AssertionError(f"patronictl switchover: {switched.stdout} {switched.stderr}")
        wait_for(lambda: cluster.leader() == candidate, 60, f"{candidate} to lead")
        led_at = time.time()
        back_at = load.wait_for_success(led_at, "200s after the switchover")
        figures.append(f"switchover {leader} → {candidate}: {led_at - switched_at:.1f} s, answered again "
                       f"{max(back_at - led_at, 0):.2f} s after")
        time.sleep(2)
        load.stop()

        # The answers.
        statuses = {}
        for started_at, _, kind, status, seconds, body, retry_after in load.answers:
            statuses[status] = statuses.get(status, 0) + 1
            if status in (200, 201):
                pass
            elif status == 503:
                parsed = json.loads(body)
                if parsed.get("error_code") != "CSBS.9998" or not retry_after:
                    failures.append(f"{kind}: 503 with body {body}, Retry-After {retry_after}")
            else:
                failures.append(f"{kind}: {status} {body[:300]}")
            if seconds > REQUEST_TIMEOUT_MS / 1000 + 1.5:
                failures.append(f"{kind}: answered after {seconds:.2f} s")
        if service.process.poll() is not None:
            failures.append("the service died")

        # Nothing acknowledged is lost: every acknowledged item is there, on the primary.
        engine = load.engine
        lost = []
        for item_id in load.acknowledged:
            status, body, _, _ = request("GET", f"{service.base}/ingest/v1/{TENANT}/checkpoint_items/{item_id}", engine)
            if status != 200:
                lost.append((item_id, status))
        if lost:
            failures.append(f"{len(lost)} of {len(load.acknowledged)} acknowledged writes lost: {lost[:5]}")
        status, body, _, _ = request("GET", f"{service.base}/v1/{TENANT}/checkpoint_items/count", load.reader)
        counted = json.loads(body).get("count") if status == 200 else None
        if counted is None or counted < len(set(load.acknowledged)):
            failures.append(f"count at the end: {status} {body}, {len(set(load.acknowledged))} acknowledged")
        checked = service.command("counters", "check")
        if checked.returncode != 0:
            failures.append(f"counters check: {checked.stdout} {checked.stderr}")
        print(f"answers: {sum(statuses.values())} ({', '.join(f'{s}: {n}' for s, n in sorted(statuses.items()))}), "
              f"{len(load.acknowledged)} writes acknowledged, none lost: {not lost}, "
              f"slowest answer {max(a[4] for a in load.answers):.2f} s, counters check: "
              f"{'clean' if checked.returncode == 0 else 'DRIFT'}")
        for figure in figures:
            print("  " + figure)
    finally:
        if load is not None and not load.stopping.is_set():
            load.stop()
        if service is not None:
            service.stop()
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    if failures:
        print("FAILED:")
        for failure in failures[:30]:
            print("  " + failure)
        sys.exit(1)
    shutil.rmtree(BASE, ignore_errors=True)
    print("failover test passed")


if __name__ == "__main__":
    main()
