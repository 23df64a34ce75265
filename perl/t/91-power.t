# The power-state steps and the abort one by one, for a plugin that swaps in its methods
# piecewise: enforce_vm_running_for_backup, resume_vm_after_job_start,
# restore_vm_power_state and mon_backup_cancel against pve-qmp-sim as VM 100 of a run
# directory, with qemu-server's lines and what they store back in the plugin and the task
# (proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, the functions of the same names).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;

use PVE::RS::VZDump::Qemu qw(
    enforce_vm_running_for_backup resume_vm_after_job_start restore_vm_power_state
    mon_backup_cancel
);
use TestPeers qw(tmpdir sim_binary start_sim stop_peer);

BAIL_OUT('pve-qmp-sim not built (cargo build -p pve-qmp-sim): real-peer tests never skip')
    if !sim_binary();

{
    package TestPlugin;
    sub new { my ($class, %f) = @_; return bless { lines => [], %f }, $class; }
    sub loginfo { push @{ $_[0]->{lines} }, "INFO: $_[1]" }
    sub logerr { push @{ $_[0]->{lines} }, "ERROR: $_[1]" }
    sub log { push @{ $_[0]->{lines} }, uc($_[1]) . ": $_[2]" }
}

my $dir = tmpdir();
local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
my @SIM = ('--gen-disk', 'drive-scsi0=16M', '--record', "$dir/record");

sub commands {
    open(my $fh, '<', "$dir/record") or return [];
    return [grep { $_ ne 'qmp_capabilities' }
        map { JSON::PP::decode_json($_)->{execute} } <$fh>];
}

# A VM that was not running: started paused, not resumed, stopped again while in prelaunch.
{
    my ($sim, $stops);
    my $plugin = TestPlugin->new(vm_was_running => 0);
    enforce_vm_running_for_backup($plugin, 100,
        start_vm => sub { $sim = start_sim("$dir/100.qmp", @SIM, '--state', 'prelaunch') });
    ok($sim, 'not running: start_vm called');
    ok(!$plugin->{vm_was_running}, 'not running: vm_was_running stays false');
    my $task = { vmstoptime => undef };
    resume_vm_after_job_start($plugin, $task, 100);
    restore_vm_power_state($plugin, 100, stop_vm => sub { $stops++; stop_peer($sim) });
    is_deeply($plugin->{lines}, [
        'INFO: starting kvm to execute backup task',
        'INFO: stopping kvm after backup task',
    ], 'not running: the lines');
    is($stops, 1, 'not running: stop_vm called once');
    is_deeply(commands(), ['query-status'], 'not running: no cont, one status query');
    unlink("$dir/record");
}

# A start that fails: its die text, as vm_start's.
{
    my $plugin = TestPlugin->new;
    eval { enforce_vm_running_for_backup($plugin, 100,
        start_vm => sub { die "start failed: no such storage\n" }) };
    is($@, "start failed: no such storage\n", 'failing start: its die text');
}

# A running VM in stop mode: the downtime once, vmstoptime cleared, cont sent; the VM kept.
{
    my $sim = start_sim("$dir/100.qmp", @SIM);
    my $plugin = TestPlugin->new;
    enforce_vm_running_for_backup($plugin, 100, start_vm => sub { die "not called\n" });
    is($plugin->{vm_was_running}, 1, 'running: vm_was_running set');
    my $task = { vmstoptime => time() - 4 };
    resume_vm_after_job_start($plugin, $task, 100);
    is($task->{vmstoptime}, undef, 'running: vmstoptime cleared');
    resume_vm_after_job_start($plugin, $task, 100);
    restore_vm_power_state($plugin, 100, stop_vm => sub { die "not called\n" });
    like($plugin->{lines}->[0], qr/^INFO: resuming VM again after [4-9]\d* seconds$/,
        'running: the downtime');
    is($plugin->{lines}->[1], 'INFO: resuming VM again', 'running: then plain');
    is(scalar(@{ $plugin->{lines} }), 2, 'running: nothing on restore');
    is_deeply(commands(), ['cont', 'cont'], 'running: cont twice');

    # A VM started for the backup that someone resumed meanwhile: kept, with the seed's line.
    $plugin = TestPlugin->new(vm_was_running => 0);
    restore_vm_power_state($plugin, 100, stop_vm => sub { die "not called\n" });
    is_deeply($plugin->{lines},
        ["INFO: kvm status changed after backup ('running') - keep VM running"],
        'status changed: kept');

    # mon_backup_cancel: its line and the cancel.
    $plugin = TestPlugin->new;
    mon_backup_cancel($plugin, 100);
    is_deeply($plugin->{lines}, ['INFO: aborting backup job'], 'abort: the line');
    is(commands()->[-1], 'backup-cancel', 'abort: backup-cancel sent');
    stop_peer($sim);

    # With QEMU gone: the failures are logged (error) and warned, never died with.
    $plugin = TestPlugin->new(vm_was_running => 0);
    mon_backup_cancel($plugin, 100);
    restore_vm_power_state($plugin, 100, stop_vm => sub { die "not called\n" });
    is($plugin->{lines}->[0], 'INFO: aborting backup job', 'no QEMU: abort line');
    like($plugin->{lines}->[1], qr/^ERROR: /, 'no QEMU: the cancel failure logged');
    like($plugin->{lines}->[2], qr/^WARN: /, 'no QEMU: the status failure warned');
}

# Bad arguments name the function and the argument.
{
    eval { enforce_vm_running_for_backup('plugin', 100) };
    like($@, qr/^enforce_vm_running_for_backup: the plugin must be a hash-based object/,
        'the plugin checked');
    eval { restore_vm_power_state(TestPlugin->new, 100, stop => sub {}) };
    is($@, "restore_vm_power_state: unknown option 'stop'\n", 'unknown option');
    eval { enforce_vm_running_for_backup(TestPlugin->new, 100) };
    is($@, "enforce_vm_running_for_backup: start_vm is needed (PVE::QemuServer is not loaded)\n",
        'start_vm needed without qemu-server');
    eval { resume_vm_after_job_start(TestPlugin->new, [], 100) };
    like($@, qr/^resume_vm_after_job_start: the task must be a hash reference/, 'task checked');
    eval { mon_backup_cancel(TestPlugin->new, "$dir/none.qmp") };
    is($@, '', 'abort of a socket path: never dies');
}

done_testing();
