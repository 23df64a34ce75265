# Wrong argument types die with a clear message (ending in "\n"), they never crash; no
# peer is needed since arguments are checked before anything is connected.
use strict;
use warnings;

use Test::More;

use PVE::RS::VZDump::Qemu qw(
    mon_cmd backup_start_vma backup_start_pbs backup_cancel backup_query
    query_backup_status_loop fork_compressor_pipe wait_compressor kill_compressor
    qga_fs_freeze qga_fs_thaw
);

my $sock = '/nonexistent/q.sock';

sub dies_like {
    my ($code, $re, $name) = @_;
    my $ok = eval { $code->(); 1 };
    my $err = $@;
    ok(!$ok, "$name dies") or return;
    like($err, $re, "$name: message") && like($err, qr/\n\z/, "$name: message ends in newline");
}

# Every argument error names the function and the argument, in one style:
# "<function>: <argument> must be <what>, got <description>".
dies_like(sub { mon_cmd(undef, 'query-status') },
    qr/^mon_cmd: the VM id or socket path must be a string, got undef$/, 'mon_cmd undef target');
dies_like(sub { mon_cmd({}, 'query-status') },
    qr/^mon_cmd: the VM id or socket path must be a string, got a HASH reference$/,
    'mon_cmd hashref target');
dies_like(sub { mon_cmd('abc', 'query-status') },
    qr/^mon_cmd: 'abc' is neither a VM id nor a socket path \(a path contains '\/'\)$/,
    'mon_cmd bad vmid');
dies_like(sub { mon_cmd('99999999999', 'query-status') },
    qr/^mon_cmd: '99999999999' is neither a VM id/, 'mon_cmd vmid out of range');
dies_like(sub { mon_cmd($sock, undef) }, qr/^mon_cmd: the command must be a string, got undef$/,
    'mon_cmd undef command');
dies_like(sub { mon_cmd($sock, ['x']) },
    qr/^mon_cmd: the command must be a string, got an ARRAY reference$/, 'mon_cmd arrayref command');
dies_like(sub { mon_cmd($sock, "query\0status") },
    qr/^mon_cmd: the command must not contain NUL bytes$/, 'mon_cmd NUL in command');
dies_like(sub { mon_cmd($sock, 'query-status', timeout => 'soon') },
    qr/^mon_cmd: timeout must be a number of seconds, got a string$/, 'mon_cmd bad timeout');
dies_like(sub { mon_cmd($sock, 'query-status', timeout => 'nan') },
    qr/^mon_cmd: timeout must be a number of seconds, got 'nan'$/, 'mon_cmd NaN timeout');
dies_like(sub { mon_cmd($sock, 'query-status', timeout => 1e300) },
    qr/^mon_cmd: timeout must be a number of seconds, got '1e\+300'$/, 'mon_cmd huge timeout');
# proxmox/qemu-server src/PVE/QemuServer/Monitor.pm `qmp_cmd`: -e $sname, else this.
dies_like(sub { mon_cmd($sock, 'query-status') }, qr/^unable to open monitor socket$/,
    'mon_cmd missing socket');
{
    local $PVE::RS::VZDump::Qemu::RUN_DIR = '/nonexistent';
    # Monitor.pm `qmp_cmd`: "$peer->{name} not running" comes first, agent included.
    dies_like(sub { mon_cmd(100, 'query-status') }, qr/^VM 100 not running$/,
        'mon_cmd VM id: qemu-server\'s running check');
    dies_like(sub { mon_cmd(100, 'guest-ping') }, qr/^VM 100 not running$/,
        'mon_cmd guest command: the running check too');
    local $PVE::RS::VZDump::Qemu::STYLE = 'today';
    dies_like(sub { mon_cmd(100, 'query-status') },
        qr/^mon_cmd: \$PVE::RS::VZDump::Qemu::STYLE must be 'seed' or 'current', got a string$/,
        'an unknown style is refused');
}

# Guest agent commands and steps: same target and option checks.
dies_like(sub { mon_cmd(undef, 'guest-ping') },
    qr/^mon_cmd: the VM id or socket path must be a string, got undef$/,
    'mon_cmd guest undef target');
dies_like(sub { mon_cmd('abc', 'guest-ping') },
    qr/^mon_cmd: 'abc' is neither a VM id nor a socket path/, 'mon_cmd guest bad vmid');
dies_like(sub { mon_cmd($sock, 'guest-ping', timeout => -2) },
    qr/^mon_cmd: timeout must be a number of seconds, got '-2'$/, 'mon_cmd guest bad timeout');
