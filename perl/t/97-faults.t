# The fault matrix (docs/reliability.md) through the Perl entry point: archive_vma as
# vzdump's plugin calls it, against pve-qmp-sim as VM 100, one fault a row, and for every row
# the same checks: the die text, backup-cancel sent when a job may exist, the compressor
# reaped, no descriptor left open, the caller alive; the size of what is left of the output
# is noted. The texts are qemu-server's (proxmox/qemu-server src/PVE/VZDump/QemuServer.pm:
# archive_vma and its status loop; src/PVE/QemuServer/Monitor.pm: `VM 100 not running`)
# or QEMU's errmsg for a broken pipe (proxmox/pve-qemu, the VMA writer's
# `vma_queue_write: write error - %s`).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;

use PVE::RS::VZDump::Qemu qw(archive_vma);
use TestPeers qw(tmpdir sim_binary start_sim stop_peer);

BAIL_OUT('pve-qmp-sim not built (cargo build -p pve-qmp-sim)' . ': real-peer tests never skip')
    if !sim_binary();

{
    package MatrixPlugin;
    sub new { return bless { lines => [], vmlist => { 100 => {} }, vzdump => { opts => {} },
        vm_was_running => 1 }, shift }
    sub loginfo { push @{ $_[0]->{lines} }, "INFO: $_[1]" }
    sub logerr { push @{ $_[0]->{lines} }, "ERROR: $_[1]" }
    sub log { push @{ $_[0]->{lines} }, uc($_[1]) . ": $_[2]" }
}

sub fd_count { opendir(my $dh, '/proc/self/fd') or die $!; my @fds = readdir($dh); return @fds - 2 }

# Whether $pid is a child of this process that was not reaped.
sub our_child {
    my ($pid) = @_;
    open(my $fh, '<', "/proc/$pid/stat") or return 0;
    my ($ppid) = (<$fh> =~ /\)\s+\S+\s+(\d+)/);
    return defined($ppid) && $ppid == $$;
}

