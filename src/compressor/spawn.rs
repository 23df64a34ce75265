//! Starting the compressor with `posix_spawn(3)`, stdin from a new pipe, stdout to a file.

use std::ffi::{CString, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::command::{CommandSpec, Invocation};
use super::error::CompressorError;

/// The shell that runs command lines with metacharacters, as Perl uses it.
const SHELL: &str = "/bin/sh";

/// Options of [`Compressor::spawn`](super::Compressor::spawn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnOptions {
    /// Capacity of the pipe in bytes (`F_SETPIPE_SZ`; the kernel rounds it up to a power of
    /// two pages). `None` keeps the kernel default (64 KiB). Unprivileged processes are
    /// limited by `/proc/sys/fs/pipe-max-size` (1 MiB by default).
    pub pipe_size: Option<usize>,
}

/// The default pipe capacity. `benches/spawn.rs` (1 GiB in 1 MiB writes, median of 7
/// interleaved runs) measured `zstd -1 -T1` at 1385 MiB/s with a 1 MiB pipe against 948
/// with the kernel's 64 KiB, `cat` at 2343 against 688 (an earlier run: 1960/1070 and
/// 2770/870), for 1 MiB of kernel memory per backup.
pub const DEFAULT_PIPE_SIZE: usize = 1 << 20;

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            pipe_size: Some(DEFAULT_PIPE_SIZE),
        }
    }
}

/// Starts `command` with the read end of a new pipe as stdin and `output` as stdout.
/// Returns the child's pid and the pipe's write end (close-on-exec).
pub(crate) fn spawn_child(
    command: &CommandSpec,
    output: BorrowedFd<'_>,
    options: &SpawnOptions,
) -> Result<(libc::pid_t, OwnedFd), CompressorError> {
    let program = Program::new(command)?;
    let env = CStringArray::new(std::env::vars_os().map(|(key, value)| {
        let mut entry = key;
        entry.push("=");
        entry.push(value);
        entry
    }));

    // Close-on-exec from birth: the write end must reach no child, not even this one.
    let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| setup("unable to create compressor pipe".into(), e.into()))?;
    if let Some(size) = options.pipe_size {
        set_pipe_size(write_end.as_fd(), size)?;
    }

    // The sources of the dup2 calls onto 0 and 1 must not be 0 or 1 themselves, or the first
    // dup2 could overwrite the source of the second (a caller's output fd may well be 0 or 1).
    let stdin_source = dup_above_stdio(read_end.as_fd())
        .map_err(|e| setup("unable to duplicate compressor pipe".into(), e))?;
    let stdout_source = dup_above_stdio(output)
        .map_err(|e| setup("unable to duplicate compressor output fd".into(), e))?;
    drop(read_end);

    let mut actions = FileActions::new()?;
    actions.dup2(stdin_source.as_raw_fd(), libc::STDIN_FILENO)?;
    actions.dup2(stdout_source.as_raw_fd(), libc::STDOUT_FILENO)?;
    if program.stderr_to_stdout {
        actions.dup2(libc::STDOUT_FILENO, libc::STDERR_FILENO)?;
    }
    actions.close_from(3)?;
    let attributes = SpawnAttributes::new()?;

    let spawn = if program.search_path {
        libc::posix_spawnp
    } else {
        libc::posix_spawn
    };
    let mut pid: libc::pid_t = 0;
    // SAFETY: all pointers are valid for the call: `pid` is writable, the path is a C
    // string, actions and attributes are initialised, and argv/envp are NULL-terminated
    // arrays of C strings that `program` and `env` keep alive. posix_spawn does not write
    // through the argv/envp pointers despite their `*mut` type.
    let rc = unsafe {
        spawn(
            &mut pid,
            program.path.as_ptr(),
            actions.as_ptr(),
            attributes.as_ptr(),
            program.argv.as_ptr(),
            env.as_ptr(),
        )
    };
    if rc != 0 {
        // glibc reports exec failures here and has reaped the failed child itself.
        return Err(CompressorError::Spawn {
            command: command.describe(),
            source: io::Error::from_raw_os_error(rc),
        });
    }
    Ok((pid, write_end))
}

fn setup(context: String, source: io::Error) -> CompressorError {
    CompressorError::Setup { context, source }
}

