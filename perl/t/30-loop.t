# query_backup_status_loop against pve-qmp-sim: the seed's and today's lines, the seed's
# die texts for each failure, log sinks (code and plugin object), a dying log callback,
# cancel_on_error.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use PVE::RS::VZDump::Qemu qw(backup_start_vma backup_query query_backup_status_loop);
use TestPeers qw(tmpdir sim_binary start_sim stop_peer);

BAIL_OUT('pve-qmp-sim not built (cargo build -p pve-qmp-sim)' . ': real-peer tests never skip') if !sim_binary();

my $dir = tmpdir();
local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
my $MiB = 1024 * 1024;

# Starts a simulator with @args, starts a VMA backup of drive-scsi0, runs the loop with
# %opts and a collecting log sink. Returns (error or undef, [[level, line], ...], result).
sub run_backup {
    my ($sim_args, %opts) = @_;
    my $sim = start_sim("$dir/100.qmp", @$sim_args);
    open(my $out, '>', "$dir/out.vma") or die "out.vma - $!";
    my $uuid = backup_start_vma(100, $out, { devlist => 'drive-scsi0' });
    my @log;
    my $sink = delete($opts{log}) // sub { push @log, [@_] };
    my $res = eval { query_backup_status_loop(100, $uuid, $sink, interval => 0.2, %opts) };
    my $err = $@ || undef;
    my $status = backup_query(100);
    stop_peer($sim);
    return ($err, \@log, $res, $status, $uuid);
}

sub lines { my ($log) = @_; return [map { $_->[1] } @$log]; }

# Seed style: the always-printed final line and the summary.
{
    my ($err, $log, $res) = run_backup(['--gen-disk', 'drive-scsi0=8M', '--rate', '4M']);
    is($err, undef, 'seed style: job done');
    my @lines = @{ lines($log) };
    ok(@lines >= 2, 'seed style: lines logged');
    is_deeply([grep { $_->[0] ne 'info' } @$log], [], 'seed style: all lines at info level');
    like($lines[-2],
        qr/^status: 100% \(8388608\/8388608\), sparse \d+% \(\d+\), duration [1-9]\d*, read\/write \d+\/\d+ MB\/s$/,
        'seed style: final status line');
    like($lines[-1], qr/^transferred 8 MB in [1-9]\d* seconds \(\d+ MB\/s\)$/, 'seed style: summary');
    is($res->{transferred}, 8 * $MiB, 'result: transferred');
    is($res->{total}, 8 * $MiB, 'result: total');
    is($res->{percent}, 100, 'result: percent');
}

# Current style, with the plugin object as log sink.
{
    package CollectingPlugin;
    sub new { return bless { lines => [] }, shift }
    sub loginfo { push @{ $_[0]->{lines} }, "INFO: $_[1]" }
    sub logerr { push @{ $_[0]->{lines} }, "ERROR: $_[1]" }
}
{
    my $plugin = CollectingPlugin->new;
    my ($err) = run_backup(['--gen-disk', 'drive-scsi0=8M', '--rate', '4M'],
        style => 'current', log => $plugin);
    is($err, undef, 'current style: job done');
    my @lines = @{ $plugin->{lines} };
    ok((grep { /^INFO: 100% \(8\.0 MiB of 8\.0 MiB\) in \d+s, read: .+\/s, write: .+\/s$/ } @lines),
        'current style: final progress line via loginfo') or diag explain \@lines;
    like($lines[-1], qr/^INFO: transferred 8\.00 MiB in [1-9]\d* seconds \(.+\/s\)$/,
        'current style: summary');
}

# The seed's errors, each with "\n".
{
    my ($err, $log) = run_backup(['--gen-disk', 'drive-scsi0=8M', '--rate', '4M',
        '--fault-wrong-uuid']);
    is($err, "got unexpected uuid\n", 'wrong uuid: seed text');
    is_deeply($log, [], 'wrong uuid: dies before any line');
}
{
    my ($err, $log, undef, $status) = run_backup(['--gen-disk', 'drive-scsi0=8M', '--rate', '8M',
        '--fault-error-at', '50:perltest failure']);
    is($err, "perltest failure\n", 'job error: the job errmsg');
    like($log->[-1]->[1], qr/^status: \d+% /, 'job error: the final status line is printed first');
    is($status->{status}, 'error', 'job error: job state');
}
{
    my ($err) = run_backup(['--gen-disk', 'drive-scsi0=8M', '--rate', '8M',
        '--fault-count-mismatch']);
    is($err, "got wrong number of transfered bytes (8388608 != 8323072)\n",
        'count mismatch: seed text');
}

