//! The connected client's output: replies from the monitor thread and events from any
//! thread, written whole under one lock so they never interleave.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::qjson::{obj, J};

/// Where messages for the current client go.
#[derive(Default)]
pub struct Output {
    inner: Mutex<Peer>,
}

#[derive(Default)]
struct Peer {
    stream: Option<UnixStream>,
    /// Events are delivered only after `qmp_capabilities`.
    negotiated: bool,
}

impl Output {
    /// Directs output to a newly accepted client (not negotiated yet).
    pub fn attach(&self, stream: UnixStream) {
        *self.peer() = Peer {
            stream: Some(stream),
            negotiated: false,
        };
    }

    /// Drops the current client; later events go nowhere.
    pub fn detach(&self) {
        *self.peer() = Peer::default();
    }

    /// Marks the client as negotiated: events are delivered from now on.
    pub fn set_negotiated(&self) {
        self.peer().negotiated = true;
    }

    /// Sends one message (CRLF appended); fails if there is no client or the write failed.
    pub fn send(&self, message: &J) -> std::io::Result<()> {
        self.send_raw(format!("{}\r\n", message.encode()).as_bytes())
    }

    /// Sends bytes as they are.
    pub fn send_raw(&self, bytes: &[u8]) -> std::io::Result<()> {
        match self.peer().stream.as_mut() {
            Some(s) => s.write_all(bytes),
            None => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// Sends an event to a negotiated client; dropped otherwise, as QEMU drops events for
    /// a monitor without a client.
    pub fn event(&self, name: &str, data: Option<J>) {
        let mut peer = self.peer();
        if !peer.negotiated {
            return;
        }
        if let Some(s) = peer.stream.as_mut() {
            // A failed write shows up on the monitor thread's next read or reply.
            let _ = s.write_all(format!("{}\r\n", event_message(name, data).encode()).as_bytes());
        }
    }

    fn peer(&self) -> std::sync::MutexGuard<'_, Peer> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `{"timestamp": {...}, "event": NAME, "data": DATA}` in QEMU's insertion order.
fn event_message(name: &str, data: Option<J>) -> J {
    let (seconds, micros) = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_micros())),
        Err(_) => (-1, -1),
    };
    let mut m = obj([
        ("event", name.into()),
        (
            "timestamp",
            obj([("seconds", seconds.into()), ("microseconds", micros.into())]),
        ),
    ]);
    if let Some(d) = data {
        m.push("data", d);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_layout() {
        let text = event_message("STOP", None).encode();
        assert!(text.starts_with(r#"{"timestamp": {"seconds": "#), "{text}");
        assert!(text.ends_with(r#"}, "event": "STOP"}"#), "{text}");
        let text = event_message("X", Some(obj([("a", J::UInt(1))]))).encode();
        assert!(
            text.ends_with(r#""event": "X", "data": {"a": 1}}"#),
            "{text}"
        );
    }
}
