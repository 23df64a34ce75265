# Signals during one-shot commands (docs/reliability.md, finding 17): a dying handler's
# error is the command's error (as with the seed's mon_cmd); after a handler that returns
# the command goes on, as Perl's own I/O does: it gets its reply from a peer that answers
# late (pve-qmp-sim --fault-slow-ms), or runs to its timeout on a peer that accepts but
# never greets.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(ualarm);

use PVE::RS::VZDump::Qemu qw(mon_cmd backup_query backup_cancel);
use TestPeers qw(tmpdir start_qemu start_sim stop_peer);

my $dir = tmpdir();
my $sock = "$dir/mute.qmp";
my $listener = IO::Socket::UNIX->new(Local => $sock, Listen => 5) or die "listen - $!";

{
    local $SIG{ALRM} = sub { die "interrupted by signal\n" };
    alarm(1);
    my $ok = eval { mon_cmd($sock, 'query-status'); 1 };
    alarm(0);
    ok(!$ok, 'dying handler: command fails');
    is($@, "interrupted by signal\n", 'dying handler: its error, as the seed');

    # VM 100 runs (pid file), but its QEMU is stopped: it accepts and never greets.
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $qemu = start_qemu("$dir/100.qmp");
    kill('STOP', $qemu);
    alarm(1);
    $ok = eval { backup_query(100); 1 };
    alarm(0);
    is($@, "interrupted by signal\n", 'dying handler: same for backup_query by VM id');
    kill('CONT', $qemu);
    stop_peer($qemu);
}
{
    my $alarms = 0;
    local $SIG{ALRM} = sub { $alarms++ };
    my $slow = "$dir/slow.qmp";
    my $sim = start_sim($slow, '--fault-slow-ms' => 700);
    ualarm(300_000, 200_000);
    my $status = eval { mon_cmd($slow, 'query-status') };
    my $err = $@;
    ualarm(0);
    is($err, '', 'returning handler: no error');
    is($status->{status}, 'running', 'returning handler: the reply');
    cmp_ok($alarms, '>=', 3, 'returning handler: ran for every signal');

    # The common case of the finding: SIGCHLD of an unrelated child, with a handler.
    my ($reaped, $child) = (0, undef);
    # Only its own child: the simulator is the test's child too.
    local $SIG{CHLD} = sub { $reaped++ if $child && waitpid($child, WNOHANG) == $child };
    $child = fork() // die "fork - $!\n";
    if (!$child) { select(undef, undef, undef, 0.3); POSIX::_exit(0) }
    $err = eval { backup_cancel($slow); 1 } ? '' : $@;
    is($err, '', 'SIGCHLD handler: backup_cancel goes on');
    is($reaped, 1, 'SIGCHLD handler: ran');
    stop_peer($sim);

    $alarms = 0;
    ualarm(300_000, 200_000);
    my $ok = eval { mon_cmd($sock, 'query-status', timeout => 1.5); 1 };
    $err = $@;
    ualarm(0);
    ok(!$ok, 'returning handler, silent peer: fails');
    # proxmox/qemu-server src/PVE/QMPClient.pm `mux_timeout`: "got timeout".
    like($err, qr/^qmp socket '\Q$sock\E' command 'query-status' failed - got timeout\n\z/,
        'returning handler, silent peer: runs to its timeout');
    cmp_ok($alarms, '>=', 3, 'returning handler, silent peer: ran');
}
{
    local $SIG{ALRM} = sub { die { signal => 'ALRM' } };
    alarm(1);
    my $ok = eval { PVE::RS::VZDump::Qemu::Conn->new($sock); 1 };
    alarm(0);
    is_deeply($@, { signal => 'ALRM' }, 'exception objects from handlers are kept');
}

done_testing();
