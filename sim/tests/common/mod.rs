//! Test helpers: the simulator as a child process, a raw QMP client, temp dirs, images.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde_json::{json, Value};

#[allow(unused_imports)] // each test binary uses a different part
pub use testkit::{make_disk, TempDir, PATIENCE};

/// The simulator binary built with this package.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_pve-qmp-sim")
}

/// This package's simulator as a direct child (testkit's launcher), with raw clients.
pub struct Sim(pub testkit::Sim);

impl std::ops::Deref for Sim {
    type Target = testkit::Sim;
    fn deref(&self) -> &testkit::Sim {
        &self.0
    }
}

impl std::ops::DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut testkit::Sim {
        &mut self.0
    }
}

impl Sim {
    /// Starts `pve-qmp-sim --socket <dir>/sim.qmp ARGS` and waits until it accepts.
    pub fn start(args: &[&str]) -> Sim {
        Sim::start_in(TempDir::new("sim"), args)
    }

    /// Like [`Sim::start`] in a given directory (for args that name files in it).
    pub fn start_in(dir: TempDir, args: &[&str]) -> Sim {
        Sim(testkit::Sim::start_in(Path::new(binary()), dir, args))
    }

    /// A connected client that has read the greeting and negotiated.
    pub fn client(&self) -> Client {
        let mut c = self.raw_client();
        let greeting = c.message();
        assert!(greeting.get("QMP").is_some(), "{greeting}");
        c.ok("qmp_capabilities", json!({}));
        c
    }

    /// A connected client, nothing read or sent yet.
    pub fn raw_client(&self) -> Client {
        Client::connect(&self.socket)
    }

    /// Sends SIGTERM to the simulator (our own direct child).
    pub fn sigterm(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
    }
}

/// A raw QMP client: messages are read as CRLF-terminated lines.
pub struct Client {
    pub stream: UnixStream,
    buf: Vec<u8>,
    next_id: u64,
    /// Events seen while waiting for replies.
    pub events: Vec<Value>,
}

