#!/usr/bin/env bash
# The Perl suite once under valgrind (docs/reliability.md): every perl/t file (or those
# given) runs as `valgrind --leak-check=full perl -Iblib/lib -Iblib/arch t/<file>`, then
# each definitely lost block is attributed by its allocation stack: to the library
# (libvzdump_qemu), to the XS shim (the module's Qemu.so), or to Perl itself, which frees
# little at exit by design. Fails if a test fails, if valgrind reports a memory error
# (invalid access, uninitialised value, bad free) in any file, or if any definitely lost
# byte is the library's or the shim's. Forked children are not checked (they exit without
# Perl's destruction) and exec'd programs are not traced.
#
# Usage: scripts/perl-valgrind.sh [t/FILE.t ...]   (paths in perl/; after `make perl` and
# `cargo build --workspace`, whose simulator and CLI the tests run, as for `make test-perl`)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/perl"

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(t/*.t)
logs=$(mktemp -d /tmp/vzq-perl-valgrind-XXXXXX)
echo "perl-valgrind: logs in $logs"
started=$(date +%s)
status=0
for t in "${files[@]}"; do
  name=$(basename "$t" .t)
  t0=$(date +%s)
  # VZQ_UNDER_VALGRIND: valgrind runs posix_spawn's vfork child as a fork, so an exec
  # failure shows when the child is reaped (perl/t/40-compressor.t).
  if VZQ_UNDER_VALGRIND=1 valgrind --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=none --error-exitcode=99 --child-silent-after-fork=yes \
    --num-callers=50 --suppressions="$root/scripts/perl-valgrind.supp" \
    --log-file="$logs/$name.vg" \
    perl -Iblib/lib -Iblib/arch "$t" >"$logs/$name.out" 2>&1; then
    result=ok
  else
    rc=$?
    result="exit $rc"
    status=1
    tail -n 20 "$logs/$name.out" >&2
  fi
  echo "perl-valgrind: $t: $result ($(($(date +%s) - t0)) s)"
done

# Definitely lost bytes by whose allocation stack they have; memory errors per file.
perl -e '
    my ($lib, $xs, $perl, $errors) = (0, 0, 0, 0);
    for my $log (@ARGV) {
        open(my $fh, "<", $log) or die "$log - $!\n";
        my ($bytes, $stack);
        my $flush = sub {
            return if !defined($bytes);
            if ($stack =~ /libvzdump_qemu/) { $lib += $bytes; print STDERR "library leak in $log:\n$stack" }
            elsif ($stack =~ m{/Qemu\.so\b|\bQemu\.xs:}) { $xs += $bytes; print STDERR "XS leak in $log:\n$stack" }
            else { $perl += $bytes }
            undef $bytes;
        };
        while (my $line = <$fh>) {
            if ($line =~ /==\d+== ([\d,]+) (?:\([^)]*\) )?bytes in [\d,]+ blocks are definitely lost/) {
                $flush->();
                ($bytes = $1) =~ tr/,//d;
                $stack = $line;
            } elsif (defined($bytes) && $line =~ /^==\d+==\s*$/) {
                $flush->();
            } elsif (defined($bytes)) {
                $stack .= $line;
            } elsif ($line =~ /ERROR SUMMARY: ([\d,]+) errors/ && $1 ne "0") {
                $errors++;
                print STDERR "memory errors in $log: $line";
            }
        }
        $flush->();
    }
    print "perl-valgrind: definitely lost: library $lib bytes, XS shim $xs bytes,"
        . " Perl itself $perl bytes; files with memory errors: $errors\n";
    exit($lib || $xs || $errors ? 1 : 0);
' "$logs"/*.vg || status=1
echo "perl-valgrind: ${#files[@]} files in $(($(date +%s) - started)) s"
exit $status