dies_like(sub { mon_cmd($sock, "guest-ping\0x") },
    qr/^mon_cmd: the command must not contain NUL bytes$/, 'mon_cmd guest NUL in command');
dies_like(sub { mon_cmd($sock, 'guest-ping') }, qr/^unable to open monitor socket$/,
    'mon_cmd guest command: a path is the agent socket');
dies_like(sub { qga_fs_freeze(undef, sub {}) },
    qr/^qga_fs_freeze: the VM id or socket path must be a string, got undef$/,
    'qga_fs_freeze undef target');
dies_like(sub { qga_fs_freeze([], sub {}) },
    qr/^qga_fs_freeze: the VM id or socket path must be a string, got an ARRAY reference$/,
    'qga_fs_freeze arrayref target');
dies_like(sub { qga_fs_freeze($sock, undef) },
    qr/^qga_fs_freeze: the log sink must be a code reference or an object with loginfo and logerr methods, got undef$/,
    'qga_fs_freeze undef log');
dies_like(sub { qga_fs_thaw($sock, bless({}, 'NoLog')) },
    qr/^qga_fs_thaw: the log sink must be .* got a NoLog object$/, 'qga_fs_thaw object without log methods');
dies_like(sub { qga_fs_thaw('1x', sub {}) }, qr/^qga_fs_thaw: '1x' is neither a VM id nor a socket path/,
    'qga_fs_thaw bad vmid');

dies_like(sub { backup_start_vma($sock, undef, {}) },
    qr/^backup_start_vma: the output must be a file descriptor number or file handle, got undef$/,
    'backup_start_vma undef fd');
dies_like(sub { backup_start_vma($sock, 'x', {}) },
    qr/^backup_start_vma: the output must be .*, got a string$/, 'backup_start_vma string fd');
dies_like(sub { backup_start_vma($sock, -1, {}) },
    qr/^backup_start_vma: the output must be .*, got '-1'$/, 'backup_start_vma negative fd');
dies_like(sub { backup_start_vma($sock, 1, []) },
    qr/^backup_start_vma: the parameters must be a hash reference, got an ARRAY reference$/,
    'backup_start_vma arrayref params');
dies_like(sub { backup_start_vma($sock, 1, {}, speed => 1) },
    qr/^backup_start_vma: unknown option 'speed'$/, 'backup_start_vma unknown option');
# Parameter values are the library's to check: named, never echoed.
dies_like(sub { backup_start_vma($sock, 1, { bwlimit => 'fast' }) },
    qr/^backup_start_vma: parameter 'bwlimit' must be an integer of 0 or more$/,
    'backup_start_vma bad bwlimit');
dies_like(sub { backup_start_vma($sock, 1, { devlist => 'a,a' }) },
    qr/^backup_start_vma: devlist 'a,a' names device 'a' twice$/, 'backup_start_vma devlist');
open(my $closed, '<', '/dev/null') or die;
close($closed);
dies_like(sub { backup_start_vma($sock, $closed, {}) },
    qr/^backup_start_vma: the output is not an open file handle$/, 'backup_start_vma closed handle');
dies_like(sub { backup_start_pbs($sock, undef) },
    qr/^backup_start_pbs: the parameters must be a hash reference, got undef$/,
    'backup_start_pbs undef params');
dies_like(sub { backup_start_pbs($sock, { 'backup-file' => 'r' }) },
    qr/^backup_start_pbs: missing parameter 'backup-id'$/, 'backup_start_pbs missing parameter');
dies_like(sub { backup_start_pbs($sock, { 'backup-file' => 'r', 'backup-id' => 1,
        'backup-time' => 'sup3rsecret' }) },
    qr/^backup_start_pbs: parameter 'backup-time' must be an integer$/,
    'backup_start_pbs bad value, not echoed');
dies_like(sub { backup_cancel(undef) },
    qr/^backup_cancel: the VM id or socket path must be a string/, 'backup_cancel undef');
dies_like(sub { backup_query(\'x') }, qr/^backup_query: .* got a SCALAR reference$/,
    'backup_query scalar ref');

dies_like(sub { query_backup_status_loop($sock, 'uuid', undef) },
    qr/^query_backup_status_loop: the log sink must be a code reference or an object with loginfo and logerr methods, got undef$/,
    'status loop undef log');
dies_like(sub { query_backup_status_loop($sock, 'uuid', bless({}, 'NoLog')) },
    qr/got a NoLog object$/, 'status loop object without log methods');
