# The guest agent: mon_cmd with guest-* commands, qga_fs_freeze and qga_fs_thaw against real
# qemu-ga (every command that could freeze or change the host blocked), an agent that never
# answers, and a scripted agent for what qemu-ga must not do here (freeze, thaw).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use IO::Socket::UNIX;
use Test::More;

use PVE::RS::VZDump::Qemu qw(mon_cmd qga_fs_freeze qga_fs_thaw);
use TestPeers qw(tmpdir start_qemu start_qga start_fake_agent stop_peer);

BAIL_OUT("$TestPeers::QEMU_GA not installed: real-peer tests never skip")
    if !-x $TestPeers::QEMU_GA;

my $dir = tmpdir();
local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
# VM 100's QEMU (with its pid file: qemu-server's running check) and its agent.
my $qemu = start_qemu("$dir/100.qmp");
my $qga = start_qga($dir);

my $FREEZE_LINE = "issuing guest-agent 'fs-freeze' command";
my $THAW_LINE = "issuing guest-agent 'fs-thaw' command";
my $SKIP_LINE = "skipping guest-agent 'fs-freeze', agent configured but not running?";

# A log sink collecting [level, line] pairs.
sub collector {
    my @log;
    return (\@log, sub { push @log, [@_] });
}

# No agent to reach for VM 100: mon_cmd's guest-ping dies with `$text` (the test `$what: $which`),
# and qga_fs_freeze logs the seed's skip line only, with no thaw due.
sub agent_unreachable {
    my ($what, $which, $text) = @_;
    eval { mon_cmd(100, 'guest-ping') };
    is($@, "$text\n", "$what: $which");
    my ($log, $sink) = collector();
    is(qga_fs_freeze(100, $sink), undef, "$what: no thaw due");
    is_deeply($log, [['info', $SKIP_LINE]], "$what: skip line");
}

# The commands a scripted agent received so far.
sub recorded {
    my ($file) = @_;
    open(my $fh, '<', $file) or return [];
    return [map { chomp; $_ } <$fh>];
}

# mon_cmd: guest-* commands go to the agent, by VM id and by the agent's socket path.
is_deeply(mon_cmd(100, 'guest-ping'), {}, 'guest-ping by VM id returns {}');
is_deeply(mon_cmd("$dir/100.qga", 'guest-ping', timeout => 2), {},
    'guest-ping by agent socket path, timeout option taken out');
is(mon_cmd(100, 'guest-fsfreeze-status'), 'thawed', 'guest-fsfreeze-status: thawed');
is(mon_cmd(100, 'guest-sync', id => 4242), 4242, 'arguments reach the agent');

my $ok = eval { mon_cmd(100, 'guest-fsfreeze-freeze'); 1 };
ok(!$ok, 'a blocked command dies');
# The seed's PVE::QMPClient `cmd` (2020) said "VM $vmid qmp command" for the agent too ...
like($@, qr/^VM 100 qmp command 'guest-fsfreeze-freeze' failed - .*has been disabled.*\n\z/,
    'blocked command: the seed\'s text');
{
    # ... today's proxmox/qemu-server src/PVE/QMPClient.pm `cmd` says the peer's type.
    local $PVE::RS::VZDump::Qemu::STYLE = 'current';
    $ok = eval { mon_cmd(100, 'guest-fsfreeze-freeze'); 1 };
    like($@, qr/^VM 100 qga command 'guest-fsfreeze-freeze' failed - .*has been disabled.*\n\z/,
        'blocked command: today\'s text');
}
$ok = eval { mon_cmd("$dir/100.qga", 'guest-fsfreeze-thaw'); 1 };
like($@, qr/^qga socket '\Q$dir\E\/100\.qga' command 'guest-fsfreeze-thaw' failed - .*has been disabled.*\n\z/,
    'blocked command by path: the socket named');
$ok = eval { mon_cmd(100, 'guest-no-such-command'); 1 };
like($@, qr/^VM 100 qmp command 'guest-no-such-command' failed - .+\n\z/, 'unknown command dies');
is(mon_cmd(100, 'guest-fsfreeze-status'), 'thawed', 'still thawed, agent still serving');

