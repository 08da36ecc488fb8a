#!/usr/bin/env bash
# Install Debian's PostgreSQL server binaries for the many-worker tests and the scale
# benchmark. Idempotent and quiet: does nothing when initdb is already there. The tests
# start their own throw-away server (initdb into a temporary folder, pg_ctl on 127.0.0.1;
# see tests/servers.py), so no cluster is created or started here. Needs root or sudo;
# prints one line either way.
set -euo pipefail

found="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -n "$found" ]; then
    echo "postgresql: already installed ($("$found" --version 2>/dev/null || echo "$found"))"
    exit 0
fi

# shellcheck source=apt-install.sh
source "$(dirname "$0")/apt-install.sh"
# Debian may also create its own cluster on port 5432; the tests never use it
apt_install postgresql postgresql
found="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)"
echo "postgresql: installed ($("$found" --version 2>/dev/null || echo "$found"))"
