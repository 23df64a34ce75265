//! The connection: connect, handshake, execute, events.

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::framing::{self, excerpt, JsonSplitter};
use super::{timeouts, ErrorClass, Options, Peer};
use crate::error::{Cause, CommandError, Error, Result, Stage};
use crate::transport::{Stream, StreamError};
use crate::wait::SignalCheck;

/// How many ids of interrupted commands a connection remembers, to drop their late
/// replies; older ones count as wrong ids.
const ABANDONED_IDS: usize = 16;

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
    stream: Stream,
    peer: Peer,
    options: Options,
    splitter: JsonSplitter,
    greeting: Greeting,
    events: VecDeque<Event>,
    /// The received size of each kept event, in order, and their sum.
    event_sizes: VecDeque<usize>,
    events_size: usize,
    /// The received size of the message read last.
    last_message_size: usize,
    events_dropped: u64,
    /// Ids of commands a signal interrupted after they were sent: their replies may still
    /// come and are dropped.
    abandoned: VecDeque<String>,
    /// Set once the connection is unusable; later calls fail with it.
    dead: Option<Cause>,
    /// Set while the greeting and `qmp_capabilities` run.
    in_handshake: bool,
    /// The caller's command while connecting for it, named in handshake failures.
    for_command: String,
    owner_pid: u32,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("peer", &self.peer)
            .field("fd", &self.stream.raw_fd())
            .field("dead", &self.dead)
            .finish_non_exhaustive()
    }
}

/// Runs one command on its own connection (connect, negotiate, execute, close), as
/// qemu-server's `mon_cmd` does, after its checks ([`Peer::check_reachable`]). `timeout`
/// defaults to `options.command_timeout`, else to qemu-server's value for the command, and
/// bounds the whole operation: connect, handshake and command share its deadline. Every
/// failure names `command`, the handshake's included, as qemu-server's do.
pub fn command(
    peer: &Peer,
    command: &str,
    arguments: Option<Value>,
    timeout: Option<Duration>,
    options: &Options,
) -> Result<Value> {
    one_shot(peer, command, arguments, None, timeout, options)
}

/// Like [`command`], with `fd` passed by SCM_RIGHTS in the command's own `sendmsg` (for
/// `getfd` and `add-fd` as one operation: QEMU keeps the fd under its name past the
/// connection).
pub fn command_with_fd(
    peer: &Peer,
    command: &str,
    arguments: Option<Value>,
    fd: BorrowedFd<'_>,
    timeout: Option<Duration>,
    options: &Options,
) -> Result<Value> {
    one_shot(peer, command, arguments, Some(fd), timeout, options)
}

/// [`command`] and [`command_with_fd`]: connect, negotiate, execute, close, within the
/// command's one deadline.
fn one_shot(
    peer: &Peer,
    command: &str,
    arguments: Option<Value>,
    fd: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
    options: &Options,
) -> Result<Value> {
    let budget = one_shot_budget(command, timeout, options);
    let mut qmp = connect_one_shot(peer, command, budget, options)?;
    qmp.execute_until(command, arguments, fd, budget.0, budget.1)
}

/// Like [`command`], for a step that must run to its end once decided (the cancel, resume
/// and power-state check after a failed backup): signals that arrive meanwhile neither
/// stop it nor cut its waits short ([`SignalCheck::never`]); the command's timeout bounds it
/// all. A C caller's handlers ran when the signals came, Perl's deferred ones run after the
/// call: their effect is for after it.
pub fn command_to_the_end(
    peer: &Peer,
    command: &str,
    arguments: Option<Value>,
    timeout: Option<Duration>,
    options: &Options,
) -> Result<Value> {
    let options = Options {
        on_signal: Some(SignalCheck::never()),
        ..options.clone()
    };
    one_shot(peer, command, arguments, None, timeout, &options)
}

/// Like [`command`], asking `cancelled` at least every [`CANCEL_CHECK`] while the reply
/// is awaited (a `query-backup` may take qemu-server's 10 minutes): when it says stop, the
/// call fails with [`Error::Cancelled`] and the connection is closed.
pub fn command_watched(
    peer: &Peer,
    command: &str,
    arguments: Option<Value>,
    timeout: Option<Duration>,
    options: &Options,
    cancelled: &mut dyn FnMut() -> bool,
) -> Result<Value> {
    let budget = one_shot_budget(command, timeout, options);
    let mut qmp = connect_one_shot(peer, command, budget, options)?;
    qmp.execute_watched(
        command,
        arguments,
        None,
        budget.0,
        budget.1,
        Some(cancelled),
    )
}