# qga_fs_freeze / qga_fs_thaw against qemu-ga: freeze and thaw are blocked, so both log the
# agent's error at err level; a thaw is due all the same, as in the seed.
{
    my ($log, $sink) = collector();
    my $frozen = qga_fs_freeze(100, $sink);
    is($frozen, 1, 'qga_fs_freeze: a thaw is due even after a failed freeze');
    is(scalar(@$log), 2, 'qga_fs_freeze: two lines') or diag explain $log;
    is_deeply($log->[0], ['info', $FREEZE_LINE], 'qga_fs_freeze: the seed\'s info line first');
    is($log->[1]->[0], 'err', 'qga_fs_freeze: then an error line');
    like($log->[1]->[1],
        qr/^VM 100 qmp command 'guest-fsfreeze-freeze' failed - .*has been disabled/,
        'qga_fs_freeze: the disabled error');
    unlike($log->[1]->[1], qr/\n/, 'qga_fs_freeze: no newline in the line');

    ($log, $sink) = collector();
    my @ret = qga_fs_thaw(100, $sink);
    is_deeply(\@ret, [], 'qga_fs_thaw: returns nothing');
    is(scalar(@$log), 2, 'qga_fs_thaw: two lines') or diag explain $log;
    is_deeply($log->[0], ['info', $THAW_LINE], 'qga_fs_thaw: the seed\'s info line first');
    is($log->[1]->[0], 'err', 'qga_fs_thaw: then an error line');
    like($log->[1]->[1], qr/^VM 100 qmp command 'guest-fsfreeze-thaw' failed - .*has been disabled/,
        'qga_fs_thaw: the disabled error');
}

# The plugin object as log sink, agent by socket path.
{
    package CollectingPlugin;
    sub new { return bless { lines => [] }, shift }
    sub loginfo { push @{ $_[0]->{lines} }, "INFO: $_[1]" }
    sub logerr { push @{ $_[0]->{lines} }, "ERROR: $_[1]" }
}
{
    my $plugin = CollectingPlugin->new;
    is(qga_fs_freeze("$dir/100.qga", $plugin), 1, 'plugin sink: freeze by path');
    qga_fs_thaw("$dir/100.qga", $plugin);
    my @lines = @{ $plugin->{lines} };
    is(scalar(@lines), 4, 'plugin sink: four lines') or diag explain \@lines;
    is($lines[0], "INFO: $FREEZE_LINE", 'plugin sink: freeze line via loginfo');
    like($lines[1], qr/^ERROR: qga socket '\Q$dir\E\/100\.qga' command 'guest-fsfreeze-freeze' failed - /,
        'plugin sink: freeze error via logerr');
    is($lines[2], "INFO: $THAW_LINE", 'plugin sink: thaw line via loginfo');
    like($lines[3], qr/^ERROR: .*'guest-fsfreeze-thaw' failed - /, 'plugin sink: thaw error via logerr');
}

# A dying log callback: the step ends, then its error is rethrown as is.
{
    my $calls = 0;
    $ok = eval { qga_fs_freeze(100, sub { $calls++; die "sink broke\n" }); 1 };
    ok(!$ok, 'dying log callback: qga_fs_freeze dies');
    is($@, "sink broke\n", 'dying log callback: its error');
    is($calls, 2, 'dying log callback: the freeze ran to its end (both lines offered)');

    my $obj = bless {}, 'ErrorObject';
    $ok = eval { qga_fs_thaw(100, sub { die $obj }); 1 };
    is($@, $obj, 'dying log callback: qga_fs_thaw keeps exception objects');
    is(mon_cmd(100, 'guest-fsfreeze-status'), 'thawed', 'the agent still serves afterwards');
}

# An agent that is configured but not running: the socket accepts, nothing answers.
{
    my $silent = IO::Socket::UNIX->new(Local => "$dir/silent.qga", Listen => 5)
        // die "listen - $!";
    # A guard against a hang, not a timing check: the ping gives up after 3 s.
    local $SIG{ALRM} = sub { die "no answer after 60 s\n" };
    alarm(60);
    my ($log, $sink) = collector();
    my @ret = qga_fs_freeze("$dir/silent.qga", $sink);
    is_deeply(\@ret, [undef], 'silent agent: qga_fs_freeze returns undef (no thaw due)');
    is_deeply($log, [['info', $SKIP_LINE]], 'silent agent: the seed\'s skip line only');
    $ok = eval { mon_cmd("$dir/silent.qga", 'guest-ping', timeout => 0.5); 1 };
    like($@, qr/^qga socket '\Q$dir\E\/silent\.qga' command 'guest-ping' failed - got timeout.*\n\z/,
        'silent agent: mon_cmd dies with a timeout');
    alarm(0);
    close($silent);
}

