# mon_cmd and connection objects against a real QEMU (stock: no Proxmox backup commands).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;

use PVE::RS::VZDump::Qemu qw(mon_cmd backup_query);
use TestPeers qw(tmpdir start_qemu stop_peer);

BAIL_OUT('qemu-system-x86_64 not installed: real-peer tests never skip')
    if system('command -v qemu-system-x86_64 >/dev/null 2>&1') != 0;

my $dir = tmpdir();
local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
my $qemu = start_qemu("$dir/100.qmp");

# One-shot commands by VM id and by socket path.
is_deeply(mon_cmd(100, 'query-status'), { status => 'prelaunch', running => JSON::PP::false },
    'query-status: prelaunch');
my $version = mon_cmd("$dir/100.qmp", 'query-version');
like($version->{qemu}->{major}, qr/^\d+$/, 'query-version by socket path');
is_deeply(mon_cmd(100, 'query-status', timeout => 2.5)->{status}, 'prelaunch',
    'the timeout option is taken out of the arguments');

my $ok = eval { mon_cmd(100, 'no-such-command'); 1 };
ok(!$ok, 'unknown command dies');
is($@, "VM 100 qmp command 'no-such-command' failed - The command no-such-command has not been found\n",
    'CommandNotFound reads as in qemu-server');
$ok = eval { mon_cmd(100, 'query-status', bogus => 1); 1 };
like($@, qr/^VM 100 qmp command 'query-status' failed - .*bogus.*\n\z/s, 'bad argument error from QEMU');

$ok = eval { backup_query(100); 1 };
ok(!$ok, 'query-backup on stock QEMU dies');
like($@, qr/^VM 100 qmp .*query-backup.*\n\z/, 'query-backup error names VM and command');

# getfd through mon_cmd (fd passed by SCM_RIGHTS on a connection of its own).
pipe(my $r, my $w) or die "pipe - $!";
is_deeply(mon_cmd(100, 'getfd', fd => fileno($w), fdname => 'perltest'), {}, 'mon_cmd getfd');
is_deeply(mon_cmd(100, 'closefd', fdname => 'perltest'), {}, 'the fd was registered under its name');
$ok = eval { mon_cmd(100, 'closefd', fdname => 'perltest'); 1 };
like($@, qr/^VM 100 qmp command 'closefd' failed - File descriptor named 'perltest' not found\n\z/,
    'closefd of an unknown name fails');

# A connection object: several commands, events, getfd, close.
{
    my $conn = PVE::RS::VZDump::Qemu::Conn->new(100);
    isa_ok($conn, 'PVE::RS::VZDump::Qemu::Conn');
    is($conn->cmd('query-status')->{status}, 'prelaunch', 'Conn: query-status');
    is_deeply($conn->cmd('cont'), {}, 'Conn: cont');
    is($conn->cmd('query-status')->{status}, 'running', 'Conn: running after cont');
    my $events = $conn->events;
    is_deeply([map { $_->{event} } @$events], ['RESUME'], 'Conn: RESUME event');
    ok($events->[0]->{timestamp}->{seconds} > 0, 'Conn: event timestamp');
    is_deeply($conn->events, [], 'Conn: events are taken once');

    $conn->getfd($w, 'byhandle');
    is_deeply($conn->cmd('closefd', fdname => 'byhandle'), {}, 'Conn: getfd with a file handle');
    is_deeply($conn->cmd('getfd', fd => fileno($w), fdname => 'bynum'), {}, 'Conn: cmd getfd with fd');
    is_deeply($conn->cmd('closefd', fdname => 'bynum'), {}, 'Conn: fd registered by cmd');

    $ok = eval { $conn->cmd('no-such-command'); 1 };
    is($@, "VM 100 qmp command 'no-such-command' failed - The command no-such-command has not been found\n",
        'Conn: QEMU error text');
    is($conn->cmd('query-status')->{status}, 'running', 'Conn: usable after a command error');

    $conn->close;
    $ok = eval { $conn->cmd('query-status'); 1 };
    is($@, "the connection handle is closed\n", 'Conn: closed handle dies');
    $conn->close;    # twice is fine
}

# QEMU serves one client at a time: DESTROY must have closed the connection above.
{
    my $conn = PVE::RS::VZDump::Qemu::Conn->new(100);
    undef $conn;
    is(mon_cmd(100, 'query-status')->{status}, 'running', 'DESTROY closes the connection');
}

# A forked child uses the module on its own.
my $pid = fork() // die "fork - $!";
if ($pid == 0) {
    my $ok = eval {
        my $conn = PVE::RS::VZDump::Qemu::Conn->new(100);
        $conn->cmd('stop');
        1;
    };
    POSIX::_exit($ok ? 0 : 1);
}
waitpid($pid, 0);
is($?, 0, 'forked child ran commands');
is(mon_cmd(100, 'query-status')->{status}, 'paused', 'the child stopped the VM');

# A connection inherited through fork: refused in the child, intact in the parent after the
# child exited (its copy is freed by global destruction).
{
    my $conn = PVE::RS::VZDump::Qemu::Conn->new(100);
    my $child = fork() // die "fork - $!";
    if ($child == 0) {
        my $ok = eval { $conn->cmd('query-status'); 1 };
        exit(!$ok && $@ =~ /opened in process \d+; connect again after fork\n\z/ ? 0 : 1);
    }
    waitpid($child, 0);
    is($?, 0, 'inherited connection refused in the child');
    is($conn->cmd('query-status')->{status}, 'paused', 'parent connection still works');
}

ok(defined(stop_peer($qemu)), 'QEMU stopped');
done_testing();
