//! One guest-agent operation on its own connection: connect, sync, command, close.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Options;
use crate::error::{Cause, CommandError, Error, Result, Stage};
use crate::qmp::framing::{self, excerpt, FrameError, JsonSplitter};
use crate::qmp::{timeouts, ErrorClass, Peer};
use crate::transport::{Stream, StreamError};

/// The byte that resets the agent's parser (sent by us) and marks the sync reply (sent by
/// the agent).
const SENTINEL: u8 = 0xFF;

/// Runs `command` on the agent behind `peer` and returns its `return` value, after
/// qemu-server's checks ([`Peer::check_reachable`]: the VM runs, the socket file exists).
/// `arguments` must be a JSON object. `timeout` defaults to `options.command_timeout`,
/// else to qemu-server's value for the command; it covers connect, sync and command
/// together.
///
/// `guest-shutdown` and `guest-suspend-*` send no reply when they succeed (the guest goes
/// away first): for them, end of file (or a reset) or the timeout after the command was sent
/// count as success and give `null`; an error reply still fails. If the sync already fails, the
/// command was not sent.
///
/// On [`Error::Interrupted`] the connection is closed; whether the command was sent is
/// unknown, and the next operation resynchronises.
pub fn command(
    peer: &Peer,
    command: &str,
    arguments: Option<Value>,
    timeout: Option<Duration>,
    options: &Options,
) -> Result<Value> {
    let request = framing::request("QGA", command, arguments, None, b"\n")?;
    let timeout = timeouts::resolve(command, timeout, options.command_timeout);
    peer.check_reachable(options.style)?;
    let mut session = Session::connect(peer, command, timeout, options)?;
    let mut splitter = session.sync(random_id())?;
    session.stage = Stage::Command;
    session.send(&request)?;
    match session.reply(&mut splitter) {
        Err(e) if sends_no_reply(command) && went_away(&e) => Ok(Value::Null),
        other => other,
    }
}

/// A timeout or a closed connection: what a guest that shuts down or suspends leaves.
fn went_away(e: &Error) -> bool {
    e.command_error()
        .is_some_and(|c| matches!(c.cause, Cause::Timeout { .. } | Cause::Closed { .. }))
}

/// Checks that the agent answers `guest-ping` within `options.ping_timeout`.
pub fn ping(peer: &Peer, options: &Options) -> Result<()> {
    command(
        peer,
        "guest-ping",
        None,
        Some(options.ping_timeout),
        options,
    )
    .map(drop)
}

/// Commands after which the guest stops or suspends instead of replying.
fn sends_no_reply(command: &str) -> bool {
    command == "guest-shutdown" || command.starts_with("guest-suspend-")
}

/// A sync id that an earlier client cannot have used: random, non-negative, and exact in
/// a JSON double (below 2^53) for agents that parse numbers as such.
fn random_id() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: writes at most buf.len() bytes into buf; GRND_NONBLOCK never waits.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    let random = if n == buf.len() as isize {
        u64::from_ne_bytes(buf)
    } else {
        // No entropy yet (early boot): pid and clock still differ between clients.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (u64::from(std::process::id()) << 40)
    };
    random & ((1 << 53) - 1)
}

/// The connection of one operation; closed on drop.
struct Session<'a> {
    stream: Stream,
    peer: &'a Peer,
    command: &'a str,
    deadline: Instant,
    timeout: Duration,
    limit: usize,
    options: &'a Options,
    /// Sync (handshake) until the command is sent.
    stage: Stage,
}

