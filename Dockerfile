# The CSBS backup query service as a container image.
#
#   docker build -t csbs-api .
#   docker run --rm -p 8080:8080 -v csbs-data:/var/lib/csbs csbs-api
#
# The service runs as UID/GID 65532: a new named volume takes the data folder's ownership from
# the image, a bind-mounted host folder must be made writable for 65532 first.
# With no DATABASE_URL the image uses SQLite in its data volume and generates a development
# signing secret there; docker-compose.yml runs it against PostgreSQL with a configured secret.
# Configuration: CSBS__SECTION__KEY environment variables (e.g. CSBS__AUTH__HMAC_SECRET,
# CSBS__DATABASE__MAX_CONNECTIONS), DATABASE_URL, or a config/<CSBS_ENV>.toml mounted into
# /app/config/ and selected with CSBS_ENV.

# The toolchain of the build; at least the workspace's rust-version (1.88).
ARG RUST_VERSION=1.95

# --- build ------------------------------------------------------------------------------------
# rust:*-bookworm has the C compiler, make and perl that the bundled SQLite, libpq (pq-src) and
# OpenSSL (openssl-src) need, and the same glibc (2.36) as the Debian 12 runtime below.
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /build
ENV CARGO_TERM_COLOR=never

# Cargo's registry and target folder are cache mounts: where the build machine keeps them, a
# rebuild compiles only what changed (a new dependency, or the service's own crates). The
# binary is copied out of the cached target folder within the same step. Cargo locks both
# folders itself, so concurrent builds need no `sharing=locked` (which also hangs buildah 1.28,
# Debian 12's podman, on the second step that mounts the same cache).
#
# Dependencies first, in their own layer: it is rebuilt only when a manifest or Cargo.lock
# changes, not when the service's sources do. The workspace's crates are empty stubs here;
# their artifacts are cleaned afterwards so that the real sources are always compiled below,
# whatever their modification times (cargo judges local crates by mtime, and COPY keeps the
# build context's). The stubs are a plain shell step of their own, apart from the step with
# the engine's cache mounts.
COPY Cargo.toml Cargo.lock ./
COPY crates/domain/Cargo.toml crates/domain/
COPY crates/storage/Cargo.toml crates/storage/
COPY crates/auth/Cargo.toml crates/auth/
COPY crates/api/Cargo.toml crates/api/
COPY crates/sample-data/Cargo.toml crates/sample-data/
COPY crates/test-support/Cargo.toml crates/test-support/
COPY crates/bench/Cargo.toml crates/bench/
RUN for crate in domain storage auth api sample-data test-support bench; do \
        mkdir -p "crates/${crate}/src" && : > "crates/${crate}/src/lib.rs"; \
    done \
    && for binary in api bench; do echo 'fn main() {}' > "crates/${binary}/src/main.rs"; done
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked -p csbs-api \
    && cargo clean --release -p csbs-domain -p csbs-storage -p csbs-auth -p csbs-api \
        -p csbs-sample-data -p csbs-test-support -p csbs-bench \
    && rm -rf crates/*/src

# The service: its sources, the migrations and the defaults (both compiled into the binary).
COPY crates crates
COPY migrations migrations
COPY config config
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked -p csbs-api \
    && install -D -m 0755 target/release/csbs-api /out/app/csbs-api \
    && mkdir -p /out/var/lib/csbs

# --- runtime ----------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc_s, CA certificates, tzdata and a "nonroot" user (65532), and no
# shell or package manager. The binary needs nothing more: SQLite, libpq and OpenSSL are linked
# in statically. Without a shell there is no curl for the health check, so the binary checks
# itself (`csbs-api healthcheck`). To debug, build FROM the :debug-nonroot tag, which adds busybox.
FROM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="csbs-api" \
      org.opencontainers.image.description="CSBS backup query service" \
      org.opencontainers.image.licenses="Apache-2.0"

WORKDIR /app
COPY --from=build /out/app/csbs-api /app/csbs-api
# Found from /app/csbs-api by walking up to a config/ with a default.toml.
COPY config /app/config
# The data folder, owned by the non-root user; a new named volume copies this ownership.
COPY --from=build --chown=65532:65532 /out/var/lib/csbs /var/lib/csbs

# The data folder holds the generated development secret and, without DATABASE_URL, the SQLite
# database (an absolute path, so it is in the volume whatever the working folder).
# DATABASE_URL, when set, overrides CSBS__DATABASE__URL.
ENV CSBS__DATA_DIR=/var/lib/csbs \
    CSBS__DATABASE__URL=sqlite:///var/lib/csbs/csbs.db \
    CSBS__SERVER__BIND=0.0.0.0:8080 \
    CSBS__LOG__FORMAT=json

VOLUME ["/var/lib/csbs"]
EXPOSE 8080
USER 65532:65532

# Healthy once GET /readyz answers 200, i.e. the database is reachable and migrated. The check
# reads the same configuration as the server, so it follows CSBS__SERVER__BIND.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/csbs-api", "healthcheck"]

# `serve` applies the migrations itself (under a PostgreSQL advisory lock, so replicas may start
# together) and stops gracefully on SIGTERM within server.shutdown_grace_seconds (30 s): give
# `docker stop` a longer --time (the compose file sets stop_grace_period).
ENTRYPOINT ["/app/csbs-api"]
CMD ["serve"]
