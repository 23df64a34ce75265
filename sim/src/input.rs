//! Client input as QEMU's JSON lexer and parser see it: complete objects, and parse errors
//! with QEMU's texts.
//!
//! [`JsonSplitter`] finds the objects. Around it, this module handles what QEMU handles
//! too (texts checked against QEMU 10.0.2): anything else at top level (`[1]`, `"x"`, `12`
//! are `QMP input must be a JSON object`, `]` is `expecting value`, `foo` is
//! `invalid keyword 'foo'`, other bytes are `stray '<c>'`), and bytes that reset QEMU's
//! lexer anywhere, even inside an object (control characters other than tab, CR and LF,
//! and 0xFE/0xFF): the partial object is dropped and `stray` reported.

use std::collections::{HashSet, VecDeque};

use serde_json::Value;
use vzdump_qemu::qmp::framing::{FrameError, JsonSplitter};

/// QEMU's limit for one message (`MAX_TOKEN_SIZE`).
const LIMIT: usize = 64 << 20;

/// Not an object: QEMU parsed a value, but requests must be objects.
pub const NOT_AN_OBJECT: &str = "QMP input must be a JSON object";

/// What the client sent, one item at a time.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// The bytes of one complete object.
    Object(Vec<u8>),
    /// The description of an error reply without id.
    Error(String),
}

enum Segment {
    Bytes(Vec<u8>),
    /// A byte that resets the lexer.
    Reset(u8),
}

/// Incremental input of one connection.
pub struct Input {
    splitter: JsonSplitter,
    segments: VecDeque<Segment>,
    ready: VecDeque<Item>,
}

impl Default for Input {
    fn default() -> Self {
        Input {
            splitter: JsonSplitter::new(LIMIT),
            segments: VecDeque::new(),
            ready: VecDeque::new(),
        }
    }
}

fn is_reset(b: u8) -> bool {
    (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b >= 0xfe
}

impl Input {
    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        let mut start = 0;
        for (i, &b) in data.iter().enumerate() {
            if is_reset(b) {
                if i > start {
                    self.segments
                        .push_back(Segment::Bytes(data[start..i].to_vec()));
                }
                self.segments.push_back(Segment::Reset(b));
                start = i + 1;
            }
        }
        if start < data.len() {
            self.segments
                .push_back(Segment::Bytes(data[start..].to_vec()));
        }
    }

    fn restart(&mut self, rest: &[u8]) {
        self.splitter = JsonSplitter::new(LIMIT);
        self.splitter.push(rest);
    }

    /// The next complete item, if any.
    pub fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            match self.splitter.next_object() {
                Ok(Some(o)) => return Some(Item::Object(o.to_vec())),
                Ok(None) => {}
                Err(FrameError::Garbage { .. }) => {
                    let pending = self.splitter.pending().to_vec();
                    if let Some((len, desc)) = classify(&pending, false) {
                        self.restart(&pending[len..]);
                        return Some(Item::Error(desc));
                    }
                    if pending.len() > LIMIT {
                        self.restart(&[]);
                        return Some(Item::Error("JSON token size limit exceeded".into()));
                    }
                }
                Err(FrameError::TooLarge { .. }) => {
                    self.restart(&[]);
                    return Some(Item::Error("JSON token size limit exceeded".into()));
                }
            }
            match self.segments.pop_front()? {
                Segment::Bytes(b) => self.splitter.push(&b),
                Segment::Reset(b) => {
                    let pending = self.splitter.pending().to_vec();
                    // A bare token cut short by the reset byte ends there.
                    if pending.first().is_some_and(|&c| c != b'{') {
                        if let Some((_, desc)) = classify(&pending, true) {
                            self.ready.push_back(Item::Error(desc));
                        }
                    }
                    self.restart(&[]);
                    let c = String::from_utf8_lossy(&[b]).into_owned();
                    self.ready
                        .push_back(Item::Error(format!("JSON parse error, stray '{c}'")));
                }
            }
        }
    }
}

