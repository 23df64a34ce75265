#!/usr/bin/perl
# The gradual path: the seed's archive_vma (proxmox/qemu-server QemuServer.pm of 2020)
# with its pieces -- compressor pipe, guest fs freeze/thaw, backup start, status loop,
# mon_backup_cancel -- swapped for PVE::RS::VZDump::Qemu. The output is a vzdump task log
# (INFO: / ERROR: lines).
#
#   vzdump-plugin-piecewise.pl --socket /tmp/t/100.qmp --output /tmp/t/vzdump.vma.zst --compress zstd
#   vzdump-plugin-piecewise.pl --vmid 100 --run-dir /tmp/t --output /tmp/t/vzdump.vma --style current
#   vzdump-plugin-piecewise.pl --vmid 100 --run-dir /tmp/t --output /tmp/t/vzdump.vma --agent
#
# Runs from the source tree after `cargo build && cd perl && perl Makefile.PL && make`.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin", "$FindBin::Bin/../perl/blib/lib", "$FindBin::Bin/../perl/blib/arch";

use File::Temp qw(tempdir);
use Getopt::Long qw(GetOptions);
use IO::File;
use IO::Handle;
use POSIX ();

use PVE::RS::VZDump::Qemu qw(
    backup_start_vma fork_compressor_pipe kill_compressor mon_backup_cancel
    qga_fs_freeze qga_fs_thaw query_backup_status_loop wait_compressor
);

use VzdumpExample;

my %COMPRESSORS = %VzdumpExample::COMPRESSORS;

# The plugin: its logging, as PVE::VZDump::Plugin prints it in a task log.
package DemoPlugin {
    use parent -norequire, 'VzdumpExample';
}

sub usage {
    print STDERR <<"EOF";
usage: $0 (--vmid N [--run-dir DIR] | --socket PATH) --output FILE [options]
  --compress zstd|gzip|pigz|lzop|none   compressor (default none)
  --style seed|current                  lines and texts of 2020 or of today (default seed)
  --bwlimit KIB_PER_SEC                 bandwidth limit (default 0: none)
  --devlist LIST                        devices to back up, e.g. drive-scsi0 (default all)
  --config FILE                         guest config to store (default: a generated one)
  --firewall FILE                       firewall config to store, if it exists
  --agent[=PATH]                        freeze the guest's filesystems around the backup
                                        start through its agent: <run-dir>/<vmid>.qga with
                                        --vmid, PATH (required) with --socket
EOF
    exit(2);
}

my %opt = (compress => 'none', style => 'seed', bwlimit => 0);
GetOptions(\%opt, 'vmid=i', 'socket=s', 'run-dir=s', 'output=s', 'compress=s', 'style=s',
    'bwlimit=i', 'devlist=s', 'config=s', 'firewall=s', 'agent:s', 'help') or usage();
usage() if $opt{help} || !$opt{output} || !(defined($opt{vmid}) xor defined($opt{socket}));
usage() if !exists($COMPRESSORS{$opt{compress}}) || $opt{style} !~ /^(seed|current)$/;
usage() if defined($opt{socket}) && defined($opt{agent}) && $opt{agent} eq '';

$PVE::RS::VZDump::Qemu::RUN_DIR = $opt{'run-dir'} if defined($opt{'run-dir'});
$PVE::RS::VZDump::Qemu::STYLE = $opt{style};
my $vmid = $opt{vmid} // $opt{socket};
my $plugin = DemoPlugin->new(opts => \%opt);
STDOUT->autoflush(1);

# vzdump's assemble step writes the guest config into the task's temporary directory.
my $tmpdir = tempdir('vzdump-plugin-piecewise-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $conffile = $opt{config};
if (!defined($conffile)) {
    $conffile = "$tmpdir/qemu-server.conf";
    open(my $fh, '>', $conffile) or die "unable to write '$conffile' - $!\n";
    print $fh "# written by vzdump-plugin-piecewise.pl\n";
    for my $qmdevice (split(/,/, $opt{devlist} // '')) {
        my $virtdev = $qmdevice =~ s/^drive-//r;
        print $fh "#qmdump#map:$virtdev:$qmdevice:demo:raw:\n";
    }
    close($fh);
}

sub archive_vma {
    my ($self, $vmid, $filename, $comp) = @_;

    my $opts = $self->{opts};
    my $firewall = $opts->{firewall};
    # The agent: a VM id stands for its <run-dir>/<vmid>.qga, a path is the socket itself.
    my $agent = defined($opts->{agent}) && $opts->{agent} ne '' ? $opts->{agent} : $vmid;

    my $cpid;
    my $backup_job_uuid;

    eval {
        $SIG{INT} = $SIG{TERM} = $SIG{QUIT} = $SIG{HUP} = $SIG{PIPE} = sub {
            die "interrupted by signal\n";
        };

        my $outfh = IO::File->new($filename, "w")
            || die "unable to open file '$filename' - $!\n";
        my $outfileno = fileno($outfh);

        if ($comp) {
            ($cpid, $outfileno) = fork_compressor_pipe($comp, $outfileno);
        }

        my $params = { 'config-file' => $conffile, bwlimit => $opts->{bwlimit} };
        $params->{devlist} = $opts->{devlist} if defined($opts->{devlist});
        $params->{'firewall-file'} = $firewall if defined($firewall) && -e $firewall;

        # The seed's qga_fs_freeze first decides whether a freeze applies (agent configured,
        # not a stop-mode backup, VM was running); here --agent stands for all of that.
        my $fs_frozen;
        $fs_frozen = qga_fs_freeze($agent, $self) if defined($opts->{agent});

        eval { $backup_job_uuid = backup_start_vma($vmid, $outfileno, $params) };
        my $qmperr = $@;

        # Thaw even when the start failed, and before its error is passed on.
        qga_fs_thaw($agent, $self) if $fs_frozen;

        die $qmperr if $qmperr;

        if ($cpid) {
            POSIX::close($outfileno) == 0 || die "close output file handle failed\n";
        }

        $self->loginfo("started backup task '$backup_job_uuid'");

        query_backup_status_loop($vmid, $backup_job_uuid, $self, style => $opts->{style});
    };
    my $err = $@;
    if ($err) {
        $self->logerr($err);
        mon_backup_cancel($self, $vmid) if defined($backup_job_uuid);
    }

    if ($err) {
        kill_compressor($cpid) if $cpid;
        die $err;
    }

    wait_compressor($comp, $cpid) if $cpid;
}

$plugin->loginfo("creating vzdump archive '$opt{output}'");
eval { archive_vma($plugin, $vmid, $opt{output}, $COMPRESSORS{$opt{compress}}) };
if (my $err = $@) {
    $plugin->logerr("Backup of VM $vmid failed - $err");
    exit(1);
}
exit(0);
