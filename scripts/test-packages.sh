#!/usr/bin/env bash
# The Debian packages as a user gets them: checks that the versions agree (Cargo.toml,
# debian/changelog, the Perl module), builds the packages (make deb) and the Perl dist
# (make dist), runs lintian, installs the packages into this machine with apt and then,
# from the installed files alone (a scratch directory outside the tree, a clean
# environment: no build paths, no PERL5LIB, PKG_CONFIG_PATH or LD_LIBRARY_PATH):
#   - with only libvzdump-qemu0 and -dev installed: builds the Perl dist against them
#     (perl Makefile.PL && make && make test), and the C example examples/demo.c with
#     nothing but `pkg-config --cflags --libs vzdump-qemu`;
#   - with all four: runs the C program's backup and examples/vzdump-plugin.pl's (the
#     installed module's archive_vma) against the installed pve-qmp-sim as VM 100, and
#     verifies both archives with the installed vzdump-qemu against the simulator's disk;
#   - checks the soname, that ldd finds the installed library, that nothing carries an
#     rpath, that the exports equal the symbols file and the header, the man pages and
#     --version;
# and purges the packages again, also on failure or interruption, then checks that the
# machine has the packages it had before. Installed, not unpacked into a scratch root: so
# that the dynamic linker's cache, Perl's vendor path and pkg-config's default search path
# are what find the files, as on a Proxmox host. Runs under a lock, one at a time per
# machine (dpkg's database is one). Run through `make test-packages` (part of `make test`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

fail() { echo "test-packages: $*" >&2; exit 1; }
step() { echo "--- $*"; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
deb_version=$(dpkg-parsechangelog -SVersion)
perl_version=$(sed -n "s/^our \$VERSION = '\(.*\)';/\1/p" perl/lib/PVE/RS/VZDump/Qemu.pm)
[ "$deb_version" = "$version" ] ||
  fail "debian/changelog has version $deb_version, Cargo.toml $version: add a changelog entry"
[ "$perl_version" = "$version" ] ||
  fail "perl/lib/PVE/RS/VZDump/Qemu.pm has \$VERSION $perl_version, Cargo.toml $version"
echo "versions: $version (Cargo.toml, debian/changelog, PVE::RS::VZDump::Qemu)"

pkgs=(libvzdump-qemu0 libvzdump-qemu-dev libpve-rs-vzdump-qemu-perl vzdump-qemu-tools)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
debs=build/deb
lib=/usr/lib/$ma/libvzdump_qemu.so.0

lock=/run/lock
[ -d "$lock" ] || lock=/tmp
exec 9>"$lock/vzdump-qemu-test-packages.lock"
flock -w 1200 9 || fail "another packaging test holds $lock/vzdump-qemu-test-packages.lock"
for p in "${pkgs[@]}"; do
  case $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) in
    "" | not-installed) ;;
    *) fail "$p is installed: this test installs its own build and purges it; remove it first" ;;
  esac
done

work=$(mktemp -d /tmp/vzq-pkgtest-XXXXXX)
before=$(dpkg-query -W -f='${Package}:${Architecture} ${db:Status-Status}\n' | sort)
sim_pid=
installed=0
cleanup() {
  local rc=$?
  [ -z "$sim_pid" ] || { kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; }
  if [ "$installed" = 1 ]; then
    DEBIAN_FRONTEND=noninteractive dpkg --purge "${pkgs[@]}" >"$work/purge.log" 2>&1 ||
      { cat "$work/purge.log" >&2; rc=1; }
    after=$(dpkg-query -W -f='${Package}:${Architecture} ${db:Status-Status}\n' | sort)
    if [ "$after" != "$before" ]; then
      echo "test-packages: the machine's packages differ from before the test:" >&2
      diff <(echo "$before") <(echo "$after") >&2 || true
      rc=1
    fi
    for f in "/usr/lib/$ma/libvzdump_qemu.so.0" /usr/include/vzdump_qemu.h /usr/bin/pve-qmp-sim; do
      [ ! -e "$f" ] || { echo "test-packages: $f is still there after the purge" >&2; rc=1; }
    done
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'echo "test-packages: interrupted" >&2; exit 130' INT TERM

# What a user's shell has: no variable of this build.
clean() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work" TMPDIR="$work" LANG=C.UTF-8 "$@"; }
install_debs() {
  local files=()
  for p in "$@"; do files+=("./$debs/${p}_${version}_$(dpkg --print-architecture).deb"); done
  installed=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${files[@]}" \
    >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; fail "apt-get install $* failed"; }
}

# FILE loads the installed library (ldd may name it by /lib, the merged /usr's link).
loads_installed() {
  local got
  got=$(ldd "$1" | awk '$1 == "libvzdump_qemu.so.0" {print $3}')
  [ -n "$got" ] && [ "$(realpath "$got")" = "$(realpath "$lib")" ] ||
    fail "$1 loads libvzdump_qemu.so.0 from '${got:-nowhere}', not $lib"
}

step "make deb"
make -s deb >"$work/deb.log" 2>&1 || { tail -n 60 "$work/deb.log" >&2; fail "make deb failed"; }
step "make dist"
make -s dist >"$work/dist.log" 2>&1 || { tail -n 30 "$work/dist.log" >&2; fail "make dist failed"; }
step "lintian"
lint=0
lintian --pedantic --display-info --fail-on error,warning,info \
  "$debs/vzdump-qemu_${version}_$(dpkg --print-architecture).changes" >"$work/lintian.log" 2>&1 ||
  lint=$?
grep -v '^running with root privileges' "$work/lintian.log" || true
[ "$lint" = 0 ] || fail "lintian found problems (above)"

step "install libvzdump-qemu0 libvzdump-qemu-dev"
install_debs libvzdump-qemu0 libvzdump-qemu-dev

step "the Perl dist against the installed library"
mkdir "$work/dist"
tar -xzf "build/PVE-RS-VZDump-Qemu-$version.tar.gz" -C "$work/dist"
dist=$work/dist/PVE-RS-VZDump-Qemu-$version
(cd "$dist" && clean perl Makefile.PL && clean make && clean make test) >"$work/dist-build.log" 2>&1 ||
  { cat "$work/dist-build.log" >&2; fail "the Perl dist does not build against libvzdump-qemu-dev"; }
grep -q "^Result: PASS" "$work/dist-build.log" || fail "the Perl dist's tests did not pass"
xs=$dist/blib/arch/auto/PVE/RS/VZDump/Qemu/Qemu.so
loads_installed "$xs"

step "the C example, built with pkg-config alone"
# shellcheck disable=SC2046
clean gcc -std=c99 -Wall -Wextra -Werror -pedantic -D_POSIX_C_SOURCE=200809L examples/demo.c \
  $(clean pkg-config --cflags --libs vzdump-qemu) -o "$work/demo"
loads_installed "$work/demo"

step "install libpve-rs-vzdump-qemu-perl vzdump-qemu-tools"
install_debs libpve-rs-vzdump-qemu-perl vzdump-qemu-tools
vendorarch=$(perl -MConfig -e 'print $Config{vendorarch}')
xs=$vendorarch/auto/PVE/RS/VZDump/Qemu/Qemu.so
loaded=$(cd "$work" && clean perl -MPVE::RS::VZDump::Qemu -e 'print $INC{"PVE/RS/VZDump/Qemu.pm"}')
[ "$loaded" = "$vendorarch/PVE/RS/VZDump/Qemu.pm" ] || fail "perl loads the module from $loaded"
loads_installed "$xs"

step "soname, rpath, symbols"
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = libvzdump_qemu.so.0 ] || fail "$lib has soname '$soname'"
for f in "$lib" "$xs" /usr/bin/vzdump-qemu /usr/bin/pve-qmp-sim; do
  ! objdump -p "$f" | grep -qE '^ *(RPATH|RUNPATH) ' || fail "$f has an rpath"
