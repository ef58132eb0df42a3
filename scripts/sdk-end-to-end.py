#!/usr/bin/env python3
"""End to end: public client SDKs, as released on PyPI and unchanged, against the service and a
real Keystone.

Two clients, each in a virtualenv of its own (they cannot share one, see the requirements
files):

- openstacksdk with otcextensions (scripts/sdk-requirements-openstacksdk.txt): `conn.csbs`;
- huaweicloud-sdk-python 1.0.28 (scripts/sdk-requirements-huaweicloud.txt):
  `conn.csbs.checkpoint_items()`, `get_checkpoint_item`, `get_checkpoint_item_count`.

Both log in to Keystone with a password and find the service in the catalog (service type
`data-protect`), as a cloud's users do: no endpoint override, no static token. The Keystone is
the one of `scripts/keystone.sh` (started here when it is not running, or when its catalog
points elsewhere); the service is built, started on the port of the catalog's endpoint with a
fresh SQLite database, and a few backups are written into two tenants through the ingest API
with a Keystone token of the backup engine. Each client then runs, in a subprocess on its
virtualenv's Python, as a member of tenant a and of tenant b, and the answers are held to what
was written: the list is exactly the tenant's items, show returns the item with its fields,
count equals the number written (and the right subset under a status filter), and tenant b
sees nothing of tenant a.

Settings (environment):
  CSBS_SDK_VENV   where the virtualenvs are kept          ~/.cache/csbs-sdk-venv
  CSBS_API_PORT   the service's port in the catalog       8080 (as scripts/keystone.sh)
  CSBS_API_BIN    a csbs-api binary to use instead of building one with cargo
  CSBS_KEYSTONE_DIR  the Keystone's state folder          /var/tmp/csbs-keystone

Standard library only outside the virtualenvs: it runs on Debian's python3 as installed.
Usage: python3 scripts/sdk-end-to-end.py
"""

import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from service_harness import Service, build_binary, request, wait_for  # noqa: E402

ROOT = os.path.dirname(HERE)
VENV_ROOT = os.environ.get("CSBS_SDK_VENV") or os.path.expanduser("~/.cache/csbs-sdk-venv")
API_PORT = int(os.environ.get("CSBS_API_PORT") or "8080")
KEYSTONE_DIR = os.environ.get("CSBS_KEYSTONE_DIR") or "/var/tmp/csbs-keystone"
ENV_FILE = os.path.join(KEYSTONE_DIR, "keystone.env")
DOMAIN = "default"
CLIENTS = {
    "openstacksdk": "sdk-requirements-openstacksdk.txt",
    "huaweicloud": "sdk-requirements-huaweicloud.txt",
}


def say(message):
    print(f"sdk-end-to-end: {message}", file=sys.stderr, flush=True)


# --- the outer script: virtualenvs, Keystone, the service, the data ------------------------------

def venv_python(client):
    """The Python of the client's virtualenv, made and filled from its requirements file unless
    it already holds exactly those pins. One per Python version: a virtualenv runs on the
    Python that made it, and two Pythons then do not undo each other's."""
    requirements = os.path.join(HERE, CLIENTS[client])
    with open(requirements, "rb") as file:
        wanted = hashlib.sha256(file.read()).hexdigest()
    venv = os.path.join(VENV_ROOT, f"{client}-py{platform.python_version()}")
    python = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, "csbs-requirements.sha256")
    try:
        with open(stamp) as file:
            if file.read() == wanted and os.path.exists(python):
                return python
    except FileNotFoundError:
        pass
    say(f"installing {CLIENTS[client]} into {venv}")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", requirements], check=True)
    # Written last: an interrupted install is redone on the next run.
    with open(stamp, "w") as file:
        file.write(wanted)
    return python


def read_env_file():
    with open(ENV_FILE) as file:
        return dict(line.rstrip("\n").split("=", 1) for line in file if "=" in line)