# A scripted agent that freezes and thaws: what is sent, and that nothing is logged at
# err level when both succeed.
my %working = ('guest-ping' => {}, 'guest-fsfreeze-freeze' => 2, 'guest-fsfreeze-thaw' => 2);
{
    my $record = "$dir/fake1.txt";
    my $fake = start_fake_agent("$dir/fake1.qga", $record, \%working);
    my ($log, $sink) = collector();
    is(qga_fs_freeze("$dir/fake1.qga", $sink), 1, 'fake agent: frozen');
    is_deeply($log, [['info', $FREEZE_LINE]], 'fake agent: freeze logs the info line only');
    is_deeply(recorded($record), ['guest-ping', 'guest-fsfreeze-freeze'],
        'fake agent: agent check, then freeze');
    ($log, $sink) = collector();
    qga_fs_thaw("$dir/fake1.qga", $sink);
    is_deeply($log, [['info', $THAW_LINE]], 'fake agent: thaw logs the info line only');
    is_deeply(recorded($record), ['guest-ping', 'guest-fsfreeze-freeze', 'guest-fsfreeze-thaw'],
        'fake agent: thaw sent');
    stop_peer($fake);
}

# A die during the freeze must not leave the guest frozen: the caller gets no return value
# to thaw with, so qga_fs_freeze thaws (quietly) before rethrowing.
{
    my $record = "$dir/fake2.txt";
    my $fake = start_fake_agent("$dir/fake2.qga", $record, \%working);
    my $calls = 0;
    $ok = eval { qga_fs_freeze("$dir/fake2.qga", sub { $calls++; die "sink broke\n" }); 1 };
    is($@, "sink broke\n", 'die in the log callback after a freeze: rethrown');
    is($calls, 1, 'die in the log callback: called for the one line only');
    is_deeply(recorded($record), ['guest-ping', 'guest-fsfreeze-freeze', 'guest-fsfreeze-thaw'],
        'die in the log callback: thawed before rethrowing');
    stop_peer($fake);
}
{
    # The agent takes the freeze and signals the test while it waits for the reply; until
    # the client gives up (a signal that comes just before the client waits is not seen).
    my $parent = $$;
    my $record = "$dir/fake3.txt";
    my $fake = start_fake_agent("$dir/fake3.qga", $record, {
        %working,
        'guest-fsfreeze-freeze' => sub {
            my ($client) = @_;
            kill('USR1', $parent) until IO::Select->new($client)->can_read(1);
        },
    });
    my $signals = 0;
    local $SIG{USR1} = sub { die "interrupted by signal\n" if !$signals++ };
    my ($log, $sink) = collector();
    $ok = eval { qga_fs_freeze("$dir/fake3.qga", $sink); 1 };
    is($@, "interrupted by signal\n", 'signal during the freeze: the handler\'s error');
    is_deeply([map { $_->[0] } @$log], [qw(info err)], 'signal during the freeze: line, error')
        or diag explain $log;
    is($log->[1]->[1], "qga socket '$dir/fake3.qga' command 'guest-fsfreeze-freeze' interrupted by signal",
        'signal during the freeze: the interrupted freeze logged');
    is_deeply(recorded($record), ['guest-ping', 'guest-fsfreeze-freeze', 'guest-fsfreeze-thaw'],
        'signal during the freeze: thawed before rethrowing');
    stop_peer($fake);
}

# A VM that does not run: qemu-server's running check (Monitor.pm `qmp_cmd`) comes first.
{
    local $PVE::RS::VZDump::Qemu::RUN_DIR = "$dir/none";
    agent_unreachable('VM not running', 'qemu-server\'s text', 'VM 100 not running');
}

# A running VM whose agent socket does not exist.
{
    my $vmdir = tmpdir();
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $vmdir;
    my $vm = start_qemu("$vmdir/100.qmp");
    # The seed's `qmp_cmd` tested the monitor's socket; the connect to the agent's fails
    # (PVE::QMPClient `$open_connection`: "unable to connect to VM $vmid qga socket - $!").
    $ok = eval { mon_cmd(100, 'guest-ping'); 1 };
    is($@, "VM 100 qmp command 'guest-ping' failed - unable to connect to VM 100 qga socket - No such file or directory\n",
        'missing agent socket: the seed\'s text');
    # Today's proxmox/qemu-server src/PVE/QemuServer/Monitor.pm `qmp_cmd` tests the agent's.
    local $PVE::RS::VZDump::Qemu::STYLE = 'current';
    agent_unreachable('missing agent socket', 'today\'s text', 'unable to open monitor socket');
    stop_peer($vm);
}

is(mon_cmd(100, 'guest-fsfreeze-status'), 'thawed', 'qemu-ga still serving at the end');
ok(defined(stop_peer($qga)), 'qemu-ga stopped and reaped');
done_testing();
