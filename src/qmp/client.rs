//! The connection: connect, handshake, execute, events.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, ControlMessage, MsgFlags, UnixAddr};
use serde_json::{Map, Value};

use super::framing::{excerpt, JsonSplitter};
use super::{connect_socket, timeouts, ErrorClass, Options, Peer};
use crate::error::{Error, Result};
use crate::wait::{poll_fd, Readiness, WaitError};

/// Per-process command counter; ids are `<pid>:<n>` like qemu-server's.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What QEMU said on connect.
#[derive(Debug, Clone, PartialEq)]
pub struct Greeting {
    /// `{"qemu": {"major", "minor", "micro"}, "package"}`, as `query-version` returns it.
    pub version: Value,
    /// Offered capabilities (`oob` on stock QEMU, none on Proxmox's).
    pub capabilities: Vec<String>,
}

/// An asynchronous event QEMU sent between replies.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event name, e.g. `STOP`.
    pub name: String,
    /// Its `data` member (`null` if absent).
    pub data: Value,
    /// `timestamp` as (seconds, microseconds); (-1, -1) if QEMU could not read the clock.
    pub timestamp: (i64, i64),
}

/// An open QMP connection. Close it as soon as the operation is done: QEMU serves no other
/// client while it is open. Not `Sync`; use it from one thread.
pub struct Qmp {
    fd: OwnedFd,
    peer: Peer,
    options: Options,
    splitter: JsonSplitter,
    greeting: Greeting,
    events: VecDeque<Event>,
    events_dropped: u64,
    /// Set once the connection is unusable; later calls fail with it.
    dead: Option<String>,
    owner_pid: u32,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("peer", &self.peer)
            .field("fd", &self.fd.as_raw_fd())
            .field("dead", &self.dead)
            .finish_non_exhaustive()
    }
}

/// Runs one command on its own connection (connect, negotiate, execute, close), as
/// qemu-server's `mon_cmd` does. `timeout` defaults to `options.command_timeout`, else to
/// qemu-server's value for the command.
pub fn command(
    peer: &Peer,
    command: &str,
    arguments: Option<Value>,
    timeout: Option<Duration>,
    options: &Options,
) -> Result<Value> {
    let mut qmp = Qmp::connect(peer, options)?;
    qmp.execute(command, arguments, timeout)
}

impl Qmp {
    /// Connects, reads the greeting and negotiates capabilities.
    pub fn connect(peer: &Peer, options: &Options) -> Result<Qmp> {
        let fd = connect_socket(peer, Instant::now() + options.connect_timeout)?;
        let mut qmp = Qmp {
            fd,
            peer: peer.clone(),
            options: options.clone(),
            splitter: JsonSplitter::new(options.max_message_size),
            greeting: Greeting {
                version: Value::Null,
                capabilities: Vec::new(),
            },
            events: VecDeque::new(),
            events_dropped: 0,
            dead: None,
            owner_pid: std::process::id(),
        };
        qmp.handshake()?;
        Ok(qmp)
    }

    fn handshake(&mut self) -> Result<()> {
        let timeout = self.options.handshake_timeout;
        let deadline = Instant::now() + timeout;
        let greeting = match self.read_message(deadline, "greeting", timeout) {
            Ok(v) => v,
            Err(Error::Disconnected { peer, reason }) => {
                return Err(Error::Handshake {
                    peer,
                    reason: format!("no greeting: {reason}"),
                })
            }
            Err(e) => return Err(e),
        };
        self.greeting = parse_greeting(&greeting).ok_or_else(|| Error::Handshake {
            peer: self.peer.clone(),
            reason: format!(
                "greeting not understood: '{}'",
                excerpt(greeting.to_string().as_bytes())
            ),
        })?;
        match self.call("qmp_capabilities", None, None, deadline, timeout) {
            Ok(_) => Ok(()),
            Err(Error::Command { desc, .. }) => Err(Error::Handshake {
                peer: self.peer.clone(),
                reason: format!("qmp_capabilities failed: {desc}"),
            }),
            Err(e) => Err(e),
        }
    }

