"""What the fault scripts share: the service binary started on a free port, HTTP requests that
report status, body, latency and headers, waiting, tokens and items to write."""

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_binary():
    """Builds the service with cargo and answers the binary's path (under `CARGO_TARGET_DIR`
    when that is set, as cargo puts it there)."""
    subprocess.run(["cargo", "build", "-q", "-p", "csbs-api"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(ROOT, target, "debug", "csbs-api")


def wait_for(predicate, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lower(headers):
    return {k.lower(): v for k, v in headers.items()}


def request(method, url, token, body=None, timeout=10):
    """(status, body, seconds, headers); a refused or timed-out connection is status 0."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"X-Auth-Token": token, "Content-Type": "application/json"})
    started = time.time()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read().decode(), time.time() - started, lower(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), time.time() - started, lower(error.headers)
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error), time.time() - started, {}


class Service:
    """`csbs-api serve` on `port` (a free one if not given), on `database_url`, with `settings`
    (CSBS__… variables)."""

    def __init__(self, binary, database_url, data_dir, port=None, **settings):
        self.binary = binary
        self.data_dir = data_dir
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, DATABASE_URL=database_url, CSBS__DATA_DIR=data_dir,
                        CSBS__SERVER__BIND=f"127.0.0.1:{self.port}", CSBS__LOG__FILTER="warn",
                        **settings)
        self.log = open(os.path.join(data_dir, "service.log"), "w")
        self.process = subprocess.Popen([binary, "serve"], env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        wait_for(self.listening, 30, "the service to listen")

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def command(self, *args):
        """Runs another `csbs-api` command with the service's configuration."""
        return subprocess.run([self.binary, *args], env=dict(self.env, CSBS__LOG__FILTER="error"),
                              capture_output=True, text=True)

    def token(self, *args):
        """A token minted with the service's secret (`csbs-api token ARGS`)."""
        minted = self.command("token", *args)
        if minted.returncode != 0:
            raise AssertionError(f"token {args}: {minted.stderr}")
        return minted.stdout.strip()

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def item(checkpoint, name="fault-test"):
    """A new item (version 1) for the ingest API."""
    return {"id": str(uuid.uuid4()), "name": name, "status": "available", "version": 1,
            "checkpoint_id": checkpoint, "resource_id": "r", "resource_type": "OS::Nova::Server",
            "created_at": "2024-01-01T00:00:00", "extend_info": {"resource_az": "az1"}}
