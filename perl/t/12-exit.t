# `exit` in a signal handler or a callback while the library waits (docs/reliability.md,
# finding 18), the common `$SIG{TERM} = sub { exit }`: the library call stops as for a die
# (a status loop with cancel_on_error and the whole job cancel their backup first), then
# the exit goes on: END blocks run and the process ends with the exit's status. Each case
# runs in a child of the test, which the test signals and reaps itself; VM 100 is
# pve-qmp-sim, slowed down so that the job is still active when the signal comes.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;
use Time::HiRes qw(ualarm);

use PVE::RS::VZDump::Qemu
    qw(archive_vma backup_query backup_start_vma mon_cmd query_backup_status_loop);
use TestPeers qw(tmpdir sim_binary start_sim stop_peer);

BAIL_OUT('pve-qmp-sim not built (cargo build -p pve-qmp-sim)' . ': real-peer tests never skip')
    if !sim_binary();

my $dir = tmpdir();
local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;

# Set in a child: its END block leaves this file behind, to show that END blocks ran.
our $END_MARK;
END { if (defined($END_MARK) && open(my $fh, ">", $END_MARK)) { close($fh) } }

# Runs $body in a child whose log lines go to $dir/$case.log; once the first line is there
# (or at once without $wait_line), sends $signal to the child if given. Returns the child's
# exit code and its log lines.
sub in_child {
    my ($case, $signal, $wait_line, $body) = @_;
    my $log = "$dir/$case.log";
    my $pid = fork() // die "fork - $!\n";
    if (!$pid) {
        $END_MARK = "$dir/$case.end";
        open(my $fh, '>>', $log) or POSIX::_exit(99);
        $fh->autoflush(1);
        eval { $body->(sub { print $fh "$_[1]\n" }) };
        print $fh "returned: $@\n";
        POSIX::_exit(98);
    }
    if ($wait_line) {
        for (1 .. 500) { last if -s $log; select(undef, undef, undef, 0.02) }
    }
    kill($signal, $pid) if $signal;
    waitpid($pid, 0);
    my $code = $? >> 8;
    open(my $fh, '<', $log) or die "$log - $!\n";
    chomp(my @lines = <$fh>);
    return ($code, \@lines);
}

sub started {
    my $sim = start_sim("$dir/100.qmp", '--gen-disk', 'drive-scsi0=64M', '--rate', '4M');
    open(my $out, '>', "$dir/out.vma") or die "out.vma - $!";
    my $uuid = backup_start_vma(100, $out, { devlist => 'drive-scsi0' });
    close($out);
    return ($sim, $uuid);
}

# The status loop, exit in a SIGTERM handler.
{
    my ($sim, $uuid) = started();
    my ($code, $lines) = in_child('loop-term', 'TERM', 1, sub {
        my ($log) = @_;
        local $SIG{TERM} = sub { exit(7) };
        query_backup_status_loop(100, $uuid, $log, interval => 0.2, cancel_on_error => 1);
    });
    is($code, 7, 'loop, exit in a handler: the handler\'s exit status');
    ok(-e "$dir/loop-term.end", 'loop, exit in a handler: END blocks ran');
    ok(!grep(/^returned: /, @$lines), 'loop, exit in a handler: the call did not return');
    my $status = backup_query(100);
    is($status->{status}, 'error', 'loop, exit in a handler: the job ended');
    # pve-qemu's text for a cancelled job (proxmox/pve-qemu, the backup-cancel of the
    # pve-backup patch).
    is($status->{errmsg}, 'backup canceled', 'loop, exit in a handler: cancelled');
    stop_peer($sim);
}

# The status loop, exit in the log callback.
{
    my ($sim, $uuid) = started();
    my ($code) = in_child('loop-log', undef, 0, sub {
        query_backup_status_loop(100, $uuid, sub { exit(5) }, interval => 0.2,
            cancel_on_error => 1);
    });
    is($code, 5, 'loop, exit in the log callback: its exit status');
    ok(-e "$dir/loop-log.end", 'loop, exit in the log callback: END blocks ran');
    is(backup_query(100)->{errmsg}, 'backup canceled', 'loop, exit in the log callback: cancelled');
    stop_peer($sim);
}

# A one-shot command, exit in a SIGALRM handler while the reply is late.
{
    my $sim = start_sim("$dir/slow.qmp", '--fault-slow-ms', 700);
    my ($code, $lines) = in_child('command', undef, 0, sub {
        local $SIG{ALRM} = sub { exit(3) };
        ualarm(300_000);
        mon_cmd("$dir/slow.qmp", 'query-status');
    });
    is($code, 3, 'command, exit in a handler: its exit status');
    ok(-e "$dir/command.end", 'command, exit in a handler: END blocks ran');
    is_deeply($lines, [], 'command, exit in a handler: the call did not return');
    stop_peer($sim);
}

# The whole job (archive_vma), exit in the plugin's log method at the first status line.
# (A signal handler of the caller's does not run during the job: archive_vma sets the seed's
# own, which end the job with 'interrupted by signal'; t/90-job.t covers those.)
{
    my $sim = start_sim("$dir/100.qmp", '--gen-disk', 'drive-scsi0=64M', '--rate', '4M');
    my $task = { tmpdir => $dir, mode => 'snapshot',
        disks => [{ type => 'file', qmdevice => 'drive-scsi0', path => '/dev/null' }] };
    open(my $conf, '>', "$dir/qemu-server.conf") or die $!;
    close($conf);
    my ($code, $lines) = in_child('job', undef, 0, sub {
        my ($log) = @_;
        my $plugin = bless { log => $log, vmlist => { 100 => {} }, vzdump => { opts => {} },
            vm_was_running => 1 }, 'ExitPlugin';
        archive_vma($plugin, $task, 100, "$dir/job.vma", undef,
            start_vm => sub { die "not called\n" }, stop_vm => sub { die "not called\n" });
    });
    is($code, 9, 'job, exit in the log method: its exit status') or diag(join("\n", @$lines));
    ok(-e "$dir/job.end", 'job, exit in the log method: END blocks ran');
    ok(grep(/^started backup task /, @$lines), 'job, exit in the log method: it had started');
    is(backup_query(100)->{errmsg}, 'backup canceled', 'job, exit in the log method: cancelled');
    stop_peer($sim);
}

{
    package ExitPlugin;
    sub loginfo {
        my ($self, $line) = @_;
        exit(9) if $line =~ /^status: /;
        $self->{log}->('info', $line);
    }
    sub logerr { $_[0]->{log}->('err', $_[1]) }
    sub log { $_[0]->{log}->($_[1], $_[2]) }
}
done_testing();
