//! JSON output the way QEMU writes it, and compaction of received requests.
//!
//! QEMU keeps objects in a `QDict`, a hash table of 512 buckets whose buckets are lists with
//! the newest entry first, and prints them in bucket order. That is why its greeting reads
//! `"micro", "minor", "major"`. [`J::Obj`] reproduces that order from the insertion order
//! (QAPI inserts struct members in schema order), so replies match QEMU's byte for byte.
//! The separators are `", "` and `": "`; strings escape everything outside printable ASCII
//! as `\uXXXX` (upper-case hex, surrogate pairs beyond the BMP).

use serde_json::Value;

/// A JSON value with QEMU's member order.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A number received from a client, printed as received.
    Num(serde_json::Number),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<J>),
    /// An object, members in insertion order (printed in QDict order).
    Obj(Vec<(String, J)>),
}

/// Builds an object from `(key, value)` pairs given in insertion (schema) order.
pub fn obj<const N: usize>(members: [(&str, J); N]) -> J {
    J::Obj(
        members
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

impl From<&str> for J {
    fn from(s: &str) -> J {
        J::Str(s.to_string())
    }
}

/// `From` for each type that one variant holds as it is.
macro_rules! from_variant {
    ($($ty:ty => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for J {
            fn from(v: $ty) -> J {
                J::$variant(v)
            }
        })*
    };
}

from_variant!(String => Str, bool => Bool, u64 => UInt, i64 => Int);

impl From<&Value> for J {
    fn from(v: &Value) -> J {
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Num(n.clone()),
            Value::String(s) => J::Str(s.clone()),
            Value::Array(a) => J::Arr(a.iter().map(J::from).collect()),
            Value::Object(m) => J::Obj(m.iter().map(|(k, v)| (k.clone(), J::from(v))).collect()),
        }
    }
}

impl J {
    /// Appends a member to an object (no-op on other values).
    pub fn push(&mut self, key: &str, value: J) {
        if let J::Obj(m) = self {
            m.push((key.to_string(), value));
        }
    }

    /// The text QEMU would send (without the trailing CRLF).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(n) => out.push_str(&n.to_string()),
            J::UInt(n) => out.push_str(&n.to_string()),
            J::Num(n) => match n.as_f64() {
                Some(f) if !n.is_i64() && !n.is_u64() => out.push_str(&format_double(f)),
                _ => out.push_str(&n.to_string()),
            },
            J::Str(s) => write_str(s, out),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(']');
            }
            J::Obj(members) => {
                let mut order: Vec<usize> = (0..members.len()).collect();
                order.sort_by_key(|&i| (qdict_bucket(&members[i].0), std::cmp::Reverse(i)));
                out.push('{');
                for (n, &i) in order.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    write_str(&members[i].0, out);
                    out.push_str(": ");
                    members[i].1.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A double as QEMU prints it (`%.17g`).
fn format_double(f: f64) -> String {
    let mut buf = [0u8; 64];
    // SAFETY: snprintf writes at most `buf.len()` bytes including the NUL; the format
    // string is NUL-terminated and consumes exactly the one double passed.
    let n = unsafe {
        libc::snprintf(
            buf.as_mut_ptr().cast::<libc::c_char>(),
            buf.len(),
            c"%.17g".as_ptr(),
            f,
        )
    };
    let n = usize::try_from(n).unwrap_or(0).min(buf.len() - 1);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// QEMU's `tdb_hash` of a key, modulo the bucket count (`qobject/qdict.c`).
fn qdict_bucket(key: &str) -> u32 {
    let bytes = key.as_bytes();
    let mut value = 0x238F_13AFu32.wrapping_mul(bytes.len() as u32);
    for (i, &b) in bytes.iter().enumerate() {
        value = value.wrapping_add((b as u32) << (i * 5 % 24));
    }
    1_103_515_243u32.wrapping_mul(value).wrapping_add(12345) % 512
}

fn write_str(s: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{:04X}", u);
                }
            }
        }
    }
    out.push('"');
}

/// Removes the whitespace outside strings from a (valid) JSON text, keeping member order
/// and number spelling: the request exactly as the client wrote it, on one line.
pub fn compact(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in raw {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            in_string = b == b'"';
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_in_qemu_order() {
        let version = obj([
            (
                "qemu",
                obj([
                    ("major", J::UInt(11)),
                    ("minor", J::UInt(0)),
                    ("micro", J::UInt(0)),
                ]),
            ),
            ("package", "pve-qemu-kvm_11.0.0-2".into()),
        ]);
        let g = obj([(
            "QMP",
            obj([("version", version), ("capabilities", J::Arr(vec![]))]),
        )]);
        assert_eq!(
            g.encode(),
            r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 11}, "package": "pve-qemu-kvm_11.0.0-2"}, "capabilities": []}}"#
        );
    }

    #[test]
    fn observed_qemu_orders() {
        // query-block-jobs as printed by QEMU 10.0.2, members inserted in schema order.
        let keys = [
            "type",
            "device",
            "len",
            "offset",
            "busy",
            "paused",
            "speed",
            "io-status",
            "ready",
            "status",
            "auto-finalize",
            "auto-dismiss",
        ];
        let o = J::Obj(keys.iter().map(|k| (k.to_string(), J::Null)).collect());
        let printed: Vec<String> = o
            .encode()
            .split(", ")
            .map(|m| m.split('"').nth(1).unwrap().to_string())
            .collect();
        assert_eq!(
            printed,
            [
                "auto-finalize",
                "io-status",
                "device",
                "auto-dismiss",
                "busy",
                "len",
                "offset",
                "status",
                "paused",
                "speed",
                "ready",
                "type"
            ]
        );
        let r = obj([("return", obj([])), ("id", "x".into())]);
        assert_eq!(r.encode(), r#"{"return": {}, "id": "x"}"#);
    }

    #[test]
    fn numbers_like_qemu() {
        let n = |text: &str| J::from(&serde_json::from_str::<Value>(text).unwrap()).encode();
        assert_eq!(n("12345678901234567890"), "12345678901234567890");
        assert_eq!(n("-12345678901234567890"), "-1.2345678901234567e+19");
        assert_eq!(n("0.1"), "0.10000000000000001");
        assert_eq!(n("1.5e3"), "1500");
        assert_eq!(n("-7"), "-7");
    }

    #[test]
    fn string_escapes() {
        let s = J::from("a\"b\\c\n/\u{7f}é😀\u{1}");
        assert_eq!(s.encode(), r#""a\"b\\c\n/\u007F\u00E9\uD83D\uDE00\u0001""#);
    }

    #[test]
    fn compact_keeps_strings_and_order() {
        let raw = b"{ \"b\" : 1,\r\n \"a\": \"x  y\\\" }\" }";
        assert_eq!(compact(raw), b"{\"b\":1,\"a\":\"x  y\\\" }\"}".to_vec());
    }
}
