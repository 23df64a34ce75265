# Signals during the status loop: the seed's handlers die with "interrupted by signal" and
# the loop ends with that error (then the job is cancelled); a handler that returns lets
# the loop go on.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;

use PVE::RS::VZDump::Qemu qw(backup_start_vma backup_query backup_cancel query_backup_status_loop);
use TestPeers qw(tmpdir sim_binary start_sim stop_peer);

BAIL_OUT('pve-qmp-sim not built (cargo build -p pve-qmp-sim)' . ': real-peer tests never skip') if !sim_binary();

my $dir = tmpdir();
local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;

sub start_job {
    my (@sim_args) = @_;
    my $sim = start_sim("$dir/100.qmp", '--gen-disk', 'drive-scsi0=64M', @sim_args);
    open(my $out, '>', "$dir/out.vma") or die "out.vma - $!";
    my $uuid = backup_start_vma(100, $out, { devlist => 'drive-scsi0' });
    return ($sim, $uuid);
}

# Sends $sig to this process after $secs, from a forked child.
sub signal_me_later {
    my ($sig, $secs) = @_;
    my $parent = $$;
    my $pid = fork() // die "fork - $!";
    if ($pid == 0) {
        select(undef, undef, undef, $secs);
        kill($sig, $parent);
        POSIX::_exit(0);
    }
    return $pid;
}

# The seed: handlers installed in the eval, die; the eval's error path cancels the job.
for my $sig (qw(INT TERM USR1)) {
    my ($sim, $uuid) = start_job('--rate', '4M');
    my @log;
    my $killer = signal_me_later($sig, 1.2);
    my $ok = eval {
        local $SIG{INT} = local $SIG{TERM} = local $SIG{USR1} = sub { die "interrupted by signal\n" };
        # A long interval: only a prompt dispatch of the handler ends the loop before the
        # job (16 s) is done.
        query_backup_status_loop(100, $uuid, sub { push @log, $_[1] }, interval => 60);
        1;
    };
    my $err = $@;
    waitpid($killer, 0);
    ok(!$ok, "SIG$sig: loop ends");
    is($err, "interrupted by signal\n", "SIG$sig: with the handler's error");
    is(backup_query(100)->{status}, 'active', "SIG$sig: the job still runs (the caller cancels)");
    backup_cancel(100);
    my $status = backup_query(100);
    is_deeply([$status->{status}, $status->{errmsg}], ['error', 'backup canceled'],
        "SIG$sig: cancelled");
    stop_peer($sim);
}

# cancel_on_error: the loop cancels the job itself on the signal.
{
    my ($sim, $uuid) = start_job('--rate', '4M');
    my @log;
    my $killer = signal_me_later('INT', 1.2);
    my $ok = eval {
        local $SIG{INT} = sub { die "interrupted by signal\n" };
        query_backup_status_loop(100, $uuid, sub { push @log, $_[1] }, cancel_on_error => 1,
            interval => 60);
        1;
    };
    my $err = $@;
    waitpid($killer, 0);
    is($err, "interrupted by signal\n", 'cancel_on_error: the handler\'s error');
    is($log[-1], 'aborting backup job', 'cancel_on_error: abort logged');
    my $status = backup_query(100);
    is_deeply([$status->{status}, $status->{errmsg}], ['error', 'backup canceled'],
        'cancel_on_error: cancelled by the loop');
    stop_peer($sim);
}

# A handler that returns: the loop goes on to the end.
{
    my ($sim, $uuid) = start_job('--rate', '32M');
    my $alarms = 0;
    my $res = eval {
        local $SIG{ALRM} = sub { $alarms++ };
        alarm(1);
        query_backup_status_loop(100, $uuid, sub { }, interval => 0.5);
    };
    alarm(0);
    is($@, '', 'returning handler: no error');
    is($alarms, 1, 'returning handler: ran once');
    is($res->{transferred}, 64 * 1024 * 1024, 'returning handler: job done');
    stop_peer($sim);
}

done_testing();