/// The longest a watched command waits between two cancel checks.
pub const CANCEL_CHECK: Duration = Duration::from_millis(100);

/// The deadline of a one-shot command and the timeout it stands for.
fn one_shot_budget(
    command: &str,
    timeout: Option<Duration>,
    options: &Options,
) -> (Instant, Duration) {
    let limit = timeouts::resolve(command, timeout, options.command_timeout);
    (Instant::now() + limit, limit)
}

/// qemu-server's checks, then a connection for `command` whose connect and handshake end
/// by the command's deadline too.
fn connect_one_shot(
    peer: &Peer,
    command: &str,
    budget: (Instant, Duration),
    options: &Options,
) -> Result<Qmp> {
    peer.check_reachable(options.style)?;
    Qmp::connect_within(peer, options, command, Some(budget))
}

impl Qmp {
    /// Connects, reads the greeting and negotiates capabilities. Failures are reported
    /// for the command `qmp_capabilities`. No running check: this is
    /// `PVE::QMPClient`, not `mon_cmd`.
    pub fn connect(peer: &Peer, options: &Options) -> Result<Qmp> {
        Self::connect_for(peer, options, "qmp_capabilities")
    }

    /// Like [`connect`](Self::connect), naming `command` (the one the connection is made
    /// for) in failures, as qemu-server's queue does.
    pub(crate) fn connect_for(peer: &Peer, options: &Options, command: &str) -> Result<Qmp> {
        Self::connect_within(peer, options, command, None)
    }

    /// Like [`connect_for`](Self::connect_for), with the connect and the handshake also
    /// ending by `budget`'s deadline (the whole operation's, reported as its duration when
    /// it is what ran out): one budget covers connect, handshake and commands.
    pub(crate) fn connect_within(
        peer: &Peer,
        options: &Options,
        command: &str,
        budget: Option<(Instant, Duration)>,
    ) -> Result<Qmp> {
        let cap = |own: Instant| budget.map_or(own, |(deadline, _)| own.min(deadline));
        let stream = Stream::connect(
            peer,
            cap(Instant::now() + options.connect_timeout),
            command,
            options.style,
            options.on_signal.clone(),
        )?;
        let mut qmp = Qmp::over(stream, peer, options, command);
        let own = Instant::now() + options.handshake_timeout;
        let (deadline, timeout) = match budget {
            Some((deadline, budget)) if deadline < own => (deadline, budget),
            _ => (own, options.handshake_timeout),
        };
        qmp.handshake(deadline, timeout)?;
        qmp.in_handshake = false;
        Ok(qmp)
    }

    /// A connection over `stream`, before its handshake, made for `command`.
    fn over(stream: Stream, peer: &Peer, options: &Options, command: &str) -> Qmp {
        Qmp {
            stream,
            peer: peer.clone(),
            options: options.clone(),
            splitter: JsonSplitter::new(options.max_message_size),
            greeting: Greeting {
                version: Value::Null,
                capabilities: Vec::new(),
            },
            events: VecDeque::new(),
            event_sizes: VecDeque::new(),
            events_size: 0,
            last_message_size: 0,
            events_dropped: 0,
            abandoned: VecDeque::new(),
            dead: None,
            in_handshake: true,
            for_command: command.to_string(),
            owner_pid: std::process::id(),
        }
    }

    /// The greeting and `qmp_capabilities` by `deadline`; `timeout` is what a timeout
    /// error reports.
    fn handshake(&mut self, deadline: Instant, timeout: Duration) -> Result<()> {
        let greeting = self.read_message(deadline, "greeting", timeout)?;
        self.accept_greeting(&greeting)?;
        self.execute_until("qmp_capabilities", None, None, deadline, timeout)
            .map(drop)
    }

    /// Takes the first message as the greeting; anything else kills the connection.
    fn accept_greeting(&mut self, greeting: &Value) -> Result<()> {
        self.greeting = match parse_greeting(greeting) {
            Some(g) => g,
            None => {
                let reason = format!(
                    "greeting not understood: '{}'",
                    excerpt(greeting.to_string().as_bytes())
                );
                return Err(self.kill_protocol("greeting", reason));
            }
        };
        Ok(())
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
        self.execute_until(command, arguments, None, Instant::now() + timeout, timeout)
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
        let timeout = self.timeout_for(command, timeout);
        self.execute_until(
            command,
            arguments,
            Some(fd),
            Instant::now() + timeout,
            timeout,
        )
    }

