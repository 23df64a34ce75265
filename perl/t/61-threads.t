# Handles in a new interpreter thread: the copy holds no handle (the original thread's
# object owns it and frees it once), and using it dies saying why, naming the handle (as
# a closed handle does), instead of with Perl's "Can't call method ... on unblessed
# reference". The original keeps working.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Config;
BEGIN {
    if (!$Config{useithreads}) {
        print "1..0 # SKIP this perl has no interpreter threads\n";
        exit 0;
    }
}
use threads;

use POSIX ();
use Test::More;

use PVE::RS::VZDump::Qemu qw(fork_compressor_pipe wait_compressor);
use TestPeers qw(tmpdir sim_binary start_sim stop_peer);

BAIL_OUT('pve-qmp-sim not built (cargo build -p pve-qmp-sim): real-peer tests never skip')
    if !sim_binary();

my $dir = tmpdir();
my $sim = start_sim("$dir/sim.qmp", '--gen-disk', 'drive-scsi0=16M');
my $conn = PVE::RS::VZDump::Qemu::Conn->new("$dir/sim.qmp");
open(my $out, '>', '/dev/null') or die $!;
my ($cpid, $fd) = fork_compressor_pipe('cat', fileno($out));

my ($conn_err, $comp_err) = threads->create({ context => 'list' }, sub {
    my @errors;
    eval { $conn->cmd('query-status') };
    push @errors, $@;
    eval { wait_compressor('cat', $cpid) };
    push @errors, $@;
    return @errors;
})->join();

like($conn_err, qr/^the connection handle belongs to another interpreter thread\n\z/,
    'a connection used in a new thread: why it cannot be');
like($comp_err, qr/^the compressor handle belongs to another interpreter thread\n\z/,
    'a compressor waited for in a new thread: why it cannot be');
is($conn->cmd('query-status')->{status}, 'running', 'the original connection still works');
POSIX::close($fd);
ok(eval { wait_compressor('cat', $cpid); 1 }, 'the original compressor handle still works')
    or diag $@;
$conn->close;
stop_peer($sim);

done_testing();
