#!/usr/bin/env bash
# The main job in one command: a vzdump-style backup of a VM disk, Perl -> Rust ->
# pve-qmp-sim -> compressor, then verified byte for byte. Run through `make demo`.
#
# Environment: DISK=<image> (default: a generated 1 GiB sparse disk),
# COMPRESS=zstd|gzip|pigz|lzop|none (default zstd), STYLE=seed|current (default seed),
# BWLIMIT=<KiB/s> (default none), DEMO_VARIANT=perl|c (default perl), KEEP=1 keeps the
# work directory, SIM_RECORD=<file> records the requests the simulator received.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

COMPRESS=${COMPRESS:-zstd}
STYLE=${STYLE:-seed}
BWLIMIT=${BWLIMIT:-0}
DEMO_VARIANT=${DEMO_VARIANT:-perl}
case "$COMPRESS" in
  zstd) ext=.vma.zst ;; gzip | pigz) ext=.vma.gz ;; lzop) ext=.vma.lzo ;; none) ext=.vma ;;
  *) echo "COMPRESS must be zstd, gzip, pigz, lzop or none" >&2; exit 2 ;;
esac

work=$(mktemp -d /tmp/vzdump-qemu-demo-XXXXXX)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "demo: interrupted" >&2; exit 130' INT TERM

bin=target/release
if [ -z "${DISK:-}" ]; then
  DISK=$work/disk-100.raw
  # 1 GiB, mostly holes: random data, text and written zeros in parts, like a fresh guest.
  truncate -s 1G "$DISK"
  head -c 96M /dev/urandom | dd of="$DISK" bs=1M seek=0 conv=notrunc status=none
  head -c 64M /dev/urandom | dd of="$DISK" bs=1M seek=512 conv=notrunc status=none
  { yes 'vzdump-qemu demo: the quick brown fox jumps over the lazy dog' || true; } | head -c 32M \
    | dd of="$DISK" bs=1M seek=300 conv=notrunc status=none
  dd if=/dev/zero of="$DISK" bs=1M count=16 seek=700 conv=notrunc status=none
  printf 'END-OF-DISK' | dd of="$DISK" bs=1 seek=$((1024 * 1024 * 1024 - 11)) conv=notrunc status=none
fi
[ -r "$DISK" ] || { echo "DISK=$DISK is not readable" >&2; exit 2; }
disk_size=$(stat -c %s "$DISK")

socket=$work/100.qmp
archive=$work/vzdump-qemu-100-$(date +%Y_%m_%d-%H_%M_%S)$ext
# The simulator and the probe run in their own sessions: a Ctrl-C reaches the plugin
# only, which cancels the job on a simulator that is still there; cleanup stops them.
# As VM 100 of the run directory $work: its pid file passes qemu-server's running check.
setsid "$bin/pve-qmp-sim" --socket "$socket" --pidfile "$work/100.pid" \
  --disk "drive-scsi0=$DISK" ${SIM_RECORD:+--record "$SIM_RECORD"} &
pids+=($!)
for _ in $(seq 200); do [ -S "$socket" ] && [ -e "$work/100.pid" ] && break; sleep 0.05; done

# A Proxmox status daemon: query-status every 100 ms for the whole run.
setsid "$bin/vzdump-qemu" --socket "$socket" probe --interval-ms 100 > "$work/probe.log" &
probe=$!
pids+=($probe)

echo "INFO: Starting Backup of VM 100 (qemu) -- $DEMO_VARIANT plugin, $COMPRESS, style $STYLE"
start=$(date +%s.%N)
if [ "$DEMO_VARIANT" = c ]; then
  comp=""
  case "$COMPRESS" in
    zstd) comp="zstd --threads=2" ;; gzip) comp="gzip --rsyncable" ;;
    pigz) comp="pigz -p 2 --rsyncable" ;; lzop) comp="lzop" ;;
  esac
  tests/c/build/demo "$socket" "$archive" "$comp" "$STYLE" "$BWLIMIT"
else
  # The plugin's archive_vma is the library's whole backup job.
  perl examples/vzdump-plugin.pl --vmid 100 --run-dir "$work" --output "$archive" \
    --compress "$COMPRESS" --style "$STYLE" --bwlimit "$BWLIMIT" --devlist drive-scsi0
fi
end=$(date +%s.%N)
kill -TERM "$probe"
wait "$probe" || true

echo "--- verify"
"$bin/vzdump-qemu" verify "$archive" --compare "drive-scsi0=$DISK"

archive_size=$(stat -c %s "$archive")
probe_line=$(tail -n1 "$work/probe.log")
longest_ms=$(sed -n 's/.*longest wait \([0-9.]*\) ms.*/\1/p' "$work/probe.log")
awk -v d="$disk_size" -v a="$archive_size" -v s="$start" -v e="$end" -v p="$probe_line" 'BEGIN {
  t = e - s
  printf "--- summary\n"
  printf "disk:       %.1f MiB\n", d / 1048576
  printf "archive:    %.1f MiB (%.1f%% of the disk)\n", a / 1048576, 100 * a / d
  printf "time:       %.2f s (%.0f MiB/s of disk)\n", t, d / 1048576 / t
  printf "%s\n", p
}'
if awk -v ms="${longest_ms:-99999}" 'BEGIN { exit !(ms < 1000) }'; then
  echo "demo OK: archive verified, the monitor stayed available (longest wait ${longest_ms} ms)"
else
  echo "demo FAILED: a status client waited ${longest_ms:-?} ms for the monitor" >&2
  exit 1
fi
