package PVE::RS::VZDump::Qemu;

use strict;
use warnings;

use Exporter qw(import);
use JSON; # JSON::XS when installed, as qemu-server's PVE::QMPClient uses it
use Scalar::Util qw(blessed looks_like_number openhandle);
use XSLoader;

our $VERSION = '0.1.0';
XSLoader::load('PVE::RS::VZDump::Qemu', $VERSION);

our @EXPORT_OK = qw(
    mon_cmd
    backup_start_vma backup_start_pbs backup_cancel backup_query
    query_backup_status_loop
    fork_compressor_pipe wait_compressor kill_compressor
    qga_fs_freeze qga_fs_thaw
    archive_vma archive_pbs plugin_task
    enforce_vm_running_for_backup resume_vm_after_job_start restore_vm_power_state
    mon_backup_cancel
);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

# Where VM monitor and agent sockets are: <RUN_DIR>/<vmid>.qmp and <RUN_DIR>/<vmid>.qga.
# Tests point it elsewhere.
our $RUN_DIR = '/var/run/qemu-server';

# Whose texts to reproduce: 'seed' (qemu-server of 2020) or 'current' (today's).
our $STYLE = 'seed';

# Bytes in and out (the C API speaks UTF-8 JSON); stable key order for readable traces.
my $JSON = JSON->new->utf8->canonical->allow_nonref;

# Compressors started by fork_compressor_pipe, by pid: the seed's API names them by pid.
# The handle kills and reaps its process when freed, so it is kept until wait_compressor
# or kill_compressor is done with it.
my %COMPRESSORS;

# Pids of compressors this module reaped: kill_compressor of one does nothing, since the
# pid may belong to another process by now. Forgotten when a new compressor gets the pid.
my %REAPED;

# Commands whose `fd` argument is a descriptor to pass along (as PVE::QMPClient does).
my %FD_COMMANDS = map { $_ => 1 } qw(getfd add-fd);

# Run by the library's cancel check under G_EVAL: Perl dispatches pending signal handlers
# when it runs this, so a handler that dies is caught there and stops the call.
sub _dispatch_signals { return; }

# Argument checks: every message names the function and the argument, and ends in "\n".

sub _describe {
    my ($value) = @_;
    return 'undef' if !defined($value);
    return 'a ' . ref($value) . ' object' if blessed($value);
    return (ref($value) =~ /^[AEIOU]/ ? 'an ' : 'a ') . ref($value) . ' reference' if ref($value);
    # Only a short number is shown: any other string may be a password in the wrong place.
    return "'$value'" if $value =~ /^(?:[-+]?[0-9.]{1,20}(?:e[-+]?[0-9]{1,4})?|[-+]?(?:nan|inf))\z/i;
    return length($value) ? 'a string' : 'an empty string';
}

sub _bad {
    my ($func, $what, $expected, $value) = @_;
    die "$func: $what must be $expected, got " . _describe($value) . "\n";
}

# A string without NUL bytes.
sub _str {
    my ($func, $what, $value) = @_;
    _bad($func, $what, 'a string', $value) if !defined($value) || ref($value);
    die "$func: $what must not contain NUL bytes\n" if index($value, "\0") >= 0;
    return $value;
}

sub _opt_str {
    my ($func, $what, $value) = @_;
    return defined($value) ? _str($func, $what, $value) : undef;
}

sub _check_hash {
    my ($func, $what, $value) = @_;
    return {} if !defined($value);
    _bad($func, $what, 'a hash reference', $value) if ref($value) ne 'HASH';
    return $value;
}

sub _check_opts {
    my ($func, $opts, @known) = @_;
    my %known = map { $_ => 1 } @known;
    for my $key (sort keys %$opts) {
        die "$func: unknown option '$key'\n" if !$known{$key};
    }
}

# Seconds (fractions allowed) to milliseconds; undef stays undef (library default).
sub _ms {
    my ($func, $what, $secs) = @_;
    return undef if !defined($secs);
    _bad($func, $what, 'a number of seconds', $secs)
        if ref($secs) || !looks_like_number($secs) || !($secs >= 0 && $secs < 2**53 / 1000);
    my $ms = int($secs * 1000);
    return ($ms == 0 && $secs > 0) ? 1 : $ms;
}

# A descriptor number from a number or an open Perl file handle.
sub _fileno {
    my ($func, $what, $fh) = @_;
    if (ref($fh) eq 'GLOB' || ref(\$fh) eq 'GLOB' || (blessed($fh) && $fh->isa('IO::Handle'))) {
        my $fd = openhandle($fh) ? fileno($fh) : undef;
        die "$func: $what is not an open file handle\n" if !defined($fd) || $fd < 0;
        return $fd;
    }
    _bad($func, $what, 'a file descriptor number or file handle', $fh)
        if !defined($fh) || ref($fh) || $fh !~ /^\d{1,9}$/;
    return $fh;
}

# The style option, else $STYLE.
sub _style {
    my ($func, $style) = @_;
    $style //= $STYLE;
    _bad($func, defined($_[1]) ? 'the style' : '$PVE::RS::VZDump::Qemu::STYLE',
        "'seed' or 'current'", $style)
        if !defined($style) || ref($style) || ($style ne 'seed' && $style ne 'current');
    return $style;
}

# The target (VM id or socket path; the library tells which) and where VMs are.
sub _peer {
    my ($func, $target) = @_;
    return (_str($func, 'the VM id or socket path', $target), $RUN_DIR, _style($func));
}

# A log sink for the library: a coderef as is, or a vzdump plugin object's methods.
sub _log_sink {
    my ($func, $log) = @_;
    return $log if ref($log) eq 'CODE';
    if (blessed($log) && $log->can('loginfo') && $log->can('logerr')) {
        return sub {
            my ($level, $line) = @_;
            if ($level eq 'err') {
                $log->logerr($line);
            } elsif ($level eq 'warn' && $log->can('log')) {
                $log->log('warn', $line);
            } else {
                $log->loginfo($line);
            }
        };
    }
    _bad($func, 'the log sink', 'a code reference or an object with loginfo and logerr methods',
        $log);
}

# $value as JSON for the library; a value JSON cannot carry (a code or glob reference, an
# object) dies naming the function and the argument, never with JSON's own words.
sub _encode {
    my ($func, $what, $value) = @_;
    my $json = eval { $JSON->encode($value) };
    return $json if defined($json);
    die "$func: $what cannot be passed as JSON (only strings, numbers, booleans, arrays and"
        . " hashes of them can)\n";
}

