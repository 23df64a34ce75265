# examples/vzdump-plugin-piecewise.pl: a full VMA backup with zstd against pve-qmp-sim, its task log,
# its error path (job failure, signal), the archive, and the guest fs freeze around the
# backup start against real qemu-ga (freezing blocked).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use POSIX ();
use Test::More;

use PVE::RS::VZDump::Qemu qw(backup_query);
use TestPeers qw(repo tmpdir sim_binary start_sim start_qga stop_peer);

BAIL_OUT('pve-qmp-sim not built (cargo build -p pve-qmp-sim)' . ': real-peer tests never skip') if !sim_binary();
BAIL_OUT('zstd not installed') if system('command -v zstd >/dev/null 2>&1') != 0;
BAIL_OUT("$TestPeers::QEMU_GA not installed: real-peer tests never skip")
    if !-x $TestPeers::QEMU_GA;

my $dir = tmpdir();
local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
my $example = repo() . '/examples/vzdump-plugin-piecewise.pl';
my $MiB = 1024 * 1024;

# Runs the example with @args; returns (exit code, [log lines]). With $on_start, calls it
# with the child's pid once the "started backup task" line is out.
sub run_example {
    my ($args, $on_start) = @_;
    my $pid = open(my $fh, '-|') // die "fork - $!";
    if ($pid == 0) {
        open(STDERR, '>&', \*STDOUT);
        exec($^X, $example, @$args) or POSIX::_exit(127);
    }
    my @lines;
    while (my $line = <$fh>) {
        chomp($line);
        push @lines, $line;
        $on_start->($pid) if $on_start && $line =~ /^INFO: started backup task/;
    }
    close($fh);
    return ($? >> 8, \@lines);
}

