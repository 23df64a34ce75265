//! The QMP framing and the client's message decoding (`src/qmp/framing.rs`,
//! `src/qmp/client.rs`).
//!
//! Input: one control byte, then the bytes a monitor sends. The control byte picks the
//! size limit (bits 0–1), how the bytes are cut into reads (bits 2–4) and how many events
//! the connection keeps (bits 5–7).
//!
//! Checked:
//! - the splitter finds the same objects and the same kind of error whether the bytes come
//!   at once or in reads of any size; every object is balanced-looking (`{` … `}` or `]`)
//!   and within the limit;
//! - the client's handling of each object (greeting first, then replies to `fuzz:<n>`,
//!   events, errors; ids given up as a signal would, whose late replies are dropped): an
//!   error that is no QEMU error kills the connection, and a protocol error quotes the
//!   peer's bytes escaped, in one line of bounded length; the event queue stays within its
//!   count and byte bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vzdump_qemu::error::Cause;
use vzdump_qemu::fuzzing::Decoder;
use vzdump_qemu::qmp::framing::{FrameError, JsonSplitter};
use vzdump_qemu::qmp::Options;
use vzdump_qemu::Error;

/// Size limits: the default, and small ones that mutations reach.
const LIMITS: [usize; 4] = [16 << 20, 4096, 256, 24];
/// The event queue's byte bound.
const EVENT_BYTES: usize = 512;

/// A deterministic sequence of read sizes from the control byte (xorshift).
struct Reads {
    state: u32,
    max: usize,
}

impl Reads {
    fn new(control: u8, len: usize) -> Reads {
        let pattern = (control >> 2) & 7;
        Reads {
            state: 0x9e37_79b9 ^ u32::from(control) ^ (len as u32).rotate_left(16),
            // 0: everything in one read; else reads of 1 to 2^pattern bytes.
            max: if pattern == 0 {
                usize::MAX
            } else {
                1 << pattern
            },
        }
    }

    fn next(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        if self.max == usize::MAX {
            usize::MAX
        } else {
            1 + self.state as usize % self.max
        }
    }

    /// Whether a signal "arrives" during this wait.
    fn signal(&mut self) -> bool {
        self.next();
        self.state.is_multiple_of(7)
    }
}

/// The objects of `stream` and the kind of error that ended the split, if any.
fn split(stream: &[u8], limit: usize, reads: &mut Reads) -> (Vec<Vec<u8>>, Option<bool>) {
    let mut splitter = JsonSplitter::new(limit);
    let mut objects = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = reads.next().min(rest.len());
        splitter.push(&rest[..n]);
        rest = &rest[n..];
        loop {
            match splitter.next_object() {
                Ok(Some(object)) => objects.push(object.to_vec()),
                Ok(None) => break,
                // The excerpt shows what was buffered, so only the kind must agree.
                Err(e) => return (objects, Some(matches!(e, FrameError::TooLarge { .. }))),
            }
        }
    }
    (objects, None)
}

fn check_protocol_error(error: &Error) {
    let Error::Command(command) = error else {
        panic!("a decoding failure that is no command failure: {error}");
    };
    if let Cause::Protocol { reason } = &command.cause {
        assert!(
            !reason.chars().any(char::is_control),
            "unescaped: {reason:?}"
        );
        // Fixed words, serde_json's message and excerpts of at most 64 bytes (4 each).
        assert!(reason.len() < 1024, "reason of {} bytes", reason.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let limit = LIMITS[usize::from(control & 3)];

    let (whole, whole_error) = split(stream, limit, &mut Reads::new(0, 0));
    let (pieces, pieces_error) = split(stream, limit, &mut Reads::new(control, stream.len()));
    assert_eq!(
        whole, pieces,
        "the objects depend on how the bytes were read"
    );
    assert_eq!(whole_error, pieces_error, "the error depends on the reads");
    for object in &whole {
        assert!(
            object.len() <= limit,
            "{} bytes passed a limit of {limit}",
            object.len()
        );
        assert_eq!(object[0], b'{');
        assert!(matches!(object.last(), Some(b'}' | b']')));
    }

    let options = Options {
        max_message_size: limit,
        event_capacity: usize::from(control >> 5),
        event_bytes: EVENT_BYTES,
        ..Options::default()
    };
    let mut decoder = Decoder::new(&options);
    let mut reads = Reads::new(control, stream.len());
    let mut sent = 1u32;
    let mut command = "qmp_capabilities";
    let mut rest = stream;
    'reads: while !rest.is_empty() {
        let n = reads.next().min(rest.len());
        decoder.receive(&rest[..n]);
        rest = &rest[n..];
        while let Some(outcome) = decoder.next(command, &format!("fuzz:{sent}")) {
            match outcome {
                Ok(None) => {}
                // The reply or QEMU's error for our command: the next command gets the next id.
                Ok(Some(reply)) => {
                    if let Err(e) = &reply {
                        assert!(
                            matches!(e, Error::Command(c) if matches!(c.cause, Cause::Qemu { .. }))
                        );
                    }
                    sent += 1;
                    command = "query-backup";
                    // As a caller would between commands.
                    let _ = decoder.take_events();
                }
                Err(e) => {
                    assert!(decoder.is_dead(), "the connection survived: {e}");
                    check_protocol_error(&e);
                    break 'reads;
                }
            }
            if decoder.is_dead() {
                break 'reads;
            }
            let (count, bytes) = decoder.queued();
            assert!(count <= options.event_capacity);
            assert!(
                count <= 1 || bytes <= EVENT_BYTES,
                "{count} events of {bytes} bytes"
            );
        }
        // A signal during the wait: the command is given up, its reply dropped if it comes.
        if reads.signal() {
            decoder.abandon(&format!("fuzz:{sent}"));
            sent += 1;
        }
    }
    let _ = decoder.greeting();
    let _ = decoder.events_dropped();
});
