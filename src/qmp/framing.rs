//! Splitting a byte stream into JSON objects, and the request object both clients send.
//!
//! QEMU ends each message with CRLF, but pretty-printed monitors spread one object over
//! several lines, and Proxmox's Perl client sends requests with no separator at all. So we
//! split on balanced top-level objects (string- and escape-aware), which covers CRLF, LF,
//! pretty output and back-to-back objects alike. Each byte is scanned once.

use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::error::Error;

/// The request `{"execute": command, "arguments": arguments, "id": id}` of the QMP and the
/// guest-agent client, without the members that are `None`, followed by `end` (`\r\n`,
/// `\n`). `arguments` must be a JSON object; `protocol` (`QMP`, `QGA`) names the client in
/// the error. The arguments may hold a password: the bytes are written once into a buffer
/// of their final size (no growth leaves copies in freed memory), wiped when dropped, and
/// the arguments' strings are wiped before they are freed.
pub(crate) fn request(
    protocol: &str,
    command: &str,
    arguments: Option<Value>,
    id: Option<&str>,
    end: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut request = Map::new();
    request.insert("execute".into(), Value::String(command.into()));
    match arguments {
        None => {}
        Some(args @ Value::Object(_)) => {
            request.insert("arguments".into(), args);
        }
        Some(other) => {
            return Err(Error::InvalidArgument(format!(
                "arguments of {protocol} command '{command}' must be a JSON object, got {}",
                // The kind only: the value may hold a password.
                crate::loose::kind_of(&other)
            )));
        }
    }
    if let Some(id) = id {
        request.insert("id".into(), Value::String(id.into()));
    }
    let mut request = Value::Object(request);
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, &request).expect("a JSON value always serialises");
    let mut bytes = Zeroizing::new(Vec::with_capacity(counter.0 + end.len()));
    serde_json::to_writer(&mut *bytes, &request).expect("a JSON value always serialises");
    bytes.extend_from_slice(end);
    wipe(&mut request);
    Ok(bytes)
}

/// Counts the bytes written to it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Zeroes every string of `value` (keys included) before it is freed.
fn wipe(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => {
            for (_, v) in map.iter_mut() {
                wipe(v);
            }
        }
        _ => {}
    }
}

/// Why the byte stream cannot be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// One object grew past the size limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Something other than whitespace stood between objects.
    Garbage {
        /// A short, escaped excerpt of the offending bytes.
        excerpt: String,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { limit } => {
                write!(f, "message exceeds the size limit of {limit} bytes")
            }
            FrameError::Garbage { excerpt } => {
                write!(f, "unexpected data outside a JSON object: '{excerpt}'")
            }
        }
    }
}