    /// The caller's timeout, else the options' override, else qemu-server's table.
    fn timeout_for(&self, command: &str, timeout: Option<Duration>) -> Duration {
        timeouts::resolve(command, timeout, self.options.command_timeout)
    }

    /// Takes the events received so far, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.event_sizes.clear();
        self.events_size = 0;
        self.events.drain(..).collect()
    }

    /// How many events were dropped because the queue was full.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// A failure of `command` at the current stage.
    fn failure(&self, command: &str, stage: Stage, cause: Cause) -> Error {
        let (command, stage) = if self.in_handshake {
            (self.for_command.as_str(), Stage::Handshake)
        } else {
            (command, stage)
        };
        Error::from(CommandError {
            peer: self.peer.clone(),
            command: command.to_string(),
            stage,
            cause,
            style: self.options.style,
            bare: false,
        })
    }

    fn usable(&self, command: &str) -> Result<()> {
        if self.owner_pid != std::process::id() {
            return Err(Error::InvalidArgument(format!(
                "connection to {} was opened in process {}; connect again after fork",
                self.peer, self.owner_pid
            )));
        }
        match &self.dead {
            // Nothing of this command was sent.
            Some(cause) => Err(self.failure(command, Stage::Connect, cause.clone())),
            None => Ok(()),
        }
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
        self.execute_watched(command, arguments, fd, deadline, budget, None)
    }

    /// [`execute_until`](Self::execute_until) asking `cancelled` (if any) at least every
    /// [`CANCEL_CHECK`] while the reply is awaited: when it says stop, the reply is
    /// abandoned (dropped by id if it comes) and the call fails with [`Error::Cancelled`].
    fn execute_watched(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        fd: Option<BorrowedFd<'_>>,
        deadline: Instant,
        budget: Duration,
        mut cancelled: Option<&mut dyn FnMut() -> bool>,
    ) -> Result<Value> {
        self.usable(command)?;
        let id = format!(
            "{}:{}",
            self.owner_pid,
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let bytes = framing::request("QMP", command, arguments, Some(&id), b"\r\n")?;
        self.send(&bytes, fd, deadline, command, budget)?;
        loop {
            if let Some(cancelled) = cancelled.as_mut() {
                // Nothing buffered but the separators: wait in slices, asking between them.
                if self.splitter.pending().iter().all(u8::is_ascii_whitespace) {
                    let slice = deadline.min(Instant::now() + CANCEL_CHECK);
                    match self.stream.wait_readable(slice) {
                        Ok(false) if Instant::now() < deadline => {
                            if cancelled() {
                                self.abandon(&id);
                                return Err(Error::Cancelled);
                            }
                            continue;
                        }
                        // Ready, or the deadline: the read below reports it.
                        Ok(_) => {}
                        Err(e) => {
                            if e == StreamError::Interrupted {
                                self.abandon(&id);
                            }
                            return Err(self.stream_failure(command, budget, e));
                        }
                    }
                }
            }
            let message = match self.read_message(deadline, command, budget) {
                Err(e) if e.is_interrupted() => {
                    self.abandon(&id);
                    return Err(e);
                }
                other => other?,
            };
            if let Some(reply) = self.route(message, &id, command)? {
                return reply;
            }
        }
    }

    /// Remembers the id of a sent command whose reply nobody waits for any more.
    fn abandon(&mut self, id: &str) {
        if self.abandoned.len() == ABANDONED_IDS {
            self.abandoned.pop_front();
        }
        self.abandoned.push_back(id.to_string());
    }

    /// True (once) for the late reply of an abandoned command.
    fn is_abandoned(&mut self, id: Option<&Value>) -> bool {
        let Some(Value::String(id)) = id else {
            return false;
        };
        match self.abandoned.iter().position(|a| a == id) {
            Some(at) => {
                self.abandoned.remove(at);
                true
            }
            None => false,
        }
    }

    /// Files an incoming message in the order qemu-server's `mux_input` checks it: greetings
    /// skipped, error objects fail the command (whatever their id), events queued, then
    /// the id must be ours. Returns the outcome once the message is the reply to `id`.
    fn route(&mut self, message: Value, id: &str, command: &str) -> Result<Option<Result<Value>>> {
        let Value::Object(mut obj) = message else {
            let reason = format!(
                "expected a JSON object, got '{}'",
                excerpt(message.to_string().as_bytes())
            );
            return Err(self.kill_protocol(command, reason));
        };
        if obj.contains_key("QMP") {
            return Ok(None);
        }
        if let Some(desc) = obj.get("error").and_then(|e| e.get("desc")) {
            if self.is_abandoned(obj.get("id")) {
                return Ok(None);
            }
            let desc = chomp(match desc {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            // qemu-server skips this one text of old QEMU's non-blocking migration.
            if desc.contains("Connection can not be completed immediately") {
                return Ok(None);
            }
            let class = obj["error"]
                .get("class")
                .and_then(Value::as_str)
                .unwrap_or("");
            let cause = Cause::Qemu {
                class: ErrorClass::from_name(class),
                desc,
            };
            if obj.get("id").and_then(Value::as_str) != Some(id) {
                // Not the reply to our command: the stream is out of step.
                self.kill(cause.clone());
            }
            return Ok(Some(Err(self.failure(command, Stage::Command, cause))));
        }
        if let Some(Value::String(name)) = obj.get("event") {
            let name = name.clone();
            self.push_event(name, &mut obj);
            return Ok(None);
        }
        match obj.get("id") {
            Some(Value::String(got)) if got == id => {}
            got if !got.is_some_and(super::perl_true) => {
                self.kill(Cause::MissingId);
                return Err(self.failure(command, Stage::Command, Cause::MissingId));
            }
            got if self.is_abandoned(got) => return Ok(None),
            got => {
                let cause = Cause::WrongId {
                    got: perl_text(got.unwrap_or(&Value::Null)),
                    expected: id.to_string(),
                };
                self.kill(cause.clone());
                return Err(self.failure(command, Stage::Command, cause));
            }
        }
        if let Some(value) = obj.remove("return") {
            return Ok(Some(Ok(value)));
        }
        let reason = format!(
            "reply to '{command}' has neither 'return' nor 'error': '{}'",
            excerpt(Value::Object(obj).to_string().as_bytes())
        );
        Err(self.kill_protocol(command, reason))
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
        let size = self.last_message_size;
        // Bounded in count and in bytes: a peer sending large events between replies
        // cannot make the queue grow without limit.
        while !self.events.is_empty()
            && (self.events.len() >= self.options.event_capacity
                || self.events_size + size > self.options.event_bytes)
        {
            self.events.pop_front();
            self.events_size -= self.event_sizes.pop_front().unwrap_or(0);
            self.events_dropped += 1;
        }
        self.events.push_back(event);
        self.event_sizes.push_back(size);
        self.events_size += size;
    }

    /// Marks the connection dead with its first cause (kept for later calls).
    fn kill(&mut self, cause: Cause) {
        if self.dead.is_none() {
            self.dead = Some(cause);
            // Wake QEMU's side at once; the fd itself is closed on drop.
            self.stream.shutdown();
        }
    }

    fn kill_protocol(&mut self, command: &str, reason: String) -> Error {
        let cause = Cause::Protocol { reason };
        self.kill(cause.clone());
        self.failure(command, Stage::Command, cause)
    }

    fn disconnected(&mut self, command: &str, detail: String) -> Error {
        let cause = Cause::Closed { detail };
        self.kill(cause.clone());
        self.failure(command, Stage::Command, cause)
    }

    fn timed_out(&mut self, command: &str, timeout: Duration) -> Error {
        let cause = Cause::Timeout { after: timeout };
        self.kill(cause.clone());
        self.failure(command, Stage::Command, cause)
    }

    fn interrupted(&self, command: &str) -> Error {
        let command = if self.in_handshake {
            &self.for_command
        } else {
            command
        };
        Error::Interrupted {
            what: format!("{} command '{command}'", self.peer),
        }
    }

    /// A failure of the stream, as a failure of `command` (whose timeout was `timeout`).
    fn stream_failure(&mut self, command: &str, timeout: Duration, e: StreamError) -> Error {
        match e {
            StreamError::TimedOut => self.timed_out(command, timeout),
            StreamError::Interrupted => self.interrupted(command),
            StreamError::Eof if self.splitter.pending().is_empty() => {
                self.disconnected(command, "end of file".into())
            }
            StreamError::Eof => {
                let detail = format!(
                    "end of file in the middle of a message: '{}'",
                    excerpt(self.splitter.pending())
                );
                self.disconnected(command, detail)
            }
            StreamError::Closed(detail) => self.disconnected(command, detail),
            StreamError::BadFd => {
                Error::InvalidArgument(format!("file descriptor for '{command}' is not open"))
            }
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
        self.stream
            .send(bytes, fd, deadline)
            .map_err(|e| self.stream_failure(command, timeout, e))
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
            if let Some(message) = self.buffered_message(command)? {
                return Ok(message);
            }
            match self.stream.read(&mut chunk, deadline) {
                Ok(n) => self.splitter.push(&chunk[..n]),
                Err(e) => return Err(self.stream_failure(command, timeout, e)),
            }
        }
    }

    /// The next whole message among the bytes received, parsed; `None` until one has
    /// arrived. A framing or JSON error kills the connection.
    fn buffered_message(&mut self, command: &str) -> Result<Option<Value>> {
        match self.splitter.next_object() {
            Ok(Some(raw)) => {
                self.last_message_size = raw.len();
                match serde_json::from_slice::<Value>(raw) {
                    Ok(value) => Ok(Some(value)),
                    Err(e) => {
                        let reason = format!("invalid JSON ({e}): '{}'", excerpt(raw));
                        Err(self.kill_protocol(command, reason))
                    }
                }
            }
            Ok(None) => Ok(None),
            Err(e) => Err(self.kill_protocol(command, e.to_string())),
        }
    }
}

/// Perl's `chomp`: one trailing newline off.
fn chomp(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
    }
    s
}

/// A decoded JSON value as Perl interpolates it into a message.
fn perl_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "1".into(),
        other => other.to_string(),
    }
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

