# vzdump forks per task: a forked child runs a whole backup with the module (compressor,
# start, status loop) while the parent only waits.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;

use PVE::RS::VZDump::Qemu qw(
    mon_cmd backup_start_vma fork_compressor_pipe query_backup_status_loop wait_compressor
);
use TestPeers qw(tmpdir sim_binary start_sim stop_peer);

BAIL_OUT('pve-qmp-sim not built (cargo build -p pve-qmp-sim)' . ': real-peer tests never skip') if !sim_binary();
BAIL_OUT('zstd not installed') if system('command -v zstd >/dev/null 2>&1') != 0;

my $dir = tmpdir();
local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
my $sim = start_sim("$dir/100.qmp", '--gen-disk', 'drive-scsi0=8M', '--rate', '16M');

# The parent used the library before forking.
is(mon_cmd(100, 'query-status')->{status}, 'running', 'parent: query-status');

pipe(my $r, my $w) or die "pipe - $!";
my $pid = fork() // die "fork - $!";
if ($pid == 0) {
    close($r);
    my $ok = eval {
        open(my $out, '>', "$dir/child.vma.zst") or die "open - $!\n";
        my ($cpid, $fd) = fork_compressor_pipe('zstd --threads=2', fileno($out));
        my $uuid = backup_start_vma(100, $fd, { devlist => 'drive-scsi0' });
        POSIX::close($fd);
        my $res = query_backup_status_loop(100, $uuid, sub { print $w "$_[1]\n" });
        wait_compressor('zstd --threads=2', $cpid);
        print $w "RESULT $res->{transferred}\n";
        1;
    };
    print $w "ERROR $@" if !$ok;
    close($w);
    POSIX::_exit($ok ? 0 : 1);
}
close($w);
my @lines = <$r>;
waitpid($pid, 0);
is($?, 0, 'child: backup succeeded') or diag @lines;
is($lines[-1], "RESULT 8388608\n", 'child: all bytes transferred');
ok((grep { /^transferred 8 MB in \d+ seconds/ } @lines), 'child: summary line');

open(my $vma, '-|', "zstd -dc $dir/child.vma.zst") or die;
read($vma, my $magic, 4);
close($vma);
is($magic, "VMA\0", 'child: archive is a zstd-compressed VMA');

stop_peer($sim);
done_testing();
