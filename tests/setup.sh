#!/bin/sh
# Installs what the test suite needs on a fresh Debian machine: the wasm
# target the plugins are built for, the real mail clients the interop tests
# drive (swaks, curl, gsasl, msmtp; Python's smtplib comes with python3),
# and the PostgreSQL server the SQL checker's tests start a cluster of.
set -eu
rustup target add wasm32-wasip2
# A full plugin pool (12,000 instances by default) needs about 80,000
# memory mappings; the kernel's default allows 65,530. Raise it where we may
# (root, outside a read-only /proc); the server warns when it is too low.
if [ "$(id -u)" -eq 0 ] && [ "$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)" -lt 262144 ]; then
    sysctl -q -w vm.max_map_count=262144 2>/dev/null || echo "tests/setup.sh: could not raise vm.max_map_count" >&2
fi
need=""
for tool in swaks curl python3 gsasl msmtp; do
    command -v "$tool" >/dev/null 2>&1 || need=1
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need=1
perl -MAuthen::SASL -MIO::Socket::SSL -MDigest::HMAC_MD5 -e 1 >/dev/null 2>&1 || need=1
if [ -n "$need" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "tests/setup.sh: run as root to install swaks, curl, gsasl, msmtp, python3 and postgresql with apt-get" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        swaks libauthen-sasl-perl libdigest-hmac-perl libio-socket-ssl-perl \
        curl ca-certificates python3 postgresql gsasl msmtp >/dev/null
fi
