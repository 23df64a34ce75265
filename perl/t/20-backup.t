# backup_start_vma / backup_start_pbs / backup_query / backup_cancel against pve-qmp-sim.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use PVE::RS::VZDump::Qemu qw(backup_start_vma backup_start_pbs backup_query backup_cancel);
use TestPeers qw(tmpdir sim_binary start_sim stop_peer);

BAIL_OUT('pve-qmp-sim not built (cargo build -p pve-qmp-sim)' . ': real-peer tests never skip') if !sim_binary();

my $dir = tmpdir();
local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

my $conf = "$dir/qemu-server.conf";
open(my $cfh, '>', $conf) or die "$conf - $!";
print $cfh "name: perltest\n";
close($cfh);
my %vma = ('config-file' => $conf, devlist => 'drive-scsi0', bwlimit => 0);

# A seed-era VM with a slow job, so that it is still active while we look at it.
my $sim = start_sim("$dir/100.qmp", '--seed-era', '--gen-disk', 'drive-scsi0=64M',
    '--rate', '4M');

open(my $out, '>', "$dir/out.vma") or die "out.vma - $!";
my $uuid = backup_start_vma(100, $out, \%vma);
like($uuid, $UUID, 'backup_start_vma returns the job UUID');

my $status = backup_query(100);
is($status->{uuid}, $uuid, 'backup_query: same job');
is($status->{status}, 'active', 'backup_query: active');
is($status->{total}, 64 * 1024 * 1024, 'backup_query: total');

# The seed's queue_execute dies with QEMU's bare description.
my $ok = eval { backup_start_vma(100, fileno($out), \%vma); 1 };
ok(!$ok, 'second start while active dies');
is($@, "previous backup not finished\n", 'second start: the seed-era QEMU text, bare');

backup_cancel(100);
$status = backup_query(100);
is($status->{status}, 'error', 'cancelled job: status error');
is($status->{errmsg}, 'backup canceled', 'cancelled job: errmsg');
is($status->{uuid}, $uuid, 'cancelled job: same uuid');
close($out);

# PBS start: parameters by QMP names; the password never shows in messages.
my %pbs = (
    'backup-file' => 'root@pam@localhost:store',
    'backup-id' => '100',
    'backup-time' => 1700000000,
    password => 'sup3rsecret',
    devlist => 'drive-scsi0',
    'config-file' => $conf,
);
$uuid = backup_start_pbs(100, \%pbs, timeout => 60);
like($uuid, $UUID, 'backup_start_pbs returns the job UUID');
is(backup_query(100)->{uuid}, $uuid, 'PBS job is the current one');
$ok = eval { backup_start_pbs(100, \%pbs); 1 };
ok(!$ok, 'second PBS start dies');
like($@, qr/^VM 100 qmp command 'backup' failed - previous backup not finished\n\z/,
    'PBS start error reads as mon_cmd does');
unlike($@, qr/sup3rsecret/, 'no password in the message');
backup_cancel(100);
is(backup_query(100)->{status}, 'error', 'PBS job cancelled');

$ok = eval { backup_start_pbs(100, { password => 'sup3rsecret' }); 1 };
ok(!$ok, 'PBS start without repository dies');
unlike($@, qr/sup3rsecret/, 'no password in the parameter error');

stop_peer($sim);

# The simulator ended (and removed its pid file): proxmox/qemu-server
# src/PVE/QemuServer/Monitor.pm `qmp_cmd` says "VM 100 not running".
$ok = eval { backup_query(100); 1 };
is($@, "VM 100 not running\n", 'no peer: not running');

done_testing();
