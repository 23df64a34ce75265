# archive_vma and archive_pbs, the whole job, against pve-qmp-sim as VM 100 of a run
# directory: a plugin object as vzdump passes it ($self, $task, $vmid, ...), the exact lines
# in order, the VM started paused and stopped again, a freeze that works, one real qemu-ga
# refuses and an agent that is not there, a start QEMU refuses, a failing job, a signal
# during the loop and during the start, PBS with and without fingerprint, the plugin's task
# fields and bad arguments. The lines are qemu-server's
# (proxmox/qemu-server src/PVE/VZDump/QemuServer.pm: archive_vma, archive_pbs,
# enforce_vm_running_for_backup, resume_vm_after_job_start, restore_vm_power_state,
# mon_backup_cancel).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;

use PVE::RS::VZDump::Qemu qw(archive_vma archive_pbs plugin_task);
use TestPeers qw(tmpdir sim_binary start_sim start_qga start_fake_agent stop_peer);
use JSON::PP ();

BAIL_OUT('pve-qmp-sim not built (cargo build -p pve-qmp-sim)' . ': real-peer tests never skip')
    if !sim_binary();

# A vzdump plugin as far as the job reads it, collecting its lines as vzdump prints them.
{
    package TestPlugin;
    sub new {
        my ($class, %fields) = @_;
        return bless { lines => [], vmlist => { 100 => {} }, vzdump => { opts => {} }, %fields },
            $class;
    }
    sub loginfo { push @{ $_[0]->{lines} }, "INFO: $_[1]" }
    sub logerr { push @{ $_[0]->{lines} }, "ERROR: $_[1]" }
    sub log { push @{ $_[0]->{lines} }, uc($_[1]) . ": $_[2]" }
}

