#!/usr/bin/perl
# Compressor spawn timings in one Perl process holding a big string, for
# benches/spawn_rss.rs. Usage: spawn_worker.pl HEAP_BYTES
#
# Requests on stdin, one per line; each answer is one line on stdout:
#   hello -> ok      rss -> ok <VmRSS in KiB>      quit
#   module N -> N times in ns of fork_compressor_pipe('true') + POSIX::close of the write
#               end + wait_compressor (PVE::RS::VZDump::Qemu)
#   seed N   -> N times in ns of the seed's way: POSIX::pipe, fork, in the child dup2 of
#               the pipe to stdin and of the output to stdout and exec, in the parent
#               close of both ends and waitpid
use strict;
use warnings;

use POSIX ();

use BenchCommon qw(serve timed);
use PVE::RS::VZDump::Qemu qw(fork_compressor_pipe wait_compressor);

my $heap_len = shift // die "usage: $0 HEAP_BYTES\n";

# The heap: one string, every page written (vec zero-fills what it grows, then a byte per
# page is set so nothing is left to the zero page).
my $heap = '';
if ($heap_len > 0) {
    vec($heap, $heap_len - 1, 8) = 0x5a;
    for (my $i = 0; $i < $heap_len; $i += 4096) {
        vec($heap, $i, 8) = 0x5a;
    }
}

open(my $null, '>', '/dev/null') or die "/dev/null: $!\n";
my $null_fd = fileno($null);

sub rss_kib {
    open(my $fh, '<', '/proc/self/status') or return 0;
    while (<$fh>) {
        return $1 if /^VmRSS:\s+(\d+)/;
    }
    return 0;
}

sub via_module {
    my ($pid, $fd) = fork_compressor_pipe('true', $null_fd);
    POSIX::close($fd);
    wait_compressor('true', $pid);
}

sub seed_way {
    my ($read, $write) = POSIX::pipe();
    my $pid = fork();
    die "unable to fork worker - $!\n" if !defined($pid);
    if ($pid == 0) {
        POSIX::close($write);
        POSIX::dup2($read, 0) // POSIX::_exit(1);
        POSIX::dup2($null_fd, 1) // POSIX::_exit(1);
        exec('true') or POSIX::_exit(127);
    }
    POSIX::close($read);
    POSIX::close($write);
    waitpid($pid, 0);
    die "true failed - wrong exit status $?\n" if $?;
}

my %ops = (module => \&via_module, seed => \&seed_way);

serve(sub {
    my ($line) = @_;
    return 'ok ' . rss_kib() if $line eq 'rss';
    my ($what, $n) = split(' ', $line);
    my $op = $ops{$what // ''} // die "unknown request '$line'\n";
    return timed($n, $op);
});
print STDERR '' if length($heap) < 0;    # keeps $heap alive to the end