# A full backup: log lines as a vzdump task log, archive compressed VMA of the disk.
{
    my $sim = start_sim("$dir/100.qmp", '--gen-disk', 'drive-scsi0=32M', '--rate', '16M');
    my $archive = "$dir/vzdump-qemu-100.vma.zst";
    my ($rc, $log) = run_example(['--vmid', 100, '--run-dir', $dir, '--output', $archive,
        '--compress', 'zstd', '--devlist', 'drive-scsi0']);
    is($rc, 0, 'example: exit code 0') or diag explain $log;
    is($log->[0], "INFO: creating vzdump archive '$archive'", 'example: first line');
    like($log->[1], qr/^INFO: started backup task '[0-9a-f-]{36}'$/, 'example: started line');
    like($log->[-2],
        qr/^INFO: status: 100% \(33554432\/33554432\), sparse \d+% \(\d+\), duration \d+, read\/write \d+\/\d+ MB\/s$/,
        'example: final status line');
    like($log->[-1], qr/^INFO: transferred 33 MB in \d+ seconds \(\d+ MB\/s\)$/, 'example: summary');
    is_deeply([grep { !/^INFO: / } @$log], [], 'example: only INFO lines');

    system(sim_binary(), '--dump-gen-disk', 'drive-scsi0=32M', "$dir/disk.raw") == 0
        or die "dump-gen-disk failed\n";
    # The workspace's verifier: checksums, structure, every cluster once, and the
    # extracted disk against the simulator's source data (sha256).
    my $cli = repo() . '/target/debug/vzdump-qemu';
    my @verify = ($cli, 'verify', $archive, '--extract', "$dir/extract",
        '--compare', "drive-scsi0=$dir/disk.raw");
    my $report = do { open(my $fh, '-|', @verify) or die "$cli - $!"; local $/; <$fh> };
    is($?, 0, 'example: archive verifies') or diag $report;
    my ($uuid) = $log->[1] =~ /'(.*)'/;
    like($report, qr/^archive OK: uuid \Q${\($uuid =~ s\/-\/\/gr)}\E, 1 config\(s\), 1 device\(s\)/m,
        'example: archive uuid is the job uuid');
    like($report, qr/^  drive-scsi0: identical to /m, 'example: disk image byte for byte');
    my $conf = do { local (@ARGV, $/) = ("$dir/extract/qemu-server.conf"); <> };
    like($conf, qr/^#qmdump#map:scsi0:drive-scsi0:demo:raw:$/m, 'example: config content');
    stop_peer($sim);
}

# Uncompressed, by socket path, today's lines.
{
    my $sim = start_sim("$dir/101.qmp", '--gen-disk', 'drive-scsi0=8M', '--rate', '16M',
        '--record', "$dir/requests.jsonl");
    my ($rc, $log) = run_example(['--socket', "$dir/101.qmp", '--output', "$dir/plain.vma",
        '--style', 'current', '--bwlimit', 65536, '--devlist', 'drive-scsi0']);
    is($rc, 0, 'plain: exit code 0') or diag explain $log;
    open(my $rec, '<', "$dir/requests.jsonl") or die "requests.jsonl - $!";
    my @requests = map { JSON::PP::decode_json($_) } <$rec>;
    my ($backup) = grep { $_->{execute} eq 'backup' } @requests;
    is_deeply([sort keys %{ $backup->{arguments} }],
        [qw(backup-file config-file devlist speed)], 'plain: backup arguments as the seed sends');
    is($backup->{arguments}->{'backup-file'}, '/dev/fdname/backup', 'plain: backup-file');
    is($backup->{arguments}->{speed}, 65536 * 1024, 'plain: speed = bwlimit * 1024');
    is($backup->{arguments}->{devlist}, 'drive-scsi0', 'plain: devlist');
    ok((grep { $_->{execute} eq 'getfd' && $_->{arguments}->{fdname} eq 'backup' } @requests),
        'plain: getfd named backup');
    like($log->[-1], qr/^INFO: transferred 8\.00 MiB in \d+ seconds/, 'plain: current summary');
    open(my $fh, '<', "$dir/plain.vma") or die;
    read($fh, my $magic, 4);
    is($magic, "VMA\0", 'plain: VMA magic');
    stop_peer($sim);
}

# The job fails: the seed's error path (logerr, abort, cancel, kill compressor).
{
    my $sim = start_sim("$dir/100.qmp", '--gen-disk', 'drive-scsi0=32M', '--rate', '32M',
        '--fault-error-at', '50');
    my ($rc, $log) = run_example(['--vmid', 100, '--run-dir', $dir, '--output',
        "$dir/fail.vma.zst", '--compress', 'zstd']);
    is($rc, 1, 'failure: exit code 1');
    is_deeply([@$log[-4 .. -1]], [
        $log->[-4],
        'ERROR: job failed with err -5 - Input/output error',
        'INFO: aborting backup job',
        'ERROR: Backup of VM 100 failed - job failed with err -5 - Input/output error',
    ], 'failure: error, abort, final error') or diag explain $log;
    like($log->[-4], qr/^INFO: status: \d+% /, 'failure: last status line before the error');
    stop_peer($sim);
}

# SIGINT during the loop: interrupted by signal, job cancelled.
{
    my $sim = start_sim("$dir/100.qmp", '--gen-disk', 'drive-scsi0=64M', '--rate', '4M');
    my ($rc, $log) = run_example(['--vmid', 100, '--run-dir', $dir, '--output',
        "$dir/int.vma.zst", '--compress', 'zstd'], sub { kill('INT', $_[0]) });
    is($rc, 1, 'SIGINT: exit code 1');
    is_deeply([@$log[-3 .. -1]], [
        'ERROR: interrupted by signal',
        'INFO: aborting backup job',
        'ERROR: Backup of VM 100 failed - interrupted by signal',
    ], 'SIGINT: the seed\'s error path') or diag explain $log;
    my $status = backup_query(100);
    is_deeply([$status->{status}, $status->{errmsg}], ['error', 'backup canceled'],
        'SIGINT: job cancelled');
    stop_peer($sim);
}

# --agent: the seed's freeze, backup start, thaw. qemu-ga refuses both agent commands, so
# each logs one error and the backup goes on, as in the seed.
{
    my $sim = start_sim("$dir/100.qmp", '--gen-disk', 'drive-scsi0=8M', '--rate', '16M');
    my $qga = start_qga($dir);
    my $archive = "$dir/agent.vma.zst";
    my ($rc, $log) = run_example(['--vmid', 100, '--run-dir', $dir, '--output', $archive,
        '--compress', 'zstd', '--devlist', 'drive-scsi0', '--agent']);
    is($rc, 0, 'agent: exit code 0') or diag explain $log;
    is_deeply([@$log[0 .. 3]], [
        "INFO: creating vzdump archive '$archive'",
        "INFO: issuing guest-agent 'fs-freeze' command",
        $log->[2],
        "INFO: issuing guest-agent 'fs-thaw' command",
    ], 'agent: freeze, then thaw, before the backup task starts') or diag explain $log;
    # The seed's PVE::QMPClient `cmd` named agent commands "VM $vmid qmp command" too.
    like($log->[2], qr/^ERROR: VM 100 qmp command 'guest-fsfreeze-freeze' failed - .*has been disabled/,
        'agent: the blocked freeze logged');
    like($log->[4], qr/^ERROR: VM 100 qmp command 'guest-fsfreeze-thaw' failed - .*has been disabled/,
        'agent: the blocked thaw logged');
    like($log->[5], qr/^INFO: started backup task '[0-9a-f-]{36}'$/, 'agent: then the backup task');
    is(scalar(grep { /^ERROR: / } @$log), 2, 'agent: no other error line');
    is(scalar(grep { /'guest-fsfreeze-freeze' failed/ } @$log), 1, 'agent: freeze error once');
    is(scalar(grep { /'guest-fsfreeze-thaw' failed/ } @$log), 1, 'agent: thaw error once');
    like($log->[-1], qr/^INFO: transferred 8 MB in \d+ seconds/, 'agent: backup completed');

    # A backup start that fails: thawed first, then the start's error.
    ($rc, $log) = run_example(['--vmid', 100, '--run-dir', $dir, '--output', "$dir/bad.vma",
        '--devlist', 'drive-nosuch', '--agent']);
    is($rc, 1, 'agent, failed start: exit code 1');
    my $step = qr/^(?:INFO|ERROR): (issuing guest-agent '\S+'|VM 100 qmp|Backup of VM)/;
    my @steps = map { $_ =~ $step ? $1 : 'start' } @$log[1 .. $#$log];
    is_deeply(\@steps, [
        "issuing guest-agent 'fs-freeze'", 'VM 100 qmp',
        "issuing guest-agent 'fs-thaw'", 'VM 100 qmp',
        'start', 'Backup of VM',
    ], 'agent, failed start: freeze, thaw, then the start error') or diag explain $log;
    like($log->[-1], qr/^ERROR: Backup of VM 100 failed - .*drive-nosuch/,
        'agent, failed start: the start error rethrown');
    ok(defined(stop_peer($qga)), 'agent: qemu-ga stopped and reaped');
    stop_peer($sim);
}

# --agent with --socket needs the agent's socket path.
{
    my ($rc, $log) = run_example(['--socket', "$dir/101.qmp", '--output', "$dir/x.vma", '--agent']);
    is($rc, 2, 'agent without a path for --socket: usage');
}

# Bad options: usage, exit code 2.
{
    my ($rc, $log) = run_example(['--vmid', 100]);
    is($rc, 2, 'usage: exit code 2');
    like($log->[0], qr/^usage: /, 'usage: text');
}

done_testing();
