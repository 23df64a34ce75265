#!/usr/bin/env bash
# Every function declared in the header is exported by the library, and the library
# exports no vzdump_ symbol that the header does not declare.
set -euo pipefail
lib=${1:?usage: check-symbols.sh LIB HEADER}
header=${2:?usage: check-symbols.sh LIB HEADER}
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" && $3 ~ /^vzdump_/ {print $3}' | sort -u)
declared=$(grep -oE '\bvzdump_qemu_[a-z0-9_]+\(' "$header" | tr -d '(' | sort -u)
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
status=0
[ -z "$missing" ] || { echo "declared in $header but not exported: $missing" >&2; status=1; }
[ -z "$extra" ] || { echo "exported but not in $header: $extra" >&2; status=1; }
[ "$soname" = libvzdump_qemu.so.0 ] || { echo "soname is '$soname', expected libvzdump_qemu.so.0" >&2; status=1; }
[ $status = 0 ] && echo "symbols: $(echo "$declared" | wc -l) functions in header and library, soname $soname"
exit $status
