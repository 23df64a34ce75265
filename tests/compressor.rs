//! Integration tests of `vzdump_qemu::compressor`: real compressors behind the pipe, exit
//! status texts, descriptor and signal hygiene of the child, waits, and reaping.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use testkit::Xorshift64Star;
use vzdump_qemu::compressor::{
    CommandSpec, Compressor, CompressorError, SpawnOptions, DEFAULT_PIPE_SIZE,
};

/// Serialises the tests that change process-wide state (signal dispositions, fd 0).
static PROCESS_STATE: Mutex<()> = Mutex::new(());

const LONG: Duration = Duration::from_secs(120);

fn lock_process_state() -> MutexGuard<'static, ()> {
    PROCESS_STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn line(command: &str) -> CommandSpec {
    CommandSpec::Line(command.to_string())
}

fn argv(words: &[&str]) -> CommandSpec {
    CommandSpec::Argv(words.iter().map(|w| w.to_string()).collect())
}

/// A fresh path in the target's temp dir, unique per test and process.
fn temp_path(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("compressor-{}-{n}-{tag}", std::process::id()))
}

/// Removes the file on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> (TempFile, File) {
        let path = temp_path(tag);
        let file = File::create(&path).unwrap();
        (TempFile(path), file)
    }

    fn contents(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn spawn(command: &CommandSpec, output: BorrowedFd<'_>) -> (Compressor, File) {
    let (compressor, write_end) =
        Compressor::spawn(command, output, &SpawnOptions::default()).unwrap();
    (compressor, File::from(write_end))
}

fn dev_null() -> File {
    File::options().write(true).open("/dev/null").unwrap()
}

/// `command` writing to /dev/null: the compressor, its pipe and its pid.
fn spawn_to_null(command: &CommandSpec) -> (Compressor, File, libc::pid_t) {
    let (compressor, pipe) = spawn(command, dev_null().as_fd());
    let pid = compressor.pid();
    (compressor, pipe, pid)
}

fn is_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// The process is gone, zombie included: nobody left it unreaped.
fn assert_gone(pid: libc::pid_t) {
    // SAFETY: signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid, 0) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    assert!(
        rc == -1 && errno == Some(libc::ESRCH),
        "process {pid} still exists"
    );
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

/// Kills and reaps the compressor, and checks that its process is gone.
fn kill_and_assert_gone(compressor: Compressor) {
    let pid = compressor.pid();
    compressor.kill_and_reap().unwrap();
    assert_gone(pid);
}

/// One line of /proc/<pid>/status, e.g. `SigBlk`, parsed as hex.
fn status_mask(status_path: &str, key: &str) -> u64 {
    let status = std::fs::read_to_string(status_path).unwrap();
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status_path}"));
    u64::from_str_radix(value.trim(), 16).unwrap()
}

fn signal_bit(signal: libc::c_int) -> u64 {
    1 << (signal - 1)
}