sub _json_args {
    my ($func, %args) = @_;
    return %args ? _encode($func, 'the command arguments', \%args) : undef;
}

sub mon_cmd {
    my ($target, $command, %args) = @_;

    my $func = 'mon_cmd';
    my $ms = _ms($func, 'timeout', delete $args{timeout});
    my @peer = _peer($func, $target);
    $command = _str($func, 'the command', $command);
    # As PVE::QMPClient: the `fd` of getfd/add-fd is a descriptor to pass along.
    my $fd = $FD_COMMANDS{$command} && defined($args{fd})
        ? _fileno($func, 'fd', delete $args{fd})
        : undef;
    return $JSON->decode(_mon_cmd($func, @peer, $command, _json_args($func, %args), $fd, $ms));
}

# Runs a command on a connection; `fd` of getfd/add-fd goes by SCM_RIGHTS.
sub _conn_execute {
    my ($conn, $func, $command, $ms, %args) = @_;
    $command = _str($func, 'the command', $command);
    my $fd;
    $fd = _fileno($func, 'fd', delete $args{fd}) if $FD_COMMANDS{$command};
    return $JSON->decode(PVE::RS::VZDump::Qemu::Conn::_execute(
        $func, $conn, $command, _json_args($func, %args), $fd, $ms,
    ));
}

sub backup_start_vma {
    my ($target, $fd, $params, %opts) = @_;

    my $func = 'backup_start_vma';
    _check_opts($func, \%opts, 'timeout');
    $params = _check_hash($func, 'the parameters', $params);
    $fd = _fileno($func, 'the output', $fd);
    my $ms = _ms($func, 'timeout', $opts{timeout});
    return _backup_start_vma($func, _peer($func, $target), $fd,
        _encode($func, 'the parameters', $params), $ms);
}

sub backup_start_pbs {
    my ($target, $params, %opts) = @_;

    my $func = 'backup_start_pbs';
    _check_opts($func, \%opts, 'timeout');
    _bad($func, 'the parameters', 'a hash reference', $params) if ref($params) ne 'HASH';
    my $ms = _ms($func, 'timeout', $opts{timeout});
    return _backup_start_pbs($func, _peer($func, $target),
        _encode($func, 'the parameters', $params), $ms);
}

sub backup_cancel {
    my ($target) = @_;
    _backup_cancel('backup_cancel', _peer('backup_cancel', $target));
    return;
}

sub backup_query {
    my ($target) = @_;
    return $JSON->decode(_backup_query('backup_query', _peer('backup_query', $target)));
}

sub query_backup_status_loop {
    my ($target, $job_uuid, $log, %opts) = @_;

    my $func = 'query_backup_status_loop';
    _check_opts($func, \%opts, qw(style interval cancel_on_error qemu_support is_template));
    my $sink = _log_sink($func, $log);
    my ($t, $run_dir) = _peer($func, $target);
    my $poll = PVE::RS::VZDump::Qemu::Poll::_new(
        $func, 'PVE::RS::VZDump::Qemu::Poll', $t, $run_dir,
        _str($func, 'the job UUID', $job_uuid), _style($func, $opts{style}),
        _ms($func, 'interval', $opts{interval}),
    );
    if (defined($opts{qemu_support})) {
        my $support = _check_hash($func, 'qemu_support', $opts{qemu_support});
        PVE::RS::VZDump::Qemu::Poll::_set_qemu_support(
            $func, $poll, _encode($func, 'qemu_support', $support), $opts{is_template},
        );
    }
    my $progress = PVE::RS::VZDump::Qemu::Poll::_run($func, $poll, $sink, $opts{cancel_on_error});
    return defined($progress) ? $JSON->decode($progress) : undef;
}

sub qga_fs_freeze {
    my ($target, $log) = @_;
    my $func = 'qga_fs_freeze';
    my @peer = _peer($func, $target);
    return _qga_fs_freeze($func, @peer, _log_sink($func, $log));
}

sub qga_fs_thaw {
    my ($target, $log) = @_;
    my $func = 'qga_fs_thaw';
    my @peer = _peer($func, $target);
    _qga_fs_thaw($func, @peer, _log_sink($func, $log));
    return;
}

sub fork_compressor_pipe {
    my ($comp, $outfileno, %opts) = @_;

    my $func = 'fork_compressor_pipe';
    _check_opts($func, \%opts, 'pipe_size');
    $comp = _str($func, 'the compressor command', $comp);
    $outfileno = _fileno($func, 'the output', $outfileno);
    my $size = $opts{pipe_size};
    _bad($func, 'pipe_size', 'a number of bytes', $size)
        if defined($size) && (ref($size) || $size !~ /^\d{1,10}$/ || $size > 2**31 - 1);
    my ($handle, $fd) = PVE::RS::VZDump::Qemu::Compressor::_spawn(
        $func, 'PVE::RS::VZDump::Qemu::Compressor', $comp, $outfileno, $size,
    );
    my $pid = $handle->pid;
    $COMPRESSORS{$pid} = $handle;
    delete $REAPED{$pid};
    return ($pid, $fd);
}

# A pid the module did not start (the seed's own fork passes one): a plain positive
# integer within pid_t, else the function dies. Anything looser would reach kill or waitpid
# as -1 or 0 ('1e300', 'inf', '0.5' and 2**64-1 do): every process, or our own group.
sub _foreign_pid {
    my ($func, $cpid) = @_;
    die "$func: no such compressor process " . _describe($cpid) . "\n"
        if !defined($cpid) || ref($cpid) || $cpid !~ /^[1-9][0-9]{0,9}\z/ || $cpid > 2**31 - 1;
    return $cpid + 0;
}

# Whether $pid is an unreaped child of this process (the ppid in /proc/<pid>/stat, read
# after the command name's last parenthesis): only then can the pid not have been given to
# another process meanwhile.
sub _is_own_child {
    my ($pid) = @_;
    open(my $fh, '<', "/proc/$pid/stat") or return 0;
    my $stat = <$fh> // return 0;
    my ($ppid) = $stat =~ /.*\)\s+\S+\s+(\d+)/s;
    return defined($ppid) && $ppid == $$;
}

