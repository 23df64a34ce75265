#!/usr/bin/env bash
# `make bench`: every benchmark of docs/performance.md in one run, printed as one table and
# written to target/bench/bench.json (and bench.md). QUICK=1: small sizes and few
# repetitions (about a minute; `make test` runs it to check that everything runs and that
# the JSON has every row; timings are never asserted).
#
# Installs what the benchmarks need beyond scripts/install-deps.sh when it is missing
# (Debian packages, as root: libjson-xs-perl libio-multiplex-perl python3-venv time; the
# pip package qemu.qmp into the venv target/bench/venv), builds the C bench programs, then
# runs benches/{qmp,poll_latency,spawn_rss,e2e,memory}.rs and benches/report.rs.
# Needs the release build and the Perl module (`make bench` makes them first).
#
# Environment: QUICK=1, CARGO_TARGET_DIR (default ./target), BENCH_CONDITIONS (free text
# stored with the results, e.g. what else ran on the machine), and each bench's own
# settings (see the top of benches/*.rs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

QUICK=${QUICK:-0}
[ "$QUICK" = 0 ] && QUICK=
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR=$root/$CARGO_TARGET_DIR ;; esac
CARGO=${CARGO:-cargo}
tdir=$CARGO_TARGET_DIR
out=$tdir/bench
mkdir -p "$out/c"

# --- what the benchmarks need
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3 || echo python3)
need=()
perl -MJSON::XS -e1 2>/dev/null || need+=(libjson-xs-perl)
perl -MIO::Multiplex -e1 2>/dev/null || need+=(libio-multiplex-perl)
[ -x /usr/bin/time ] || need+=(time)
"$python" -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bench: missing packages (${need[*]}) and not root; run as root" >&2
    exit 1
  fi
  echo "bench: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
venv=$out/venv
if ! "$venv/bin/python" -c 'import qemu.qmp' 2>/dev/null; then
  echo "bench: making $venv with qemu.qmp"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'qemu.qmp==0.0.6'
fi

lib=$tdir/release
for f in "$lib/libvzdump_qemu.so" "$lib/pve-qmp-sim" perl/blib/arch/auto/PVE/RS/VZDump/Qemu/Qemu.so; do
  [ -e "$f" ] || { echo "bench: $f missing: run 'make bench' (it builds first)" >&2; exit 1; }
done
[ -e "$lib/libvzdump_qemu.so.0" ] || ln -sf libvzdump_qemu.so "$lib/libvzdump_qemu.so.0"
libdir=$(cd "$lib" && pwd -P)
for prog in spawn_bench backup_lib backup_plain; do
  gcc -std=c99 -Wall -Wextra -Werror -pedantic -D_GNU_SOURCE -O2 -Iinclude \
    "benches/c/$prog.c" -L"$libdir" -lvzdump_qemu -Wl,-rpath,"$libdir" -o "$out/c/$prog"
done

# --- the benchmarks, in the table's order
benches=(qmp poll_latency spawn_rss e2e memory)
bench_args=()
for b in "${benches[@]}" report; do bench_args+=(--bench "$b"); done
$CARGO bench --quiet --no-run "${bench_args[@]}"

export BENCH_OUT=$out/rows.jsonl
export BENCH_QUICK=${QUICK:+1}
: > "$BENCH_OUT"
start=$(date +%s)
for b in "${benches[@]}"; do
  echo "=== $b$([ -n "$QUICK" ] && echo ' (quick)')"
  $CARGO bench --quiet --bench "$b"
done
echo "=== the table ($(( $(date +%s) - start )) s$([ -n "$QUICK" ] && echo ', QUICK: small sizes, few repetitions'))"
$CARGO bench --quiet --bench report