/// Waits until the child has finished its exec: `posix_spawn` returns once the child has
/// left the caller's memory, a moment before the kernel has set up the new program's
/// arguments (until then /proc/<pid>/cmdline is empty).
fn wait_for_exec(pid: libc::pid_t) {
    for _ in 0..10_000 {
        if !std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .is_empty()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("process {pid} did not finish its exec");
}

fn cmdline(pid: libc::pid_t) -> Vec<String> {
    wait_for_exec(pid);
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    raw.split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Round trips through real compressors.

/// Size of the pieces in which the data is written: varying, and not page aligned.
fn piece_len(index: usize) -> usize {
    (1 << 20) + (index % 7) * 4099
}

/// `total` bytes of pieces alternating between random data (xorshift64*: seeded, good enough
/// to be incompressible), zeros, repeated text and half random, half zeros.
fn mixed_data(total: usize) -> Vec<u8> {
    let mut prng = Xorshift64Star(0x9e37_79b9_7f4a_7c15);
    let mut data = vec![0u8; total];
    let mut start = 0;
    for index in 0.. {
        if start == total {
            break;
        }
        let end = total.min(start + piece_len(index));
        let piece = &mut data[start..end];
        match index % 4 {
            0 => prng.fill(piece),
            1 => {}
            2 => {
                let text = format!("piece {index} of the backup stream; ");
                for (dst, src) in piece.iter_mut().zip(text.bytes().cycle()) {
                    *dst = src;
                }
            }
            _ => {
                let half = piece.len() / 2;
                prng.fill(&mut piece[..half]);
            }
        }
        start = end;
    }
    data
}

/// Compresses `data` through the pipe, decompresses the output with `decompress <file>`
/// and compares the result with `data`, byte for byte.
fn round_trip(compress: &str, decompress: &[&str], data: &[u8]) {
    let (archive, file) = TempFile::new("roundtrip");
    let (mut compressor, mut pipe) = spawn(&line(compress), file.as_fd());
    drop(file);
    let pid = compressor.pid();

    let mut start = 0;
    for index in 0.. {
        if start == data.len() {
            break;
        }
        let end = data.len().min(start + piece_len(index));
        pipe.write_all(&data[start..end]).unwrap();
        start = end;
    }
    drop(pipe);
    compressor
        .wait(LONG)
        .unwrap_or_else(|e| panic!("{compress}: {e}"));
    assert_gone(pid);
    let archive_len = std::fs::metadata(&archive.0).unwrap().len();
    assert!(
        archive_len < data.len() as u64 * 3 / 4,
        "{compress}: output of {archive_len} bytes is not compressed"
    );

    let output = Command::new(decompress[0])
        .args(&decompress[1..])
        .arg(&archive.0)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "{decompress:?} failed");
    let restored = output.stdout;
    assert_eq!(
        restored.len(),
        data.len(),
        "{compress}: decompressed length"
    );
    if restored != data {
        let at = restored.iter().zip(data).position(|(a, b)| a != b);
        panic!("{compress}: decompressed data differs first at byte {at:?}");
    }
}

#[test]
fn real_compressors_round_trip_256_mib() {
    let data = mixed_data(256 << 20);
    round_trip("zstd --threads=2", &["zstd", "-dc"], &data);
    round_trip("gzip --rsyncable", &["gzip", "-dc"], &data);
    round_trip("pigz -p 2 --rsyncable", &["pigz", "-dc"], &data);
    round_trip("lzop", &["lzop", "-dc"], &data);
}

#[test]
fn mixed_data_is_deterministic_and_mixed() {
    let data = mixed_data(8 << 20);
    assert_eq!(data, mixed_data(8 << 20));
    let first = &data[..piece_len(0)];
    let second = &data[piece_len(0)..piece_len(0) + piece_len(1)];
    assert!(first.iter().filter(|&&b| b == 0).count() < first.len() / 100);
    assert!(second.iter().all(|&b| b == 0));
}

// ---------------------------------------------------------------------------------------
// Exit status and spawn errors.

fn exit_error(command: &CommandSpec) -> String {
    let (mut compressor, pipe, pid) = spawn_to_null(command);
    drop(pipe);
    let err = compressor.wait(LONG).unwrap_err();
    assert!(matches!(err, CompressorError::ExitStatus { .. }), "{err:?}");
    assert_gone(pid);
    // A second wait reports the same, without touching the (gone) process.
    assert_eq!(
        compressor.wait(LONG).unwrap_err().to_string(),
        err.to_string()
    );
    err.to_string()
}

#[test]
fn bad_exit_codes_give_qemu_server_text() {
    assert_eq!(
        exit_error(&line("zstd --bogus-option")),
        "zstd --bogus-option failed - wrong exit status 1"
    );
    assert_eq!(
        exit_error(&argv(&["sh", "-c", "exit 3"])),
        "sh -c exit 3 failed - wrong exit status 3"
    );
    assert_eq!(
        exit_error(&line("sh -c 'exit 3'")),
        "sh -c 'exit 3' failed - wrong exit status 3"
    );
}

#[test]
fn killed_compressor_reports_signal() {
    let (mut compressor, pipe, pid) = spawn_to_null(&line("cat"));
    // SAFETY: plain kill of our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let err = compressor.wait(LONG).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cat failed - wrong exit status 0 (signal 9)"
    );
    drop(pipe);
    assert_gone(pid);
}

