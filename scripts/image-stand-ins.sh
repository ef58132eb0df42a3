#!/usr/bin/env bash
# Local stand-ins for the two base images of the Dockerfile, for machines that cannot pull from
# a registry (CI here): podman then builds the real Dockerfile unchanged, with --pull=never.
#
#   rust:<RUST_VERSION>-bookworm           (the build stage)  a Debian 12 root file system from
#       debootstrap, with the C compiler, make and perl that the bundled SQLite, libpq and
#       OpenSSL need, and this machine's Rust toolchain (rustc, cargo; no rustup, no docs)
#       under /usr/local/cargo, as the official image lays it out; it trusts the certificate
#       authorities this machine adds to Debian's (/usr/local/share/ca-certificates).
#   gcr.io/distroless/cc-debian12:nonroot  (the runtime)  only what distroless `cc` holds:
#       glibc, libgcc, CA certificates, time zones, and the users root, nonroot (65532) and
#       nobody; no shell, no package manager; USER 65532.
#
# They are stand-ins, not the published images: same names, same layout where the service
# depends on it, built from Debian's own packages. Where a registry is reachable, build with
# the real ones (plain `podman build` or `docker build`).
#
# Idempotent: an image that exists under its name is kept. The Debian root file system is cached
# under $CSBS_IMAGE_CACHE (default ~/.cache/csbs-image-stand-ins). Needs root, debootstrap and
# podman (Debian packages).
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CSBS_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/csbs-image-stand-ins}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# The toolchain the Dockerfile asks for; the stand-in gets the machine's own under that name.
RUST_VERSION="$(sed -n 's/^ARG RUST_VERSION=//p' "$ROOT_DIR/Dockerfile")"
BUILD_IMAGE="docker.io/library/rust:${RUST_VERSION}-bookworm"
RUNTIME_IMAGE="gcr.io/distroless/cc-debian12:nonroot"
# What the build stage needs beyond a minimal Debian: a C toolchain for the -sys crates'
# bundled C code, perl for OpenSSL's configure, CA certificates for crates.io.
BUILD_PACKAGES="gcc,libc6-dev,make,perl,ca-certificates,tzdata"

log() { printf '== %s\n' "$*" >&2; }

have_image() { podman image exists "$1"; }

debian_root() {
    local root="$CACHE/bookworm"
    if [ ! -f "$root/.complete" ]; then
        log "debootstrap bookworm into $root (a few minutes, once)"
        rm -rf "$root"
        mkdir -p "$CACHE"
        debootstrap --variant=minbase --include="$BUILD_PACKAGES" bookworm "$root" "$MIRROR" >&2
        touch "$root/.complete"
    fi
    printf '%s\n' "$root"
}

build_stand_in() {
    local root="$1" stage
    stage="$(mktemp -d)"
    # shellcheck disable=SC2064 # expanded now, on purpose
    trap "rm -rf '$stage'" RETURN
    local sysroot version
    sysroot="$(rustc --print sysroot)"
    version="$(rustc --version | awk '{print $2}')"
    if [ "${version%.*}" != "${RUST_VERSION%.*}" ] && [ "$version" != "$RUST_VERSION" ]; then
        log "note: the machine's rustc is $version, the Dockerfile asks for $RUST_VERSION"
    fi
    log "stand-in $BUILD_IMAGE: Debian root + rustc $version from $sysroot"
    mkdir -p "$stage/usr/local/cargo/bin" "$stage/usr/local/rust/lib"
    cp -a "$sysroot/lib/." "$stage/usr/local/rust/lib/"
    # The host's sources of the standard library and its docs are not needed to build.
    rm -rf "$stage/usr/local/rust/lib/rustlib/src" "$stage/usr/local/rust/lib/rustlib/etc"
    mkdir -p "$stage/usr/local/rust/bin"
    for tool in rustc cargo rustdoc; do
        cp -a "$sysroot/bin/$tool" "$stage/usr/local/rust/bin/"
        ln -s "../../rust/bin/$tool" "$stage/usr/local/cargo/bin/$tool"
    done
    tar -C "$root" --exclude=./.complete -c . | tar -C "$stage" -x
    # The machine's own extra trust anchors, so that cargo in the build reaches crates.io
    # wherever the machine itself does (through a TLS-inspecting proxy, say).
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$stage/usr/local/share/ca-certificates/"
        chroot "$stage" update-ca-certificates >/dev/null
    fi
    tar -C "$stage" -c . | podman import \
        --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
        --change 'ENV CARGO_HOME=/usr/local/cargo' \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "ENV RUST_VERSION=$version" \
        --change 'CMD ["bash"]' \
        - "$BUILD_IMAGE" >/dev/null
}

runtime_stand_in() {
    local root="$1" stage
    stage="$(mktemp -d)"
    # shellcheck disable=SC2064 # expanded now, on purpose
    trap "rm -rf '$stage'" RETURN
    log "stand-in $RUNTIME_IMAGE: glibc, libgcc, CA certificates, time zones, nonroot"
    # The packages' files, each path with its folders resolved (Debian 12 merges /lib into
    # /usr/lib, and dpkg lists the old paths), so the copy holds real folders and the same
    # top-level links as Debian.
    chroot "$root" dpkg-query -L libc6 libgcc-s1 tzdata ca-certificates \
        | while read -r path; do
            [ -e "$root$path" ] || [ -L "$root$path" ] || continue
            [ -d "$root$path" ] && [ ! -L "$root$path" ] && continue
            dir="$(cd "$root$(dirname "$path")" && pwd -P)"
            printf '%s\n' "${dir#"$root"}/$(basename "$path")"
        done | sort -u | sed 's|^/||' >"$stage.list"
    # The certificate bundle is made by update-ca-certificates, not shipped by the package.
    echo "etc/ssl/certs/ca-certificates.crt" >>"$stage.list"
    tar -C "$root" -c -T "$stage.list" | tar -C "$stage" -x
    rm -f "$stage.list"
    for link in lib lib64 bin sbin; do
        [ -L "$root/$link" ] && cp -a "$root/$link" "$stage/$link"
    done
    mkdir -p "$stage/etc" "$stage/tmp" "$stage/home/nonroot" "$stage/root"
    chmod 1777 "$stage/tmp"
    chmod 700 "$stage/root"
    chown 65532:65532 "$stage/home/nonroot"
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
        'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
        'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$stage/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' \
        'nonroot:x:65532:' >"$stage/etc/group"
    cp "$root/etc/nsswitch.conf" "$stage/etc/" 2>/dev/null || true
    tar -C "$stage" -c . | podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'USER 65532' \
        --change 'WORKDIR /home/nonroot' \
        - "$RUNTIME_IMAGE" >/dev/null
}

main() {
    if have_image "$BUILD_IMAGE" && have_image "$RUNTIME_IMAGE"; then
        log "stand-ins present: $BUILD_IMAGE, $RUNTIME_IMAGE"
        return 0
    fi
    local root
    root="$(debian_root)"
    have_image "$BUILD_IMAGE" || build_stand_in "$root"
    have_image "$RUNTIME_IMAGE" || runtime_stand_in "$root"
}

main "$@"
