#!/usr/bin/env bash
# Installs everything the build, the tests and the demo need on a fresh Debian 12 machine
# (the Debian packages: dpkg-dev, debhelper, lintian; Rust itself is rustup's).
# Idempotent: a second run only checks. Needs root (apt-get).
set -euo pipefail

need_apt=0
for bin in qemu-system-x86_64 qemu-ga qemu-img zstd gzip pigz lzop valgrind pkg-config prove \
  dpkg-buildpackage dh lintian; do
  command -v "$bin" >/dev/null 2>&1 || need_apt=1
done
# The Perl module's JSON (JSON::XS under JSON, as qemu-server); for `make bench`
# (scripts/bench.sh): qemu-server's Perl client style, Python's venv for qemu.qmp, GNU time.
perl -MJSON -MJSON::XS -MIO::Multiplex -e1 >/dev/null 2>&1 || need_apt=1
[ -x /usr/bin/time ] || need_apt=1
# dpkg-buildpackage checks build-essential (a build dependency of every Debian package).
[ "$(dpkg-query -W -f='${db:Status-Status}' build-essential 2>/dev/null || true)" = installed ] ||
  need_apt=1
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt=1
qemu_ver=$(qemu-system-x86_64 --version 2>/dev/null | head -n1 || true)
case "$qemu_ver" in *"version 10."*) ;; *) need_apt=1 ;; esac

if [ "$need_apt" = 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages and not root; run as root" >&2
    exit 1
  fi
  # QEMU 10 comes from bookworm-backports. Plain bookworm's qemu-system-x86 would
  # downgrade and remove the preinstalled qemu-utils 10.0.2.
  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=http://deb.debian.org/debian
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
      > /etc/apt/sources.list.d/bookworm-backports.sources
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports \
    qemu-system-x86 qemu-utils qemu-guest-agent
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    zstd gzip pigz lzop valgrind pkg-config perl make gcc g++ libc6-dev \
    libjson-perl libjson-xs-perl libio-multiplex-perl python3-venv time \
    dpkg-dev debhelper lintian build-essential
fi
