# fork_compressor_pipe / wait_compressor / kill_compressor with real compressors.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;

use PVE::RS::VZDump::Qemu qw(fork_compressor_pipe wait_compressor kill_compressor);
use TestPeers qw(tmpdir);

my $dir = tmpdir();

sub write_all {
    my ($fd, $data) = @_;
    while (length($data)) {
        my $n = POSIX::write($fd, $data, length($data)) // die "write - $!";
        substr($data, 0, $n, '');
    }
}

sub slurp {
    my ($cmd) = @_;
    open(my $fh, '-|', $cmd) or die "$cmd - $!";
    local $/;
    my $data = <$fh>;
    close($fh);
    return $data;
}

my $payload = join('', map { "line $_ of the payload\n" } 1 .. 20000);

# Each standard compressor string: data through the pipe comes out compressed in the file.
my %decompress = (
    'zstd --threads=2' => 'zstd -dc',
    'gzip --rsyncable' => 'gzip -dc',
    'pigz -p 2 --rsyncable' => 'pigz -dc',
    'lzop' => 'lzop -dc',
);
for my $comp (sort keys %decompress) {
    my ($tool) = split(/ /, $comp);
    SKIP: {
        BAIL_OUT("$tool not installed: real-peer tests never skip")
            if system("command -v $tool >/dev/null 2>&1") != 0;
        open(my $out, '>', "$dir/out.$tool") or die "$dir/out.$tool - $!";
        my ($cpid, $fd) = fork_compressor_pipe($comp, fileno($out));
        ok($cpid > 0 && kill(0, $cpid), "$comp: running child");
        isnt($fd, fileno($out), "$comp: a new descriptor for the pipe");
        write_all($fd, $payload);
        POSIX::close($fd);
        close($out);
        ok(eval { wait_compressor($comp, $cpid); 1 }, "$comp: exit status 0") or diag $@;
        is(slurp("$decompress{$comp} $dir/out.$tool"), $payload, "$comp: output decompresses");
    }
}

# An output handle instead of a number, a pipe size.
{
    open(my $out, '>', "$dir/out.cat") or die;
    my ($cpid, $fd) = fork_compressor_pipe('cat', $out, pipe_size => 65536);
    write_all($fd, "hello\n");
    POSIX::close($fd);
    wait_compressor('cat', $cpid);
    close($out);
    is(slurp("cat $dir/out.cat"), "hello\n", 'file handle as output');
}

# Exit status and signal in the seed's text.
{
    open(my $out, '>', "$dir/out.false") or die;
    my ($cpid, $fd) = fork_compressor_pipe('false', fileno($out));
    POSIX::close($fd);
    my $ok = eval { wait_compressor('false', $cpid); 1 };
    is($@, "false failed - wrong exit status 1\n", 'non-zero exit: seed text');
    ok(!kill(0, $cpid), 'non-zero exit: child reaped');
    kill_compressor($cpid);    # already reaped: nothing to do
}
{
    open(my $out, '>', "$dir/out.sleep") or die;
    my ($cpid, $fd) = fork_compressor_pipe('sleep 30', fileno($out));
    kill('TERM', $cpid);
    my $ok = eval { wait_compressor('sleep 30', $cpid); 1 };
    is($@, "sleep 30 failed - wrong exit status 0 (signal 15)\n", 'killed by a signal: seed text');
    POSIX::close($fd);
}
{
    # Shell metacharacters: run through /bin/sh -c, like Perl's exec STRING.
    open(my $out, '>', "$dir/out.sh") or die;
    my ($cpid, $fd) = fork_compressor_pipe('cat; exit 3', fileno($out));
    POSIX::close($fd);
    my $ok = eval { wait_compressor('cat; exit 3', $cpid); 1 };
    is($@, "cat; exit 3 failed - wrong exit status 3\n", 'shell command: exit status');
}

