#!/bin/sh
# Installs the benchmark's peers on a Debian machine: Postfix (for
# smtp-sink) with apt, and Twisted and aiosmtpd in a venv under /tmp (never
# committed). Run as root. Idempotent: a second run installs nothing new.
#
#   sh examples/bench/setup.sh        # then: see examples/bench/README.md
set -eu
VENV="${BENCH_VENV:-/tmp/portcullis-bench-venv}"

if ! command -v smtp-sink >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-sink ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "examples/bench/setup.sh: run as root to install postfix (smtp-sink) with apt-get" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postfix >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import twisted, aiosmtpd' 2>/dev/null ||
    "$VENV/bin/pip" install -q 'twisted>=24' 'aiosmtpd>=1.4'
echo "examples/bench/setup.sh: smtp-sink at $(command -v smtp-sink || echo /usr/sbin/smtp-sink); Python peers in $VENV"
