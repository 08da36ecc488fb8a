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

# shellcheck source=apt-install.sh
source "$(dirname "$0")/apt-install.sh"
apt_install chromium chromium chromium-driver
echo "chromium: installed ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))"