/// Top-level input that does not start an object: how many bytes it spans and QEMU's
/// error, or `None` if more bytes are needed to tell (`at_end`: the input ends here).
fn classify(pending: &[u8], at_end: bool) -> Option<(usize, String)> {
    let parse = |slice: &[u8]| match serde_json::from_slice::<Value>(slice) {
        Ok(_) => NOT_AN_OBJECT.to_string(),
        Err(e) => describe_error(&e, slice),
    };
    let first = *pending.first()?;
    match first {
        b'[' => {
            let end = balanced_end(pending)?;
            Some((end, parse(&pending[..end])))
        }
        b'"' => {
            let end = string_end(pending, 0)?;
            Some((end, parse(&pending[..end])))
        }
        b'-' | b'0'..=b'9' => {
            let len = token_len(pending, at_end, |c| {
                c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
            })?;
            let tok = &pending[..len];
            let desc = match serde_json::from_slice::<Value>(tok) {
                Ok(_) => NOT_AN_OBJECT.to_string(),
                Err(_) => format!("JSON parse error, stray '{}'", String::from_utf8_lossy(tok)),
            };
            Some((len, desc))
        }
        b'a'..=b'z' => {
            let len = token_len(pending, at_end, |c| c.is_ascii_lowercase())?;
            let word = String::from_utf8_lossy(&pending[..len]);
            let desc = match word.as_ref() {
                "true" | "false" | "null" => NOT_AN_OBJECT.to_string(),
                w => format!("JSON parse error, invalid keyword '{w}'"),
            };
            Some((len, desc))
        }
        b']' | b'}' | b',' | b':' => Some((1, "JSON parse error, expecting value".into())),
        _ => {
            // One character (a whole UTF-8 sequence if it is one).
            let len = (1..=4.min(pending.len()))
                .find(|&n| std::str::from_utf8(&pending[..n]).is_ok())
                .unwrap_or(1);
            let c = String::from_utf8_lossy(&pending[..len]).into_owned();
            Some((len, format!("JSON parse error, stray '{c}'")))
        }
    }
}

/// Length of a token of bytes matching `part`; `None` if it runs to the end of the input
/// and more could follow.
fn token_len(pending: &[u8], at_end: bool, part: impl Fn(u8) -> bool) -> Option<usize> {
    match pending.iter().position(|&c| !part(c)) {
        Some(n) => Some(n),
        None if at_end => Some(pending.len()),
        None => None,
    }
}

