//! Test scaffolding shared by every crate of the workspace: scratch directories, the real
//! peers as direct children (QEMU, qemu-ga, `pve-qmp-sim`), scripted QMP peers, signals,
//! and one disk image generator. Real-peer helpers never skip: a missing QEMU or qemu-ga
//! fails the test.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a helper waits for a peer to come up or go away before it fails the test (a
/// guard against hanging, not a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A directory under the temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory named after `tag`.
    pub fn new(tag: &str) -> TempDir {
        let template = std::env::temp_dir().join(format!("vzq-{tag}-XXXXXX"));
        let mut buf = template
            .into_os_string()
            .into_string()
            .unwrap()
            .into_bytes();
        buf.push(0);
        // SAFETY: NUL-terminated, writable template.
        let p = unsafe { libc::mkdtemp(buf.as_mut_ptr() as *mut libc::c_char) };
        assert!(!p.is_null(), "mkdtemp failed");
        buf.pop();
        TempDir(PathBuf::from(String::from_utf8(buf).unwrap()))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until all `files` exist, failing the test after [`PATIENCE`].
fn wait_for(what: &str, files: &[&Path]) {
    let deadline = Instant::now() + PATIENCE;
    while !files.iter().all(|f| f.exists()) {
        assert!(Instant::now() < deadline, "{what} did not come up");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `socket` accepts a connection (which is closed at once: a monitor serves
/// one client at a time, and the probe is served like any other).
fn wait_accepting(what: &str, socket: &Path, child: &mut Child) {
    let deadline = Instant::now() + PATIENCE;
    while UnixStream::connect(socket).is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what} exited at start"
        );
        assert!(Instant::now() < deadline, "{what} socket did not come up");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Spawns `cmd` as a direct child (stdin and stdout on /dev/null, stderr inherited), failing
/// the test with `cannot` if it does not start, and waits until `socket` accepts.
fn spawn_serving(what: &str, cannot: &str, cmd: &mut Command, socket: &Path) -> Child {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{cannot}: {e}"));
    wait_accepting(what, socket, &mut child);
    child
}

/// Kills and reaps a child; one that is gone already is only reaped.
fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// VM `vmid`'s files in `dir` as qemu-server names them: `<vmid>.qmp` and `<vmid>.pid`.
fn vm_files(dir: &TempDir, vmid: u32) -> (PathBuf, PathBuf) {
    (
        dir.join(&format!("{vmid}.qmp")),
        dir.join(&format!("{vmid}.pid")),
    )
}

/// Real QEMU (`-machine none`) with a QMP unix socket, killed and reaped on drop.
pub struct Qemu {
    /// The process.
    pub child: Child,
    /// Its QMP socket.
    pub socket: PathBuf,
    /// Its directory (socket, pid file).
    pub dir: TempDir,
}

impl Qemu {
    /// QEMU paused (`-S`, prelaunch) on `<dir>/q.sock`.
    pub fn start() -> Qemu {
        let dir = TempDir::new("qemu");
        let socket = dir.join("q.sock");
        Self::launch(dir, socket, None, &["-S"])
    }

    /// QEMU as qemu-server runs VM `vmid`: socket `<dir>/<vmid>.qmp` and
    /// `-pidfile <dir>/<vmid>.pid`, so that a VM peer in `dir` passes qemu-server's running check;
    /// `extra` are more arguments (e.g. `-S` for a VM started paused).
    pub fn start_vm(vmid: u32, extra: &[&str]) -> Qemu {
        let dir = TempDir::new("vm");
        let (socket, pidfile) = vm_files(&dir, vmid);
        Self::launch(dir, socket, Some(pidfile), extra)
    }

    fn launch(dir: TempDir, socket: PathBuf, pidfile: Option<PathBuf>, extra: &[&str]) -> Qemu {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "none", "-nodefaults", "-display", "none"])
            .args(extra)
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()));
        if let Some(p) = &pidfile {
            cmd.arg("-pidfile").arg(p);
        }
        // The socket file exists from bind(); connects succeed only after listen().
        let child = spawn_serving(
            "QEMU",
            "qemu-system-x86_64 must be installed (run scripts/install-deps.sh)",
            &mut cmd,
            &socket,
        );
        if let Some(p) = &pidfile {
            wait_for("QEMU's pid file", &[p]);
        }
        Qemu { child, socket, dir }
    }

    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `sig` to it.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// SIGKILL and reap: the pid file and the socket file stay behind, as after a crash.
    pub fn kill_and_reap(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// Real `qemu-ga` as a direct child on `<dir>/100.qga`, with every command that could
/// change the host (freeze, shutdown, suspend, exec, file writes, ...) blocked, next to the
/// VM's QEMU (`<dir>/100.qmp`, `<dir>/100.pid`) that qemu-server's running check wants;
/// both killed and reaped on drop.
pub struct QemuGa {
    /// The agent.
    pub child: Child,
    /// Its socket.
    pub socket: PathBuf,
    /// The VM's QEMU; its directory is the agent's too.
    pub vm: Qemu,
}

impl QemuGa {
    /// The VM id the socket name stands for.
    pub const VMID: u32 = 100;
    /// Commands the host agent must never run; `guest-info` reports them disabled.
    pub const BLOCKED: &'static str = "guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw,guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-exec,guest-exec-status,guest-file-open,guest-file-write,guest-set-time,guest-set-user-password,guest-set-vcpus,guest-set-memory-blocks,guest-fstrim";

    /// `$QEMU_GA`, else the Debian paths (the package installs to /usr/sbin).
    pub fn binary() -> PathBuf {
        if let Some(p) = std::env::var_os("QEMU_GA") {
            return PathBuf::from(p);
        }
        ["/usr/bin/qemu-ga", "/usr/sbin/qemu-ga"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("qemu-ga must be installed (apt-get install qemu-guest-agent)")
    }

    /// Starts the VM's QEMU and the agent, and waits until the agent accepts connections.
    pub fn start() -> QemuGa {
        let vm = Qemu::start_vm(Self::VMID, &["-S"]);
        let (child, socket) = spawn_agent(vm.dir.path(), Self::VMID);
        QemuGa { child, socket, vm }
    }
}

/// qemu-ga on the host as VM `vmid`'s agent in `dir` (`<dir>/<vmid>.qga`), with
/// [`QemuGa::BLOCKED`] refused, once it accepts connections.
fn spawn_agent(dir: &Path, vmid: u32) -> (Child, PathBuf) {
    let socket = dir.join(format!("{vmid}.qga"));
    let state = dir.join(format!("qga-{vmid}-state"));
    std::fs::create_dir_all(&state).unwrap();
    let mut cmd = Command::new(QemuGa::binary());
    cmd.args(["-m", "unix-listen", "-p"])
        .arg(&socket)
        .arg("-t")
        .arg(&state)
        .arg("-f")
        .arg(dir.join(format!("qga-{vmid}.pid")))
        .arg("-l")
        .arg(dir.join(format!("qga-{vmid}.log")))
        .args(["-b", QemuGa::BLOCKED]);
    let child = spawn_serving("qemu-ga", "start qemu-ga", &mut cmd, &socket);
    (child, socket)
}

/// qemu-ga alone, as the agent of a VM whose QEMU runs elsewhere (e.g. the simulator in
/// the same directory); killed and reaped on drop.
pub struct Agent {
    /// The agent.
    pub child: Child,
    /// Its socket.
    pub socket: PathBuf,
}

impl Agent {
    /// The agent of VM `vmid` in `dir` (see [`QemuGa::BLOCKED`] for what it refuses).
    pub fn start_in(dir: &Path, vmid: u32) -> Agent {
        let (child, socket) = spawn_agent(dir, vmid);
        Agent { child, socket }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

impl Drop for QemuGa {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// The workspace's `pve-qmp-sim` debug build (`make test` builds the workspace first), or
/// `$PVE_QMP_SIM`. The simulator's own tests pass `env!("CARGO_BIN_EXE_pve-qmp-sim")`.
pub fn sim_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PVE_QMP_SIM") {
        return PathBuf::from(p);
    }
    let bin = target_dir().join("debug").join("pve-qmp-sim");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build -p pve-qmp-sim` (make test does)",
        bin.display()
    );
    bin
}

/// The workspace's target directory (`$CARGO_TARGET_DIR` or `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// `pve-qmp-sim` as a direct child on a socket in a temp dir; killed and reaped on drop.
pub struct Sim {
    /// The process.
    pub child: Child,
    /// Its QMP socket.
    pub socket: PathBuf,
    /// Its directory.
    pub dir: TempDir,
}

impl Sim {
    /// `sim_binary() --socket <dir>/sim.qmp ARGS`, once it accepts.
    pub fn start(args: &[&str]) -> Sim {
        Self::start_in(&sim_binary(), TempDir::new("sim"), args)
    }

    /// `binary --socket <dir>/sim.qmp ARGS` in a given directory (for args that name files
    /// in it), once it accepts.
    pub fn start_in(binary: &Path, dir: TempDir, args: &[&str]) -> Sim {
        let socket = dir.join("sim.qmp");
        Self::launch(binary, dir, socket, args)
    }

    /// The simulator as VM `vmid` of its directory: socket `<dir>/<vmid>.qmp` and
    /// `--pidfile <dir>/<vmid>.pid`, so a VM peer passes qemu-server's running check.
    pub fn start_vmid(vmid: u32, args: &[&str]) -> Sim {
        Self::start_vmid_in(TempDir::new("sim"), vmid, args)
    }

    /// [`start_vmid`](Self::start_vmid) in a given directory (a run directory the caller
    /// made before, e.g. for a VM a test starts later).
    pub fn start_vmid_in(dir: TempDir, vmid: u32, args: &[&str]) -> Sim {
        let (socket, pidfile) = vm_files(&dir, vmid);
        let pidfile_arg = pidfile.display().to_string();
        let mut all = vec!["--pidfile", pidfile_arg.as_str()];
        all.extend_from_slice(args);
        let sim = Self::launch(&sim_binary(), dir, socket, &all);
        wait_for("the simulator's pid file", &[&pidfile]);
        sim
    }

    fn launch(binary: &Path, dir: TempDir, socket: PathBuf, args: &[&str]) -> Sim {
        let mut cmd = Command::new(binary);
        cmd.arg("--socket").arg(&socket).args(args);
        let child = spawn_serving("pve-qmp-sim", "start pve-qmp-sim", &mut cmd, &socket);
        Sim { child, socket, dir }
    }

    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "simulator did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// A scripted QMP peer on a unix socket: the script gets the first accepted connection.
pub struct FakePeer {
    /// Its socket.
    pub socket: PathBuf,
    /// Its directory.
    pub dir: TempDir,
    thread: Option<JoinHandle<()>>,
}

impl FakePeer {
    /// Listens and runs `script` on the first client, in a thread.
    pub fn start<F>(script: F) -> FakePeer
    where
        F: FnOnce(UnixStream) + Send + 'static,
    {
        let dir = TempDir::new("fake");
        let socket = dir.join("fake.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let thread = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            script(stream);
        });
        FakePeer {
            socket,
            dir,
            thread: Some(thread),
        }
    }

    /// Listens, negotiates with the first client ([`negotiate`]) and runs `script` on it
    /// with the first request after `qmp_capabilities`, in a thread.
    pub fn on_first_command<F>(script: F) -> FakePeer
    where
        F: FnOnce(UnixStream, Value) + Send + 'static,
    {
        Self::start(|mut stream| {
            let mut requests = negotiate(&mut stream);
            let request = requests.next(&mut stream).expect("a command");
            script(stream, request);
        })
    }

    /// Waits for the script to end and propagates its panics (failed asserts).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            t.join().expect("fake peer script failed");
        }
    }
}

/// A greeting as pve-qemu sends it.
pub const GREETING: &[u8] =
    b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 11}, \"package\": \"pve-qemu-kvm_11.0.0-2\"}, \"capabilities\": []}}\r\n";

/// The requests a fake peer reads: one JSON object per line, as the library's clients
/// send them (each ends in `\n`).
#[derive(Default)]
pub struct Requests {
    buf: Vec<u8>,
}

impl Requests {
    /// Bytes received but not yet returned as a request.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// The next request, or `None` at the end of the stream.
    pub fn next(&mut self, stream: &mut UnixStream) -> Option<Value> {
        loop {
            if let Some(at) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=at).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Reads one request from a fake peer's stream.
pub fn read_request(stream: &mut UnixStream, requests: &mut Requests) -> Option<Value> {
    requests.next(stream)
}

/// Sends the greeting and answers `qmp_capabilities`, returning the reader for more.
pub fn negotiate(stream: &mut UnixStream) -> Requests {
    let mut requests = Requests::default();
    stream.write_all(GREETING).unwrap();
    let req = requests.next(stream).expect("qmp_capabilities");
    assert_eq!(req["execute"], "qmp_capabilities");
    reply(stream, &req, serde_json::json!({}));
    requests
}

/// Writes `{"return": value, "id": <id of req>}`.
pub fn reply(stream: &mut UnixStream, req: &Value, value: Value) {
    let msg = serde_json::json!({"return": value, "id": req["id"]});
    stream.write_all(format!("{msg}\r\n").as_bytes()).unwrap();
}

extern "C" fn noop_handler(_: libc::c_int) {}

/// Installs a no-op SIGUSR1 handler without SA_RESTART, as Perl's handlers behave.
pub fn install_sigusr1_handler() {
    // SAFETY: sigaction with a zeroed struct and a valid handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = noop_handler as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
}

/// Sends SIGUSR1 to the calling thread after `delay`, from a helper thread.
pub fn signal_me_after(delay: Duration) -> JoinHandle<()> {
    install_sigusr1_handler();
    // SAFETY: pthread_self is always valid.
    let me = unsafe { libc::pthread_self() } as usize;
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        // SAFETY: the target thread is alive: it waits for this signal.
        unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR1) };
    })
}