def keystone_call(url, method, path, body=None, token=None):
    """(status, headers, body) of a Keystone call; a connection failure is status 0."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, None
    except OSError:
        return 0, {}, None


def login(keystone_url, user, password, project):
    """(token, catalog) of a password login scoped to `project`; None when refused."""
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": DOMAIN}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": DOMAIN}}},
    }}
    status, headers, answer = keystone_call(keystone_url, "POST", "/auth/tokens", body)
    if status != 201:
        return None
    return headers["X-Subject-Token"], answer["token"].get("catalog", [])


def catalog_endpoint(catalog):
    for service in catalog:
        if service["type"] == "data-protect":
            for endpoint in service["endpoints"]:
                if endpoint["interface"] == "public":
                    return endpoint["url"]
    return None


def keystone_ready():
    """The environment file's values, if its Keystone answers and its catalog sends tenant a to
    this script's port; None otherwise."""
    try:
        env = read_env_file()
    except (FileNotFoundError, ValueError):
        return None
    answer = login(env["CSBS_TEST_KEYSTONE_URL"], "csbs-member-a",
                   env["CSBS_TEST_KEYSTONE_USER_PASSWORD"], "csbs-tenant-a")
    if answer is None:
        return None
    expected = f"http://127.0.0.1:{API_PORT}/v1/{env['CSBS_TEST_KEYSTONE_TENANT_A']}"
    return env if catalog_endpoint(answer[1]) == expected else None


def ensure_keystone():
    env = keystone_ready()
    if env is not None:
        return env
    # Starts it if needed, and registers the data-protect endpoint with this port (an endpoint
    # that points elsewhere is updated in place).
    say(f"scripts/keystone.sh start (data-protect on port {API_PORT})")
    subprocess.run(["bash", os.path.join(HERE, "keystone.sh"), "start"], check=True,
                   env=dict(os.environ, CSBS_API_PORT=str(API_PORT), CSBS_KEYSTONE_DIR=KEYSTONE_DIR),
                   stdout=subprocess.DEVNULL)
    env = keystone_ready()
    if env is None:
        raise SystemExit("sdk-end-to-end: Keystone's catalog does not send tenant a to "
                         f"127.0.0.1:{API_PORT}")
    return env


def backup(name, status, created_at, az):
    """A new item (version 1) for the ingest API."""
    return {"id": str(uuid.uuid4()), "name": name, "status": status, "version": 1,
            "checkpoint_id": str(uuid.uuid4()), "resource_id": str(uuid.uuid4()),
            "resource_type": "OS::Nova::Server", "created_at": created_at,
            "extend_info": {"resource_az": az, "resource_name": f"server-of-{name}"}}


# What each tenant holds: tenant a has three available backups and one in error, so that a
# status filter has a proper subset to find; tenant b one backup of its own.
def backups():
    return {
        "a": [backup("sdk-a-1", "available", "2026-01-01T10:00:00.250000", "az1"),
              backup("sdk-a-2", "available", "2026-01-02T10:00:00.250000", "az1"),
              backup("sdk-a-3", "error", "2026-01-03T10:00:00.250000", "az2"),
              backup("sdk-a-4", "available", "2026-01-04T10:00:00.250000", "az2")],
        "b": [backup("sdk-b-1", "available", "2026-01-05T10:00:00.250000", "az1")],
    }


def root_answers(base, token):
    """The statuses of `/`, `/v1` and `/v1/` with a tenant's token: huaweicloud-sdk-python asks
    them for a versions document before its first call, and goes on to the catalog's endpoint
    after any answer but a 5xx (a 404 is what the service gives)."""
    return {path: request("GET", base + path, token)[0] for path in ["/", "/v1", "/v1/"]}


def run_client(python, client, config):
    started = time.time()
    done = subprocess.run([python, os.path.abspath(__file__), "--client", client],
                          input=json.dumps(config), capture_output=True, text=True, timeout=120)
    seconds = time.time() - started
    for line in done.stderr.splitlines():
        say(f"  {client}: {line}")
    lines = done.stdout.splitlines()
    return done.returncode == 0, lines, seconds


def logged_in(keystone_url, user, password, project):
    answer = login(keystone_url, user, password, project)
    if answer is None:
        raise SystemExit(f"sdk-end-to-end: Keystone refused {user}'s login to {project}")
    return answer[0]