sub wait_compressor {
    my ($comp, $cpid) = @_;

    my $func = 'wait_compressor';
    my $handle = defined($cpid) && !ref($cpid) ? $COMPRESSORS{$cpid} : undef;
    if (!$handle) {
        # Not ours (e.g. forked by the seed's own code): wait for it as the seed does.
        $cpid = _foreign_pid($func, $cpid);
        if (waitpid($cpid, 0) > 0) {
            my ($ec, $signal) = ($? >> 8, $? & 127);
            die "$comp failed - wrong exit status $ec" . ($signal ? " (signal $signal)\n" : "\n")
                if $ec || $signal;
        }
        return;
    }
    my $ok = eval {
        # The library waits up to 10 minutes per call; the seed waits without a limit.
        1 while !PVE::RS::VZDump::Qemu::Compressor::_wait($func, $handle, undef);
        1;
    };
    my $err = $@;
    if ($handle->pid == -1) {    # reaped
        delete $COMPRESSORS{$cpid};
        $REAPED{$cpid} = 1;
    }
    die $err if !$ok;
    return;
}

sub kill_compressor {
    my ($cpid) = @_;

    my $func = 'kill_compressor';
    my $handle = defined($cpid) && !ref($cpid) ? delete $COMPRESSORS{$cpid} : undef;
    if (!$handle) {
        $cpid = _foreign_pid($func, $cpid);
        # Reaped by wait_compressor: nothing to kill.
        return if $REAPED{$cpid};
        die "$func: process $cpid is not a child of this process\n" if !_is_own_child($cpid);
        kill(9, $cpid);
        waitpid($cpid, 0);
        return;
    }
    # Already reaped by wait_compressor: nothing to kill.
    PVE::RS::VZDump::Qemu::Compressor::_kill($func, $handle) if $handle->pid != -1;
    return;
}

# The backup job: a vzdump plugin's archive_vma and archive_pbs, whole.

# A code reference, or the default: qemu-server's own call when PVE::QemuServer is loaded.
sub _vm_callback {
    my ($func, $what, $cb, $default) = @_;
    return $cb if ref($cb) eq 'CODE';
    _bad($func, $what, 'a code reference', $cb) if defined($cb);
    return $default if PVE::QemuServer->can('vm_start');
    die "$func: $what is needed (PVE::QemuServer is not loaded)\n";
}

# Starts the VM paused: the caller's code reference, or qemu-server's vm_start as vzdump's
# plugin calls it.
sub _start_vm {
    my ($func, $plugin, $vmid, $style, $cb) = @_;
    my %start = (skiplock => 1, paused => 1, ($style eq 'current' ? (skiptemplate => 1) : ()));
    return _vm_callback($func, 'start_vm', $cb,
        sub { PVE::QemuServer::vm_start($plugin->{storecfg}, $vmid, \%start) });
}

# Stops the VM again: the caller's code reference, or qemu-server's vm_stop.
sub _stop_vm {
    my ($func, $plugin, $vmid, $cb) = @_;
    return _vm_callback($func, 'stop_vm', $cb,
        sub { PVE::QemuServer::vm_stop($plugin->{storecfg}, $vmid, 1) });
}

# One power-state step of the library on what the plugin and the task know; returns what
# it learnt.
sub _power {
    my ($func, $step, $plugin, $task, $vmid, $style, $start, $stop) = @_;
    my $known = $JSON->encode({
        'vm-was-running' => $plugin->{vm_was_running} ? JSON::true : JSON::false,
        'vm-was-paused' => $plugin->{vm_was_paused} ? JSON::true : JSON::false,
        'vm-stop-time' => $task->{vmstoptime},
    });
    my ($target, $run_dir) = _peer($func, $vmid);
    return $JSON->decode(PVE::RS::VZDump::Qemu::_power_step(
        $func, $step, $target, $run_dir, $style, $known, _log_sink($func, $plugin), $start, $stop,
    ));
}

sub enforce_vm_running_for_backup {
    my ($plugin, $vmid, %opts) = @_;

    my $func = 'enforce_vm_running_for_backup';
    ($plugin) = _plugin($func, $plugin, {});
    _check_opts($func, \%opts, qw(start_vm style));
    my $style = _style($func, $opts{style});
    my $start = _start_vm($func, $plugin, $vmid, $style, $opts{start_vm});
    my $known = _power($func, 'enforce', $plugin, {}, $vmid, $style, $start, undef);
    $plugin->{vm_was_running} = 1 if $known->{'vm-was-running'};
    return;
}

sub resume_vm_after_job_start {
    my ($plugin, $task, $vmid, %opts) = @_;

    my $func = 'resume_vm_after_job_start';
    ($plugin, $task) = _plugin($func, $plugin, $task);
    _check_opts($func, \%opts, qw(style));
    my $known = _power($func, 'resume', $plugin, $task, $vmid, _style($func, $opts{style}));
    # As qemu-server: the downtime is named once.
    $task->{vmstoptime} = undef if !defined($known->{'vm-stop-time'});
    return;
}

sub restore_vm_power_state {
    my ($plugin, $vmid, %opts) = @_;

    my $func = 'restore_vm_power_state';
    ($plugin) = _plugin($func, $plugin, {});
    _check_opts($func, \%opts, qw(stop_vm style));
    my $stop = _stop_vm($func, $plugin, $vmid, $opts{stop_vm});
    _power($func, 'restore', $plugin, {}, $vmid, _style($func, $opts{style}), undef, $stop);
    return;
}

sub mon_backup_cancel {
    my ($plugin, $vmid, %opts) = @_;

    my $func = 'mon_backup_cancel';
    ($plugin) = _plugin($func, $plugin, {});
    _check_opts($func, \%opts, qw(style));
    my ($target, $run_dir) = _peer($func, $vmid);
    PVE::RS::VZDump::Qemu::_backup_abort(
        $func, $target, $run_dir, _style($func, $opts{style}), _log_sink($func, $plugin),
    );
    return;
}

# The enabled flag and options of a VM config's `agent` property string
# ("1", "enabled=1,guest-fsfreeze=0", "1,freeze-fs-on-backup=0").
sub _agent_options {
    my ($agent) = @_;
    return {} if !defined($agent);
    my %opts;
    for my $part (split(/,/, $agent)) {
        my ($key, $value) = $part =~ /^([^=]+)=(.*)$/ ? ($1, $2) : ('enabled', $part);
        $opts{$key} = $value;
    }
    return $opts{enabled} ? \%opts : {};
}

# The plugin object and the task, checked.
sub _plugin {
    my ($func, $plugin, $task) = @_;
    _bad($func, 'the plugin', 'a hash-based object', $plugin)
        if !blessed($plugin) || !$plugin->isa('HASH');
    return ($plugin, _check_hash($func, 'the task', $task));
}