# Runs one row; returns what was seen.
sub run_row {
    my (%row) = @_;
    my $dir = tmpdir();
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    my $sim = start_sim("$dir/100.qmp", '--gen-disk', 'drive-scsi0=16M', '--rate', '16M',
        '--record', "$dir/record", @{ $row{sim} // [] });
    open(my $conf, '>', "$dir/qemu-server.conf") or die $!;
    close($conf);
    my $task = { tmpdir => $dir, mode => 'snapshot',
        disks => [{ type => 'file', qmdevice => 'drive-scsi0', path => '/dev/null' }] };
    my $comp = "echo \$\$ > $dir/comp.pid; exec " . ($row{compressor} // 'zstd -q');
    my $plugin = MatrixPlugin->new;
    my $before = fd_count();
    $row{before}->($dir) if $row{before};
    my $ok = eval {
        archive_vma($plugin, $task, 100, "$dir/out.vma", $comp,
            start_vm => sub { die "not called\n" }, stop_vm => sub { die "not called\n" });
        1;
    };
    my $err = $ok ? undef : $@;
    $row{after}->() if $row{after};
    my %seen = (error => $err, fds => fd_count() - $before, lines => $plugin->{lines},
        output => -s "$dir/out.vma" // 0);
    if (open(my $fh, '<', "$dir/comp.pid")) {
        chomp(my $pid = <$fh>);
        $seen{compressor_left} = our_child($pid);
    }
    if (open(my $rec, '<', "$dir/record")) {
        $seen{cancel} = grep { JSON::PP::decode_json($_)->{execute} eq 'backup-cancel' } <$rec>;
    }
    stop_peer($sim);
    return \%seen;
}

my $SIGNALS_SEEN = 0;
my @rows = (
    { name => 'no fault' },
    { name => 'QEMU killed mid-backup', sim => ['--fault-die-at', 30],
        error => "VM 100 not running\n", cancel => 0 },
    { name => 'garbage (invalid UTF-8) instead of the status',
        sim => ['--fault-garbage', 'query-backup'],
        error => "VM 100 qmp command 'query-backup' failed - unexpected data outside a JSON"
            . " object: '\\xffgarbage-reply: this is not JSON\\r\\n'\n", cancel => 1 },
    { name => 'wrong uuid', sim => ['--fault-wrong-uuid'], error => "got unexpected uuid\n",
        cancel => 1 },
    { name => 'job error status', sim => ['--fault-error-at', 30],
        error => "job failed with err -5 - Input/output error\n", cancel => 1 },
    { name => 'compressor exits early', compressor => 'head -c 65536',
        error => "vma_queue_write: write error - Broken pipe\n", cancel => 1 },
    # The compressor alone under a 1 MiB RLIMIT_FSIZE (dash counts 512-byte blocks): its
    # writes beyond fail (SIGXFSZ).
    { name => 'output file system full', compressor => "sh -c 'ulimit -f 2048; exec cat'",
        error => "vma_queue_write: write error - Broken pipe\n", cancel => 1 },
    # The seed's handlers (archive_vma sets them) end the job.
    { name => 'SIGTERM during the status loop', sim => ['--rate', '4M'],
        before => sub { signal_me('TERM', 0.2, 1, "$_[0]/record", 'query-backup') },
        after => \&reap_signaller,
        error => "interrupted by signal\n", cancel => 1 },
    # A handler that returns lets the job go on (docs/reliability.md, finding 17).
    { name => 'a SIGUSR1 flood with a handler that returns',
        before => sub { $SIG{USR1} = sub { $SIGNALS_SEEN++ }; signal_me('USR1', 0.05, 40) },
        after => sub { reap_signaller(); $SIG{USR1} = 'DEFAULT' } },
);

# A child that sends $sig to this process after $delay seconds, $count times 25 ms apart;
# with $record, $delay counts from when the simulator recorded a request for $command (it
# records before it runs one), so that a slow machine cannot move the signal to another step.
my $signaller;
sub signal_me {
    my ($sig, $delay, $count, $record, $command) = @_;
    my $parent = $$;
    $signaller = fork() // die "fork - $!\n";
    if (!$signaller) {
        for (1 .. 6000) {
            last if !$record || requested($record, $command);
            select(undef, undef, undef, 0.005);
        }
        select(undef, undef, undef, $delay);
        for (1 .. ($count // 1)) { kill($sig, $parent); select(undef, undef, undef, 0.025) }
        POSIX::_exit(0);
    }
}
sub requested {
    my ($record, $command) = @_;
    open(my $fh, '<', $record) or return 0;
    # Whole lines only: the simulator may be writing the next one.
    return grep { /\n\z/ && (eval { JSON::PP::decode_json($_)->{execute} } // '') eq $command } <$fh>;
}
sub reap_signaller { waitpid($signaller, 0) if $signaller; $signaller = undef }

for my $row (@rows) {
    my $seen = run_row(%$row);
    my $name = $row->{name};
    note(sprintf("| %s | %s | cancel %d | compressor left %d | fds %d | output %d B |", $name,
        ($seen->{error} // "ok\n") =~ s/\n\z//r, $seen->{cancel} ? 1 : 0,
        $seen->{compressor_left} ? 1 : 0, $seen->{fds}, $seen->{output}));
    is($seen->{error}, $row->{error}, "$name: the die text")
        or diag(join("\n", @{ $seen->{lines} }));
    is($seen->{cancel} ? 1 : 0, $row->{cancel} // 0, "$name: backup-cancel sent when a job may exist");
    ok(!$seen->{compressor_left}, "$name: the compressor reaped");
    is($seen->{fds}, 0, "$name: no descriptor left open");
}
cmp_ok($SIGNALS_SEEN, '>=', 10, 'the SIGUSR1 handler ran during the job');

done_testing();