# A command that cannot run dies at once.
if ($ENV{VZQ_UNDER_VALGRIND}) {
    # valgrind runs posix_spawn's vfork child as a fork, so glibc cannot pass the exec error
    # back: it shows when the child is reaped (exit 127), as in tests/c/test_api.c.
    open(my $out, '>', "$dir/out.none") or die;
    my ($cpid, $fd) = fork_compressor_pipe('no-such-compressor-xyz --fast', fileno($out));
    POSIX::close($fd);
    my $ok = eval { wait_compressor('no-such-compressor-xyz --fast', $cpid); 1 };
    ok(!$ok, 'unknown command fails (valgrind)');
    is($@, "no-such-compressor-xyz --fast failed - wrong exit status 127\n",
        'exec failure shows at the wait (valgrind)');
} else {
    open(my $out, '>', "$dir/out.none") or die;
    my $ok = eval { fork_compressor_pipe('no-such-compressor-xyz --fast', fileno($out)); 1 };
    ok(!$ok, 'unknown command dies');
    like($@, qr/^fork compressor 'no-such-compressor-xyz --fast' failed: .+\n\z/, 'exec failure text');
}

# kill_compressor: the seed's error path.
{
    open(my $out, '>', "$dir/out.kill") or die;
    my ($cpid, $fd) = fork_compressor_pipe('sleep 30', fileno($out));
    kill_compressor($cpid);
    ok(!kill(0, $cpid), 'kill_compressor: killed and reaped');
    POSIX::close($fd);
}

# A forked child inheriting the handle leaves the compressor alone when it exits.
{
    open(my $out, '>', "$dir/out.fork") or die;
    my ($cpid, $fd) = fork_compressor_pipe('sleep 30', fileno($out));
    my $child = fork() // die "fork - $!";
    if ($child == 0) {
        my $ok = eval { wait_compressor('sleep 30', $cpid); 1 };
        exit($ok ? 1 : ($@ =~ /^compressor 'sleep 30' \(pid \d+\) belongs to process \d+, not to process \d+\n\z/ ? 0 : 2));
    }
    waitpid($child, 0);
    is($? >> 8, 0, 'child: cannot wait for the parent\'s compressor');
    ok(kill(0, $cpid), 'child exit (global destruction) did not kill the compressor');
    kill_compressor($cpid);
    POSIX::close($fd);
}

# Processes not started here: the seed's waitpid semantics.
{
    my $pid = fork() // die "fork - $!";
    POSIX::_exit(2) if $pid == 0;
    my $ok = eval { wait_compressor('mine', $pid); 1 };
    is($@, "mine failed - wrong exit status 2\n", 'foreign pid: waitpid and seed text');
    $pid = fork() // die "fork - $!";
    if ($pid == 0) { sleep(30); POSIX::_exit(0); }
    kill_compressor($pid);
    ok(!kill(0, $pid), 'foreign pid: kill -9 and reap');
}

# Signals while waiting: a handler that returns lets the wait go on, one that dies ends it.
{
    open(my $out, '>', "$dir/out.sig") or die;
    my ($cpid, $fd) = fork_compressor_pipe('sleep 2', fileno($out));
    POSIX::close($fd);
    my $alarms = 0;
    local $SIG{ALRM} = sub { $alarms++ };
    alarm(1);
    ok(eval { wait_compressor('sleep 2', $cpid); 1 }, 'returning handler: wait completes') or diag $@;
    is($alarms, 1, 'returning handler: ran once');

    ($cpid, $fd) = fork_compressor_pipe('sleep 30', fileno($out));
    POSIX::close($fd);
    local $SIG{ALRM} = sub { die "interrupted by signal\n" };
    alarm(1);
    my $ok = eval { wait_compressor('sleep 30', $cpid); 1 };
    alarm(0);
    is($@, "interrupted by signal\n", 'dying handler: its error');
    ok(kill(0, $cpid), 'dying handler: compressor still running');
    kill_compressor($cpid);
    ok(!kill(0, $cpid), 'then killed');
}

done_testing();
