# The whole job against the seed itself: qemu-server's 2020 archive_vma
# (proxmox/qemu-server PVE/VZDump/QemuServer.pm of that year, the text this project
# started from) runs against pve-qmp-sim as VM 100, on the qemu-server modules it needs
# reduced to what archive_vma reads of them; then archive_vma of this module runs against
# a fresh simulator with the same arguments. Both must log the same lines, die with the
# same text and send the simulator the same commands in the same order.
#
# The seed is not part of this repository (it is upstream's text): point VZDUMP_QEMU_SEED
# at a copy of that file (plain, or as gitweb shows it, one line number before each line).
# Without it this file says so and skips; every line the seed prints is also pinned,
# citing upstream, by t/90-job.t, which always runs.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;

use PVE::RS::VZDump::Qemu ();
use TestPeers qw(tmpdir sim_binary start_sim stop_peer);

my $SEED = $ENV{VZDUMP_QEMU_SEED};
plan skip_all => 'VZDUMP_QEMU_SEED is not set (the 2020 PVE/VZDump/QemuServer.pm of '
    . 'qemu-server); t/90-job.t pins the same lines' if !$SEED;
BAIL_OUT('pve-qmp-sim not built (cargo build -p pve-qmp-sim): real-peer tests never skip')
    if !sim_binary();

# The VM callbacks of the case at hand, reached by the seed through PVE::QemuServer.
our ($START_VM, $STOP_VM);

# The qemu-server modules the seed uses, as far as archive_vma reaches into them. The
# monitor goes through this module's mon_cmd and Conn (the seed's transport is not what is
# compared); the running check is qemu-server's: the pid file of the run directory.
BEGIN {
    for my $module (qw(
        PVE::Cluster PVE::INotify PVE::IPCC PVE::JSONSchema PVE::QMPClient PVE::Storage::Plugin
        PVE::Storage::PBSPlugin PVE::Storage PVE::Tools PVE::VZDump PVE::QemuConfig
        PVE::QemuServer PVE::QemuServer::Machine PVE::QemuServer::Monitor PVE::VZDump::Plugin
    )) {
        $INC{ ($module =~ s{::}{/}gr) . '.pm' } = __FILE__;
    }
}