dies_like(sub { query_backup_status_loop($sock, undef, sub {}) },
    qr/^query_backup_status_loop: the job UUID must be a string, got undef$/,
    'status loop undef uuid');
dies_like(sub { query_backup_status_loop($sock, 'uuid', sub {}, style => 'fancy') },
    qr/^query_backup_status_loop: the style must be 'seed' or 'current', got a string$/,
    'status loop bad style');
dies_like(sub { query_backup_status_loop($sock, 'uuid', sub {}, colour => 1) },
    qr/^query_backup_status_loop: unknown option 'colour'$/, 'status loop unknown option');
dies_like(sub { query_backup_status_loop($sock, 'uuid', sub {}, interval => -1) },
    qr/^query_backup_status_loop: interval must be a number of seconds, got '-1'$/,
    'status loop negative interval');

dies_like(sub { fork_compressor_pipe(undef, 1) },
    qr/^fork_compressor_pipe: the compressor command must be a string, got undef$/,
    'compressor undef command');
dies_like(sub { fork_compressor_pipe('zstd', {}) },
    qr/^fork_compressor_pipe: the output must be a file descriptor number or file handle, got a HASH reference$/,
    'compressor hashref fd');
dies_like(sub { fork_compressor_pipe('zstd', 1, pipe_size => 'big') },
    qr/^fork_compressor_pipe: pipe_size must be a number of bytes, got a string$/,
    'compressor bad pipe size');
dies_like(sub { wait_compressor('zstd', undef) },
    qr/^wait_compressor: no such compressor process undef$/, 'wait_compressor undef pid');
dies_like(sub { kill_compressor('abc') },
    qr/^kill_compressor: no such compressor process a string$/, 'kill_compressor bad pid');

# Handles: the methods check the class, the XS that the object is one of its own.
my $conn_class = 'PVE::RS::VZDump::Qemu::Conn';
dies_like(sub { $conn_class->can('cmd')->(undef, 'query-status') },
    qr/^Conn->cmd: the handle must be a PVE::RS::VZDump::Qemu::Conn object, got undef$/,
    'Conn->cmd undef');
dies_like(sub { $conn_class->can('cmd')->('x', 'query-status') },
    qr/^Conn->cmd: the handle must be a PVE::RS::VZDump::Qemu::Conn object, got a string$/,
    'Conn->cmd string');
dies_like(sub { $conn_class->can('cmd')->(bless({}, $conn_class), 'query-status') },
    qr/^the handle is not a PVE::RS::VZDump::Qemu::Conn object made by this module$/,
    'Conn->cmd forged object');
dies_like(sub { $conn_class->can('events')->(bless(\my $x, 'Other')) },
    qr/^Conn->events: .* got a Other object$/, 'Conn->events foreign object');
dies_like(sub { PVE::RS::VZDump::Qemu::Compressor::pid({}) },
    qr/^the handle is not a PVE::RS::VZDump::Qemu::Compressor object made by this module$/,
    'Compressor->pid hashref');
dies_like(sub { $conn_class->new(undef) },
    qr/^Conn->new: the VM id or socket path must be a string, got undef$/, 'Conn->new undef');

# A string in the wrong place may be a password: named by its kind, never shown.
for my $call (
    sub { PVE::RS::VZDump::Qemu::mon_cmd(100, 'query-status', timeout => 'hunter2-secret') },
    sub { PVE::RS::VZDump::Qemu::kill_compressor('hunter2-secret') },
    sub { PVE::RS::VZDump::Qemu::query_backup_status_loop(100, 'u', sub {},
        style => 'hunter2-secret') },
) {
    eval { $call->() };
    like($@, qr/, got a string\n\z|process a string\n\z/, 'a wrong string: its kind');
    unlike($@, qr/hunter2/, 'a wrong string: never echoed');
}

# A value JSON cannot carry: the function and the argument named, not JSON's own words.
{
    eval { PVE::RS::VZDump::Qemu::mon_cmd(100, 'query-status', what => sub {}) };
    like($@, qr/^mon_cmd: the command arguments cannot be passed as JSON \(.*\)\n\z/,
        'mon_cmd: a code reference argument');
    eval { PVE::RS::VZDump::Qemu::backup_start_pbs(100, { password => \*STDOUT }) };
    like($@, qr/^backup_start_pbs: the parameters cannot be passed as JSON/,
        'backup_start_pbs: a glob reference');
    unlike($@, qr/ at \S+ line \d+/, 'no Perl location in the message');
}

done_testing();