/// Sets the capacity of the pipe behind `fd`.
fn set_pipe_size(fd: BorrowedFd<'_>, size: usize) -> Result<(), CompressorError> {
    let context = || format!("unable to set compressor pipe size to {size} bytes");
    let arg = libc::c_int::try_from(size)
        .map_err(|_| setup(context(), io::Error::from_raw_os_error(libc::EINVAL)))?;
    fcntl(fd, FcntlArg::F_SETPIPE_SZ(arg)).map_err(|e| setup(context(), e.into()))?;
    Ok(())
}

/// A close-on-exec duplicate of `fd` numbered 3 or above.
fn dup_above_stdio(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let raw: RawFd = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The program to start, converted for `posix_spawn`.
struct Program {
    path: CString,
    argv: CStringArray,
    /// Search `path` in `PATH` (`posix_spawnp`), as `execvp` does.
    search_path: bool,
    stderr_to_stdout: bool,
}

impl Program {
    fn new(command: &CommandSpec) -> Result<Self, CompressorError> {
        let invalid = |reason: &str| CompressorError::InvalidCommand {
            command: command.describe(),
            reason: reason.to_string(),
        };
        let (argv, search_path, stderr_to_stdout) = match command.invocation() {
            Invocation::Shell { script } => {
                (vec![SHELL.to_string(), "-c".into(), script], false, false)
            }
            Invocation::Direct {
                argv,
                stderr_to_stdout,
            } => (argv, true, stderr_to_stdout),
        };
        let Some(first) = argv.first() else {
            return Err(invalid("empty command"));
        };
        let path = CString::new(first.as_str()).map_err(|_| invalid("NUL byte in command"))?;
        let argv = argv
            .into_iter()
            .map(|arg| CString::new(arg).map_err(|_| invalid("NUL byte in command")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Program {
            path,
            argv: CStringArray::from_cstrings(argv),
            search_path,
            stderr_to_stdout,
        })
    }
}

/// What `posix_spawn` would get for a command, for the fuzz targets (`fuzz/`).
#[cfg(fuzzing)]
#[derive(Debug)]
pub struct SpawnPlan {
    /// The program to run.
    pub path: Vec<u8>,
    /// The arguments, read back through the NULL-terminated array `posix_spawn` gets.
    pub argv: Vec<Vec<u8>>,
    /// `PATH` is searched (`posix_spawnp`).
    pub search_path: bool,
    /// The child's stderr is a copy of its stdout.
    pub stderr_to_stdout: bool,
}

/// What `posix_spawn` would get for `command`, or why it cannot be run.
#[cfg(fuzzing)]
pub fn program_for(command: &CommandSpec) -> Result<SpawnPlan, CompressorError> {
    let program = Program::new(command)?;
    let mut argv = Vec::new();
    let mut at = program.argv.as_ptr();
    // SAFETY: the array is NULL-terminated and its strings live as long as `program`.
    unsafe {
        while !(*at).is_null() {
            argv.push(std::ffi::CStr::from_ptr(*at).to_bytes().to_vec());
            at = at.add(1);
        }
    }
    Ok(SpawnPlan {
        path: program.path.into_bytes(),
        argv,
        search_path: program.search_path,
        stderr_to_stdout: program.stderr_to_stdout,
    })
}

/// A NULL-terminated `char *[]` owning its strings.
struct CStringArray {
    _strings: Vec<CString>,
    pointers: Vec<*mut libc::c_char>,
}

impl CStringArray {
    /// Converts OS strings, skipping any that hold a NUL byte (they cannot come from C).
    fn new(strings: impl Iterator<Item = OsString>) -> Self {
        Self::from_cstrings(
            strings
                .filter_map(|s| CString::new(s.into_vec()).ok())
                .collect(),
        )
    }

    fn from_cstrings(strings: Vec<CString>) -> Self {
        let pointers = strings
            .iter()
            .map(|s| s.as_ptr().cast_mut())
            .chain(std::iter::once(std::ptr::null_mut()))
            .collect();
        CStringArray {
            _strings: strings,
            pointers,
        }
    }

    fn as_ptr(&self) -> *const *mut libc::c_char {
        self.pointers.as_ptr()
    }
}

/// Turns a posix_spawn-family return code into an error.
fn check(rc: libc::c_int, what: &str) -> Result<(), CompressorError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(setup(
            format!("unable to prepare compressor spawn ({what})"),
            io::Error::from_raw_os_error(rc),
        ))
    }
}