def main():
    started = time.time()
    pythons = {client: venv_python(client) for client in CLIENTS}
    venv_seconds = time.time() - started
    env = ensure_keystone()
    keystone_url = env["CSBS_TEST_KEYSTONE_URL"]
    password = env["CSBS_TEST_KEYSTONE_USER_PASSWORD"]
    tenants = {"a": env["CSBS_TEST_KEYSTONE_TENANT_A"], "b": env["CSBS_TEST_KEYSTONE_TENANT_B"]}

    binary = os.environ.get("CSBS_API_BIN") or build_binary()
    data_dir = tempfile.mkdtemp(prefix="csbs-sdk-e2e-")
    service = None
    failures = []
    try:
        # Another program on the port would answer in the service's place (the harness waits
        # only for something to listen), so a taken port is refused before the start. With
        # SO_REUSEADDR, as the service binds: the last run's closed connections do not count.
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", API_PORT))
            except OSError as error:
                raise SystemExit(f"sdk-end-to-end: port {API_PORT} is taken ({error}); "
                                 "CSBS_API_PORT chooses another") from None
        # A loaded machine's Keystone can take seconds for the service's password login.
        service = Service(binary, f"sqlite://{data_dir}/csbs.db", data_dir, port=API_PORT,
                          CSBS__AUTH__KEYSTONE__URL=keystone_url,
                          CSBS__AUTH__KEYSTONE__PASSWORD=env["CSBS_TEST_KEYSTONE_SERVICE_PASSWORD"],
                          CSBS__AUTH__KEYSTONE__TIMEOUT_MS="10000")
        wait_for(lambda: request("GET", service.base + "/readyz", "")[0] == 200, 30, "readiness")

        # The backup engine writes through the ingest API with its own Keystone token.
        engine = logged_in(keystone_url, "csbs-engine", password, "service")
        written = backups()
        for tenant, items in written.items():
            for item in items:
                status, body, _, _ = request(
                    "PUT", f"{service.base}/ingest/v1/{tenants[tenant]}/checkpoint_items/{item['id']}",
                    engine, item)
                if status != 201:
                    raise SystemExit(f"sdk-end-to-end: ingest {item['name']}: {status} {body[:300]}")

        roots = root_answers(service.base,
                             logged_in(keystone_url, "csbs-member-a", password, "csbs-tenant-a"))
        if any(status == 0 or status >= 500 for status in roots.values()):
            failures.append("GET / /v1 /v1/")

        config = {
            "auth_url": keystone_url, "password": password,
            "tenants": {
                tenant: {"user": f"csbs-member-{tenant}", "project": f"csbs-tenant-{tenant}",
                         "project_id": tenants[tenant],
                         "items": [{k: v for k, v in item.items() if k != "version"}
                                   for item in written[tenant]]}
                for tenant in written
            },
        }
        results = {}
        for client, python in pythons.items():
            ok, lines, seconds = run_client(python, client, config)
            results[client] = (ok, lines, seconds)
            if not ok:
                failures.append(client)
    finally:
        if service is not None:
            service.stop()
            if failures:
                with open(os.path.join(data_dir, "service.log")) as log:
                    tail = log.read()[-3000:]
                say(f"service log (end):\n{tail}")
        shutil.rmtree(data_dir, ignore_errors=True)

    print("sdk-end-to-end: GET / /v1 /v1/ with a tenant's token: "
          + ", ".join(f"{path} {status}" for path, status in roots.items())
          + (" (a 5xx, or no answer, stops huaweicloud-sdk-python)" if "GET / /v1 /v1/" in failures
             else ""))
    for client, (ok, lines, seconds) in results.items():
        print(f"sdk-end-to-end: {client}: {'ok' if ok else 'FAILED'} ({seconds:.1f} s)")
        for line in lines:
            print(f"  {line}")
    print(f"sdk-end-to-end: virtualenvs {venv_seconds:.1f} s, in all {time.time() - started:.1f} s")
    return 1 if failures else 0


# --- inside a client's virtualenv ----------------------------------------------------------------

def retried(action, tries=3):
    """`action()`, tried again when a connection was dropped without an answer: the test
    Keystone (uwsgi's plain HTTP mode) closes idle keep-alive connections without a word, and a
    client's pooled connection can meet that at its next login, which the SDKs make lazily, on
    the first call of a connection. Only reads are made, so a repeat is harmless."""
    for attempt in range(tries):
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - SDKs wrap the reset in their own types
            if attempt + 1 == tries or "Connection aborted" not in str(error):
                raise
            print(f"a dropped connection, once more: {error}", file=sys.stderr)


class Checks:
    """Collects what did not hold, so that one run reports every deviation."""

    def __init__(self):
        self.failed = []
        self.passed = 0

    def equal(self, what, got, expected):
        if got == expected:
            self.passed += 1
        else:
            self.failed.append(f"{what}: got {got!r}, expected {expected!r}")

    def attempt(self, what, action):
        """`action()`'s value, or None (recorded as a failure) when it raises."""
        try:
            return retried(action)
        except Exception as error:  # noqa: BLE001 - every SDK error is a finding to report
            self.failed.append(f"{what}: {type(error).__name__}: {error}")
            return None