#[test]
fn missing_program_is_a_spawn_error() {
    let err = Compressor::spawn(
        &line("nonexistent-compressor-xyz"),
        dev_null().as_fd(),
        &SpawnOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CompressorError::Spawn { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "fork compressor 'nonexistent-compressor-xyz' failed: No such file or directory"
    );

    let err = Compressor::spawn(
        &argv(&["/nonexistent/zstd", "-1"]),
        dev_null().as_fd(),
        &SpawnOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "fork compressor '/nonexistent/zstd -1' failed: No such file or directory"
    );
}

#[test]
fn empty_command_is_rejected() {
    for command in [line("  \t"), argv(&[]), line("zstd\0")] {
        let err =
            Compressor::spawn(&command, dev_null().as_fd(), &SpawnOptions::default()).unwrap_err();
        assert!(
            matches!(err, CompressorError::InvalidCommand { .. }),
            "{command:?}: {err:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// What the child gets: descriptors, signals, shell or not.

#[test]
fn child_has_only_stdio_descriptors() {
    // Descriptors without close-on-exec, as a Perl caller has them.
    // SAFETY: plain open/pipe/dup calls; the descriptors are closed at the end.
    let leaky = unsafe {
        let mut pipe_fds = [0; 2];
        assert_eq!(libc::pipe(pipe_fds.as_mut_ptr()), 0);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        let dup = libc::dup(2);
        assert!(null >= 0 && dup >= 0);
        [pipe_fds[0], pipe_fds[1], null, dup]
    };
    let (archive, file) = TempFile::new("fds");
    let (compressor, pipe) = spawn(&line("cat"), file.as_fd());
    let pid = compressor.pid();
    wait_for_exec(pid);

    let fd_dir = format!("/proc/{pid}/fd");
    let fds: BTreeSet<String> = std::fs::read_dir(&fd_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(fds, BTreeSet::from(["0".into(), "1".into(), "2".into()]));

    let link = |fd: &str| std::fs::read_link(format!("{fd_dir}/{fd}")).unwrap();
    assert!(link("0").to_string_lossy().starts_with("pipe:"));
    assert_eq!(link("1"), archive.0);
    assert_eq!(link("2"), std::fs::read_link("/proc/self/fd/2").unwrap());
    // The write end is close-on-exec in the caller.
    // SAFETY: F_GETFD on a descriptor we own.
    let flags = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_GETFD) };
    assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);

    kill_and_assert_gone(compressor);
    for fd in leaky {
        // SAFETY: closing the descriptors opened above.
        unsafe { libc::close(fd) };
    }
}

#[test]
fn child_has_empty_signal_mask_and_default_dispositions() {
    let _guard = lock_process_state();
    // SAFETY: sigaction/pthread_sigmask with valid pointers; both are restored below.
    let (old_action, old_mask) = unsafe {
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        let mut old_action: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGTERM, &ignore, &mut old_action), 0);

        let mut block: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGUSR1);
        let mut old_mask: libc::sigset_t = std::mem::zeroed();
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old_mask),
            0
        );
        (old_action, old_mask)
    };
    // The test can fail: this thread does block and ignore (Rust ignores SIGPIPE too).
    let own = "/proc/thread-self/status";
    assert_ne!(status_mask(own, "SigBlk") & signal_bit(libc::SIGUSR1), 0);
    assert_ne!(status_mask(own, "SigIgn") & signal_bit(libc::SIGTERM), 0);

    let spawned = Compressor::spawn(&line("cat"), dev_null().as_fd(), &SpawnOptions::default());

    // SAFETY: restoring what was saved above.
    unsafe {
        libc::sigaction(libc::SIGTERM, &old_action, std::ptr::null_mut());
        libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut());
    }
    let (compressor, _pipe) = spawned.unwrap();
    let pid = compressor.pid();
    wait_for_exec(pid);
    let child = format!("/proc/{pid}/status");
    assert_eq!(status_mask(&child, "SigBlk"), 0, "blocked signals");
    assert_eq!(status_mask(&child, "SigIgn"), 0, "ignored signals");
    kill_and_assert_gone(compressor);
}