# A dying log callback stops the loop; its error comes back as is.
{
    my $calls = 0;
    my ($err, undef, undef, $status) = run_backup(['--gen-disk', 'drive-scsi0=8M', '--rate', '8M',
        '--fault-count-mismatch'], log => sub { $calls++; die "sink broke\n" });
    is($err, "sink broke\n", 'dying log callback: its error');
    is($calls, 1, 'dying log callback: called once, no further lines');
    my $obj = bless {}, 'ErrorObject';
    ($err) = run_backup(['--gen-disk', 'drive-scsi0=8M', '--rate', '8M', '--fault-count-mismatch'],
        log => sub { die $obj });
    is($err, $obj, 'dying log callback: exception objects are kept');
}

# cancel_on_error: the loop itself sends backup-cancel before dying.
{
    my ($err, $log, undef, $status) = run_backup(['--gen-disk', 'drive-scsi0=64M', '--rate', '4M',
        '--fault-wrong-uuid'], cancel_on_error => 1);
    is($err, "got unexpected uuid\n", 'cancel_on_error: still the seed text');
    is_deeply(lines($log), ['aborting backup job'], 'cancel_on_error: logs the abort');
    is($status->{status}, 'error', 'cancel_on_error: job cancelled');
    is($status->{errmsg}, 'backup canceled', 'cancel_on_error: errmsg');
}

# Today's loop given the query-proxmox-support reply, as today's archive_pbs gives it
# (proxmox/qemu-server src/PVE/VZDump/QemuServer.pm `$query_backup_status_loop`): the
# dirty-bitmap lines first, then {total, reused} returned.
{
    my $sim = start_sim("$dir/100.qmp", '--gen-disk', 'drive-scsi0=40M', '--rate', '64M');
    my $support = PVE::RS::VZDump::Qemu::mon_cmd(100, 'query-proxmox-support');
    my %pbs = ('backup-file' => 'root@pam@localhost:store', 'backup-id' => '100',
        'backup-time' => 1700000000, password => 'pw', 'use-dirty-bitmap' => JSON::PP::true);
    my @lines;
    for my $round (1, 2) {
        my $uuid = PVE::RS::VZDump::Qemu::backup_start_pbs(100, \%pbs);
        @lines = ();
        my $res = query_backup_status_loop(100, $uuid, sub { push @lines, $_[1] },
            style => 'current', interval => 0.2, qemu_support => $support);
        is($res->{total}, 40 * $MiB, "bitmap round $round: total returned");
        ok(defined($res->{reused}), "bitmap round $round: reused returned");
    }
    is_deeply([@lines[0, 1]], [
        'scsi0: dirty-bitmap status: OK (8.0 MiB of 40.0 MiB dirty)',
        'using fast incremental mode (dirty-bitmap), 8.0 MiB dirty of 40.0 MiB total',
    ], 'bitmap lines before the status lines') or diag explain \@lines;
    my $uuid = PVE::RS::VZDump::Qemu::backup_start_pbs(100, \%pbs);
    @lines = ();
    query_backup_status_loop(100, $uuid, sub { push @lines, $_[1] }, style => 'current',
        interval => 0.2, qemu_support => $support, is_template => 1);
    is($lines[0], 'using fast incremental mode (dirty-bitmap), 8.0 MiB dirty of 40.0 MiB total',
        'a template: no per-drive line');
    eval { query_backup_status_loop(100, $uuid, sub {}, qemu_support => 'yes') };
    like($@, qr/^query_backup_status_loop: qemu_support must be a hash reference, got a string\n\z/,
        'qemu_support must be a hash');
    stop_peer($sim);
}

# $STYLE words the loop when no style option is given (and the values reach the library
# intact: they are read twice, for the peer and for the loop).
{
    local $PVE::RS::VZDump::Qemu::STYLE = 'current';
    my ($err, $log) = run_backup(['--gen-disk', 'drive-scsi0=8M', '--rate', '8M']);
    is($err, undef, '$STYLE current: job done');
    like(lines($log)->[-1], qr/^transferred 8\.00 MiB in \d+ seconds \(.* MiB\/s\)$/,
        '$STYLE current: today\'s summary') or diag explain $log;
}

done_testing();
