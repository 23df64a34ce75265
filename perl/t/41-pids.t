# kill_compressor / wait_compressor never signal or wait for a pid that may not be theirs:
# values Perl calls positive numbers but kill() would read as -1 or 0, a compressor pid
# after wait_compressor reaped it (the pid may be another process's by then), and a
# process that is not this one's child. kill is neutralised for this file (every call
# recorded, none made), since as root kill(-1) would end every process on the machine;
# the test's own children end by themselves.
use strict;
use warnings;

my @KILLS;
BEGIN { *CORE::GLOBAL::kill = sub { push @KILLS, [@_]; return 0 }; }

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;

use PVE::RS::VZDump::Qemu qw(fork_compressor_pipe wait_compressor kill_compressor);

# Values that pass looks_like_number and > 0, and what kill() would make of them.
for my $bad ('18446744073709551615', '1e300', 'inf', '4294967295', '0.5', 'nan', '2147483648',
    ' 42', '42 ', '+42', '0x10', '-1', '0')
{
    @KILLS = ();
    eval { kill_compressor($bad) };
    like($@, qr/^kill_compressor: no such compressor process /, "kill_compressor('$bad') dies");
    is(scalar(@KILLS), 0, "kill_compressor('$bad'): nothing signalled");
    eval { wait_compressor('x', $bad) };
    like($@, qr/^wait_compressor: no such compressor process /, "wait_compressor('$bad') dies");
}

# A compressor reaped by wait_compressor: kill_compressor does nothing (no kill at all).
{
    open(my $out, '>', '/dev/null') or die $!;
    my ($cpid, $fd) = fork_compressor_pipe('cat', fileno($out));
    POSIX::close($fd);
    wait_compressor('cat', $cpid);
    @KILLS = ();
    kill_compressor($cpid);
    is_deeply(\@KILLS, [], 'after wait_compressor: kill_compressor signals nothing');
}

# A process that is not our child (our child's child): refused, not signalled. Both
# processes end by themselves when the test closes the pipe they wait on (the child reaps
# its own child), so the test never signals a pid itself.
{
    pipe(my $r, my $w) or die $!;
    pipe(my $go_r, my $go_w) or die $!;
    my $child = fork() // die "fork - $!";
    if ($child == 0) {
        close($r);
        close($go_w);
        my $grandchild = fork() // POSIX::_exit(1);
        if ($grandchild == 0) {
            close($w);
            sysread($go_r, my $buf, 1);
            POSIX::_exit(0);
        }
        print $w "$grandchild\n";
        close($w);
        sysread($go_r, my $buf, 1);
        waitpid($grandchild, 0);
        POSIX::_exit(0);
    }
    close($w);
    close($go_r);
    chomp(my $grandchild = <$r>);
    @KILLS = ();
    eval { kill_compressor($grandchild) };
    is($@, "kill_compressor: process $grandchild is not a child of this process\n",
        'a pid that is not our child: refused');
    is(scalar(@KILLS), 0, 'a pid that is not our child: nothing signalled');

    # Our own child (the seed forks its compressor itself): killed and reaped, as the seed
    # does; with kill neutralised it ends by itself once the pipe is closed.
    close($go_w);
    @KILLS = ();
    kill_compressor($child);
    is_deeply(\@KILLS, [[9, $child]], 'our own child: SIGKILL as the seed sends it');
    is(waitpid($child, 0), -1, 'our own child: reaped by kill_compressor');
}

done_testing();