# The lines without the status loop's progress lines and summaries.
sub flow {
    my ($plugin) = @_;
    return [grep { !/^INFO: (status: |transferred |backup is sparse|\s*\d+% \()/ } @{ $plugin->{lines} }];
}

# The flow lines must be @$want, with <uuid> standing for the started job's uuid.
sub flow_is {
    my ($plugin, $want, $name) = @_;
    my $uuid = started_uuid($plugin);
    is_deeply(flow($plugin), [map { s/<uuid>/$uuid/r } @$want], $name);
}

# The VM callbacks of a VM that runs: never called.
my @NOT_CALLED = (start_vm => sub { die "not called\n" }, stop_vm => sub { die "not called\n" });

sub started_uuid {
    my ($plugin) = @_;
    my ($uuid) = map { /^INFO: started backup task '(.*)'$/ ? $1 : () } @{ $plugin->{lines} };
    return $uuid // '';
}

# A run directory with the task's files; VM 100's simulator in it unless $running is false.
sub vm {
    my ($running, @sim_args) = @_;
    my $dir = tmpdir();
    open(my $fh, '>', "$dir/qemu-server.conf") or die $!;
    print $fh "name: perl-job\n";
    close($fh);
    # 'REC' stands for the run directory's request record.
    my @args = ('--gen-disk', 'drive-scsi0=16M', '--rate', '32M',
        map { $_ eq 'REC' ? "$dir/record" : $_ } @sim_args);
    my $sim = $running ? start_sim("$dir/100.qmp", @args) : undef;
    my $task = { tmpdir => $dir, mode => 'snapshot',
        disks => [{ type => 'file', qmdevice => 'drive-scsi0', path => '/dev/null' }] };
    return ($dir, $sim, $task, \@args);
}

# The requests the simulator of $dir received (started with 'REC').
sub records {
    my ($dir) = @_;
    open(my $fh, '<', "$dir/record") or die "$dir/record - $!";
    return map { JSON::PP::decode_json($_) } <$fh>;
}

local $PVE::RS::VZDump::Qemu::STYLE = 'seed';

# A running VM: the seed's lines, the archive and the record.
{
    my ($dir, $sim, $task) = vm(1);
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $plugin = TestPlugin->new(vm_was_running => 1);
    my $res = archive_vma($plugin, $task, 100, "$dir/backup.vma.zst", 'zstd -q',
        @NOT_CALLED);
    flow_is($plugin, ["INFO: started backup task '<uuid>'", 'INFO: resuming VM again'],
        'running VM: the flow lines');
    ok(grep(/^INFO: status: 100% /, @{ $plugin->{lines} }), 'running VM: the status lines');
    is($res->{uuid}, started_uuid($plugin), 'running VM: the record names the job');
    is($res->{progress}->{transferred}, 16 * 1024 * 1024, 'running VM: all bytes');
    ok(-s "$dir/backup.vma.zst", 'running VM: the archive');
    stop_peer($sim);
}

# Stop mode: the downtime named once, and the task's vmstoptime cleared as
# resume_vm_after_job_start clears it (vzdump prints no second line).
{
    my ($dir, $sim, $task) = vm(1);
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    $task->{mode} = 'stop';
    $task->{vmstoptime} = time() - 5;
    my $plugin = TestPlugin->new(vm_was_running => 1);
    archive_vma($plugin, $task, 100, "$dir/backup.vma", undef,
        @NOT_CALLED);
    my $flow = flow($plugin);
    like($flow->[1], qr/^INFO: resuming VM again after [5-9]\d* seconds$/, 'stop mode: downtime');
    is($task->{vmstoptime}, undef, 'stop mode: vmstoptime cleared');
    stop_peer($sim);
}

# An agent that freezes and thaws, in both styles: both lines before the start line (the
# thaw follows the backup command), and the agent's commands in order.
for my $style (qw(seed current)) {
    my ($dir, $sim, $task) = vm(1);
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $agent = start_fake_agent("$dir/100.qga", "$dir/agent.log", {
        'guest-ping' => {}, 'guest-fsfreeze-freeze' => 1, 'guest-fsfreeze-thaw' => 1,
    });
    my $plugin = TestPlugin->new(vm_was_running => 1, vmlist => { 100 => { agent => '1' } });
    archive_vma($plugin, $task, 100, "$dir/backup.vma", undef, style => $style,
        @NOT_CALLED);
    flow_is($plugin, [
        "INFO: issuing guest-agent 'fs-freeze' command",
        "INFO: issuing guest-agent 'fs-thaw' command",
        "INFO: started backup task '<uuid>'",
        'INFO: resuming VM again',
    ], "$style: freeze, thaw, start");
    open(my $fh, '<', "$dir/agent.log") or die $!;
    is_deeply([map { chomp; $_ } <$fh>],
        ['guest-ping', 'guest-fsfreeze-freeze', 'guest-fsfreeze-thaw'],
        "$style: the agent's commands in order");
    stop_peer($agent);
    stop_peer($sim);
}

# Real qemu-ga refusing both freeze commands (they are blocked on the host): each failure
# logged at error level, the thaw sent all the same, the backup goes on. Then the agent
# configured but not there: the seed's skip line.
{
    my ($dir, $sim, $task) = vm(1);
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $qga = start_qga($dir);
    my $plugin = TestPlugin->new(vm_was_running => 1, vmlist => { 100 => { agent => '1' } });
    archive_vma($plugin, $task, 100, "$dir/backup.vma", undef, @NOT_CALLED);
    my $flow = flow($plugin);
    is($flow->[0], "INFO: issuing guest-agent 'fs-freeze' command", 'refusing agent: freeze');
    like($flow->[1], qr/^ERROR: .*guest-fsfreeze-freeze.*disabled/,
        'refusing agent: the freeze failure logged');
    is($flow->[2], "INFO: issuing guest-agent 'fs-thaw' command", 'refusing agent: thaw follows');
    like($flow->[3], qr/^ERROR: .*guest-fsfreeze-thaw.*disabled/,
        'refusing agent: the thaw failure logged');
    like($flow->[4], qr/^INFO: started backup task '/, 'refusing agent: the backup goes on');
    stop_peer($qga);

    $plugin = TestPlugin->new(vm_was_running => 1, vmlist => { 100 => { agent => '1' } });
    archive_vma($plugin, $task, 100, "$dir/backup.vma", undef, @NOT_CALLED);
    flow_is($plugin, [
        "INFO: skipping guest-agent 'fs-freeze', agent configured but not running?",
        "INFO: started backup task '<uuid>'",
        'INFO: resuming VM again',
    ], 'no agent: skipped');
    stop_peer($sim);
}

# A VM that was not running: started paused by start_vm, stopped again by stop_vm.
{
    my ($dir, undef, $task, $args) = vm(0);
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $plugin = TestPlugin->new(vm_was_running => 0);
    my ($sim, $stops);
    archive_vma($plugin, $task, 100, "$dir/backup.vma", undef,
        start_vm => sub { $sim = start_sim("$dir/100.qmp", @$args, '--state', 'prelaunch') },
        stop_vm => sub { $stops++; stop_peer($sim) });
    flow_is($plugin, [
        'INFO: starting kvm to execute backup task',
        "INFO: started backup task '<uuid>'",
        'INFO: stopping kvm after backup task',
    ], 'stopped VM: started paused, no resume, stopped again');
    is($stops, 1, 'stopped VM: stop_vm called once');
}

# A start_vm that dies: its text is the failure, as vm_start's die is the seed's.
{
    my ($dir, undef, $task) = vm(0);
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $plugin = TestPlugin->new(vm_was_running => 0);
    eval { archive_vma($plugin, $task, 100, "$dir/b.vma", undef,
        start_vm => sub { die "start failed: timeout waiting on systemd\n" }, stop_vm => sub {}) };
    is($@, "start failed: timeout waiting on systemd\n", 'failing start: its die text');
    is_deeply(flow($plugin), ['INFO: starting kvm to execute backup task'],
        'failing start: the seed logs nothing else');
}

# A failing job: logged, cancelled, the compressor reaped, the job's errmsg as die text.
{
    my ($dir, $sim, $task) = vm(1, '--fault-error-at', '50');
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $plugin = TestPlugin->new(vm_was_running => 1);
    eval { archive_vma($plugin, $task, 100, "$dir/b.vma.zst", 'zstd -q',
        start_vm => sub {}, stop_vm => sub {}) };
    is($@, "job failed with err -5 - Input/output error\n", 'failing job: die text');
    flow_is($plugin, [
        "INFO: started backup task '<uuid>'",
        'INFO: resuming VM again',
        'ERROR: job failed with err -5 - Input/output error',
        'INFO: aborting backup job',
    ], 'failing job: logged and cancelled');
    stop_peer($sim);
}

# QEMU refuses the backup (a device it does not have): its bare desc, as the seed's
# queue_execute dies with it; only today's archive_vma cancels and resumes after it.
for my $style (qw(seed current)) {
    my ($dir, $sim, $task) = vm(1, '--record', 'REC');
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    $task->{disks} = [{ type => 'file', qmdevice => 'drive-nope', path => '/dev/null' }];
    my $plugin = TestPlugin->new(vm_was_running => 1);
    eval { archive_vma($plugin, $task, 100, "$dir/b.vma", undef, style => $style, @NOT_CALLED) };
    is($@, "Device 'drive-nope' not found\n", "$style: refused start: die text");
    my @want = ("ERROR: Device 'drive-nope' not found");
    push @want, 'INFO: aborting backup job', 'INFO: resuming VM again' if $style eq 'current';
    is_deeply(flow($plugin), \@want, "$style: refused start: the lines");
    is(!!grep({ $_->{execute} eq 'backup-cancel' } records($dir)), $style eq 'current',
        "$style: refused start: cancelled only today");
    stop_peer($sim);
}

# QEMU's errmsg with a newline and a fake line in it (a guest may influence it): one line
# in the log and in the die text, the newline written out.
{
    my ($dir, $sim, $task) = vm(1, '--fault-error-at', "50:disk gone\nINFO: backup finished\n");
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $plugin = TestPlugin->new(vm_was_running => 1);
    eval { archive_vma($plugin, $task, 100, "$dir/b.vma", undef, @NOT_CALLED) };
    is($@, "disk gone\\nINFO: backup finished\n", 'errmsg with newlines: one line to die with');
    ok(grep({ $_ eq 'ERROR: disk gone\\nINFO: backup finished' } @{ $plugin->{lines} }),
        'errmsg with newlines: one error line');
    ok(!grep(/\n/, @{ $plugin->{lines} }), 'errmsg with newlines: no line holds a newline');
    stop_peer($sim);
}

# SIGTERM during the loop: the seed's handlers end the job with "interrupted by signal".
{
    my ($dir, $sim, $task) = vm(1, '--rate', '4M');
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $plugin = TestPlugin->new(vm_was_running => 1);
    my $parent = $$;
    my $killer = fork() // die "fork - $!";
    if ($killer == 0) {
        select(undef, undef, undef, 1.5);
        kill('TERM', $parent);
        POSIX::_exit(0);
    }
    my $handler = $SIG{TERM};
    eval { archive_vma($plugin, $task, 100, "$dir/b.vma", undef,
        start_vm => sub {}, stop_vm => sub {}) };
    waitpid($killer, 0);
    is($@, "interrupted by signal\n", 'signal: the seed handlers\' die text');
    my $flow = flow($plugin);
    is_deeply([@$flow[-2, -1]], ['ERROR: interrupted by signal', 'INFO: aborting backup job'],
        'signal: logged and cancelled');
    is($SIG{TERM}, $handler, 'signal: the caller\'s handler is back');
    stop_peer($sim);
}

# SIGTERM while QEMU still works on a PBS start (3 s to its server): the seed knows no
# uuid and logs nothing more, today's archive_pbs cancels and resumes; in both the start
# left unknown is settled by cancelling the job QEMU may have started.
for my $style (qw(seed current)) {
    my ($dir, $sim, $task) = vm(1, '--pbs-connect-delay-ms', '3000', '--record', 'REC');
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $plugin = TestPlugin->new(vm_was_running => 1);
    my $parent = $$;
    my $killer = fork() // die "fork - $!";
    if ($killer == 0) {
        select(undef, undef, undef, 1);
        kill('TERM', $parent);
        POSIX::_exit(0);
    }
    eval { archive_pbs($plugin, $task, 100, style => $style, @NOT_CALLED,
        pbs => { 'backup-file' => 'root@pam@pbs:store', 'backup-id' => 100,
            'backup-time' => 1700000000, password => 'pw' }) };
    waitpid($killer, 0);
    is($@, "interrupted by signal\n", "$style: signal during the start");
    my @want = $style eq 'seed' ? ('ERROR: interrupted by signal')
        : ('ERROR: interrupted by signal', 'INFO: aborting backup job', 'INFO: resuming VM again');
    is_deeply(flow($plugin), \@want, "$style: signal during the start: the lines");
    my @commands = map { $_->{execute} } records($dir);
    ok(grep({ $_ eq 'backup-cancel' } @commands), "$style: signal during the start: cancelled");
    stop_peer($sim);
}

# PBS with and without a fingerprint: the backup arguments QEMU got.
for my $fingerprint ('aa:bb:cc', undef) {
    my ($dir, $sim, $task) = vm(1, '--record', 'REC');
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $plugin = TestPlugin->new(vm_was_running => 1);
    archive_pbs($plugin, $task, 100, @NOT_CALLED,
        pbs => { 'backup-file' => 'root@pam@pbs:store', 'backup-id' => 100,
            'backup-time' => 1700000000, password => 'pw',
            defined($fingerprint) ? (fingerprint => $fingerprint) : () });
    my ($backup) = grep { $_->{execute} eq 'backup' } records($dir);
    is($backup->{arguments}->{fingerprint}, $fingerprint,
        'pbs: fingerprint ' . ($fingerprint // 'none'));
    stop_peer($sim);
}

# PBS in today's style: the job's record gives the task its size.
{
    my ($dir, $sim, $task) = vm(1);
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $plugin = TestPlugin->new(vm_was_running => 1);
    my $res = archive_pbs($plugin, $task, 100, style => 'current',
        start_vm => sub {}, stop_vm => sub {},
        pbs => { 'backup-file' => 'root@pam@pbs:store', 'backup-id' => 100,
            'backup-time' => 1700000000, password => 'perl-secret' });
    is($task->{size}, 16 * 1024 * 1024, 'pbs: task size');
    ok($res->{uuid}, 'pbs: uuid');
    ok(!grep(/perl-secret/, @{ $plugin->{lines} }), 'pbs: the password is never logged');
    stop_peer($sim);
}

# The task fields from the plugin: today's agent option parsing.
{
    my $task = { tmpdir => '/t', disks => [] , mode => 'suspend', vmstoptime => 7 };
    my %cases = (
        '1' => [1, undef],
        'enabled=0,guest-fsfreeze=1' => [0, undef],
        '1,freeze-fs-on-backup=0' => [1, 0],
        'enabled=1,guest-fsfreeze=1,freeze-fs-on-backup=0' => [1, 1],
    );
    for my $agent (sort keys %cases) {
        my $plugin = TestPlugin->new(vmlist => { 100 => { agent => $agent } });
        my $t = plugin_task($plugin, $task, 100);
        is_deeply([@$t{qw(agent guest-fsfreeze)}], $cases{$agent}, "plugin_task: agent '$agent'");
    }
    my $plugin = TestPlugin->new(vm_was_running => 1, vmlist => { 100 => { template => 1 } });
    $plugin->{vzdump}->{opts} = { bwlimit => 1000, performance => { 'max-workers' => 4 } };
    my $t = plugin_task($plugin, $task, 100);
    is_deeply($t, {
        disks => [], 'config-file' => '/t/qemu-server.conf', 'firewall-file' => '/t/qemu-server.fw',
        mode => 'suspend', 'vm-was-running' => 1, 'vm-was-paused' => 0, agent => 0,
        'guest-fsfreeze' => undef, 'is-template' => 1, 'vm-stop-time' => 7, bwlimit => 1000,
        'max-workers' => 4,
    }, 'plugin_task: every field');
}

# Bad arguments name the function and the argument.
{
    my $plugin = TestPlugin->new;
    my $task = { tmpdir => '/t', disks => [] };
    eval { archive_vma($plugin, $task, 100, '/t/x.vma', undef, start_vm => 'x') };
    is($@, "archive_vma: start_vm must be a code reference, got a string\n", 'start_vm checked');
    eval { archive_vma($plugin, $task, 100, '/t/x.vma', undef, start_vm => sub {}) };
    is($@, "archive_vma: stop_vm is needed (PVE::QemuServer is not loaded)\n",
        'stop_vm needed without qemu-server');
    eval { archive_vma($plugin, $task, 100, '/t/x.vma', undef, bogus => 1) };
    is($@, "archive_vma: unknown option 'bogus'\n", 'unknown option');
    eval { archive_pbs($plugin, $task, 100, start_vm => sub {}, stop_vm => sub {}) };
    is($@, "archive_pbs: pbs must be a hash reference, got undef\n", 'pbs needed');
    eval { archive_vma('plugin', $task, 100, '/t/x.vma', undef) };
    like($@, qr/^archive_vma: /, 'the plugin checked');
}

done_testing();
