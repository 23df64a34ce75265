#!/usr/bin/perl
# The same backup as backup_module.pl with nothing but POSIX and IO loaded, for
# benches/memory.rs. Plain Perl cannot pass a descriptor (SCM_RIGHTS), so the stream goes
# through a FIFO the simulator opens by path ('backup-file'); the compressor is forked with
# the FIFO as stdin; query-backup runs on a connection of its own every 200 ms until the job
# is done. Prints its own peak RSS. Usage: backup_plain.pl SOCKET ARCHIVE FIFO COMPRESSOR...
use strict;
use warnings;

use IO::Socket::UNIX;
use POSIX ();

my ($socket, $archive, $fifo, @comp) = @ARGV;
die "usage: $0 SOCKET ARCHIVE FIFO COMPRESSOR...\n" if !@comp;

sub qmp_open {
    my $sock = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $socket)
        or die "connect $socket - $!\n";
    <$sock>;    # greeting
    qmp_cmd($sock, '{"execute":"qmp_capabilities"}');
    return $sock;
}

# Sends one command, returns the reply line (events skipped).
sub qmp_cmd {
    my ($sock, $json) = @_;
    print $sock "$json\r\n";
    $sock->flush();
    while (defined(my $line = <$sock>)) {
        die "QMP error: $line" if $line =~ /"error"/;
        return $line if $line =~ /"return"/;
    }
    die "QMP connection closed\n";
}

open(my $out, '>', $archive) or die "unable to open '$archive' - $!\n";
unlink($fifo);
POSIX::mkfifo($fifo, 0600) or die "mkfifo $fifo - $!\n";
# A reader first, so that the simulator's non-blocking open for writing succeeds, and a
# writer of our own until the simulator has its own, so that the compressor sees no EOF
# before the stream begins.
my $r = POSIX::open($fifo, POSIX::O_RDONLY() | POSIX::O_NONBLOCK()) // die "open fifo - $!\n";
my $w = POSIX::open($fifo, POSIX::O_WRONLY() | POSIX::O_NONBLOCK()) // die "open fifo - $!\n";
my $cpid = fork() // die "fork - $!\n";
if ($cpid == 0) {
    POSIX::close($w);
    # The compressor reads blocking: clear O_NONBLOCK (Perl's own fcntl, on a handle).
    open(my $rh, '<&=', $r) or POSIX::_exit(1);
    my $flags = fcntl($rh, POSIX::F_GETFL(), 0) // POSIX::_exit(1);
    fcntl($rh, POSIX::F_SETFL(), $flags & ~POSIX::O_NONBLOCK()) // POSIX::_exit(1);
    POSIX::dup2($r, 0) // POSIX::_exit(1);
    POSIX::dup2(fileno($out), 1) // POSIX::_exit(1);
    exec(@comp) or POSIX::_exit(127);
}
POSIX::close($r);

my $sock = qmp_open();
my $reply = qmp_cmd($sock, qq({"execute":"backup","arguments":{"backup-file":"$fifo",)
    . qq("devlist":"drive-scsi0","speed":0}}));
close($sock);
POSIX::close($w);
die "no UUID: $reply" if $reply !~ /"UUID"/;

while (1) {
    my $sock = qmp_open();
    my $status = qmp_cmd($sock, '{"execute":"query-backup"}');
    close($sock);
    last if $status =~ /"status":\s*"done"/;
    die "backup failed: $status" if $status !~ /"status":\s*"active"/;
    select(undef, undef, undef, 0.2);
}
waitpid($cpid, 0);
die "compressor failed - wrong exit status $?\n" if $?;
close($out);
unlink($fifo);

open(my $status, '<', '/proc/self/status') or die "/proc/self/status - $!\n";
while (<$status>) {
    print "vmhwm_kib $1\n" if /^VmHWM:\s+(\d+)/;
}