{
    package PVE::Cluster;
    use Exporter qw(import);
    our @EXPORT_OK = qw(cfs_read_file);
    sub cfs_read_file { die "cfs_read_file: not used by archive_vma\n" }
}
{
    package PVE::QemuConfig;
    sub is_template { my ($class, $conf) = @_; return $conf && $conf->{template}; }
}
{
    package PVE::QemuServer::Monitor;
    use Exporter qw(import);
    our @EXPORT_OK = qw(mon_cmd);
    sub mon_cmd { return PVE::RS::VZDump::Qemu::mon_cmd(@_); }
}
{
    package PVE::QemuServer;
    sub check_running {
        my ($vmid) = @_;
        my $pidfile = "$PVE::RS::VZDump::Qemu::RUN_DIR/$vmid.pid";
        open(my $fh, '<', $pidfile) or return undef;
        my $pid = <$fh>;
        return undef if !defined($pid) || $pid !~ /^(\d+)\s*$/;
        return kill(0, $1) ? $1 : undef;
    }
    sub qga_check_running { return 0; }
    sub vm_start { $main::START_VM->(@_); }
    sub vm_stop { $main::STOP_VM->(@_); }
}
{
    # queue_cmd / queue_execute on one connection, as getfd and backup need (QEMU keeps
    # a getfd descriptor per monitor connection).
    package PVE::QMPClient;
    sub new { return bless { queue => [], errors => {} }, shift; }
    sub queue_cmd {
        my ($self, $vmid, $cb, $cmd, %params) = @_;
        push @{ $self->{queue} }, [$vmid, $cb, $cmd, \%params];
    }
    sub queue_execute {
        my ($self) = @_;
        while (my $entry = shift @{ $self->{queue} }) {
            my ($vmid, $cb, $cmd, $params) = @$entry;
            my $conn = $self->{conn}->{$vmid} //= PVE::RS::VZDump::Qemu::Conn->new($vmid);
            my $res = eval {
                $cmd eq 'getfd'
                    ? $conn->getfd($params->{fd}, $params->{fdname})
                    : $conn->cmd($cmd, %$params);
            };
            if (my $err = $@) {
                chomp $err;
                $self->{errors}->{$vmid} = $err;
                next;
            }
            $cb->($vmid, { return => $res }) if $cb;
        }
        $_->close for values %{ $self->{conn} // {} };
        delete $self->{conn};
    }
}
{
    # Lines as vzdump prints them: its debugmsg (pve-manager PVE/VZDump/Plugin.pm) chomps
    # each message.
    package PVE::VZDump::Plugin;
    sub log { my ($self, $level, $msg) = @_; chomp $msg; push @{ $self->{lines} }, uc($level) . ": $msg" }
    sub loginfo { $_[0]->log('info', $_[1]) }
    sub logerr { $_[0]->log('err', $_[1]) }
}

# The seed itself.
{
    open(my $fh, '<', $SEED) or BAIL_OUT("VZDUMP_QEMU_SEED: cannot read $SEED - $!");
    my @lines = <$fh>;
    close($fh);
    # gitweb's copy: a header, then every line after its number.
    if (grep { /^\d+ package PVE::VZDump::QemuServer;$/ } @lines) {
        @lines = map { /^\d+(?: (.*))?$/s ? ($1 // "\n") : () } @lines;
    }
    my $code = join('', @lines);
    BAIL_OUT("VZDUMP_QEMU_SEED: $SEED is not PVE::VZDump::QemuServer")
        if $code !~ /^package PVE::VZDump::QemuServer;$/m || $code !~ /^sub archive_vma \{$/m;
    local $SIG{__WARN__} = sub { };    # redefined subs and the like of the old text
    eval "no warnings; $code; 1" or BAIL_OUT("VZDUMP_QEMU_SEED: $SEED does not compile: $@");
}

# A plugin object as vzdump passes it, of the seed's class (so the seed finds its methods
# and this module the same loginfo/logerr); warnings become WARN lines.
sub plugin {
    return bless { lines => [], vmlist => { 100 => {} }, vzdump => { opts => {} },
        storecfg => {} }, 'PVE::VZDump::QemuServer';
}

# One run: a run directory, the simulator (unless the VM is not running), the archive call.
# Returns the lines, the die text and the commands the simulators received.
sub run {
    my ($archive, $running, @sim_args) = @_;
    my $dir = tmpdir();
    open(my $fh, '>', "$dir/qemu-server.conf") or die $!;
    print $fh "name: seed-job\n";
    close($fh);
    my @args = ('--gen-disk', 'drive-scsi0=16M', '--rate', '32M', '--seed-era',
        '--record', "$dir/record", @sim_args);
    my $sim = $running ? start_sim("$dir/100.qmp", @args) : undef;
    my $task = { tmpdir => $dir, mode => 'snapshot',
        disks => [{ type => 'file', qmdevice => 'drive-scsi0', path => '/dev/null' }] };
    my $plugin = plugin();
    local $PVE::RS::VZDump::Qemu::RUN_DIR = $dir;
    local $START_VM = sub { $sim = start_sim("$dir/100.qmp", @args, '--state', 'prelaunch') };
    local $STOP_VM = sub { stop_peer($sim); $sim = undef };
    local @SIG{qw(INT TERM QUIT HUP PIPE)} = @SIG{qw(INT TERM QUIT HUP PIPE)};
    local $SIG{__WARN__} = sub { my ($w) = @_; chomp $w; push @{ $plugin->{lines} }, "WARN: $w" };
    eval { $archive->($plugin, $task, 100, "$dir/backup.vma.zst", 'zstd -q'); };
    my $err = $@;
    stop_peer($sim) if $sim;
    return { lines => $plugin->{lines}, err => $err, record => record($dir),
        output => -e "$dir/backup.vma.zst" };
}

# The simulator's record as "command arguments" lines: the command ids (each client picks
# its own) and the run directory left out, repeated queries of the status loop (their number follows the clock)
# counted once.
sub record {
    my ($dir) = @_;
    open(my $fh, '<', "$dir/record") or return [];
    my $json = JSON::PP->new->canonical;
    my @commands;
    for my $line (<$fh>) {
        my $req = $json->decode($line);
        my $cmd = join(' ', $req->{execute}, $json->encode($req->{arguments} // {}))
            =~ s/\Q$dir\E/<dir>/gr;
        push @commands, $cmd if !@commands || $commands[-1] ne $cmd || $cmd !~ /^query-backup /;
    }
    return \@commands;
}

# Lines with the clock's figures masked: durations and rates follow the wall clock, and the
# two runs do not start in the same second; the uuid is the job's own.
sub masked {
    my ($lines) = @_;
    return [map {
        s/duration \d+, read\/write \d+\/\d+ MB\/s$/duration D, read\/write R\/W MB\/s/r
            =~ s/^(INFO: transferred \d+ MB) in \d+ seconds \(\d+ MB\/s\)$/$1 in D seconds (R MB\/s)/r
            =~ s/'[0-9a-f-]{36}'/'<uuid>'/r
    } @$lines];
}

my $seed = sub { my ($plugin, @args) = @_; $plugin->archive_vma(@args); };
my $library = sub {
    my ($plugin, @args) = @_;
    PVE::RS::VZDump::Qemu::archive_vma($plugin, @args, style => 'seed',
        start_vm => $START_VM, stop_vm => $STOP_VM);
};

my @cases = (
    ['a running VM', 1],
    ['a VM that was not running', 0],
    ['a job that fails', 1, '--fault-error-at', '50'],
    ['a job of another uuid', 1, '--fault-wrong-uuid'],
    ['a job that counts wrong', 1, '--fault-count-mismatch'],
);
for my $case (@cases) {
    my ($name, @run) = @$case;
    my $want = run($seed, @run);
    my $got = run($library, @run);
    ok(grep(/^INFO: started backup task /, @{ $want->{lines} }), "$name: the seed started a job");
    is_deeply(masked($got->{lines}), masked($want->{lines}), "$name: the seed's lines");
    is($got->{err}, $want->{err}, "$name: the seed's die text");
    is_deeply($got->{record}, $want->{record}, "$name: the seed's commands in order");
    is(!!$got->{output}, !!$want->{output}, "$name: an archive as the seed leaves one");
}

done_testing();