impl<'a> Session<'a> {
    fn connect(
        peer: &'a Peer,
        command: &'a str,
        timeout: Duration,
        options: &'a Options,
    ) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        let connect_deadline = deadline.min(Instant::now() + options.connect_timeout);
        Ok(Session {
            stream: Stream::connect(
                peer,
                connect_deadline,
                command,
                options.style,
                options.on_signal.clone(),
            )?,
            peer,
            command,
            deadline,
            timeout,
            limit: options.max_message_size,
            options,
            stage: Stage::Handshake,
        })
    }

    fn failure(&self, cause: Cause) -> Error {
        Error::from(CommandError {
            peer: self.peer.clone(),
            command: self.command.to_string(),
            stage: self.stage,
            cause,
            style: self.options.style,
            bare: false,
        })
    }

    fn protocol(&self, reason: String) -> Error {
        self.failure(Cause::Protocol { reason })
    }

    fn disconnected(&self, detail: String) -> Error {
        self.failure(Cause::Closed { detail })
    }

    fn interrupted(&self) -> Error {
        Error::Interrupted {
            what: format!("{} command '{}'", self.peer, self.command),
        }
    }

    /// A failure of the stream, as a failure of the command.
    fn stream_failure(&self, e: StreamError) -> Error {
        match e {
            StreamError::TimedOut => self.failure(Cause::Timeout {
                after: self.timeout,
            }),
            StreamError::Interrupted => self.interrupted(),
            StreamError::Eof => self.disconnected("end of file".into()),
            StreamError::Closed(detail) => self.disconnected(detail),
            // No descriptor is passed to the agent.
            StreamError::BadFd => self.disconnected("bad file descriptor".into()),
        }
    }

    fn send(&self, bytes: &[u8]) -> Result<()> {
        self.stream
            .send(bytes, None, self.deadline)
            .map_err(|e| self.stream_failure(e))
    }

    /// Reads what has arrived (at least one byte) into `buf`.
    fn read<'b>(&self, buf: &'b mut [u8]) -> Result<&'b [u8]> {
        match self.stream.read(buf, self.deadline) {
            Ok(n) => Ok(&buf[..n]),
            Err(e) => Err(self.stream_failure(e)),
        }
    }

    /// Flushes the agent's parser and synchronises on `id`; returns the splitter holding
    /// whatever followed our sync reply.
    fn sync(&self, id: u64) -> Result<JsonSplitter> {
        let mut request = vec![SENTINEL];
        request.extend_from_slice(
            format!("{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{id}}}}}\n")
                .as_bytes(),
        );
        self.send(&request)?;
        // Before the sentinel come the agent's reply to our flush byte (a parse error) and
        // leftovers of earlier clients; after it, a sync reply, which may be a stale one.
        let mut chunk = vec![0u8; 64 * 1024];
        let mut splitter: Option<JsonSplitter> = None;
        loop {
            let mut sp = match splitter.take() {
                Some(sp) => sp,
                None => {
                    let data = self.read(&mut chunk)?;
                    splitter = self.after_sentinel(data);
                    continue;
                }
            };
            // Owned, so that the sentinel check below may look at the buffer.
            match sp.next_object().map(|o| o.map(<[u8]>::to_vec)) {
                Ok(Some(raw)) => {
                    if self.parse(&raw)?.get("return").and_then(Value::as_u64) == Some(id) {
                        return Ok(sp);
                    }
                    // A stale sync reply: hunt for the next sentinel.
                    splitter = self.after_sentinel(sp.pending());
                }
                Ok(None) => {
                    sp.push(self.read(&mut chunk)?);
                    splitter = Some(sp);
                }
                // Two sentinels in a row: the first one's reply never came.
                Err(FrameError::Garbage { .. }) if sp.pending().first() == Some(&SENTINEL) => {
                    splitter = Some(self.splitter_with(&sp.pending()[1..]));
                }
                Err(e) => return Err(self.protocol(format!("after the sync sentinel: {e}"))),
            }
        }
    }

    /// A splitter fed with what follows the first sentinel in `data`, if there is one.
    fn after_sentinel(&self, data: &[u8]) -> Option<JsonSplitter> {
        let at = data.iter().position(|&b| b == SENTINEL)?;
        Some(self.splitter_with(&data[at + 1..]))
    }

    fn splitter_with(&self, data: &[u8]) -> JsonSplitter {
        let mut sp = JsonSplitter::new(self.limit);
        sp.push(data);
        sp
    }

    /// Reads the reply to the command: the next object after our sync reply.
    fn reply(&self, splitter: &mut JsonSplitter) -> Result<Value> {
        let mut chunk = vec![0u8; 64 * 1024];
        let raw = loop {
            match splitter.next_object() {
                Ok(Some(raw)) => break raw.to_vec(),
                Ok(None) => {
                    let data = self.read(&mut chunk)?;
                    splitter.push(data);
                }
                Err(e) => return Err(self.protocol(e.to_string())),
            }
        };
        let Value::Object(mut obj) = self.parse(&raw)? else {
            return Err(self.protocol(format!("expected a JSON object: '{}'", excerpt(&raw))));
        };
        if let Some(value) = obj.remove("return") {
            return Ok(value);
        }
        let error = obj.get("error");
        if let Some(class) = error.and_then(|e| e.get("class")).and_then(Value::as_str) {
            let desc = error
                .and_then(|e| e.get("desc"))
                .and_then(Value::as_str)
                .unwrap_or("unknown agent error");
            return Err(self.failure(Cause::Qemu {
                class: ErrorClass::from_name(class),
                desc: desc.strip_suffix('\n').unwrap_or(desc).to_string(),
            }));
        }
        Err(self.protocol(format!(
            "reply to '{}' has neither 'return' nor a valid 'error': '{}'",
            self.command,
            excerpt(&raw)
        )))
    }

    fn parse(&self, raw: &[u8]) -> Result<Value> {
        serde_json::from_slice(raw)
            .map_err(|e| self.protocol(format!("invalid JSON ({e}): '{}'", excerpt(raw))))
    }
}