/// Writes `data` into the pipe of a `cat`-like `compressor`, closes it, waits for the exit
/// and checks that `archive` got `data` unchanged.
fn assert_passes_through(
    mut compressor: Compressor,
    mut pipe: File,
    archive: &TempFile,
    data: &[u8],
) {
    let pid = compressor.pid();
    pipe.write_all(data).unwrap();
    drop(pipe);
    compressor.wait(LONG).unwrap();
    assert_gone(pid);
    assert_eq!(archive.contents(), data);
}

#[test]
fn metachar_line_runs_through_the_shell() {
    let (archive, file) = TempFile::new("shell");
    let (compressor, pipe) = spawn(&line("cat | cat"), file.as_fd());
    assert_eq!(cmdline(compressor.pid()), ["/bin/sh", "-c", "cat | cat"]);
    assert_passes_through(compressor, pipe, &archive, b"through a pipeline\n");
}

/// Pids of running processes whose command line is exactly `argv` (zombies left out).
fn running_with_cmdline(argv: &[&str]) -> Vec<libc::pid_t> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

#[test]
fn a_pipeline_through_the_shell_is_killed_whole() {
    // A sleep no other test runs: the pipeline's second process, started by the shell.
    let sleeper = ["sleep", "41.375"];
    let (compressor, _pipe, pid) = spawn_to_null(&line("cat | sleep 41.375"));
    wait_for_exec(pid);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while running_with_cmdline(&sleeper).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pipeline did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Its own process group, led by the shell.
    // SAFETY: getpgid of a live child.
    assert_eq!(unsafe { libc::getpgid(pid) }, pid);
    compressor.kill_and_reap().unwrap();
    assert_gone(pid);
    // SIGKILL to the group is delivered at once; give the kernel a moment to end them.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !running_with_cmdline(&sleeper).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pipeline's processes outlived the kill: {:?}",
            running_with_cmdline(&sleeper)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn plain_line_runs_directly() {
    let (archive, file) = TempFile::new("direct");
    let (compressor, pipe) = spawn(&line("  cat -u\n"), file.as_fd());
    assert_eq!(cmdline(compressor.pid()), ["cat", "-u"]);
    assert_passes_through(compressor, pipe, &archive, b"no shell\n");
}

#[test]
fn trailing_stderr_redirect_goes_to_output() {
    let (archive, file) = TempFile::new("stderr");
    let (mut compressor, pipe) = spawn(&line("ls /nonexistent-xyz-dir 2>&1"), file.as_fd());
    drop(pipe);
    let err = compressor.wait(LONG).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ls /nonexistent-xyz-dir 2>&1 failed - wrong exit status 2"
    );
    let text = String::from_utf8_lossy(&archive.contents()).into_owned();
    assert!(text.contains("/nonexistent-xyz-dir"), "{text:?}");
}

#[test]
fn output_fd_zero_is_not_clobbered() {
    let (archive, file) = TempFile::new("fd0");
    let spawned = {
        let _guard = lock_process_state();
        // SAFETY: fd 0 is saved, replaced by the output file and restored; no other test
        // uses fd 0 while the guard is held.
        unsafe {
            let saved = libc::dup(0);
            assert!(saved >= 0);
            assert_eq!(libc::dup2(file.as_raw_fd(), 0), 0);
            let spawned = Compressor::spawn(
                &line("cat"),
                BorrowedFd::borrow_raw(0),
                &SpawnOptions::default(),
            );
            assert_eq!(libc::dup2(saved, 0), 0);
            libc::close(saved);
            spawned
        }
    };
    let (compressor, write_end) = spawned.unwrap();
    assert_passes_through(
        compressor,
        File::from(write_end),
        &archive,
        b"output was fd 0\n",
    );
}

