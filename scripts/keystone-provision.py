#!/usr/bin/env python3
"""Creates what the Keystone tests need in a Keystone, through its API, as often as it is run.

Called by scripts/keystone.sh after `keystone-manage bootstrap`, with the admin's credentials in
the environment. Makes (or finds, and resets the passwords of):

- the roles `service` (the service account's; bootstrap does not make it) and `csbs_service`
  (backup engines, the service's default `auth.service_role`);
- the projects `service`, `csbs-tenant-a` and `csbs-tenant-b`;
- the service account `csbs` with `service` on project `service` (and no admin role);
- users `csbs-member-a` (member of tenant a), `csbs-member-b` (member of tenant b),
  `csbs-admin` (admin on tenant a), `csbs-engine` (csbs_service on project service) and
  `csbs-domain-member` (member of the domain `Default`, for domain-scoped tokens);
- the service type `data-protect` with a public endpoint `http://127.0.0.1:PORT/v1/$(project_id)s`;

then writes the environment file the tests read (KEY=VALUE lines).

Standard library only: it runs on Debian's python3 as installed.
"""

import json
import os
import sys
import urllib.error
import urllib.request

URL = os.environ["KEYSTONE_URL"].rstrip("/")
ADMIN_PASSWORD = os.environ["KEYSTONE_ADMIN_PASSWORD"]
SERVICE_PASSWORD = os.environ["KEYSTONE_SERVICE_PASSWORD"]
USER_PASSWORD = os.environ["KEYSTONE_USER_PASSWORD"]
ENDPOINT = os.environ["CSBS_ENDPOINT"]
ENV_FILE = os.environ["KEYSTONE_ENV_FILE"]
DOMAIN = "default"


def call(method, path, token=None, body=None, expect=(200, 201, 204)):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(URL + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "application/json")
    if token:
        request.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, response.headers, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        if error.code in expect:
            return error.code, error.headers, None
        sys.exit(f"keystone-provision: {method} {path}: {error.code} {error.read()[:300]!r}")


def login(user, password, project):
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": DOMAIN}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": DOMAIN}}},
    }}
    _, headers, _ = call("POST", "/auth/tokens?nocatalog", body=body)
    return headers["X-Subject-Token"]


def find(token, collection, **query):
    path = f"/{collection}?" + "&".join(f"{k}={v}" for k, v in query.items())
    _, _, body = call("GET", path, token)
    return body[collection]


def ensure(token, collection, singular, query, create):
    found = find(token, collection, **query)
    if found:
        return found[0]
    _, _, body = call("POST", f"/{collection}", token, {singular: create})
    return body[singular]


def main():
    admin = login("admin", ADMIN_PASSWORD, "admin")
    roles = {name: ensure(admin, "roles", "role", {"name": name}, {"name": name})["id"]
             for name in ["admin", "member", "reader", "service", "csbs_service"]}
    projects = {
        name: ensure(admin, "projects", "project", {"name": name, "domain_id": DOMAIN},
                     {"name": name, "domain_id": DOMAIN,
                      "description": "CSBS Keystone tests"})["id"]
        for name in ["service", "csbs-tenant-a", "csbs-tenant-b"]
    }
    users = {
        # name: (password, [(project or None for the domain, role)])
        "csbs": (SERVICE_PASSWORD, [("service", "service")]),
        "csbs-member-a": (USER_PASSWORD, [("csbs-tenant-a", "member")]),
        "csbs-member-b": (USER_PASSWORD, [("csbs-tenant-b", "member")]),
        "csbs-admin": (USER_PASSWORD, [("csbs-tenant-a", "admin")]),
        "csbs-engine": (USER_PASSWORD, [("service", "csbs_service")]),
        "csbs-domain-member": (USER_PASSWORD, [(None, "member")]),
    }
    for name, (password, grants) in users.items():
        user = ensure(admin, "users", "user", {"name": name, "domain_id": DOMAIN},
                      {"name": name, "domain_id": DOMAIN, "password": password})
        # The same password on every run, whatever an earlier run set.
        call("PATCH", f"/users/{user['id']}", admin, {"user": {"password": password}})
        for project, role in grants:
            target = f"/domains/{DOMAIN}" if project is None else f"/projects/{projects[project]}"
            call("PUT", f"{target}/users/{user['id']}/roles/{roles[role]}", admin)

    service = ensure(admin, "services", "service", {"type": "data-protect"},
                     {"type": "data-protect", "name": "csbs",
                      "description": "Cloud Server Backup Service"})
    endpoints = find(admin, "endpoints", service_id=service["id"], interface="public")
    endpoint = {"service_id": service["id"], "interface": "public", "url": ENDPOINT,
                "region_id": "RegionOne"}
    if not endpoints:
        call("POST", "/endpoints", admin, {"endpoint": endpoint})
    elif endpoints[0]["url"] != ENDPOINT:
        call("PATCH", f"/endpoints/{endpoints[0]['id']}", admin, {"endpoint": endpoint})

    values = {
        "CSBS_TEST_KEYSTONE_URL": URL,
        "CSBS_TEST_KEYSTONE_SERVICE_USER": "csbs",
        "CSBS_TEST_KEYSTONE_SERVICE_PASSWORD": SERVICE_PASSWORD,
        "CSBS_TEST_KEYSTONE_SERVICE_PROJECT": "service",
        "CSBS_TEST_KEYSTONE_USER_PASSWORD": USER_PASSWORD,
        "CSBS_TEST_KEYSTONE_TENANT_A": projects["csbs-tenant-a"],
        "CSBS_TEST_KEYSTONE_TENANT_B": projects["csbs-tenant-b"],
        "CSBS_TEST_KEYSTONE_SERVICE_PROJECT_ID": projects["service"],
    }
    draft = ENV_FILE + ".draft"
    with open(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        for key, value in values.items():
            out.write(f"{key}={value}\n")
    os.replace(draft, ENV_FILE)
    print(f"keystone-provision: tenants a={projects['csbs-tenant-a']} "
          f"b={projects['csbs-tenant-b']}; data-protect at {ENDPOINT}")


if __name__ == "__main__":
    main()