/// SIGUSR1 to this thread every 20 ms from `after` on, until `done` is set or the result is
/// dropped (which waits for the sender): a signal that lands outside a blocking call is
/// lost to a no-op handler, so a test that needs one to interrupt a wait sends until it did.
pub fn repeated_signals(
    after: Duration,
    done: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> impl Drop {
    let from = Instant::now() + after;
    signals_when(move || Instant::now() >= from, done)
}

/// [`repeated_signals`] from the moment `ready` (asked every 5 ms) first says so: for a
/// test whose signals must land in a phase it can observe (a request the simulator
/// recorded, a line logged), whatever the machine's speed.
pub fn signals_when(
    ready: impl Fn() -> bool + Send + 'static,
    done: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> impl Drop {
    use std::sync::atomic::Ordering;
    struct Stop(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        Option<JoinHandle<()>>,
    );
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
            if let Some(sender) = self.1.take() {
                sender.join().unwrap();
            }
        }
    }
    install_sigusr1_handler();
    // SAFETY: pthread_self is always valid; the thread outlives the sender (joined on drop).
    let me = unsafe { libc::pthread_self() } as usize;
    let flag = done.clone();
    let sender = std::thread::spawn(move || {
        while !ready() {
            if flag.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        while !flag.load(Ordering::SeqCst) {
            // SAFETY: the target thread is alive until the flag is set.
            unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR1) };
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    Stop(done.clone(), Some(sender))
}

/// Runs `call` while SIGUSR1 (no-op handler, no SA_RESTART) hits the calling thread after
/// `delay` ([`signal_me_after`]), and returns its result once the signal was sent.
pub fn with_signal_after<T>(delay: Duration, call: impl FnOnce() -> T) -> T {
    let sender = signal_me_after(delay);
    let result = call();
    sender.join().unwrap();
    result
}

/// The requests a simulator started with `--record <record>` received, in order (none if
/// it wrote no record).
pub fn recorded_requests(record: &Path) -> Vec<Value> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    format!("{:x}", h.finalize())
}

/// A sparse raw image of `size` bytes (no multiple of 64 KiB needed): pseudo-random data
/// (from `seed`) in some 1 MiB regions, written zeros in others, holes elsewhere, and the
/// marker `END-OF-DISK` in the last bytes.
pub fn make_disk(path: &Path, size: u64, seed: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut x = seed | 1;
    let mut random = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let mb = 1u64 << 20;
    let mut off = 0;
    while off + mb <= size {
        match (off / mb) % 3 {
            0 => f.write_all_at(&random(300_000), off + 4096).unwrap(),
            1 => f.write_all_at(&vec![0u8; 65536], off).unwrap(),
            _ => {}
        }
        off += mb;
    }
    f.write_all_at(b"END-OF-DISK", size - 11).unwrap();
}

/// xorshift64*, seeded: reproducible test data (incompressible bytes, random cases), never
/// anything secret.
pub struct Xorshift64Star(pub u64);

impl Xorshift64Star {
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fills `buf`, eight bytes (little-endian) of one draw at a time.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}