sub plugin_task {
    my ($plugin, $task, $vmid) = @_;

    my $func = 'plugin_task';
    ($plugin, $task) = _plugin($func, $plugin, $task);
    my $conf = $plugin->{vmlist}->{$vmid} // {};
    my $agent = _agent_options($conf->{agent});
    my $opts = $plugin->{vzdump}->{opts} // {};
    my $dir = _str($func, 'the task tmpdir', $task->{tmpdir});
    return {
        disks => [map { { type => $_->{type}, qmdevice => $_->{qmdevice} } } @{$task->{disks} // []}],
        'config-file' => "$dir/qemu-server.conf",
        'firewall-file' => "$dir/qemu-server.fw",
        mode => $task->{mode} // 'snapshot',
        'vm-was-running' => $plugin->{vm_was_running} ? 1 : 0,
        'vm-was-paused' => $plugin->{vm_was_paused} ? 1 : 0,
        agent => $agent->{enabled} ? 1 : 0,
        'guest-fsfreeze' => $agent->{'guest-fsfreeze'} // $agent->{'freeze-fs-on-backup'},
        'is-template' => $conf->{template} ? 1 : 0,
        'vm-stop-time' => $task->{vmstoptime},
        bwlimit => $opts->{bwlimit} || undef,
        'max-workers' => ($opts->{performance} // {})->{'max-workers'},
    };
}

# Runs a job: the seed's signal handlers, the plugin as log sink (clearing the task's
# vmstoptime once the resume line named the downtime, as resume_vm_after_job_start does).
sub _archive {
    my ($func, $format, $plugin, $task, $vmid, $job, %opts) = @_;
    _check_opts($func, \%opts, qw(start_vm stop_vm style pbs));
    my $sink = _log_sink($func, $plugin);
    my $log = sub {
        my ($level, $line) = @_;
        $task->{vmstoptime} = undef if $line =~ /^resuming VM again after \d+ seconds$/;
        $sink->($level, $line);
    };
    my $style = _style($func, $opts{style});
    my $start = _start_vm($func, $plugin, $vmid, $style, $opts{start_vm});
    my $stop = _stop_vm($func, $plugin, $vmid, $opts{stop_vm});
    my ($target, $run_dir) = _peer($func, $vmid);
    local @SIG{qw(INT TERM QUIT HUP PIPE)} = (sub { die "interrupted by signal\n" }) x 5;
    my $record = PVE::RS::VZDump::Qemu::_archive_job(
        $func, $format, $target, $run_dir, $style, _encode($func, 'the job', $job), $log, $start,
        $stop,
    );
    return $JSON->decode($record);
}

sub archive_vma {
    my ($plugin, $task, $vmid, $filename, $comp, %opts) = @_;

    my $func = 'archive_vma';
    ($plugin, $task) = _plugin($func, $plugin, $task);
    my $stdout = ($plugin->{vzdump}->{opts} // {})->{stdout};
    my %job = (
        task => plugin_task($plugin, $task, $vmid),
        compressor => _opt_str($func, 'the compressor command', $comp),
        $stdout
            ? ('output-fd' => _fileno($func, 'the stdout handle', $stdout))
            : ('output-file' => _str($func, 'the archive file name', $filename)),
    );
    return _archive($func, 'vma', $plugin, $task, $vmid, \%job, %opts);
}

sub archive_pbs {
    my ($plugin, $task, $vmid, %opts) = @_;

    my $func = 'archive_pbs';
    ($plugin, $task) = _plugin($func, $plugin, $task);
    _bad($func, 'pbs', 'a hash reference', $opts{pbs}) if ref($opts{pbs}) ne 'HASH';
    my %job = (task => plugin_task($plugin, $task, $vmid), pbs => $opts{pbs});
    my $result = _archive($func, 'pbs', $plugin, $task, $vmid, \%job, %opts);
    # Today's archive_pbs records the size for vzdump's task summary.
    $task->{size} = $result->{progress}->{total} if _style($func, $opts{style}) eq 'current';
    return $result;
}

package PVE::RS::VZDump::Qemu::Conn;

use strict;
use warnings;

use Scalar::Util qw(blessed);

# Dies unless $self is a connection object, naming the method.
sub _self {
    my ($method, $self) = @_;
    PVE::RS::VZDump::Qemu::_bad("Conn->$method", 'the handle',
        'a PVE::RS::VZDump::Qemu::Conn object', $self)
        if !blessed($self) || !$self->isa('PVE::RS::VZDump::Qemu::Conn');
    return $self;
}

sub new {
    my ($class, $target) = @_;
    my $func = 'Conn->new';
    return _open($func, $class, PVE::RS::VZDump::Qemu::_peer($func, $target));
}

sub cmd {
    my ($self, $command, %args) = @_;
    _self('cmd', $self);
    my $ms = PVE::RS::VZDump::Qemu::_ms('Conn->cmd', 'timeout', delete $args{timeout});
    return PVE::RS::VZDump::Qemu::_conn_execute($self, 'Conn->cmd', $command, $ms, %args);
}

sub getfd {
    my ($self, $fd, $name) = @_;
    my $func = 'Conn->getfd';
    _self('getfd', $self);
    _getfd($func, $self, PVE::RS::VZDump::Qemu::_fileno($func, 'fd', $fd),
        PVE::RS::VZDump::Qemu::_str($func, 'the fd name', $name));
    return;
}

sub events {
    my ($self) = @_;
    _self('events', $self);
    return $JSON->decode(_take_events('Conn->events', $self));
}

sub close {
    my ($self) = @_;
    _close(_self('close', $self));
    return;
}

1;

__END__

=head1 NAME

PVE::RS::VZDump::Qemu - QEMU backup plumbing of vzdump, implemented in Rust

=head1 SYNOPSIS

    # The whole backup, inside a vzdump plugin:
    sub archive_vma {
        my ($self, $task, $vmid, $filename, $comp) = @_;
        PVE::RS::VZDump::Qemu::archive_vma($self, $task, $vmid, $filename, $comp);
    }

    # Or piece by piece:
    use PVE::RS::VZDump::Qemu qw(mon_cmd backup_start_vma backup_cancel
        query_backup_status_loop fork_compressor_pipe wait_compressor kill_compressor
        qga_fs_freeze qga_fs_thaw);

    my $status = mon_cmd(100, 'query-status');
    my $fsstatus = mon_cmd(100, 'guest-fsfreeze-status');    # the agent: 'thawed'

    my ($cpid, $fd) = fork_compressor_pipe('zstd --threads=2', fileno($outfh));
    my $frozen = qga_fs_freeze(100, $plugin);    # if the VM has an agent and runs
    my $uuid = eval {
        backup_start_vma(100, $fd, {
            'config-file' => "$tmpdir/qemu-server.conf",
            devlist => 'drive-scsi0',
            bwlimit => 0,
        });
    };
    my $err = $@;
    qga_fs_thaw(100, $plugin) if $frozen;
    die $err if $err;
    POSIX::close($fd);
    query_backup_status_loop(100, $uuid, $plugin);    # INFO: status: ... lines
    wait_compressor('zstd --threads=2', $cpid);

=head1 DESCRIPTION

Perl binding of F<libvzdump_qemu> (C API in F<include/vzdump_qemu.h>), made so that
C<PVE::VZDump::QemuServer> can move to Rust one piece at a time. Each function replaces
one piece of the Perl original (F<QemuServer.pm> of 2020, "the seed"), keeps its name
where the seed had one, takes the same arguments, logs the same lines and dies with the
same texts. The pieces are independent: any one of them can be swapped while the others
stay Perl.

All errors are Perl C<die>s with a message ending in C<"\n">. Where qemu-server has a text
for a failure, the message is that text, as C<PVE::QemuServer::Monitor::mon_cmd> and
C<PVE::QMPClient> die with it:

    VM 100 not running                        (no pid file, a stale one, not a QEMU's)
    unable to open monitor socket             (the socket file is missing)
    VM 100 qmp command 'query-backup' failed - <reason>

with the reason C<unable to connect to VM 100 qmp socket - Connection refused> (or
C<- timeout after N retries>), C<client closed connection>, C<got timeout>,
C<received response without command id> (the seed's client spelled it C<responsed>),
C<got wrong command id 'X' (expected Y)>, or QEMU's own description
(C<The command query-backup has not been found>). The status loop's texts are the seed's
(C<got unexpected uuid>, C<interrupted by signal>, ...). Wrong argument types (undef, a
reference where a string is expected, a foreign object as a handle) die with a message
naming the argument, never crash.

=head2 Peers

Functions taking C<$target> accept a VM id (digits) or the path of a QMP socket (any string
containing C</>). A VM id means the socket F<$RUN_DIR/E<lt>vmidE<gt>.qmp> and messages name
the peer as qemu-server does (C<VM 100 qmp command 'x' failed - ...>).

Guest agent functions (C<mon_cmd> with a C<guest-*> command, C<qga_fs_freeze>,
C<qga_fs_thaw>) talk to the agent's socket instead: F<$RUN_DIR/E<lt>vmidE<gt>.qga> for a VM
id (messages C<VM 100 qga command 'x' failed - ...>), and for a path the path itself, which
must then be the agent's socket, not the monitor's (C<qga socket '/path' command 'x' failed
- ...>).

A one-shot command to a VM id first makes qemu-server's checks: the VM runs (its
F<$RUN_DIR/E<lt>vmidE<gt>.pid> names a live QEMU started with that C<-pidfile>), else
C<VM 100 not running>; the socket file exists, else C<unable to open monitor socket>.
Connection objects and C<backup_start_vma> skip them, as C<PVE::QMPClient> does.

=over 4

=item C<$PVE::RS::VZDump::Qemu::RUN_DIR>

Directory of the monitor and agent sockets and the pid files, default
F</var/run/qemu-server>. Tests set it to a temporary directory.

=item C<$PVE::RS::VZDump::Qemu::STYLE>

Whose texts to reproduce: C<seed> (the default: qemu-server of 2020) or C<current>
(today's). They differ in the status loop's lines (its C<style> option, whose default is
this variable), in the spelling C<responsed>, and for the guest agent: the seed's client
named agent commands C<VM 100 qmp command 'guest-ping' failed - ...> and its C<qmp_cmd>
tested the monitor's socket file, today's says C<VM 100 qga command ...> and tests the
agent's.

=back

=head2 Signals

Every wait in the library notices a signal at once. Perl runs its signal handlers
(C<%SIG>, deferred "safe" signals) at that point, inside the call, and the call goes on if
the handler returns, as Perl's own I/O does: a C<SIGCHLD> handler or a no-op C<SIGUSR1> does
not fail a C<mon_cmd>, C<backup_*> or C<< $conn->cmd >>, which wait on to their own timeout.
If the handler dies, for example the seed's

    local $SIG{INT} = $SIG{TERM} = $SIG{QUIT} = $SIG{HUP} = $SIG{PIPE} =
        sub { die "interrupted by signal\n" };

the call dies with the handler's error (C<interrupted by signal>) within about 100 ms,
as the seed's own C<mon_cmd>, C<sleep> and C<waitpid> do (a one-shot command may have
reached QEMU by then; a backup start is cancelled, see C<backup_start_vma>).

A handler, log callback or VM callback may also C<exit> (the common
C<< $SIG{TERM} = sub { exit } >>): the call stops as for a die -- the status loop with
C<cancel_on_error> and the whole job (C<archive_vma>, C<archive_pbs>) cancel their backup
first, without logging more lines -- and then the exit goes on: C<END> blocks run and the
process ends with the exit's status.

=head2 Fork

The library starts no threads and keeps no global state, so everything works in forked
children (vzdump forks per task). Connection and status-loop objects inherited through
C<fork> must not be used in the child; a compressor inherited through C<fork> is left alone
by the child (only its parent can reap it).

=head1 FUNCTIONS

=head2 archive_vma($plugin, $task, $vmid, $filename, $comp, %opts)

The whole VMA backup, for a vzdump plugin's own C<archive_vma> to delegate to with the same
arguments. Reads what the seed's C<archive_vma> reads (see C<plugin_task>, and
C<< $plugin->{vzdump}->{opts}->{stdout} >>: then the archive goes to that handle instead of
C<$filename>), logs through C<$plugin> (C<loginfo>, C<logerr>, C<log('warn', ...)>), and
returns C<< { uuid => $job_uuid, progress => {...} } >> (C<progress> as
C<query_backup_status_loop> returns it), or dies with the error it logged. The steps, in
the seed's order:

=over 4

=item 1. the devlist from C<< $task->{disks} >> (C<implement me (type '...')> for other
kinds);

=item 2. if the VM does not run: C<starting kvm to execute backup task> and C<start_vm>;
its die ends the backup as it is;

=item 3. from here C<SIGINT>, C<SIGTERM>, C<SIGQUIT>, C<SIGHUP> and C<SIGPIPE> end the
backup with C<interrupted by signal> (the handlers are C<local> to the call); a signal
whose handler returns lets the job go on;

=item 4. the output file (C<unable to open file '...' - ...>) and C<$comp> behind a pipe;

=item 5. the guest freeze if the VM's agent is enabled, not in stop mode and the VM was
running (C<issuing guest-agent 'fs-freeze' command>, or the skip line);

=item 6. C<getfd> and C<backup>, 30 s together;

=item 7. the thaw if a freeze was issued (C<issuing guest-agent 'fs-thaw' command>), before
a start error is passed on;

=item 8. the pipe closed; C<got no uuid for backup task>;

=item 9. C<started backup task '$uuid'>;

=item 10. C<resuming VM again> (C<resuming VM again after $n seconds> in stop mode, which
clears C<< $task->{vmstoptime} >>) and C<cont>, if the VM was running;

=item 11. the status loop;

=item 12. on an error in 3 to 11: C<logerr>, and C<aborting backup job> with
C<backup-cancel> if the job started (today always, then the VM resumed again); once
decided, the cancel runs to its end whatever signals arrive meanwhile;

=item 13. the power state: a VM started in 2 and still in C<prelaunch> is stopped
(C<stopping kvm after backup task>, C<stop_vm>), else C<kvm status changed after backup
('...') - keep VM running>; failures here are warnings;

=item 14. the compressor killed on error, else waited for (C<$comp failed - wrong exit
status $n>).

=back

With C<style =E<gt> 'current'> (or C<$STYLE>), today's C<archive_vma>: step 2 after 3 (its
failure logged and followed by 12), C<query-proxmox-support> (a warning if it fails), the
freeze also skipped for a paused VM and one whose agent option C<guest-fsfreeze> is off,
with today's wait for a slow freeze, C<max-workers> if QEMU supports it, step 12 always
cancelling and resuming the VM again. Not part of it: the diskless and template cases of
qemu-server (C<vma create>), the TPM state drive, fleecing and qmeventd.

C<%opts>: C<start_vm> and C<stop_vm>, code references that start the VM paused and stop it
(default, when C<PVE::QemuServer> is loaded: its C<vm_start> with C<skiplock> and C<paused>
and C<vm_stop> with C<skiplock>, on C<< $plugin->{storecfg} >>); C<style>.

=head2 archive_pbs($plugin, $task, $vmid, pbs => \%server, %opts)

The whole backup to a Proxmox Backup Server, as C<archive_vma> (steps 1 to 3, 5 to 7 and 9
to 13; the start waits 60 s, today 125 s). C<pbs> holds the server side of the C<backup>
arguments by their QMP names (C<backup-file> = repository, C<backup-id>, C<backup-time>,
C<password>, C<fingerprint>, C<keyfile>, C<master-keyfile>, C<backup-ns>): what the seed
computes from the storage config. The job adds C<devlist>, C<config-file>, the
C<firewall-file> if it exists, and today C<speed>, C<max-workers>, C<encrypt> and
C<use-dirty-bitmap>, and checks C<query-proxmox-support> first (C<PBS backups are not
supported by the running QEMU version. ...>, the master key check). In today's style it
sets C<< $task->{size} >>. Passwords are never logged.

=head2 plugin_task($plugin, $task, $vmid)

The job's view of a vzdump plugin and task, as a hash of the C API's task members: the
disks' C<type> and C<qmdevice>, C<config-file> and C<firewall-file> in
C<< $task->{tmpdir} >>, C<mode>, C<vm-was-running> and C<vm-was-paused> (the plugin's
C<vm_was_running>, C<vm_was_paused>), C<agent> and C<guest-fsfreeze> (from the VM config's
C<agent> property string: C<enabled>, C<guest-fsfreeze> or else C<freeze-fs-on-backup>),
C<is-template>, C<vm-stop-time> (C<< $task->{vmstoptime} >>), vzdump's C<bwlimit> and
C<performance> C<max-workers>.

=head2 enforce_vm_running_for_backup($plugin, $vmid, %opts)

qemu-server's method of the same name, for a plugin that swaps in its steps one at a time
(the job calls the same steps itself): a VM whose QEMU runs (its pid file under
C<$RUN_DIR>, the process alive) sets C<< $plugin->{vm_was_running} >>; else it logs
C<starting kvm to execute backup task> and calls C<start_vm> (default: qemu-server's
C<vm_start> with C<skiplock> and C<paused>), whose die is passed on. Options: C<start_vm>,
C<style>.

=head2 resume_vm_after_job_start($plugin, $task, $vmid, %opts)

For a VM that was running (C<< $plugin->{vm_was_running} >>; today also not
C<vm_was_paused>): C<resuming VM again>, or C<resuming VM again after E<lt>nE<gt> seconds>
when C<< $task->{vmstoptime} >> is set (which it then clears, so the downtime is named
once), and C<cont>; its failure dies. Option: C<style>.

=head2 restore_vm_power_state($plugin, $vmid, %opts)

For a VM that was not running: C<query-status>; still in C<prelaunch> gives C<stopping kvm
after backup task> and C<stop_vm> (default: qemu-server's C<vm_stop>), any other status
C<kvm status changed after backup ('E<lt>statusE<gt>') - keep VM running>. Failures are
C<warn> lines of the plugin's log, never dies; the status query runs to its end whatever
signals arrive. Options: C<stop_vm>, C<style>.

=head2 mon_backup_cancel($plugin, $vmid, %opts)

C<aborting backup job>, then C<backup-cancel>; its failure is logged with C<logerr>, never
died with. Once called, the cancel runs to its end whatever signals arrive (within its
timeout), so that a second signal cannot leave the job running. C<$vmid> may also be a
socket path. Option: C<style>.

=head2 mon_cmd($target, $command, %args)

Runs one QMP command on its own connection (connect, C<qmp_capabilities>, command, close)
and returns its C<return> value decoded from JSON (hash, array or scalar). The client
option C<timeout =E<gt> $seconds> is taken out of C<%args>; without it the command gets
qemu-server's timeout for it (10 minutes for C<query-backup> and C<backup-cancel>, 5 s for
most others). For C<getfd> and C<add-fd>, C<fd =E<gt> $fileno> (or a file handle) is passed
by SCM_RIGHTS, as L<PVE::QMPClient> does.

As in qemu-server, a command whose name starts with C<guest-> goes to the guest agent
(L</Peers>; a path target is then the agent's socket): on its own connection, the agent's
parser is flushed and synchronised (C<guest-sync-delimited>) before the command. The
C<timeout> option works the same; without it the command gets qemu-server's timeout (1 h
for C<guest-fsfreeze-freeze>, 3 min for C<guest-fsfreeze-thaw>, 10 min for
C<guest-fstrim> and C<guest-shutdown>, 5 s for most others). C<guest-shutdown> and
C<guest-suspend-*>, which may get no reply, return C<undef>.

Replaces C<PVE::QemuServer::Monitor::mon_cmd($vmid, $command, %args)> (the seed imports it
from C<PVE::QemuServer>). Errors read as in qemu-server (L</DESCRIPTION>), e.g.
C<VM 100 not running>, C<VM 100 qmp command 'cont' failed - got timeout> or
C<VM 100 qmp command 'guest-fsfreeze-freeze' failed - ...> (C<qga command> with
C<$STYLE> C<current>). A timeout shorter than 5 s bounds the connect and the greeting too,
as qemu-server's single timeout does.

=head2 backup_start_vma($target, $fd, \%params, %opts)

Starts a VMA backup into C<$fd> (a descriptor number or file handle: the output file or a
compressor pipe's write end) and returns the job UUID. On one connection it sends C<getfd>
(name C<backup>) and C<backup> with C<backup-file> = F</dev/fdname/backup>. C<%params>:
C<config-file>, C<firewall-file>, C<devlist> (strings) and C<bwlimit> (KiB/s; sent as
C<speed> in bytes/s). C<%opts>: C<timeout> for the whole start (default 30 s).

Replaces the seed's C<PVE::QMPClient> queue in C<archive_vma> (lines ~553-591: C<getfd> and
C<backup> chained by callbacks, C<queue_execute(30)>, C<got no uuid for backup task>). As
there, it makes no running check and dies with the bare reason + C<"\n">: QEMU's
description (e.g. C<previous backup not finished>), C<got timeout>,
C<client closed connection> or C<unable to connect to VM 100 qmp socket - ...>. A
C<devlist> that names a device twice (it crashes pve-qemu 10.0.2) or has an empty name
dies before anything is sent. The caller still closes its own copy of a pipe's write end
afterwards (seed: C<close output file handle failed>).
A start whose outcome is unknown -- a signal handler died, or the timeout ran out once
C<backup> was sent -- is followed by C<backup-cancel> before it dies, so that no job is left
running that nobody polls (the seed leaves it).

=head2 backup_start_pbs($target, \%params, %opts)

Starts a backup to a Proxmox Backup Server and returns the job UUID. C<%params> holds the
C<backup> arguments by their QMP names: C<backup-file> (repository), C<backup-id>,
C<backup-time>, and optionally C<password>, C<fingerprint>, C<config-file>,
C<firewall-file>, C<devlist>, C<keyfile>, C<key-password>, C<master-keyfile>,
C<backup-ns>, C<encrypt>, C<compress>, C<use-dirty-bitmap>, C<fleecing>, C<max-workers>,
C<speed>. Passwords never appear in error messages. C<%opts>: C<timeout> (default 125 s as
in current qemu-server; the seed used C<timeout =E<gt> 60>).

Replaces C<mon_cmd($vmid, 'backup', format =E<gt> 'pbs', ...)> in the seed's C<archive_pbs>.
Errors: as C<mon_cmd>'s, e.g. C<VM 100 qmp command 'backup' failed - ...>; a C<devlist> as
for C<backup_start_vma>.

=head2 backup_cancel($target)

Sends C<backup-cancel> on its own connection. Replaces C<mon_cmd($vmid, 'backup-cancel')>
inside the seed's C<mon_backup_cancel> (which also logs C<aborting backup job> and logs a
failure with C<logerr>; callers keep doing that). Note QEMU's quirk: cancelling a job that
already ended C<done> turns its status into C<error> / C<backup canceled>.

=head2 backup_query($target)

Returns the C<query-backup> reply as a hash reference (C<status>, C<uuid>, C<total>,
C<transferred>, C<zero-bytes>, C<errmsg>, ...). Replaces C<mon_cmd($vmid, 'query-backup')>.

=head2 query_backup_status_loop($target, $job_uuid, $log, %opts)

Polls C<query-backup> until job C<$job_uuid> ends, logging progress lines, and returns a
hash reference C<{percent, transferred, total, target, zero, reused, duration}> when the job
is done, of which C<total> and C<reused> are what today's loop returns (the last non-zero
total; the last C<reused> read, C<undef> if QEMU reported none). Replaces the seed's
C<< $query_backup_status_loop->($self, $vmid, $job_uuid) >> (lines 255-319) and today's
C<< $query_backup_status_loop->($self, $vmid, $job_uuid, $qemu_support) >>.

C<$log> receives every line: a code reference called as C<< $log->($level, $line) >> with
C<$level> C<info>, C<warn> or C<err>, or an object with C<loginfo> and C<logerr> methods (the
vzdump plugin C<$self>; a warning goes to its C<log('warn', ...)> if it has one). If C<$log>
dies, the loop stops and the error is rethrown. A signal whose handler returns does not
disturb the loop; a handler that dies ends it with its error (within about 100 ms), as the
seed's C<sleep(1)> would.

C<%opts>:

=over 4

=item C<style =E<gt> 'seed' | 'current'>

C<seed> (default: C<$STYLE>): the seed's lines, e.g.
C<status: 3% (1073741824/34359738368), sparse 0% (268435456), duration 3, read/write 357/268 MB/s>
and C<transferred 34359 MB in 131 seconds (262 MB/s)>. C<current>: today's qemu-server
lines (C<  3% (1.0 GiB of 32.0 GiB) in 3s, read: ..., write: ...>, C<backup is sparse: ...>).

=item C<interval =E<gt> $seconds>

Time between two C<query-backup> calls (default 1).

=item C<qemu_support =E<gt> \%reply>, C<is_template =E<gt> 0 | 1>

Today's loop only (C<style =E<gt> 'current'>): the C<query-proxmox-support> reply, as
today's C<archive_pbs> passes it (C<archive_vma> passes none). When it says
C<query-bitmap-info>, the loop first runs C<query-pbs-bitmap-info> and logs today's
dirty-bitmap lines (C<scsi0: dirty-bitmap status: OK (drive clean)>, ... unless
C<is_template>, then C<using fast incremental mode (dirty-bitmap), ...>), and the dirty
bytes become the percent base.

=item C<cancel_on_error =E<gt> 0 | 1>

Default 0: failures just die, and the caller's eval cancels the job as the seed's
C<archive_vma> does. With 1 the loop itself first sends C<backup-cancel> (logging
C<aborting backup job>), then dies.

=back

Dies with the seed's texts + C<"\n">: C<got unexpected uuid>, the job's C<errmsg> (or
C<unknown error>), C<got unexpected status 'x'>,
C<got wrong number of transfered bytes (total != transferred)>, a QMP error, or the error
of a signal handler (L</Signals>).

=head2 qga_fs_freeze($target, $log)

Freezes the guest's filesystems through its agent (L</Peers>) before a backup starts, as
the seed's C<qga_fs_freeze> (lines 641-655) does once it has decided that a freeze applies:
it checks the agent with C<guest-ping> (3 s). If the agent does not answer, it logs
C<skipping guest-agent 'fs-freeze', agent configured but not running?> and returns
C<undef>. Else it logs C<issuing guest-agent 'fs-freeze' command>, sends
C<guest-fsfreeze-freeze> (1 h), logs a failure at C<err> level (e.g.
C<VM 100 qga command 'guest-fsfreeze-freeze' failed - ...>) and returns 1 even then: a thaw
is due, since the agent may have frozen some filesystems before it failed. C<$log> is as
for C<query_backup_status_loop>.

Whether a freeze applies at all stays with the caller, as in the seed. The seed's

    sub qga_fs_freeze {
        my ($self, $task, $vmid) = @_;
        return if !$self->{vmlist}->{$vmid}->{agent} || $task->{mode} eq 'stop'
            || !$self->{vm_was_running};
        ... agent check, log, freeze ...
    }

becomes

    sub qga_fs_freeze {
        my ($self, $task, $vmid) = @_;
        return if !$self->{vmlist}->{$vmid}->{agent} || $task->{mode} eq 'stop'
            || !$self->{vm_was_running};
        return PVE::RS::VZDump::Qemu::qga_fs_freeze($vmid, $self);
    }

and C<archive_vma> keeps its order: freeze, start the backup (in an C<eval>), thaw if
frozen, then rethrow the start's error.

If C<$log> dies, the freeze still runs to its end (the library does not stop halfway), then
the error is rethrown. A signal handler that dies (L</Signals>) is rethrown the same way
once the freeze returned. In both cases a freeze that was issued is thawed again first,
without logging, because the caller gets no return value and so could not thaw.

=head2 qga_fs_thaw($target, $log)

Thaws the guest's filesystems after C<qga_fs_freeze> returned 1: logs
C<issuing guest-agent 'fs-thaw' command>, sends C<guest-fsfreeze-thaw> (3 min) and logs a
failure at C<err> level; it never dies for the agent's sake (only for bad arguments or a
dying C<$log>, whose error is rethrown afterwards). Returns nothing. Replaces the body of
the seed's C<qga_fs_thaw> (lines 657-664):

    sub qga_fs_thaw {
        my ($self, $vmid) = @_;
        PVE::RS::VZDump::Qemu::qga_fs_thaw($vmid, $self);
    }

