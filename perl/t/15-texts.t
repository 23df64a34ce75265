# qemu-server's failure texts through the Perl API, made by real QEMU 10 started as
# qemu-server starts VM 100 (socket and pid file in the run directory), and by scripted
# peers for what QEMU will not do (replies with a missing or wrong id).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::UNIX;
use JSON::PP;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep);

use PVE::RS::VZDump::Qemu qw(mon_cmd backup_query backup_cancel backup_start_vma backup_start_pbs);
use TestPeers qw(tmpdir start_qemu stop_peer);

BAIL_OUT('qemu-system-x86_64 not installed: real-peer tests never skip')
    if system('command -v qemu-system-x86_64 >/dev/null 2>&1') != 0;

# The error of a call, or 'lived'.
sub error_of {
    my ($code) = @_;
    return eval { $code->(); 1 } ? 'lived' : $@;
}

my $dir = tmpdir();
local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
my $qemu = start_qemu("$dir/100.qmp");

is(mon_cmd(100, 'query-status')->{status}, 'prelaunch', 'a running VM answers');

# proxmox/qemu-server src/PVE/QMPClient.pm `cmd`: "VM $vmid qmp command '$cmd' failed - "
# around `mux_input`'s die "$desc\n".
is(error_of(sub { backup_query(100) }),
    "VM 100 qmp command 'query-backup' failed - The command query-backup has not been found\n",
    'CommandNotFound for query-backup');
is(error_of(sub { backup_start_pbs(100, { 'backup-file' => 'root@pam@h:s', 'backup-id' => '100',
    'backup-time' => 1, password => 'perl-secret' }) }),
    "VM 100 qmp command 'backup' failed - The command backup has not been found\n",
    'CommandNotFound for a PBS backup');
pipe(my $r, my $w) or die "pipe - $!";
# The seed's archive_vma dies with what `queue_execute(30)` died with: the bare desc.
is(error_of(sub { backup_start_vma(100, $w, { devlist => 'drive-scsi0' }) }),
    "The command backup has not been found\n", 'CommandNotFound for a VMA backup');

# The devlist that makes pve-qemu 10.0.2 crash is refused before anything is sent.
like(error_of(sub { backup_start_vma(100, $w, { devlist => 'drive-scsi0;drive-scsi0' }) }),
    qr/^backup_start_vma: devlist 'drive-scsi0;drive-scsi0' names device 'drive-scsi0' twice\n\z/,
    'a repeated device is refused');

# A stopped QEMU accepts the connect and never greets: `mux_timeout`'s "got timeout".
kill('STOP', $qemu);
is(error_of(sub { mon_cmd(100, 'query-status', timeout => 0.3) }),
    "VM 100 qmp command 'query-status' failed - got timeout\n", 'no answer: got timeout');

# Killed while we wait: `mux_close`'s "client closed connection".
my $killer = fork() // die "fork - $!";
if ($killer == 0) {
    sleep(0.3);
    kill('KILL', $qemu);
    POSIX::_exit(0);
}
is(error_of(sub { backup_query(100) }),
    "VM 100 qmp command 'query-backup' failed - client closed connection\n",
    'QEMU killed mid-command: client closed connection');
waitpid($killer, 0);
stop_peer($qemu);

# Killed and reaped: the pid file is stale. proxmox/qemu-server
# src/PVE/QemuServer/Monitor.pm `qmp_cmd`: die "$peer->{name} not running\n".
ok(-e "$dir/100.pid" && -S "$dir/100.qmp", 'pid file and socket left behind');
is(error_of(sub { backup_cancel(100) }), "VM 100 not running\n", 'stale pid file: not running');
is(error_of(sub { mon_cmd(101, 'query-status') }), "VM 101 not running\n", 'no pid file');

# A running VM whose socket path holds a socket nobody listens on: `$open_connection`.
{
    my $vmdir = tmpdir();
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $vmdir;
    my $vm = start_qemu("$vmdir/100.qmp");
    rename("$vmdir/100.qmp", "$vmdir/moved.qmp") or die "rename - $!";
    IO::Socket::UNIX->new(Local => "$vmdir/100.qmp", Listen => 1) or die "bind - $!";
    is(error_of(sub { backup_cancel(100) }),
        "VM 100 qmp command 'backup-cancel' failed - unable to connect to VM 100 qmp socket - Connection refused\n",
        'refused connect');
    unlink("$vmdir/100.qmp");
    # Monitor.pm `qmp_cmd`: -e $sname, else "unable to open monitor socket".
    is(error_of(sub { backup_cancel(100) }), "unable to open monitor socket\n", 'removed socket');
    stop_peer($vm);
}

# A scripted peer that greets, negotiates and answers the next command with $reply
# ({ID} becomes the command's id).
sub scripted_peer {
    my ($socket, $reply) = @_;
    unlink($socket);
    my $listener = IO::Socket::UNIX->new(Local => $socket, Listen => 1) or die "listen - $!";
    my $pid = fork() // die "fork - $!";
    if ($pid == 0) {
        my $c = $listener->accept or POSIX::_exit(1);
        my $json = JSON::PP->new;
        print $c '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 10},'
            . ' "package": ""}, "capabilities": []}}' . "\r\n";
        my ($buf, $n) = ('', 0);
        while (sysread($c, $buf, 4096, length($buf))) {
            while ($buf =~ s/^\s*(\{.*?\})//s) {
                my $req = $json->decode($1);
                my $id = $json->encode($req->{id});
                if ($n++ == 0) {
                    print $c qq({"return": {}, "id": $id}\r\n);
                } else {
                    (my $text = $reply) =~ s/\{ID\}/$id/;
                    print $c "$text\r\n";
                }
                $c->flush;
            }
        }
        POSIX::_exit(0);
    }
    close($listener);
    return $pid;
}

# proxmox/qemu-server src/PVE/QMPClient.pm `mux_input`: the missing id in each era's words.
for my $case (['seed', 'received responsed without command id'],
              ['current', 'received response without command id']) {
    my ($style, $text) = @$case;
    local $PVE::RS::VZDump::Qemu::STYLE = $style;
    my $peer = scripted_peer("$dir/noid.sock", '{"return": {}}');
    is(error_of(sub { mon_cmd("$dir/noid.sock", 'query-status') }),
        "qmp socket '$dir/noid.sock' command 'query-status' failed - $text\n",
        "reply without id ($style)");
    waitpid($peer, 0);
}
my $peer = scripted_peer("$dir/wrongid.sock", '{"return": {}, "id": "4711:1"}');
like(error_of(sub { mon_cmd("$dir/wrongid.sock", 'query-status') }),
    qr/^qmp socket '\Q$dir\E\/wrongid\.sock' command 'query-status' failed - got wrong command id '4711:1' \(expected $$:\d+\)\n\z/,
    'reply to another id: got wrong command id');
waitpid($peer, 0);

done_testing();
