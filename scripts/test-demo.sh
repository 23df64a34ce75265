#!/usr/bin/env bash
# Tests of the main job: the demo (small disk) in its Perl and C variants verifies its
# archive; a SIGINT mid-backup cancels the job and leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/vzq-demo-test-XXXXXX)
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$work"' EXIT
passed=0 failed=0
check() { # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok - $name"; else failed=$((failed + 1)); echo "not ok - $name"; fi
}

truncate -s 48M "$work/disk.raw"
head -c 8M /dev/urandom | dd of="$work/disk.raw" bs=1M seek=4 conv=notrunc status=none
printf 'END' | dd of="$work/disk.raw" bs=1 seek=$((48 * 1024 * 1024 - 3)) conv=notrunc status=none

for variant in perl c; do
  for style in seed current; do
    log=$work/$variant-$style.log
    DISK=$work/disk.raw DEMO_VARIANT=$variant STYLE=$style COMPRESS=zstd \
      scripts/demo.sh > "$log" 2>&1 || { cat "$log"; }
    check "demo $variant/$style verifies its archive" grep -q '^  drive-scsi0: identical to ' "$log"
    check "demo $variant/$style ends OK" grep -q '^demo OK: ' "$log"
  done
done
DISK=$work/disk.raw COMPRESS=lzop scripts/demo.sh > "$work/lzop.log" 2>&1 || cat "$work/lzop.log"
check "demo with lzop verifies" grep -q '^demo OK: ' "$work/lzop.log"

# Ctrl-C mid-backup: SIGINT to the demo's process group, as a terminal does.
record=$work/requests.jsonl
DISK=$work/disk.raw BWLIMIT=8192 SIM_RECORD=$record setsid scripts/demo.sh > "$work/int.log" 2>&1 &
demo=$!
for _ in $(seq 200); do grep -q "started backup task" "$work/int.log" 2>/dev/null && break; sleep 0.05; done
kill -INT -- "-$demo"
rc=0; wait "$demo" || rc=$?
check "interrupted demo fails" test "$rc" -ne 0
check "interrupted demo says so" grep -q 'interrupted by signal' "$work/int.log"
check "interrupted demo cancelled the job" grep -q '"execute":"backup-cancel"' "$record"
sleep 0.2
left=$(pgrep -f "$(sed -n "s/.*creating vzdump archive '\(.*\)\/vzdump-qemu-100.*/\1/p" "$work/int.log")" || true)
check "nothing left running (${left:-none})" test -z "$left"
# No process (a stray compressor) holds a file of the interrupted demo open; other zstd
# processes on the machine are not ours to judge.
demo_dir=$(sed -n "s/.*creating vzdump archive '\(.*\)\/vzdump-qemu-100.*/\1/p" "$work/int.log")
check "no stray compressor holds the archive" \
  bash -c "test -n '$demo_dir' && ! ls -l /proc/[0-9]*/fd 2>/dev/null | grep -qF -- '$demo_dir/'"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
