//! Perl's loose values as serde adapters, so that structured arguments are plain serde
//! types and the C and Perl layers only pass JSON.
//!
//! Perl hands numbers as strings or numbers (`"100"`, `100`, `1.7e9`) and booleans as
//! `1`/`0`, `"1"`/`"0"`/`""` or JSON booleans; [`from_json`] turns such an object into a
//! type whose fields use these adapters, with errors that name the parameter and the kind
//! of value it must be, never the value given (it may be a password).

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::backup::Secret;
use crate::error::{Error, Result};

/// Decodes `value` (a JSON object of parameters) into `T`. Errors read `parameter 'x'
/// must be an integer`, `unknown parameter 'x'`, `missing parameter 'x'`.
pub fn from_json<T: DeserializeOwned>(value: Value) -> Result<T> {
    if !value.is_object() {
        return Err(Error::InvalidArgument(format!(
            "the parameters must be a JSON object, got {}",
            kind_of(&value)
        )));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        Error::InvalidArgument(match quoted_name(&inner) {
            Some(("unknown field", name)) => format!("unknown parameter '{name}'"),
            Some(("missing field", name)) => format!("missing parameter '{name}'"),
            _ => format!("parameter '{path}' {inner}"),
        })
    })
}

/// serde's `unknown field `x`, ...` and `missing field `x``: the kind and the name.
fn quoted_name(message: &str) -> Option<(&str, &str)> {
    let (kind, rest) = message.split_once(" `")?;
    let (name, _) = rest.split_once('`')?;
    Some((kind, name))
}

/// What kind of JSON value `value` is, for messages that must not show the value.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string; a number counts as its decimal text (Perl's ids).
fn string_of(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An integer: a JSON integer, a double with an integral value, or a decimal string.
fn i64_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A boolean as Perl code passes one: `true`/`false`, `1`/`0`, `"1"`/`"0"`/`""`.
fn bool_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Some(false),
            Some(1.0) => Some(true),
            _ => None,
        },
        Value::String(s) if s.is_empty() || s == "0" => Some(false),
        Value::String(s) if s == "1" => Some(true),
        _ => None,
    }
}

fn optional<'de, D, T>(
    d: D,
    convert: impl FnOnce(Value) -> Option<T>,
    kind: &str,
) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        other => convert(other)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("must be {kind}"))),
    }
}

/// A required string (numbers as their decimal text).
pub fn string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    opt_string(d)?.ok_or_else(|| D::Error::custom("must be a string"))
}

/// An optional string (null = absent).
pub fn opt_string<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    optional(d, string_of, "a string")
}

/// An optional secret (null = absent).
pub fn opt_secret<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Secret>, D::Error> {
    optional(d, |v| string_of(v).map(Secret::new), "a string")
}

/// A required integer.
pub fn i64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    opt_i64(d)?.ok_or_else(|| D::Error::custom("must be an integer"))
}

/// An optional integer (null = absent).
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    optional(d, |v| i64_of(&v), "an integer")
}

/// An optional non-negative integer (null = absent).
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    optional(
        d,
        |v| i64_of(&v).and_then(|i| u64::try_from(i).ok()),
        "an integer of 0 or more",
    )
}

/// An optional boolean (null = absent).
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<bool>, D::Error> {
    optional(d, |v| bool_of(&v), "a boolean (true, false, 1 or 0)")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case", deny_unknown_fields)]
    struct Sample {
        #[serde(deserialize_with = "string")]
        id: String,
        #[serde(deserialize_with = "i64")]
        time: i64,
        #[serde(default, deserialize_with = "opt_bool")]
        flag: Option<bool>,
        #[serde(default, deserialize_with = "opt_u64")]
        speed: Option<u64>,
    }

    #[test]
    fn perl_values_are_taken_as_perl_means_them() {
        let s: Sample =
            from_json(json!({"id": 100, "time": "1700000000", "flag": "1", "speed": 2.0e3}))
                .unwrap();
        assert_eq!(
            s,
            Sample {
                id: "100".into(),
                time: 1_700_000_000,
                flag: Some(true),
                speed: Some(2000)
            }
        );
        let s: Sample =
            from_json(json!({"id": "x", "time": 1.7e9, "flag": 0, "speed": null})).unwrap();
        assert_eq!(
            (s.time, s.flag, s.speed),
            (1_700_000_000, Some(false), None)
        );
        let s: Sample = from_json(json!({"id": "x", "time": 1, "flag": ""})).unwrap();
        assert_eq!(s.flag, Some(false));
    }

    #[test]
    fn errors_name_the_parameter_never_the_value() {
        let msg = |v| from_json::<Sample>(v).unwrap_err().to_string();
        assert_eq!(
            msg(json!({"id": "x", "time": "s3cret"})),
            "parameter 'time' must be an integer"
        );
        assert_eq!(
            msg(json!({"id": ["s3cret"], "time": 1})),
            "parameter 'id' must be a string"
        );
        assert_eq!(
            msg(json!({"id": "x", "time": 1, "flag": "yes"})),
            "parameter 'flag' must be a boolean (true, false, 1 or 0)"
        );
        assert_eq!(
            msg(json!({"id": "x", "time": 1, "speed": -1})),
            "parameter 'speed' must be an integer of 0 or more"
        );
        assert_eq!(msg(json!({"time": 1})), "missing parameter 'id'");
        assert_eq!(
            msg(json!({"id": "x", "time": 1, "s3cret": 1})),
            "unknown parameter 's3cret'"
        );
        assert_eq!(
            msg(json!(["s3cret"])),
            "the parameters must be a JSON object, got an array"
        );
    }
}
