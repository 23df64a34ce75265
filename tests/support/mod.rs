//! Test support: real QEMU as a direct child, scripted fake peers, temp dirs, signals.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use vzdump_qemu::qmp::framing::JsonSplitter;

/// A directory under /tmp removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let template = format!("/tmp/vzq-{tag}-XXXXXX\0");
        let mut buf = template.into_bytes();
        // SAFETY: NUL-terminated, writable template.
        let p = unsafe { libc::mkdtemp(buf.as_mut_ptr() as *mut libc::c_char) };
        assert!(!p.is_null(), "mkdtemp failed");
        buf.pop();
        TempDir(PathBuf::from(String::from_utf8(buf).unwrap()))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Real QEMU (`-machine none -S`) with a QMP unix socket, killed and reaped on drop.
pub struct Qemu {
    pub child: Child,
    pub socket: PathBuf,
    pub dir: TempDir,
}

impl Qemu {
    /// Starts QEMU and waits until its socket accepts connections. A missing QEMU fails
    /// the test: real-peer tests never skip.
    pub fn start() -> Qemu {
        let dir = TempDir::new("qemu");
        let socket = dir.path().join("q.sock");
        Self::launch(dir, socket, None, &["-S"])
    }

    /// QEMU as qemu-server runs VM `vmid`: socket `<dir>/<vmid>.qmp` and `-pidfile
    /// <dir>/<vmid>.pid`, so that a `Peer::vmid_in(vmid, dir)` passes qemu-server's running
    /// check; `extra` are more arguments (e.g. `-S` for a VM started paused).
    pub fn start_vm(vmid: u32, extra: &[&str]) -> Qemu {
        let dir = TempDir::new("vm");
        let socket = dir.path().join(format!("{vmid}.qmp"));
        let pidfile = dir.path().join(format!("{vmid}.pid"));
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
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("qemu-system-x86_64 must be installed (run scripts/install-deps.sh)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() || pidfile.as_ref().is_some_and(|p| !p.exists()) {
            assert!(Instant::now() < deadline, "QEMU socket did not appear");
            std::thread::sleep(Duration::from_millis(5));
        }
        Qemu { child, socket, dir }
    }

    /// SIGKILL and reap: the pid file and the socket file stay behind, as after a crash.
    pub fn kill_and_reap(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scripted QMP peer on a unix socket: the script gets each accepted connection.
pub struct FakePeer {
    pub socket: PathBuf,
    pub dir: TempDir,
    thread: Option<JoinHandle<()>>,
}

impl FakePeer {
    pub fn start<F>(script: F) -> FakePeer
    where
        F: FnOnce(UnixStream) + Send + 'static,
    {
        let dir = TempDir::new("fake");
        let socket = dir.path().join("fake.sock");
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

    /// Waits for the script to end and propagates its panics (failed asserts).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            t.join().expect("fake peer script failed");
        }
    }
}

pub const GREETING: &[u8] =
    b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 11}, \"package\": \"pve-qemu-kvm_11.0.0-2\"}, \"capabilities\": []}}\r\n";

/// Reads one JSON request from a fake peer's stream.
pub fn read_request(stream: &mut UnixStream, splitter: &mut JsonSplitter) -> Option<Value> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(obj) = splitter.next_object().unwrap() {
            return Some(serde_json::from_slice(obj).unwrap());
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        splitter.push(&buf[..n]);
    }
}

/// Sends the greeting and answers `qmp_capabilities`, returning the splitter for more.
pub fn negotiate(stream: &mut UnixStream) -> JsonSplitter {
    let mut sp = JsonSplitter::new(1 << 20);
    stream.write_all(GREETING).unwrap();
    let req = read_request(stream, &mut sp).expect("qmp_capabilities");
    assert_eq!(req["execute"], "qmp_capabilities");
    reply(stream, &req, serde_json::json!({}));
    sp
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

/// Path of the built simulator binary (`make test` builds the workspace first).
pub fn sim_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PVE_QMP_SIM") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let bin = target.join("debug").join("pve-qmp-sim");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build -p pve-qmp-sim` (make test does)",
        bin.display()
    );
    bin
}