/// End (exclusive) of the string starting at `start`.
fn string_end(data: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < data.len() {
        match data[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// End (exclusive) of the array or object at the start of `data`.
fn balanced_end(data: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'"' => {
                i = string_end(data, i)?;
                continue;
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Parses one received object, with QEMU's error texts.
pub fn parse(raw: &[u8]) -> Result<Value, String> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| describe_error(&e, raw))?;
    if has_duplicate_key(raw) {
        return Err("JSON parse error, duplicate key".into());
    }
    Ok(value)
}

/// serde_json's syntax error messages (their starts) and QEMU's texts for them.
const SYNTAX_ERRORS: &[(&str, &str)] = &[
    ("expected value", "expecting value"),
    ("trailing comma", "expecting value"),
    ("expected `:`", "missing : in object pair"),
    ("expected `,` or `}`", "expected separator in dict"),
    ("expected `,` or `]`", "expected separator in list"),
    ("key must be a string", "key is not a string in object"),
    ("invalid escape", "invalid escape sequence in string"),
];

/// QEMU's description of a syntax error that serde_json found.
fn describe_error(e: &serde_json::Error, raw: &[u8]) -> String {
    let text = e.to_string();
    let msg = text.split(" at line ").next().unwrap_or(&text);
    let qemu = match SYNTAX_ERRORS
        .iter()
        .find(|(serde, _)| msg.starts_with(serde))
    {
        Some((_, qemu)) => qemu.to_string(),
        None if msg.starts_with("expected ident") => match bad_keyword(raw) {
            Some(w) => format!("invalid keyword '{w}'"),
            None => msg.to_string(),
        },
        None => msg.to_string(),
    };
    format!("JSON parse error, {qemu}")
}

/// The first bare word outside strings that is not a JSON keyword.
fn bad_keyword(raw: &[u8]) -> Option<String> {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'"' {
            i = string_end(raw, i)?;
            continue;
        }
        if raw[i].is_ascii_lowercase() {
            let len = raw[i..]
                .iter()
                .position(|c| !c.is_ascii_lowercase())
                .unwrap_or(raw.len() - i);
            let w = String::from_utf8_lossy(&raw[i..i + len]).into_owned();
            if !matches!(w.as_str(), "true" | "false" | "null") {
                return Some(w);
            }
            i += len;
            continue;
        }
        i += 1;
    }
    None
}

/// Whether an object in this (valid) JSON text repeats a key; serde_json keeps the last
/// value silently, QEMU refuses the message.
fn has_duplicate_key(raw: &[u8]) -> bool {
    // Per open object: keys seen, and whether the next string is a key.
    let mut stack: Vec<Option<(HashSet<String>, bool)>> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'{' => stack.push(Some((HashSet::new(), true))),
            b'[' => stack.push(None),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(Some((_, expect_key))) = stack.last_mut() {
                    *expect_key = true;
                }
            }
            b'"' => {
                let Some(end) = string_end(raw, i) else {
                    return false;
                };
                if let Some(Some((keys, expect_key))) = stack.last_mut() {
                    if *expect_key {
                        *expect_key = false;
                        let key = serde_json::from_slice::<String>(&raw[i..end])
                            .unwrap_or_else(|_| String::from_utf8_lossy(&raw[i..end]).into());
                        if !keys.insert(key) {
                            return true;
                        }
                    }
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(chunks: &[&[u8]]) -> Vec<Item> {
        let mut input = Input::default();
        let mut out = Vec::new();
        for c in chunks {
            input.push(c);
            while let Some(i) = input.next_item() {
                out.push(i);
            }
        }
        out
    }

    fn err(s: &str) -> Item {
        Item::Error(s.into())
    }

    fn object(s: &str) -> Item {
        Item::Object(s.as_bytes().to_vec())
    }

    /// Each case was sent to QEMU 10.0.2; the expectations are its replies.
    #[test]
    fn top_level_garbage_like_qemu() {
        let cases: &[(&[u8], Vec<Item>)] = &[
            (b"]", vec![err("JSON parse error, expecting value")]),
            (b"[1,{\"a\":2}] ", vec![err(NOT_AN_OBJECT)]),
            (b"\"abc\" ", vec![err(NOT_AN_OBJECT)]),
            (b"12 ", vec![err(NOT_AN_OBJECT)]),
            (b"[1,,] ", vec![err("JSON parse error, expecting value")]),
            (
                b"truex ",
                vec![err("JSON parse error, invalid keyword 'truex'")],
            ),
            (
                b"-12a ",
                vec![
                    err(NOT_AN_OBJECT),
                    err("JSON parse error, invalid keyword 'a'"),
                ],
            ),
            (
                b"tru\x01",
                vec![
                    err("JSON parse error, invalid keyword 'tru'"),
                    err("JSON parse error, stray '\u{1}'"),
                ],
            ),
            (b"\xff", vec![err("JSON parse error, stray '\u{fffd}'")]),
            (b"\x7f", vec![err("JSON parse error, stray '\u{7f}'")]),
            (
                b"{\"execute\": \x01 {\"execute\":\"x\"}",
                vec![
                    err("JSON parse error, stray '\u{1}'"),
                    object("{\"execute\":\"x\"}"),
                ],
            ),
            (
                b"{\"a\":1} x {\"b\":2}",
                vec![
                    object("{\"a\":1}"),
                    err("JSON parse error, invalid keyword 'x'"),
                    object("{\"b\":2}"),
                ],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&items(&[input]), want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn tokens_split_across_reads_wait() {
        assert_eq!(
            items(&[b"tr", b"ue {}"]),
            vec![err(NOT_AN_OBJECT), object("{}")]
        );
        assert_eq!(
            items(&[b"\"ab", b"c\"{}"]),
            vec![err(NOT_AN_OBJECT), object("{}")]
        );
    }

    #[test]
    fn object_errors_like_qemu() {
        let cases: &[(&str, &str)] = &[
            (r#"{"a" 1}"#, "missing : in object pair"),
            (r#"{"a":1,}"#, "expecting value"),
            (r#"{"a":}"#, "expecting value"),
            (r#"{1:2}"#, "key is not a string in object"),
            (r#"{"a":1 "b":2}"#, "expected separator in dict"),
            (r#"{"a":[1 2]}"#, "expected separator in list"),
            (r#"{"a":"\x"}"#, "invalid escape sequence in string"),
            (r#"{"execute": tru}"#, "invalid keyword 'tru'"),
            (r#"{"id":1,"id":2}"#, "duplicate key"),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse(text.as_bytes()).unwrap_err(),
                format!("JSON parse error, {want}"),
                "{text}"
            );
        }
        assert!(parse(br#"{"a":{"id":1},"id":[{"id":2}]}"#).is_ok());
    }
}
