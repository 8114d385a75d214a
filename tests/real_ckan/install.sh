#!/usr/bin/env bash
# Installs what the real-CKAN test tier needs (as root, on Debian): PostgreSQL and Redis from
# Debian, CKAN 2.12 from PyPI in a venv of its own, gunicorn, and the test-only Solr stand-in.
# Idempotent: a second run only refreshes the stand-in. The venv's place is printed on stdout;
# tests find it at $BULKPORT_CKAN_VENV (default ~/.cache/bulkport/ckan-2.12).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${BULKPORT_CKAN_VENV:-$HOME/.cache/bulkport/ckan-2.12}"

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v redis-server >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql redis-server libpq-dev libmagic1 gcc >/dev/null
fi
# Debian starts its own cluster and Redis on the default ports; the tier runs its own.
systemctl disable --now postgresql redis-server >/dev/null 2>&1 || true
service postgresql stop >/dev/null 2>&1 || true
service redis-server stop >/dev/null 2>&1 || true

if [ ! -x "$venv/bin/ckan" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "ckan[requirements]==2.12.*" gunicorn
fi
"$venv/bin/pip" install -q --force-reinstall --no-deps "$here/ckanext-nosolr"
echo "$venv"
