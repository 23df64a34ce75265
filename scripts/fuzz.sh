#!/usr/bin/env bash
# Coverage-guided fuzzing of the targets in fuzz/ (cargo fuzz, libFuzzer; docs/reliability.md):
# each target runs for SECONDS (default 15) on a fresh copy of its seed corpus
# (fuzz/corpus/<target>) in a temporary directory. Any crash, leak, timeout or excess of
# memory fails the run; the input is kept as fuzz/artifacts/<target>/<kind>-<sha1> and its
# path printed (rerun it: cargo +nightly fuzz run <target> <that file>, without a nightly
# RUSTC_BOOTSTRAP=1 cargo fuzz run ...; with FUZZ_SANITIZER=none add -s none --target-dir
# fuzz/target/sanitizer-none).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   FUZZ_RUNS=N        stop each target after N executions instead of after SECONDS
#   FUZZ_SANITIZER=s   address (default) or none (no ASan: about 3 times the executions)
#   FUZZ_CORPUS=dir    grow the corpus in dir/<target> (kept) instead of a temporary copy
#
# Uses rustup's nightly toolchain if present (else see below); installs cargo-fuzz if it is
# missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=${1:-15}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(qmp_framing query_backup command_split vma_reader)
sanitizer=${FUZZ_SANITIZER:-address}

# cargo-fuzz needs unstable compiler flags (-Zsanitizer, coverage instrumentation): the
# nightly toolchain where there is one; else the machine's one toolchain with
# RUSTC_BOOTSTRAP=1, which unlocks them on a stable compiler (fine for a test build that is
# never shipped; a machine of this project's kind can fetch no other toolchain).
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  toolchain=()
  export RUSTC_BOOTSTRAP=1
  echo "fuzz: no nightly toolchain; building with $(rustc --version) and RUSTC_BOOTSTRAP=1"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# Builds without ASan go to a target directory of their own, so that a run of each kind
# does not rebuild (or replace) the other's binaries.
target_dir=()
[ "$sanitizer" = address ] || target_dir=(--target-dir "fuzz/target/sanitizer-$sanitizer")
fuzz() { cargo "${toolchain[@]}" fuzz "$1" --sanitizer "$sanitizer" "${target_dir[@]}" "${@:2}"; }

started=$(date +%s)
# All targets at once (shared dependencies); each run's own build is then a no-op.
fuzz build
echo "fuzz: built in $(($(date +%s) - started)) s"

work=$(mktemp -d /tmp/vzq-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
failed=0
for target in "${targets[@]}"; do
  if [ -n "${FUZZ_CORPUS:-}" ]; then
    corpus="$FUZZ_CORPUS/$target"
    mkdir -p "$corpus"
  else
    corpus="$work/$target"
    mkdir "$corpus"
  fi
  cp -n fuzz/corpus/"$target"/* "$corpus"/
  limit=(-max_total_time="$seconds")
  [ -z "${FUZZ_RUNS:-}" ] || limit=(-runs="$FUZZ_RUNS")
  log="$work/$target.log"
  if fuzz run "$target" "$corpus" -- "${limit[@]}" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    # The last status line: #<executions> DONE cov: <n> ft: <n> corp: <files>/<bytes> ...
    done_line=$(grep -E '^#[0-9]+\s+DONE' "$log" | tail -n1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n1)
    stats=$(sed -n 's/^stat::\(average_exec_per_sec\|new_units_added\|peak_rss_mb\): *\([0-9]*\)/\1 \2/p' \
      "$log" | tr '\n' ' ')
    echo "fuzz: $target: $done_line (${secs:-?} s; $stats)"
  else
    failed=1
    echo "fuzz: $target FAILED" >&2
    # The panic's message, or the sanitizer's or libFuzzer's verdict, then the input kept.
    { grep -E -A3 'panicked at' "$log" | head -n 8
      grep -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|^SUMMARY' "$log" | head -n 4
      grep -E 'Test unit written to' "$log" || tail -n 20 "$log"; } >&2
  fi
done
echo "fuzz: ${#targets[@]} targets in $(($(date +%s) - started)) s"
exit $failed
