#!/usr/bin/env bash
# Shared by the install-*.sh scripts: `apt_install NAME PACKAGE...` installs Debian
# packages quietly (apt-get's output is shown only when it fails), as root or through
# sudo, and exits with one line naming NAME when it cannot.

apt_install() {
    local name="$1"
    shift
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            echo "$name: not installed, and root (or sudo) is needed to apt-get install it" >&2
            exit 1
        fi
    fi
    local log
    log="$(mktemp)"
    if ! { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
           $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "$name: apt-get install $* failed" >&2
        exit 1
    fi
    rm -f "$log"
}
