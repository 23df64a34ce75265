package TestPeers;

# Peers for the tests: real QEMU (stock, no Proxmox backup commands) and the workspace's
# simulator pve-qmp-sim, each a direct child that is killed and reaped at the end.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use POSIX ();
use Time::HiRes qw(sleep);

our @EXPORT_OK = qw(repo tmpdir sim_binary start_qemu start_sim stop_peer wait_socket);

my %CHILDREN;
my $OWNER = $$;    # forked test children must not kill the peers on exit

sub repo { return abs_path(dirname(abs_path(__FILE__)) . '/../../..'); }

sub tmpdir { return tempdir('vzq-perl-XXXXXX', TMPDIR => 1, CLEANUP => 1); }

sub sim_binary {
    my $bin = $ENV{PVE_QMP_SIM} // repo() . '/target/debug/pve-qmp-sim';
    return -x $bin ? $bin : undef;
}

# Waits until something accepts connections on the socket (up to 10 s).
sub wait_socket {
    my ($path) = @_;
    for (1 .. 500) {
        if (-S $path) {
            my $s = IO::Socket::UNIX->new(Peer => $path);
            if ($s) {
                # QEMU serves one client at a time: let go at once.
                close($s);
                return 1;
            }
        }
        sleep(0.02);
    }
    die "socket $path did not appear\n";
}

sub _spawn {
    my (@cmd) = @_;
    my $pid = fork() // die "fork failed - $!\n";
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        if (!$ENV{TEST_VERBOSE}) {
            open(STDOUT, '>', '/dev/null');
            open(STDERR, '>', '/dev/null');
        }
        exec(@cmd) or POSIX::_exit(127);
    }
    $CHILDREN{$pid} = 1;
    return $pid;
}

# QEMU without a guest, paused (prelaunch), QMP on $socket.
sub start_qemu {
    my ($socket) = @_;
    my $pid = _spawn(
        'qemu-system-x86_64', '-machine', 'none', '-nodefaults', '-display', 'none', '-S',
        '-qmp', "unix:$socket,server=on,wait=off",
    );
    wait_socket($socket);
    return $pid;
}

# The simulator on $socket with extra arguments, e.g. (--gen-disk => 'drive-scsi0=32M').
sub start_sim {
    my ($socket, @args) = @_;
    my $bin = sim_binary() // die "pve-qmp-sim is not built\n";
    my $pid = _spawn($bin, '--socket', $socket, @args);
    wait_socket($socket);
    return $pid;
}

# Kills and reaps a peer; returns its wait status.
sub stop_peer {
    my ($pid) = @_;
    return undef if !delete $CHILDREN{$pid};
    kill('TERM', $pid);
    waitpid($pid, 0);
    return $?;
}

END {
    return if $$ != $OWNER;
    my $status = $?;
    for my $pid (keys %CHILDREN) {
        kill('KILL', $pid);
        waitpid($pid, 0);
    }
    $? = $status;
}

1;