done
./scripts/check-symbols.sh "$lib" /usr/include/vzdump_qemu.h
symbols=/var/lib/dpkg/info/libvzdump-qemu0:$(dpkg --print-architecture).symbols
diff <(sed -n 's/^ \([a-z0-9_]*\)@Base .*/\1/p' "$symbols" | sort) \
  <(nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' | sort) ||
  fail "the exports of $lib differ from its symbols file (< symbols file, > library)"

step "tools: --version, man pages"
[ "$(clean vzdump-qemu --version)" = "vzdump-qemu $version" ] || fail "vzdump-qemu --version"
[ "$(clean pve-qmp-sim -V)" = "pve-qmp-sim $version" ] || fail "pve-qmp-sim -V"
for page in vzdump-qemu vzdump-qemu-status vzdump-qemu-cancel vzdump-qemu-qmp vzdump-qemu-backup \
  vzdump-qemu-probe vzdump-qemu-verify pve-qmp-sim; do
  [ -s "/usr/share/man/man1/$page.1.gz" ] || fail "no man page $page(1)"
done
zcat /usr/share/man/man1/vzdump-qemu-probe.1.gz | grep -q 'interval\\-ms' ||
  fail "vzdump-qemu-probe(1) does not document --interval-ms"
zcat /usr/share/man/man1/pve-qmp-sim.1.gz | grep -q 'fault\\-die\\-at' ||
  fail "pve-qmp-sim(1) does not document --fault-die-at"

step "backups against the installed pve-qmp-sim: the C example and the Perl plugin"
run=$work/run
mkdir "$run"
clean pve-qmp-sim --dump-gen-disk drive-scsi0=16M "$work/disk.raw"
clean pve-qmp-sim --socket "$run/100.qmp" --pidfile "$run/100.pid" --gen-disk drive-scsi0=16M &
sim_pid=$!
for _ in $(seq 200); do [ -S "$run/100.qmp" ] && [ -e "$run/100.pid" ] && break; sleep 0.05; done
[ -S "$run/100.qmp" ] || fail "pve-qmp-sim did not come up"
(cd "$work" && clean ./demo "$run/100.qmp" "$work/c.vma.zst" "zstd --threads=1" seed 0) \
  >"$work/c.log" 2>&1 || { cat "$work/c.log" >&2; fail "the C example's backup failed"; }
clean vzdump-qemu verify "$work/c.vma.zst" --compare "drive-scsi0=$work/disk.raw"
# The example outside the tree: its `use lib` of the tree's perl/blib finds nothing there.
mkdir "$work/examples"
cp examples/vzdump-plugin.pl examples/VzdumpExample.pm "$work/examples/"
(cd "$work" && clean perl examples/vzdump-plugin.pl --vmid 100 --run-dir "$run" \
  --output "$work/perl.vma.zst" --compress zstd) >"$work/perl.log" 2>&1 ||
  { cat "$work/perl.log" >&2; fail "the Perl plugin's backup failed"; }
grep -q "^INFO: status: 100% (16777216/16777216)" "$work/perl.log" ||
  { cat "$work/perl.log" >&2; fail "the Perl plugin's log does not reach 100%"; }
clean vzdump-qemu verify "$work/perl.vma.zst" --compare "drive-scsi0=$work/disk.raw"
echo "packages OK: built, lintian clean, installed, used from the installed files, purged"
