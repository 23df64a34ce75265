#!/usr/bin/perl
# A vzdump QEMU backup plugin whose archive_vma and archive_pbs are the library's whole
# backup job (PVE::RS::VZDump::Qemu::archive_vma / archive_pbs): power state, guest freeze
# and thaw, start, status loop, cancel and restore, in the seed's order or today's. The
# output is a vzdump task log (INFO: / WARN: / ERROR: lines). For the piece-by-piece
# variant of the gradual path see vzdump-plugin-piecewise.pl.
#
#   vzdump-plugin.pl --vmid 100 --run-dir /tmp/t --output /tmp/t/vzdump.vma.zst --compress zstd
#   vzdump-plugin.pl --vmid 100 --run-dir /tmp/t --pbs root@pam@pbs:store --style current
#   vzdump-plugin.pl --vmid 100 --run-dir /tmp/t --output /tmp/t/x.vma --start-cmd 'qm start 100'
#
# Runs from the source tree after `cargo build && cd perl && perl Makefile.PL && make`.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin", "$FindBin::Bin/../perl/blib/lib", "$FindBin::Bin/../perl/blib/arch";

use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Getopt::Long qw(GetOptions);
use IO::Handle;

use PVE::RS::VZDump::Qemu ();

use VzdumpExample;

my %COMPRESSORS = %VzdumpExample::COMPRESSORS;

# The plugin: vzdump's fields the job reads, its logging, and the two archive methods.
package DemoPlugin {
    use parent -norequire, 'VzdumpExample';

    # Outside Proxmox there is no `qm`: the VM is started and stopped by commands given.
    sub _vm_command {
        my ($self, $what) = @_;
        my $cmd = $self->{"$what-cmd"};
        return sub {
            die "VM is not running and no --$what-cmd was given\n" if !defined($cmd);
            system($cmd) == 0 or die "command '$cmd' failed: exit code " . ($? >> 8) . "\n";
        };
    }

    sub archive_vma {
        my ($self, $task, $vmid, $filename, $comp) = @_;
        return PVE::RS::VZDump::Qemu::archive_vma($self, $task, $vmid, $filename, $comp,
            start_vm => $self->_vm_command('start'), stop_vm => $self->_vm_command('stop'));
    }

    sub archive_pbs {
        my ($self, $task, $vmid) = @_;
        # What qemu-server reads from the storage config (PVE::PBSClient, PBSPlugin).
        my $pbs = { 'backup-file' => $self->{pbs}, 'backup-id' => "$vmid",
            'backup-time' => $task->{backup_time} };
        $pbs->{password} = $ENV{PBS_PASSWORD} if defined($ENV{PBS_PASSWORD});
        $pbs->{fingerprint} = $ENV{PBS_FINGERPRINT} if defined($ENV{PBS_FINGERPRINT});
        return PVE::RS::VZDump::Qemu::archive_pbs($self, $task, $vmid, pbs => $pbs,
            start_vm => $self->_vm_command('start'), stop_vm => $self->_vm_command('stop'));
    }
}

sub usage {
    print STDERR <<"EOF";
usage: $0 --vmid N [--run-dir DIR] (--output FILE | --pbs REPOSITORY) [options]
  --compress zstd|gzip|pigz|lzop|none   compressor (default none)
  --style seed|current                  lines and flow of 2020 or of today (default seed)
  --mode snapshot|suspend|stop          vzdump's mode (default snapshot)
  --bwlimit KIB_PER_SEC                 bandwidth limit (default 0: none)
  --devlist LIST                        devices to back up (default drive-scsi0)
  --config FILE                         guest config to store (default: a generated one)
  --firewall FILE                       firewall config to store, if it exists
  --agent                               the VM's guest agent is enabled (freeze, thaw)
  --start-cmd CMD, --stop-cmd CMD       start the VM paused, stop it again (a VM that
                                        does not run is started for the backup)
  PBS: the password and fingerprint come from \$PBS_PASSWORD and \$PBS_FINGERPRINT.
EOF
    exit(2);
}

my %opt = (compress => 'none', style => 'seed', bwlimit => 0, mode => 'snapshot',
    devlist => 'drive-scsi0');
GetOptions(\%opt, 'vmid=i', 'run-dir=s', 'output=s', 'pbs=s', 'compress=s', 'style=s',
    'mode=s', 'bwlimit=i', 'devlist=s', 'config=s', 'firewall=s', 'agent', 'start-cmd=s',
    'stop-cmd=s', 'help') or usage();
usage() if $opt{help} || !defined($opt{vmid}) || !(defined($opt{output}) xor defined($opt{pbs}));
usage() if !exists($COMPRESSORS{$opt{compress}}) || $opt{style} !~ /^(seed|current)$/;
usage() if $opt{mode} !~ /^(snapshot|suspend|stop)$/;

$PVE::RS::VZDump::Qemu::RUN_DIR = $opt{'run-dir'} if defined($opt{'run-dir'});
$PVE::RS::VZDump::Qemu::STYLE = $opt{style};
my $vmid = $opt{vmid};
STDOUT->autoflush(1);

# What vzdump's prepare and assemble steps leave for archive: the disks, the guest config
# and firewall file in the task's temporary directory, the VM's config and run state.
my $tmpdir = tempdir('vzdump-plugin-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my @disks = map { { type => 'file', qmdevice => $_ } } split(/,/, $opt{devlist});
my $task = { tmpdir => $tmpdir, disks => \@disks, mode => $opt{mode}, backup_time => time() };
if (defined($opt{config})) {
    copy($opt{config}, "$tmpdir/qemu-server.conf") or die "unable to copy '$opt{config}' - $!\n";
} else {
    open(my $fh, '>', "$tmpdir/qemu-server.conf") or die "unable to write config - $!\n";
    print $fh "# written by vzdump-plugin.pl\n";
    print $fh "#qmdump#map:" . ($_->{qmdevice} =~ s/^drive-//r) . ":$_->{qmdevice}:demo:raw:\n"
        for @disks;
    close($fh);
}
copy($opt{firewall}, "$tmpdir/qemu-server.fw") if defined($opt{firewall}) && -e $opt{firewall};

my $plugin = DemoPlugin->new(
    vmlist => { $vmid => { $opt{agent} ? (agent => '1') : () } },
    vzdump => { opts => { bwlimit => $opt{bwlimit} } },
    pbs => $opt{pbs},
    'start-cmd' => $opt{'start-cmd'},
    'stop-cmd' => $opt{'stop-cmd'},
);

my $what = defined($opt{pbs}) ? "backup to '$opt{pbs}'" : "vzdump archive '$opt{output}'";
$plugin->loginfo("creating $what");
my $ok = eval {
    if (defined($opt{pbs})) {
        $plugin->archive_pbs($task, $vmid);
    } else {
        $plugin->archive_vma($task, $vmid, $opt{output}, $COMPRESSORS{$opt{compress}});
    }
    1;
};
if (!$ok) {
    $plugin->logerr("Backup of VM $vmid failed - $@");
    exit(1);
}
exit(0);
