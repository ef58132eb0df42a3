#!/usr/bin/env bash
# Writes the .env file docker compose reads from this folder: a random token-signing secret
# (CSBS_HMAC_SECRET) and database password (CSBS_DB_PASSWORD), made once and kept, so that
# every `docker compose` command, in any terminal and after a restart, uses the same ones.
# An existing file is left as it is. The file is git-ignored and kept out of the image.
#
#   scripts/compose-env.sh [FILE]      (default: .env beside docker-compose.yml)
set -euo pipefail
file="${1:-$(cd "$(dirname "$0")/.." && pwd)/.env}"
if [ -e "$file" ]; then
    echo "$file exists; left as it is" >&2
    exit 0
fi
random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
umask 077
cat >"$file" <<ENV
# Made by scripts/compose-env.sh; docker compose reads it. Keep it: tokens are signed with
# CSBS_HMAC_SECRET, and CSBS_DB_PASSWORD is fixed when the database volume is first made.
CSBS_HMAC_SECRET=$(random_hex 32)
CSBS_DB_PASSWORD=$(random_hex 16)
ENV
echo "wrote $file" >&2