/// The client's decoding without a peer, for the fuzz targets (`fuzz/`, built with
/// `--cfg fuzzing`): bytes go into the splitter as the socket's would, and each whole
/// message is handled as [`Qmp::execute`] handles it while it waits for its reply (the
/// first one as the greeting, as the handshake does).
#[cfg(fuzzing)]
pub mod fuzzing {
    use super::*;

    /// A connection to nobody (one end of a socket pair) in its handshake.
    pub struct Decoder {
        qmp: Qmp,
        greeted: bool,
    }

    impl Decoder {
        /// A connection before its greeting, with `options`' limits.
        pub fn new(options: &Options) -> Decoder {
            let peer = Peer::vmid(100);
            Decoder {
                qmp: Qmp::over(Stream::unconnected(), &peer, options, "qmp_capabilities"),
                greeted: false,
            }
        }

        /// Bytes as the socket delivered them.
        pub fn receive(&mut self, bytes: &[u8]) {
            self.qmp.splitter.push(bytes);
        }

        /// The next whole message received, handled as the wait for the reply to `id`
        /// of `command` handles it: `None` until one is buffered; then the greeting's
        /// outcome, or what the client's routing makes of it (`Ok(None)`: not the reply).
        #[allow(clippy::type_complexity)]
        pub fn next(&mut self, command: &str, id: &str) -> Option<Result<Option<Result<Value>>>> {
            let message = match self.qmp.buffered_message(command) {
                Ok(Some(message)) => message,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            if !self.greeted {
                self.greeted = true;
                return Some(self.qmp.accept_greeting(&message).map(|()| None));
            }
            let routed = self.qmp.route(message, id, command);
            if matches!(routed, Ok(Some(Ok(_)))) {
                self.qmp.in_handshake = false;
            }
            Some(routed)
        }

        /// Gives up waiting for the reply to `id`, as a signal during the wait does.
        pub fn abandon(&mut self, id: &str) {
            self.qmp.abandon(id);
        }

        /// Whether the connection is dead (every later command fails at once).
        pub fn is_dead(&self) -> bool {
            self.qmp.dead.is_some()
        }

        /// The events kept and the bytes they took when received.
        pub fn queued(&self) -> (usize, usize) {
            (self.qmp.events.len(), self.qmp.events_size)
        }

        /// See [`Qmp::take_events`].
        pub fn take_events(&mut self) -> Vec<Event> {
            self.qmp.take_events()
        }

        /// See [`Qmp::events_dropped`].
        pub fn events_dropped(&self) -> u64 {
            self.qmp.events_dropped
        }

        /// See [`Qmp::greeting`].
        pub fn greeting(&self) -> &Greeting {
            &self.qmp.greeting
        }
    }
}