=head2 fork_compressor_pipe($comp, $outfileno, %opts)

Starts the compressor command C<$comp> (e.g. C<zstd --threads=2>, C<gzip --rsyncable>,
C<pigz -p 2 --rsyncable>, C<lzop>; run as Perl's C<exec STRING> would: through
F</bin/sh -c> only with shell metacharacters) with standard input a new pipe and standard
output C<$outfileno> (a number or file handle). Returns C<($cpid, $fd)> as the seed's
C<$fork_compressor_pipe> (lines 432-471) does: the child's pid and the pipe's write end, to
pass to C<backup_start_vma> and then close with C<POSIX::close>. Differences: the caller is
not forked (the library spawns the process directly), the write end is close-on-exec, and a
command that cannot be executed dies here: C<fork compressor 'x' failed: E<lt>reasonE<gt>>.
C<%opts>: C<pipe_size> in bytes (default: the library's).

=head2 wait_compressor($comp, $cpid)

Waits for the compressor to exit (no time limit, as the seed's C<waitpid>). Dies with the
seed's C<< "$comp failed - wrong exit status $ec" >> followed by C<" (signal N)"> when a
signal ended it (the message names the command as it was started). Replaces the end of
the seed's C<archive_vma> (lines 615-623). A pid not started by C<fork_compressor_pipe> is
waited for with C<waitpid> and checked the same way, named C<$comp>; it must be a plain
positive integer. Signal handlers run
while it waits (L</Signals>).

=head2 kill_compressor($cpid)

Kills the compressor with SIGKILL and reaps it: the seed's error path
(C<kill(9, $cpid); waitpid($cpid, 0)>, lines 608-611), which it replaces. Does nothing for a
compressor already reaped by C<wait_compressor>. A pid it did not start is killed only if
it is a plain positive integer and an unreaped child of this process (else it dies): the
library never signals a pid that may belong to someone else.

=head2 version()

The loaded library's version, e.g. C<vzdump-qemu 0.1.0>.

=head1 CONNECTIONS

=head2 PVE::RS::VZDump::Qemu::Conn->new($target)

Opens a QMP connection and negotiates capabilities. QEMU serves no other client while it is
open (qemu-server's daemons included), so keep it short. The object closes the connection
when it goes away (C<DESTROY>) or on C<< ->close >>.

=head2 $conn->cmd($command, %args)

Runs a command and returns its C<return> value, like C<mon_cmd> (C<timeout> option; C<fd>
of C<getfd>/C<add-fd> passed by SCM_RIGHTS). Replaces C<< PVE::QMPClient->cmd >>.

=head2 $conn->getfd($fd, $name)

Registers the descriptor (number or file handle) in QEMU as C<$name> (C<getfd> with
SCM_RIGHTS); QEMU then opens it as F</dev/fdname/$name>. The caller keeps its own copy.

=head2 $conn->events

Returns (and forgets) the QMP events received so far: an array reference of
C<{event, data, timestamp =E<gt> {seconds, microseconds}}>.

=head2 $conn->close

Closes the connection now; later calls die with C<the connection handle is closed>.

=head1 SEE ALSO

F<include/vzdump_qemu.h>, F<examples/vzdump-plugin.pl> (an C<archive_vma> built from these
pieces), and qemu-server's F<src/PVE/VZDump/QemuServer.pm> (proxmox/qemu-server),
whose pieces these replace.

=cut