#[test]
fn pipe_size_is_applied() {
    let size_of = |pipe: &OwnedFd| {
        // SAFETY: F_GETPIPE_SZ on a pipe we own.
        unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_GETPIPE_SZ) }
    };
    for (options, size, what) in [
        (
            SpawnOptions::default(),
            DEFAULT_PIPE_SIZE as i32,
            "the default",
        ),
        (
            SpawnOptions { pipe_size: None },
            65536,
            "None keeps the kernel's default",
        ),
        (
            SpawnOptions {
                pipe_size: Some(256 * 1024),
            },
            256 * 1024,
            "256 KiB",
        ),
    ] {
        let (compressor, pipe) =
            Compressor::spawn(&line("cat"), dev_null().as_fd(), &options).unwrap();
        assert_eq!(size_of(&pipe), size, "{what}");
        compressor.kill_and_reap().unwrap();
    }

    let options = SpawnOptions {
        pipe_size: Some(1 << 40),
    };
    let err = Compressor::spawn(&line("cat"), dev_null().as_fd(), &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to set compressor pipe size to 1099511627776 bytes - Invalid argument (os error 22)"
    );
}

// ---------------------------------------------------------------------------------------
// Waiting, killing, reaping.

#[test]
fn wait_times_out_and_leaves_child_running() {
    let (mut compressor, _pipe, pid) = spawn_to_null(&line("sleep 5"));
    let err = compressor.wait(Duration::from_millis(100)).unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("compressor 'sleep 5' (pid {pid}) did not exit within 100ms")
    );
    assert!(is_alive(pid));
    kill_and_assert_gone(compressor);
}

extern "C" fn ignore_signal(_: libc::c_int) {}

#[test]
fn wait_is_interrupted_by_signal() {
    let _guard = lock_process_state();
    // SAFETY: installs a no-op handler without SA_RESTART; restored below.
    let old_action = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGUSR2, &action, &mut old), 0);
        old
    };

    let (mut compressor, _pipe, pid) = spawn_to_null(&line("sleep 5"));
    // SAFETY: pthread_self has no preconditions.
    let waiter = unsafe { libc::pthread_self() };
    let done = Arc::new(AtomicBool::new(false));
    let sender = {
        let done = done.clone();
        // Keep signalling until the wait returned, so that a signal that came too early
        // (before the wait started) cannot make the test wait for the child instead.
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                // SAFETY: the waiting thread outlives this loop (it joins us).
                unsafe { libc::pthread_kill(waiter, libc::SIGUSR2) };
            }
        })
    };
    let result = compressor.wait(Duration::from_secs(10));
    done.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    // SAFETY: restoring the saved action.
    unsafe { libc::sigaction(libc::SIGUSR2, &old_action, std::ptr::null_mut()) };

    let err = result.unwrap_err();
    assert!(err.is_interrupted(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("waiting for compressor 'sleep 5' (pid {pid}) interrupted by signal")
    );
    assert!(
        is_alive(pid),
        "interrupted wait must leave the child running"
    );
    kill_and_assert_gone(compressor);
}

#[test]
fn drop_kills_and_reaps_running_child() {
    let (compressor, _pipe, pid) = spawn_to_null(&line("cat"));
    drop(compressor);
    assert_gone(pid);
}

#[test]
fn drop_reaps_exited_child() {
    let (compressor, pipe, pid) = spawn_to_null(&line("cat"));
    drop(pipe);
    // Let it exit on its own and become a zombie.
    while std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(compressor);
    assert_gone(pid);
}

#[test]
fn kill_and_reap_after_exit_is_a_no_op() {
    let (mut compressor, pipe, _) = spawn_to_null(&line("cat"));
    drop(pipe);
    compressor.wait(LONG).unwrap();
    kill_and_assert_gone(compressor);
}

#[test]
fn forked_child_does_not_touch_the_compressor() {
    let (compressor, _pipe, pid) = spawn_to_null(&line("cat"));
    // SAFETY: the child only calls the handle (which checks getpid first and allocates an
    // error string; glibc's malloc is usable after fork) and then _exit.
    let child = unsafe { libc::fork() };
    assert!(child >= 0);
    if child == 0 {
        let mut copy = compressor;
        let waited = matches!(
            copy.wait(Duration::from_millis(10)),
            Err(CompressorError::ForeignProcess { .. })
        );
        let killed = matches!(
            copy.kill_and_reap(),
            Err(CompressorError::ForeignProcess { .. })
        );
        // SAFETY: leave the forked test process without running any destructor or harness.
        unsafe { libc::_exit(if waited && killed { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waitpid on the child just forked.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    assert!(
        is_alive(pid),
        "the forked copy must not kill the compressor"
    );
    kill_and_assert_gone(compressor);
}
