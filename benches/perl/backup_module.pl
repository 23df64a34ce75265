#!/usr/bin/perl
# One full VMA backup through PVE::RS::VZDump::Qemu, for benches/memory.rs: compressor pipe,
# backup_start_vma, the status loop, wait_compressor. Prints its own peak RSS.
# Usage: backup_module.pl SOCKET ARCHIVE COMPRESSOR_COMMAND
use strict;
use warnings;

use POSIX ();

use PVE::RS::VZDump::Qemu
    qw(fork_compressor_pipe backup_start_vma query_backup_status_loop wait_compressor);

my ($socket, $archive, $comp) = @ARGV;
die "usage: $0 SOCKET ARCHIVE COMPRESSOR\n" if !defined($comp);

open(my $out, '>', $archive) or die "unable to open '$archive' - $!\n";
my ($cpid, $fd) = fork_compressor_pipe($comp, fileno($out));
my $uuid = backup_start_vma($socket, $fd, { devlist => 'drive-scsi0' });
POSIX::close($fd);
query_backup_status_loop($socket, $uuid, sub { });
wait_compressor($comp, $cpid);
close($out);

open(my $status, '<', '/proc/self/status') or die "/proc/self/status - $!\n";
while (<$status>) {
    print "vmhwm_kib $1\n" if /^VmHWM:\s+(\d+)/;
}