/// A posix_spawn object made by its `init` function.
fn initialised<T>(
    init: unsafe extern "C" fn(*mut T) -> libc::c_int,
    what: &str,
) -> Result<T, CompressorError> {
    let mut raw = MaybeUninit::uninit();
    // SAFETY: `init` fills the object it is given.
    check(unsafe { init(raw.as_mut_ptr()) }, what)?;
    // SAFETY: init succeeded, so the object is initialised.
    Ok(unsafe { raw.assume_init() })
}

/// `posix_spawn_file_actions_t`, destroyed on drop.
struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> Result<Self, CompressorError> {
        initialised(libc::posix_spawn_file_actions_init, "file actions").map(FileActions)
    }

    fn dup2(&mut self, from: RawFd, to: RawFd) -> Result<(), CompressorError> {
        // SAFETY: self.0 is initialised; the descriptors are only recorded here.
        check(
            unsafe { libc::posix_spawn_file_actions_adddup2(&mut self.0, from, to) },
            "dup2",
        )
    }

    /// Closes every descriptor from `lowest` up in the child (glibc 2.34 and later).
    fn close_from(&mut self, lowest: RawFd) -> Result<(), CompressorError> {
        // SAFETY: self.0 is initialised.
        check(
            unsafe { libc::posix_spawn_file_actions_addclosefrom_np(&mut self.0, lowest) },
            "closefrom",
        )
    }

    fn as_ptr(&self) -> *const libc::posix_spawn_file_actions_t {
        &self.0
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: self.0 was initialised by posix_spawn_file_actions_init.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// `posix_spawnattr_t` that empties the child's signal mask, resets every signal to its
/// default disposition (the caller may ignore or block signals, e.g. Rust ignores
/// SIGPIPE) and makes the child the leader of a process group of its own (so that a
/// pipeline run through `/bin/sh` is killed whole), destroyed on drop.
struct SpawnAttributes(libc::posix_spawnattr_t);

impl SpawnAttributes {
    fn new() -> Result<Self, CompressorError> {
        let mut attributes =
            SpawnAttributes(initialised(libc::posix_spawnattr_init, "attributes")?);

        let mut empty = MaybeUninit::uninit();
        // SAFETY: sigemptyset initialises the set it is given and cannot fail for a valid
        // pointer.
        let empty = unsafe {
            libc::sigemptyset(empty.as_mut_ptr());
            empty.assume_init()
        };
        // Every bit set, not sigfillset: that one leaves out glibc's internal signals (32
        // and 33), which the spawn child then sets to SIG_IGN, and an ignored signal stays
        // ignored across exec. glibc copies this set as is and only tests its bits.
        let mut full = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigset_t is a plain bit array, valid with any byte pattern.
        let full = unsafe {
            full.as_mut_ptr().write_bytes(0xff, 1);
            full.assume_init()
        };
        let flags = (libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF
            | libc::POSIX_SPAWN_SETPGROUP) as libc::c_short;
        // SAFETY: attributes.0 is initialised; the sets are copied into it.
        unsafe {
            check(
                libc::posix_spawnattr_setsigmask(&mut attributes.0, &empty),
                "signal mask",
            )?;
            check(
                libc::posix_spawnattr_setsigdefault(&mut attributes.0, &full),
                "signal defaults",
            )?;
            // Group 0: a new group whose id is the child's pid.
            check(
                libc::posix_spawnattr_setpgroup(&mut attributes.0, 0),
                "process group",
            )?;
            check(
                libc::posix_spawnattr_setflags(&mut attributes.0, flags),
                "flags",
            )?;
        }
        Ok(attributes)
    }

    fn as_ptr(&self) -> *const libc::posix_spawnattr_t {
        &self.0
    }
}

impl Drop for SpawnAttributes {
    fn drop(&mut self) {
        // SAFETY: self.0 was initialised by posix_spawnattr_init.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}
