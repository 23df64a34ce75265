# Signals during a one-shot command, against a peer that accepts but never greets: a dying
# handler's error is the command's error (as with the seed's mon_cmd); after a returning
# handler the command fails, since it cannot be resumed.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::UNIX;
use Test::More;

use PVE::RS::VZDump::Qemu qw(mon_cmd backup_query);
use TestPeers qw(tmpdir start_qemu stop_peer);

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
    alarm(1);
    my $ok = eval { mon_cmd($sock, 'query-status'); 1 };
    alarm(0);
    is($alarms, 1, 'returning handler: ran');
    like($@, qr/^qmp socket '\Q$sock\E' command '[^']+' interrupted by signal\n\z/,
        'returning handler: the library\'s error');
}
{
    local $SIG{ALRM} = sub { die { signal => 'ALRM' } };
    alarm(1);
    my $ok = eval { PVE::RS::VZDump::Qemu::Conn->new($sock); 1 };
    alarm(0);
    is_deeply($@, { signal => 'ALRM' }, 'exception objects from handlers are kept');
}

done_testing();
