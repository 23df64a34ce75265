package VzdumpExample;

# What the example plugins share: the compressor commands vzdump uses, and a base class
# whose objects (made with new(%fields)) log as PVE::VZDump::Plugin prints a task log
# (INFO: / WARN: / ERROR: lines on stdout).

use strict;
use warnings;

# Compressor command strings as pve-manager builds them (2 threads).
our %COMPRESSORS = (
    zstd => 'zstd --threads=2',
    gzip => 'gzip --rsyncable',
    pigz => 'pigz -p 2 --rsyncable',
    lzop => 'lzop',
    none => undef,
);

sub new { my ($class, %self) = @_; return bless {%self}, $class; }

sub _print {
    my ($prefix, $msg) = @_;
    chomp($msg);
    print STDOUT "$prefix: $_\n" for split(/\n/, $msg);
}

sub loginfo { _print('INFO', $_[1]); }
sub logerr { _print('ERROR', $_[1]); }
sub log { _print(uc($_[1]), $_[2]); }

1;