# The fields a client's item is held to: those the ingest wrote and the API returns as sent.
FIELDS = ["id", "name", "status", "checkpoint_id", "resource_id", "resource_type", "created_at"]


def compare_item(checks, what, got, expected):
    """`got`: a dict of the item as the client returned it."""
    for field in FIELDS:
        checks.equal(f"{what}.{field}", got.get(field), expected[field])
    extend_info = got.get("extend_info") or {}
    checks.equal(f"{what}.extend_info.resource_az", extend_info.get("resource_az"),
                 expected["extend_info"]["resource_az"])


def openstacksdk_client(config, checks):
    """openstacksdk with otcextensions. Its CSBS proxy (otcextensions.sdk.csbs.v1._proxy) has no
    resource classes: it is the service's keystoneauth adapter, endpoint from the catalog
    (`data-protect`) and the caller's token, on which paths are requested relative to the
    endpoint (`conn.csbs.get("/checkpoint_items")`), as users of otcextensions do."""
    import openstack
    from otcextensions import sdk as otc_sdk

    def connect(tenant):
        conn = openstack.connect(
            load_yaml_config=False, load_envvars=False, auth_type="password",
            auth={"auth_url": config["auth_url"], "username": tenant["user"],
                  "password": config["password"], "project_name": tenant["project"],
                  "user_domain_id": DOMAIN, "project_domain_id": DOMAIN},
            region_name="RegionOne")
        otc_sdk.register_otc_extensions(conn)
        return conn

    def get(conn, path, **params):
        """(status, body); a request that fails without an answer is status 0."""
        try:
            response = retried(lambda: conn.csbs.get(path, params=params or None, raise_exc=False))
        except Exception as error:  # noqa: BLE001 - reported by the status checks
            print(f"GET {path}: {type(error).__name__}: {error}", file=sys.stderr)
            return 0, None
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return response.status_code, body

    def part(body, key, default):
        return body.get(key, default) if isinstance(body, dict) else default

    a, b = config["tenants"]["a"], config["tenants"]["b"]
    conn = checks.attempt("connect as tenant a", lambda: connect(a))
    if conn is None:
        return
    endpoint = checks.attempt("catalog endpoint", lambda: conn.csbs.get_endpoint())
    checks.equal("catalog endpoint", (endpoint or "").rstrip("/").rsplit("/", 1)[-1],
                 a["project_id"])
    expected = {item["id"]: item for item in a["items"]}

    status, body = get(conn, "/checkpoint_items")
    checks.equal("list status", status, 200)
    listed = part(body, "checkpoint_items", [])
    checks.equal("list ids", sorted(i.get("id") for i in listed), sorted(expected))
    for got in listed:
        if got.get("id") in expected:
            compare_item(checks, f"list[{got['id']}]", got, expected[got["id"]])
    print(f"list: {len(listed)} items")

    status, body = get(conn, "/checkpoint_items", status="available")
    available = sorted(i["id"] for i in a["items"] if i["status"] == "available")
    checks.equal("list status=available",
                 sorted(i.get("id") for i in part(body, "checkpoint_items", [])), available)

    first = a["items"][0]
    status, body = get(conn, f"/checkpoint_items/{first['id']}")
    checks.equal("show status", status, 200)
    compare_item(checks, "show", part(body, "checkpoint_item", {}), first)
    print(f"show: {first['id']} {status}")

    status, body = get(conn, "/checkpoint_items/count")
    checks.equal("count", (status, body), (200, {"count": len(a["items"])}))
    status, body = get(conn, "/checkpoint_items/count", status="available")
    checks.equal("count status=available", (status, body), (200, {"count": len(available)}))
    errors = [i for i in a["items"] if i["status"] == "error"]
    status, body = get(conn, "/checkpoint_items/count", status="error")
    checks.equal("count status=error", (status, body), (200, {"count": len(errors)}))
    print(f"count: {len(a['items'])}, available {len(available)}, error {len(errors)}")

    conn_b = checks.attempt("connect as tenant b", lambda: connect(b))
    if conn_b is None:
        return
    status, body = get(conn_b, "/checkpoint_items")
    checks.equal("tenant b list ids",
                 sorted(i.get("id") for i in part(body, "checkpoint_items", [])),
                 sorted(i["id"] for i in b["items"]))
    status, body = get(conn_b, "/checkpoint_items/count")
    checks.equal("tenant b count", (status, body), (200, {"count": len(b["items"])}))
    status, _ = get(conn_b, f"/checkpoint_items/{first['id']}")
    checks.equal("tenant b show of tenant a's item", status, 404)
    print("tenant b: its own item only; tenant a's item 404")


