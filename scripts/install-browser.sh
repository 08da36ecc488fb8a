#!/usr/bin/env bash
# Install Debian's Chromium and its WebDriver for the browser test of the rating page.
# Idempotent and quiet: does nothing when /usr/bin/chromium is already there. Uses the
# distribution's packages (never a browser download of its own, which cannot be fetched
# on a closed network). Needs root or sudo; prints one line either way.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "chromium: not installed, and root (or sudo) is needed to apt-get install it" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >"$log" 2>&1; then
    cat "$log" >&2  # quiet unless it failed
    echo "chromium: apt-get install chromium chromium-driver failed" >&2
    exit 1
fi
echo "chromium: installed ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))"
