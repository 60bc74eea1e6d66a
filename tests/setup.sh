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
# Postfix logs through postlogd over a Unix datagram socket (the tests set
# maillog_file). With the kernel's queue of 10 datagrams (some containers'
# default), a burst of postfix-script warnings fills it, and postlogd, which
# logs its own warnings to that socket, can block on itself: Postfix then
# stalls and a test sees a timeout. Debian's default is 512.
if [ "$(id -u)" -eq 0 ] && [ "$(cat /proc/sys/net/unix/max_dgram_qlen 2>/dev/null || echo 512)" -lt 512 ]; then
    sysctl -q -w net.unix.max_dgram_qlen=512 2>/dev/null || echo "tests/setup.sh: could not raise net.unix.max_dgram_qlen" >&2
fi
need=""
for tool in swaks curl python3 gsasl msmtp; do
    command -v "$tool" >/dev/null 2>&1 || need=1
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need=1
# The real servers the interop tests run privately: Postfix and Exim as
# MTAs that authenticate through portcullis, Dovecot's auth for comparison
# and its LMTP as a next hop, HAProxy and Redis for the fleet.
for tool in /usr/sbin/postfix /usr/sbin/dovecot /usr/lib/dovecot/lmtp /usr/sbin/haproxy /usr/bin/redis-server; do
    [ -x "$tool" ] || need=1
done
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
    # Postfix asks debconf what kind of mail system this is; say none, so
    # it installs without a configuration of its own (tests bring theirs).
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get install -y -qq --no-install-recommends \
        postfix libsasl2-modules dovecot-core dovecot-lmtpd haproxy redis-server >/dev/null
fi
# Exim conflicts with Postfix as a Debian package: unpack its daemon beside
# it (with the libraries it links) and give it the user it runs as. The
# heavy build: the light one has no dovecot authenticator.
EXIM_ROOT=/opt/portcullis-exim
if ! "$EXIM_ROOT/usr/sbin/exim4" -bV -C /dev/null 2>/dev/null | grep -q dovecot; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "tests/setup.sh: run as root to unpack exim4-daemon-heavy into $EXIM_ROOT" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0 libnsl2 libpcre2-8-0 \
        libldap-2.5-0 libmariadb3 libpam0g libperl5.36 libpq5 libsasl2-2 libspf2-2 libsqlite3-0 >/dev/null
    work=$(mktemp -d)
    chmod 755 "$work"
    (cd "$work" && apt-get download -qq exim4-daemon-heavy >/dev/null)
    rm -rf "$EXIM_ROOT"
    dpkg -x "$work"/exim4-daemon-heavy_*.deb "$EXIM_ROOT"
    rm -rf "$work"
fi
getent group Debian-exim >/dev/null 2>&1 || groupadd --system Debian-exim
getent passwd Debian-exim >/dev/null 2>&1 || useradd --system -g Debian-exim -d /nonexistent -s /usr/sbin/nologin Debian-exim