def huaweicloud_client(config, checks):
    """huaweicloud-sdk-python 1.0.28, through its CSBS proxy (openstack.csbs.v1._proxy)."""
    # Written for Python 3.9 and earlier: its resource classes derive from
    # `collections.MutableMapping`, which Python 3.10 removed (it lives on in
    # `collections.abc`). No server could make it import on a newer Python; the aliases put
    # back what 3.9 had and leave the SDK's own code as released.
    import collections
    import collections.abc
    for name in ["Mapping", "MutableMapping", "Sequence", "MutableSequence", "Set",
                 "MutableSet", "Iterable", "Callable"]:
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    from openstack import connection
    from openstack import exceptions

    def connect(tenant):
        return connection.Connection(
            auth_url=config["auth_url"], username=tenant["user"], password=config["password"],
            project_name=tenant["project"], user_domain_id=DOMAIN, project_domain_id=DOMAIN)

    def as_dict(resource):
        return {field: getattr(resource, field, None) for field in FIELDS + ["extend_info"]}

    a, b = config["tenants"]["a"], config["tenants"]["b"]
    conn = checks.attempt("connect as tenant a", lambda: connect(a))
    if conn is None:
        return
    expected = {item["id"]: item for item in a["items"]}

    listed = checks.attempt("checkpoint_items()", lambda: list(conn.csbs.checkpoint_items()))
    if listed is not None:
        checks.equal("list ids", sorted(i.id for i in listed), sorted(expected))
        for got in listed:
            if got.id in expected:
                compare_item(checks, f"list[{got.id}]", as_dict(got), expected[got.id])
        print(f"checkpoint_items(): {len(listed)} items")
    available = sorted(i["id"] for i in a["items"] if i["status"] == "available")
    listed = checks.attempt("checkpoint_items(status=available)",
                            lambda: list(conn.csbs.checkpoint_items(status="available")))
    if listed is not None:
        checks.equal("list status=available", sorted(i.id for i in listed), available)

    first = a["items"][0]
    shown = checks.attempt("get_checkpoint_item", lambda: conn.csbs.get_checkpoint_item(first["id"]))
    if shown is not None:
        compare_item(checks, "show", as_dict(shown), first)
        print(f"get_checkpoint_item({first['id']}): {shown.name}")

    counted = checks.attempt("get_checkpoint_item_count()",
                             lambda: conn.csbs.get_checkpoint_item_count().count)
    checks.equal("count", counted, len(a["items"]))
    counted_available = checks.attempt(
        "get_checkpoint_item_count(status=available)",
        lambda: conn.csbs.get_checkpoint_item_count(status="available").count)
    checks.equal("count status=available", counted_available, len(available))
    print(f"get_checkpoint_item_count(): {counted}, status=available: {counted_available}")

    conn_b = checks.attempt("connect as tenant b", lambda: connect(b))
    if conn_b is None:
        return
    listed = checks.attempt("tenant b checkpoint_items()",
                            lambda: list(conn_b.csbs.checkpoint_items()))
    if listed is not None:
        checks.equal("tenant b list ids", sorted(i.id for i in listed),
                     sorted(i["id"] for i in b["items"]))
    counted = checks.attempt("tenant b count", lambda: conn_b.csbs.get_checkpoint_item_count().count)
    checks.equal("tenant b count", counted, len(b["items"]))
    try:
        retried(lambda: conn_b.csbs.get_checkpoint_item(first["id"]))
        checks.failed.append("tenant b get_checkpoint_item of tenant a's item: no error")
    except exceptions.NotFoundException:
        checks.passed += 1
    except Exception as error:  # noqa: BLE001
        checks.failed.append(f"tenant b get_checkpoint_item of tenant a's item: "
                             f"{type(error).__name__}: {error}")
    print("tenant b: its own item only; tenant a's item not found")


def client_main(client):
    config = json.load(sys.stdin)
    checks = Checks()
    {"openstacksdk": openstacksdk_client, "huaweicloud": huaweicloud_client}[client](config, checks)
    for failure in checks.failed:
        print(f"FAILED {failure}")
    print(f"{checks.passed} checks passed, {len(checks.failed)} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        sys.exit(client_main(sys.argv[2]))
    sys.exit(main())
