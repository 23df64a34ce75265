#!/usr/bin/env bash
# C API tests: header as C99/C11/C++, test_api.c against pve-qmp-sim and real QEMU and
# test_job.c (the backup job) against simulators it starts (plain, under valgrind and built
# with AddressSanitizer and UBSan), the archives they wrote verified, the soak (soak.c:
# 10,000 connect/query/close cycles with a real QEMU it starts, 1,000 compressor
# spawn/wait cycles; plain and with ASan), and a program built against the installed
# library through pkg-config alone.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
build=tests/c/build
rm -rf "$build"; mkdir -p "$build"
work=$(mktemp -d /tmp/vzq-ctest-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cargo build -q --release --workspace
lib=target/release
# Programs record the soname; cargo makes only the plain name.
ln -sf libvzdump_qemu.so $lib/libvzdump_qemu.so.0
CFLAGS="-Wall -Wextra -Werror -pedantic -Iinclude"

for std in c99 c11; do
  gcc -std=$std $CFLAGS -fsyntax-only -x c include/vzdump_qemu.h
done
g++ -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude tests/c/header_cxx.cpp \
  -L$lib -lvzdump_qemu -Wl,-rpath,"$root/$lib" -o $build/header_cxx
$build/header_cxx
# The Rust library is not instrumented; ASan intercepts its malloc and free all the same,
# and LeakSanitizer checks the whole process at exit. Any report fails the program.
ASAN_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
asan_env=(env ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1
  UBSAN_OPTIONS=print_stacktrace=1)
for t in test_api test_job soak; do
  gcc -std=c99 $CFLAGS tests/c/$t.c -L$lib -lvzdump_qemu -Wl,-rpath,"$root/$lib" -o $build/$t
  # shellcheck disable=SC2086
  gcc -std=c99 $CFLAGS $ASAN_CFLAGS tests/c/$t.c -L$lib -lvzdump_qemu -Wl,-rpath,"$root/$lib" \
    -o $build/$t-asan
done

export QGA_BLOCKED=guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw,guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-exec,guest-exec-status,guest-file-open,guest-file-write,guest-set-time,guest-set-user-password,guest-set-vcpus,guest-set-memory-blocks,guest-fstrim
# Whether the unix socket $1 accepts a connection: the file exists before its server
# listens, so a first command could be refused (connects and closes at once).
accepts() {
  perl -MIO::Socket::UNIX -e 'exit(IO::Socket::UNIX->new(Peer => $ARGV[0]) ? 0 : 1)' "$1"
}
start_peers() {
  local tag=$1
  target/release/pve-qmp-sim --socket "$work/$tag-sim.qmp" --gen-disk drive-scsi0=16M --rate 64M &
  pids+=($!)
  qemu-system-x86_64 -machine none -nodefaults -display none -S \
    -qmp "unix:$work/$tag-qemu.qmp,server=on,wait=off" </dev/null &
  pids+=($!)
  # A guest agent on the host: every command that could touch the host is blocked.
  mkdir -p "$work/$tag-qga-state"
  qemu-ga -m unix-listen -p "$work/$tag.qga" -t "$work/$tag-qga-state" -f "$work/$tag-qga.pid" \
    -l "$work/$tag-qga.log" -b "$QGA_BLOCKED" &
  pids+=($!)
  for _ in $(seq 200); do
    accepts "$work/$tag-sim.qmp" && accepts "$work/$tag-qemu.qmp" && accepts "$work/$tag.qga" &&
      return 0
    sleep 0.05
  done
  echo "peers did not come up" >&2; return 1
}

start_peers plain
$build/test_api "$work/plain-sim.qmp" "$work/plain-qemu.qmp" "$work" "$work/plain.qga"
target/release/vzdump-qemu verify "$work/c-api.vma.zst"

start_peers valgrind
VZQ_UNDER_VALGRIND=1 valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 \
  --trace-children=no $build/test_api "$work/valgrind-sim.qmp" "$work/valgrind-qemu.qmp" "$work" \
  "$work/valgrind.qga"

start_peers asan
"${asan_env[@]}" $build/test_api-asan "$work/asan-sim.qmp" "$work/asan-qemu.qmp" "$work" \
  "$work/asan.qga"

# The job test starts its own simulators as VM 100 of run directories in $work.
mkdir "$work/job-plain" "$work/job-valgrind" "$work/job-asan"
$build/test_job target/release/pve-qmp-sim "$work/job-plain"
target/release/vzdump-qemu verify "$work/job-plain/job-running/out.vma.zst"
VZQ_UNDER_VALGRIND=1 valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 \
  --trace-children=no $build/test_job target/release/pve-qmp-sim "$work/job-valgrind"
"${asan_env[@]}" $build/test_job-asan target/release/pve-qmp-sim "$work/job-asan"

# The soak starts its own QEMU. Under ASan only the descriptors are compared: its
# quarantine keeps freed memory resident on purpose.
mkdir "$work/soak-plain" "$work/soak-asan"
$build/soak "$work/soak-plain"
VZQ_SOAK_NO_RSS=1 "${asan_env[@]}" $build/soak-asan "$work/soak-asan"

prefix="$work/prefix"
make -s install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046
gcc -std=c99 -Wall -Wextra -Werror -pedantic tests/c/pkgconfig_smoke.c \
  $(pkg-config --cflags --libs vzdump-qemu) -o $build/pkgconfig_smoke
LD_LIBRARY_PATH="$prefix/lib" $build/pkgconfig_smoke
[ "$(readlink "$prefix/lib/libvzdump_qemu.so")" = libvzdump_qemu.so.0 ]
echo "C API tests passed"