/// `pve-qmp-sim` as a direct child on a socket in a temp dir; killed and reaped on drop.
pub struct Sim {
    pub child: Child,
    pub socket: PathBuf,
    pub dir: TempDir,
}

impl Sim {
    /// Starts the simulator with extra `args` (`--socket` is added) and waits for its socket.
    pub fn start(args: &[&str]) -> Sim {
        let dir = TempDir::new("sim");
        let socket = dir.path().join("sim.qmp");
        Self::start_at(dir, socket, args)
    }

    /// Like [`Sim::start`], as VM `vmid` of its directory: socket `<dir>/<vmid>.qmp` and
    /// `--pidfile <dir>/<vmid>.pid`, so a vmid peer passes qemu-server's running check.
    pub fn start_vmid(vmid: u32, args: &[&str]) -> Sim {
        let dir = TempDir::new("sim");
        let socket = dir.path().join(format!("{vmid}.qmp"));
        let pidfile = dir.path().join(format!("{vmid}.pid")).display().to_string();
        let mut all = vec!["--pidfile", pidfile.as_str()];
        all.extend_from_slice(args);
        let sim = Self::start_at(dir, socket, &all);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&pidfile).exists() {
            assert!(
                Instant::now() < deadline,
                "simulator pid file did not appear"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        sim
    }

    fn start_at(dir: TempDir, socket: PathBuf, args: &[&str]) -> Sim {
        let child = Command::new(sim_binary())
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pve-qmp-sim");
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "simulator socket did not come up"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // That probe connection was served and closed; the simulator accepts the next.
        Sim { child, socket, dir }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    format!("{:x}", h.finalize())
}

/// A sparse raw image with random data in some regions, zeros written in others, holes
/// elsewhere, and a marker in the last bytes; `size` need not be a multiple of 64 KiB.
pub fn make_disk(path: &Path, size: u64, seed: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut x = seed | 1;
    let mut rand_block = |len: usize| {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>()
    };
    let mb = 1024 * 1024;
    let mut off = 0;
    while off + mb <= size {
        match (off / mb) % 4 {
            0 => f
                .write_all_at(&rand_block(mb as usize / 2), off + 4096)
                .unwrap(),
            2 => f.write_all_at(&vec![0u8; 65536], off).unwrap(),
            _ => {}
        }
        off += 4 * mb;
    }
    let tail = b"END-OF-DISK";
    f.write_all_at(tail, size - tail.len() as u64).unwrap();
}

/// Real `qemu-ga` as a direct child on `<dir>/100.qga`, with every command that could change
/// the host (freeze, shutdown, suspend, exec, file writes, ...) blocked, next to the VM's
/// QEMU (`<dir>/100.qmp`, `<dir>/100.pid`) that qemu-server's running check wants; both
/// killed and reaped on drop. A missing qemu-ga fails the test: real-peer tests never skip.
pub struct QemuGa {
    pub child: Child,
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

    /// Starts the VM's QEMU and the agent, and waits until the agent's socket accepts
    /// connections.
    pub fn start() -> QemuGa {
        let vm = Qemu::start_vm(Self::VMID, &["-S"]);
        let dir = vm.dir.path();
        let socket = dir.join(format!("{}.qga", Self::VMID));
        let state = dir.join("state");
        std::fs::create_dir(&state).unwrap();
        let child = Command::new(Self::binary())
            .args(["-m", "unix-listen", "-p"])
            .arg(&socket)
            .arg("-t")
            .arg(&state)
            .arg("-f")
            .arg(dir.join("qga.pid"))
            .arg("-l")
            .arg(dir.join("qga.log"))
            .args(["-b", Self::BLOCKED])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start qemu-ga");
        let mut ga = QemuGa { child, socket, vm };
        let deadline = Instant::now() + Duration::from_secs(10);
        // The probe connection is closed at once; the agent then accepts the next client.
        while UnixStream::connect(&ga.socket).is_err() {
            assert!(
                ga.child.try_wait().unwrap().is_none(),
                "qemu-ga exited at start"
            );
            assert!(Instant::now() < deadline, "qemu-ga socket did not come up");
            std::thread::sleep(Duration::from_millis(5));
        }
        ga
    }
}

impl Drop for QemuGa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