    /// The greeting QEMU sent.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// The peer this connection talks to.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Runs `command` and returns its `return` value. `arguments` must be a JSON object.
    /// `timeout` defaults to the options' `command_timeout`, else to qemu-server's value for
    /// the command ([`timeouts::for_command`]).
    pub fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        timeout: Option<Duration>,
    ) -> Result<Value> {
        let timeout = self.timeout_for(command, timeout);
        self.call(command, arguments, None, Instant::now() + timeout, timeout)
    }

    /// Like [`execute`](Self::execute), with `fd` attached by SCM_RIGHTS to the same
    /// `sendmsg` as the command's bytes (for `getfd` and `add-fd`). The caller keeps `fd`;
    /// QEMU receives its own duplicate.
    pub fn execute_with_fd(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        fd: BorrowedFd<'_>,
        timeout: Option<Duration>,
    ) -> Result<Value> {
        let timeout = timeout.unwrap_or_else(|| timeouts::for_command(command));
        self.call(
            command,
            arguments,
            Some(fd),
            Instant::now() + timeout,
            timeout,
        )
    }

    /// Like [`execute`](Self::execute) with an absolute deadline shared by several commands
    /// (the VMA start's single budget); `budget` is what a timeout error reports.
    pub fn execute_until(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        fd: Option<BorrowedFd<'_>>,
        deadline: Instant,
        budget: Duration,
    ) -> Result<Value> {
        self.call(command, arguments, fd, deadline, budget)
    }

    /// The caller's timeout, else the options' override, else qemu-server's table.
    fn timeout_for(&self, command: &str, timeout: Option<Duration>) -> Duration {
        timeout
            .or(self.options.command_timeout)
            .unwrap_or_else(|| timeouts::for_command(command))
    }

    /// Takes the events received so far, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }

    /// How many events were dropped because the queue was full.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    fn usable(&self) -> Result<()> {
        if self.owner_pid != std::process::id() {
            return Err(Error::InvalidArgument(format!(
                "connection to {} was opened in process {}; connect again after fork",
                self.peer, self.owner_pid
            )));
        }
        match &self.dead {
            Some(reason) => Err(Error::Disconnected {
                peer: self.peer.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn call(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        fd: Option<BorrowedFd<'_>>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Value> {
        self.usable()?;
        let id = format!(
            "{}:{}",
            self.owner_pid,
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let mut request = Map::new();
        request.insert("execute".into(), Value::String(command.into()));
        match arguments {
            None => {}
            Some(Value::Object(args)) => {
                request.insert("arguments".into(), Value::Object(args));
            }
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                    "arguments of QMP command '{command}' must be a JSON object, got {other}"
                )))
            }
        }
        request.insert("id".into(), Value::String(id.clone()));
        let mut bytes = Value::Object(request).to_string().into_bytes();
        bytes.extend_from_slice(b"\r\n");
        self.send(&bytes, fd, deadline, command, timeout)?;
        loop {
            let message = self.read_message(deadline, command, timeout)?;
            if let Some(reply) = self.route(message, &id, command)? {
                return reply;
            }
        }
    }

    /// Files an incoming message: events are queued, foreign replies dropped; returns the
    /// outcome when the message is the reply to `id`.
    fn route(&mut self, message: Value, id: &str, command: &str) -> Result<Option<Result<Value>>> {
        let Value::Object(mut obj) = message else {
            return Err(self.kill_protocol(format!(
                "expected a JSON object, got '{}'",
                excerpt(message.to_string().as_bytes())
            )));
        };
        if let Some(Value::String(name)) = obj.get("event") {
            let name = name.clone();
            self.push_event(name, &mut obj);
            return Ok(None);
        }
        if obj.contains_key("QMP") {
            return Ok(None);
        }
        match obj.get("id") {
            Some(Value::String(got)) if got == id => {}
            Some(_) => return Ok(None), // a late reply to an interrupted command
            None => {
                let what = match obj.get("error") {
                    Some(err) => format!("QEMU could not parse a request: {}", error_desc(err)),
                    None => "reply without id".to_string(),
                };
                return Err(self.kill_protocol(what));
            }
        }
        if let Some(value) = obj.remove("return") {
            return Ok(Some(Ok(value)));
        }
        if let Some(err) = obj.get("error") {
            let class = err
                .get("class")
                .and_then(Value::as_str)
                .map(ErrorClass::from_name);
            if let Some(class) = class {
                return Ok(Some(Err(Error::Command {
                    peer: self.peer.clone(),
                    command: command.to_string(),
                    class,
                    desc: error_desc(err),
                })));
            }
        }
        Err(self.kill_protocol(format!(
            "reply to '{command}' has neither 'return' nor a valid 'error': '{}'",
            excerpt(Value::Object(obj).to_string().as_bytes())
        )))
    }

    fn push_event(&mut self, name: String, obj: &mut Map<String, Value>) {
        let ts = obj.get("timestamp");
        let part = |k: &str| {
            ts.and_then(|t| t.get(k))
                .and_then(Value::as_i64)
                .unwrap_or(-1)
        };
        let timestamp = (part("seconds"), part("microseconds"));
        let event = Event {
            name,
            data: obj.remove("data").unwrap_or(Value::Null),
            timestamp,
        };
        if self.options.event_capacity == 0 {
            self.events_dropped += 1;
            return;
        }
        if self.events.len() >= self.options.event_capacity {
            self.events.pop_front();
            self.events_dropped += 1;
        }
        self.events.push_back(event);
    }

    fn kill(&mut self, reason: String) {
        if self.dead.is_none() {
            self.dead = Some(reason);
            // Wake QEMU's side at once; the fd itself is closed on drop.
            let _ = socket::shutdown(self.fd.as_raw_fd(), socket::Shutdown::Both);
        }
    }

    fn kill_protocol(&mut self, reason: String) -> Error {
        self.kill(format!("protocol error: {reason}"));
        Error::Protocol {
            peer: self.peer.clone(),
            reason,
        }
    }

    fn disconnected(&mut self, reason: String) -> Error {
        self.kill(reason);
        Error::Disconnected {
            peer: self.peer.clone(),
            reason: self.dead.clone().unwrap_or_default(),
        }
    }

    fn timed_out(&mut self, command: &str, timeout: Duration) -> Error {
        self.kill(format!("closed after '{command}' timed out"));
        Error::Timeout {
            peer: self.peer.clone(),
            command: command.to_string(),
            timeout,
        }
    }

    fn interrupted(&self, command: &str) -> Error {
        Error::Interrupted {
            what: format!("{} command '{command}'", self.peer),
        }
    }

    /// Waits for `events` on the socket, mapping the outcomes to errors.
    fn wait(
        &mut self,
        events: libc::c_short,
        deadline: Instant,
        command: &str,
        timeout: Duration,
    ) -> Result<()> {
        match poll_fd(self.fd.as_fd(), events, deadline) {
            Ok(Readiness::Ready) => Ok(()),
            Ok(Readiness::TimedOut) => Err(self.timed_out(command, timeout)),
            Err(WaitError::Interrupted) => Err(self.interrupted(command)),
            Err(WaitError::Io(e)) => Err(self.disconnected(format!("poll failed: {e}"))),
        }
    }

    fn send(
        &mut self,
        bytes: &[u8],
        fd: Option<BorrowedFd<'_>>,
        deadline: Instant,
        command: &str,
        timeout: Duration,
    ) -> Result<()> {
        let mut sent = 0;
        while sent < bytes.len() {
            let iov = [IoSlice::new(&bytes[sent..])];
            let raw_fds;
            let cmsgs: &[ControlMessage] = match fd {
                // The fd travels with the first chunk only.
                Some(fd) if sent == 0 => {
                    raw_fds = [fd.as_raw_fd()];
                    &[ControlMessage::ScmRights(&raw_fds)]
                }
                _ => &[],
            };
            let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
            match socket::sendmsg::<UnixAddr>(self.fd.as_raw_fd(), &iov, cmsgs, flags, None) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => {
                    if let Err(e) = self.wait(libc::POLLOUT, deadline, command, timeout) {
                        if sent > 0 && e.is_interrupted() {
                            // Half a command on the wire: the stream cannot be resynchronised.
                            return Err(
                                self.disconnected(format!("interrupted while sending '{command}'"))
                            );
                        }
                        return Err(e);
                    }
                }
                Err(Errno::EINTR) if sent == 0 => return Err(self.interrupted(command)),
                Err(Errno::EINTR) => {}
                Err(Errno::EBADF) if fd.is_some() && sent == 0 => {
                    return Err(Error::InvalidArgument(format!(
                        "file descriptor for '{command}' is not open"
                    )))
                }
                Err(e) => {
                    return Err(
                        self.disconnected(format!("sending '{command}' failed: {}", e.desc()))
                    )
                }
            }
        }
        Ok(())
    }

    /// Reads until one whole JSON message is available and parses it.
    fn read_message(
        &mut self,
        deadline: Instant,
        command: &str,
        timeout: Duration,
    ) -> Result<Value> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.splitter.next_object() {
                Ok(Some(raw)) => {
                    return match serde_json::from_slice::<Value>(raw) {
                        Ok(value) => Ok(value),
                        Err(e) => {
                            let reason = format!("invalid JSON ({e}): '{}'", excerpt(raw));
                            Err(self.kill_protocol(reason))
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => return Err(self.kill_protocol(e.to_string())),
            }
            self.wait(libc::POLLIN, deadline, command, timeout)?;
            match nix::unistd::read(&self.fd, &mut chunk) {
                Ok(0) => {
                    let reason = if self.splitter.pending().is_empty() {
                        "connection closed by peer".to_string()
                    } else {
                        format!(
                            "connection closed by peer in the middle of a message: '{}'",
                            excerpt(self.splitter.pending())
                        )
                    };
                    return Err(self.disconnected(reason));
                }
                Ok(n) => self.splitter.push(&chunk[..n]),
                Err(Errno::EAGAIN) => {}
                Err(Errno::EINTR) => return Err(self.interrupted(command)),
                Err(Errno::ECONNRESET) => {
                    return Err(self.disconnected("connection reset by peer".to_string()))
                }
                Err(e) => return Err(self.disconnected(format!("read failed: {}", e.desc()))),
            }
        }
    }
}

fn error_desc(err: &Value) -> String {
    err.get("desc")
        .and_then(Value::as_str)
        .unwrap_or("unknown QEMU error")
        .to_string()
}

fn parse_greeting(value: &Value) -> Option<Greeting> {
    let qmp = value.get("QMP")?;
    let version = qmp.get("version")?.clone();
    if !version.is_object() {
        return None;
    }
    let capabilities = qmp
        .get("capabilities")?
        .as_array()?
        .iter()
        .map(|c| c.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()?;
    Some(Greeting {
        version,
        capabilities,
    })
}