/// Escapes up to 64 bytes for an error message: printable ASCII as is (quotes too, for
/// readability), backslash and control characters escaped, other bytes as `\xNN`.
pub fn excerpt(bytes: &[u8]) -> String {
    use std::fmt::Write;
    const MAX: usize = 64;
    let mut out = String::new();
    for &b in &bytes[..bytes.len().min(MAX)] {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if bytes.len() > MAX {
        out.push_str("...");
    }
    out
}

/// Incremental splitter: feed bytes with [`push`](Self::push), take whole objects with
/// [`next_object`](Self::next_object).
#[derive(Debug)]
pub struct JsonSplitter {
    buf: Vec<u8>,
    /// Start of the unconsumed part of `buf`.
    start: usize,
    /// How far `buf` has been scanned.
    scan: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    limit: usize,
}

impl JsonSplitter {
    /// A splitter that refuses objects larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        JsonSplitter {
            buf: Vec::new(),
            start: 0,
            scan: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            limit,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.scan = 0;
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.scan -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as an object.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The next complete object, if one has arrived.
    pub fn next_object(&mut self) -> Result<Option<&[u8]>, FrameError> {
        while self.scan < self.buf.len() {
            let b = self.buf[self.scan];
            if self.depth == 0 {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => {
                        self.scan += 1;
                        self.start = self.scan;
                        continue;
                    }
                    b'{' => {}
                    _ => {
                        return Err(FrameError::Garbage {
                            excerpt: excerpt(&self.buf[self.scan..]),
                        })
                    }
                }
            }
            self.scan += 1;
            // Before the byte is taken: an object must not end one byte past the limit.
            if self.scan - self.start > self.limit {
                return Err(FrameError::TooLarge { limit: self.limit });
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            let begin = self.start;
                            self.start = self.scan;
                            return Ok(Some(&self.buf[begin..self.scan]));
                        }
                    }
                    _ => {}
                }
            }
        }
        if self.buf.len() - self.start > self.limit {
            return Err(FrameError::TooLarge { limit: self.limit });
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_leave_out_what_is_absent_and_refuse_non_object_arguments() {
        let parse = |b: Zeroizing<Vec<u8>>| {
            assert!(b.ends_with(b"\r\n"));
            assert_eq!(b.len(), b.capacity(), "written once at its final size");
            serde_json::from_slice::<Value>(&b).unwrap()
        };
        let plain = request("QGA", "guest-ping", None, None, b"\r\n").unwrap();
        assert_eq!(parse(plain), serde_json::json!({"execute": "guest-ping"}));
        let args = Some(serde_json::json!({"fdname": "x"}));
        let full = request("QMP", "getfd", args, Some("7:1"), b"\r\n").unwrap();
        assert_eq!(
            parse(full),
            serde_json::json!({"execute": "getfd", "arguments": {"fdname": "x"}, "id": "7:1"})
        );
        let secret = serde_json::json!(["password", "hunter2"]);
        let error = request("QMP", "backup", Some(secret), None, b"\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "arguments of QMP command 'backup' must be a JSON object, got an array"
        );
    }

    fn all(s: &mut JsonSplitter) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(o) = s.next_object().unwrap() {
            out.push(String::from_utf8(o.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn splits_crlf_lf_and_back_to_back() {
        let mut s = JsonSplitter::new(1024);
        s.push(b"{\"a\":1}\r\n{\"b\":2}\n{\"c\":{\"d\":[1,{}]}}{\"e\":3}");
        assert_eq!(
            all(&mut s),
            [
                "{\"a\":1}",
                "{\"b\":2}",
                "{\"c\":{\"d\":[1,{}]}}",
                "{\"e\":3}"
            ]
        );
    }

    #[test]
    fn braces_inside_strings_and_escapes_do_not_count() {
        let mut s = JsonSplitter::new(1024);
        s.push(br#"{"desc":"a } \" { b","x":"\\"}"#);
        assert_eq!(all(&mut s), [r#"{"desc":"a } \" { b","x":"\\"}"#]);
    }

    #[test]
    fn byte_by_byte_and_pretty_printed() {
        let text = b"{\r\n  \"return\": {\r\n    \"x\": \"}\"\r\n  }\r\n}\r\n{\"id\":1}";
        let mut s = JsonSplitter::new(1024);
        let mut got = Vec::new();
        for b in text {
            s.push(&[*b]);
            got.extend(all(&mut s));
        }
        assert_eq!(got.len(), 2);
        assert!(got[0].starts_with('{') && got[0].ends_with('}'));
        assert_eq!(got[1], "{\"id\":1}");
    }

    #[test]
    fn garbage_between_objects_is_an_error() {
        let mut s = JsonSplitter::new(1024);
        s.push(b"{}\r\nhello\x01");
        assert_eq!(s.next_object().unwrap(), Some(&b"{}"[..]));
        assert_eq!(
            s.next_object(),
            Err(FrameError::Garbage {
                excerpt: "hello\\x01".into()
            })
        );
    }

    #[test]
    fn oversized_object_is_an_error_even_unfinished() {
        let mut s = JsonSplitter::new(16);
        s.push(b"{\"a\":\"0123456789abcdef\"");
        assert_eq!(s.next_object(), Err(FrameError::TooLarge { limit: 16 }));
        let mut s = JsonSplitter::new(16);
        s.push(b"{\"a\":1}");
        assert!(s.next_object().unwrap().is_some());
    }

    /// Found by the `qmp_framing` fuzz target: an object of `limit + 1` bytes passed.
    #[test]
    fn the_limit_is_the_largest_object_at_once_and_byte_by_byte() {
        let at_limit = b"{\"a\":\"01234567\"}";
        assert_eq!(at_limit.len(), 16);
        let over = b"{\"a\":\"012345678\"}";
        for chunk in [usize::MAX, 1] {
            let feed = |bytes: &[u8]| {
                let mut s = JsonSplitter::new(16);
                let mut got = Ok(None);
                for piece in bytes.chunks(chunk.min(bytes.len())) {
                    s.push(piece);
                    got = s.next_object().map(|o| o.map(<[u8]>::to_vec));
                    if got != Ok(None) {
                        break;
                    }
                }
                got
            };
            assert_eq!(feed(at_limit), Ok(Some(at_limit.to_vec())));
            assert_eq!(feed(over), Err(FrameError::TooLarge { limit: 16 }));
        }
    }

    #[test]
    fn keeps_partial_object_pending() {
        let mut s = JsonSplitter::new(1024);
        s.push(b"{\"a\":1}{\"b\"");
        assert!(s.next_object().unwrap().is_some());
        assert_eq!(s.next_object().unwrap(), None);
        assert_eq!(s.pending(), b"{\"b\"");
        s.push(b":2}");
        assert_eq!(s.next_object().unwrap(), Some(&b"{\"b\":2}"[..]));
    }
}