impl Client {
    pub fn connect(path: &Path) -> Client {
        let stream = UnixStream::connect(path).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
            next_id: 0,
            events: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends `bytes` in one sendmsg with `fd` as SCM_RIGHTS, as PVE::IPCC::sendfd does.
    pub fn send_with_fd(&mut self, bytes: &[u8], fd: &OwnedFd) {
        let fds = [fd.as_raw_fd()];
        let iov = [std::io::IoSlice::new(bytes)];
        let n = sendmsg::<()>(
            self.stream.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        assert_eq!(n, bytes.len());
    }

    /// The next line as sent (without CRLF); panics on EOF. Every line must end in CRLF.
    pub fn line(&mut self) -> Vec<u8> {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..p].to_vec();
                self.buf.drain(..p + 2);
                return line;
            }
            let mut chunk = [0u8; 65536];
            // EINTR without a handler: a socket with SO_RCVTIMEO returns it after the test
            // process was stopped and continued (signal(7)); seen now and then here.
            let n = match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => r.expect("read from simulator"),
            };
            assert!(
                n > 0,
                "EOF; pending {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next message, parsed.
    pub fn message(&mut self) -> Value {
        let line = self.line();
        serde_json::from_slice(&line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&line)))
    }

    /// The next message that is not an event (events are kept in `events`).
    pub fn reply(&mut self) -> Value {
        loop {
            let m = self.message();
            if m.get("event").is_some() {
                self.events.push(m);
            } else {
                return m;
            }
        }
    }

    /// Sends a command with a fresh numeric id and returns the whole reply (id checked).
    pub fn cmd(&mut self, execute: &str, args: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let req = json!({"execute": execute, "arguments": args, "id": id});
        self.send(req.to_string().as_bytes());
        let r = self.reply();
        assert_eq!(r["id"], json!(id), "{r}");
        r
    }

    /// A command that must succeed; returns its `return`.
    pub fn ok(&mut self, execute: &str, args: Value) -> Value {
        let r = self.cmd(execute, args);
        assert!(r.get("return").is_some(), "{execute}: {r}");
        r["return"].clone()
    }

    /// A command that must fail; returns (class, desc).
    pub fn err(&mut self, execute: &str, args: Value) -> (String, String) {
        let r = self.cmd(execute, args);
        let e = r.get("error").unwrap_or_else(|| panic!("{execute}: {r}"));
        (
            e["class"].as_str().unwrap().to_string(),
            e["desc"].as_str().unwrap().to_string(),
        )
    }

    /// `getfd NAME` with `fd` attached.
    pub fn getfd(&mut self, name: &str, fd: &OwnedFd) {
        let req = json!({"execute": "getfd", "arguments": {"fdname": name}, "id": "fd"});
        self.send_with_fd(req.to_string().as_bytes(), fd);
        let r = self.reply();
        assert_eq!(r, json!({"return": {}, "id": "fd"}));
    }

    /// A fresh [`PipeSink`] whose write end the simulator now holds as fd `backup`.
    pub fn backup_pipe(&mut self) -> PipeSink {
        let sink = PipeSink::new();
        self.getfd("backup", sink.fd());
        sink
    }

    /// A VMA backup to `/dev/fdname/backup` on a fresh [`Client::backup_pipe`]: the pipe
    /// and the job uuid `backup` returned.
    pub fn start_vma_backup(&mut self) -> (PipeSink, String) {
        let sink = self.backup_pipe();
        let r = self.ok("backup", json!({"backup-file": "/dev/fdname/backup"}));
        (sink, r["UUID"].as_str().unwrap().to_string())
    }

    /// Waits for the job to end, asserts that it is `done` and verifies the archive that
    /// `sink` got.
    pub fn expect_done(&mut self, sink: PipeSink) -> vma::ArchiveInfo {
        let st = self.wait_backup_end();
        assert_eq!(st["status"], "done", "{st}");
        vma::verify(&sink.finish()[..]).unwrap()
    }

    /// `backup` to `/dev/fdname/backup` (the fd `sink` holds) with the further arguments
    /// `args`, then [`Client::expect_done`].
    pub fn backup_done(&mut self, sink: PipeSink, args: Value) -> vma::ArchiveInfo {
        let mut all = json!({"backup-file": "/dev/fdname/backup"});
        all.as_object_mut()
            .unwrap()
            .extend(args.as_object().unwrap().clone());
        self.ok("backup", all);
        self.expect_done(sink)
    }

    /// Every `query-backup` reply until the job is no longer active, that last one
    /// included; `pause` between the polls besides [`Client::wait_backup`]'s.
    pub fn replies_to_end(&mut self, pause: Duration) -> Vec<Value> {
        let mut replies = Vec::new();
        self.wait_backup(|st| {
            replies.push(st.clone());
            std::thread::sleep(pause);
            st["status"] != "active"
        });
        replies
    }

    /// Polls `query-backup` until the job is no longer active.
    pub fn wait_backup_end(&mut self) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let st = self.ok("query-backup", json!({}));
            if st["status"] != "active" {
                return st;
            }
            assert!(Instant::now() < deadline, "backup did not end: {st}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls `query-backup` until `pred` holds.
    pub fn wait_backup(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let st = self.ok("query-backup", json!({}));
            if pred(&st) {
                return st;
            }
            assert!(Instant::now() < deadline, "condition not reached: {st}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A pipe whose read end is drained into a Vec by a thread.
pub struct PipeSink {
    pub write: Option<OwnedFd>,
    reader: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl PipeSink {
    pub fn new() -> PipeSink {
        let (r, w) = nix::unistd::pipe().unwrap();
        let reader = std::thread::spawn(move || {
            let mut f = std::fs::File::from(r);
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            v
        });
        PipeSink {
            write: Some(w),
            reader: Some(reader),
        }
    }

    /// The write end (to pass with getfd).
    pub fn fd(&self) -> &OwnedFd {
        self.write.as_ref().unwrap()
    }

    /// Closes our write end and returns everything read until EOF.
    pub fn finish(mut self) -> Vec<u8> {
        self.write = None;
        self.reader.take().unwrap().join().unwrap()
    }
}

/// QEMU's VMA zero-byte count of an image: 4096 per all-zero 4 KiB block of each
/// zero-padded 64 KiB cluster.
pub fn vma_zero_bytes(data: &[u8]) -> u64 {
    let mut zero = 0;
    for cluster in data.chunks(65536) {
        let mut padded = cluster.to_vec();
        padded.resize(65536, 0);
        zero += padded
            .chunks(4096)
            .filter(|b| b.iter().all(|&x| x == 0))
            .count() as u64
            * 4096;
    }
    zero
}

/// The data of a generated device, via `--dump-gen-disk`.
pub fn generated(name: &str, size: &str, dir: &TempDir) -> Vec<u8> {
    let path = dir.join(&format!("gen-{name}.raw"));
    let st = Command::new(binary())
        .arg("--dump-gen-disk")
        .arg(format!("{name}={size}"))
        .arg(&path)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(path).unwrap()
}
