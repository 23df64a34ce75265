//! QMP errors and QAPI-style argument checking.
//!
//! QEMU's generated marshallers visit the declared members in schema order (a missing or
//! mistyped member fails there), then reject the first member left over. Messages are
//! QEMU's (`qapi/qobject-input-visitor.c`).

use serde_json::{Map, Value};

use crate::qjson::{obj, J};

/// An error reply: class and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmpError {
    /// `GenericError`, `CommandNotFound`, `DeviceNotFound`, ...
    pub class: &'static str,
    /// Human-readable text.
    pub desc: String,
}

impl QmpError {
    /// Class `GenericError`.
    pub fn generic(desc: impl Into<String>) -> QmpError {
        QmpError {
            class: "GenericError",
            desc: desc.into(),
        }
    }

    /// Class `CommandNotFound`.
    pub fn command_not_found(desc: impl Into<String>) -> QmpError {
        QmpError {
            class: "CommandNotFound",
            desc: desc.into(),
        }
    }

    /// Class `DeviceNotFound`.
    pub fn device_not_found(desc: impl Into<String>) -> QmpError {
        QmpError {
            class: "DeviceNotFound",
            desc: desc.into(),
        }
    }

    /// `{"class": ..., "desc": ...}`.
    pub fn to_json(&self) -> J {
        obj([
            ("class", self.class.into()),
            ("desc", self.desc.as_str().into()),
        ])
    }
}

/// A member type.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// `str`.
    Str,
    /// `int` (must fit i64).
    Int,
    /// `bool`.
    Bool,
    /// An enum given by its values.
    Enum(&'static [&'static str]),
}

/// One declared member.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Wire name.
    pub name: &'static str,
    /// Type.
    pub ty: Ty,
    /// Mandatory?
    pub required: bool,
}

/// A mandatory member.
pub const fn req(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        required: true,
    }
}

/// An optional member.
pub const fn opt(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        required: false,
    }
}

/// Checks `args` against `params` the way QEMU's input visitor does.
pub fn check(args: &Map<String, Value>, params: &[Param]) -> Result<(), QmpError> {
    for p in params {
        let Some(v) = args.get(p.name) else {
            if p.required {
                return Err(QmpError::generic(format!(
                    "Parameter '{}' is missing",
                    p.name
                )));
            }
            continue;
        };
        let wrong = |expected: &str| {
            QmpError::generic(format!(
                "Invalid parameter type for '{}', expected: {expected}",
                p.name
            ))
        };
        match p.ty {
            Ty::Str if !v.is_string() => return Err(wrong("string")),
            Ty::Int if v.as_i64().is_none() => return Err(wrong("integer")),
            Ty::Bool if !v.is_boolean() => return Err(wrong("boolean")),
            Ty::Enum(values) => match v.as_str() {
                None => return Err(wrong("string")),
                Some(s) if !values.contains(&s) => {
                    return Err(QmpError::generic(format!(
                        "Parameter '{}' does not accept value '{s}'",
                        p.name
                    )))
                }
                Some(_) => {}
            },
            _ => {}
        }
    }
    if let Some(extra) = args.keys().find(|k| !params.iter().any(|p| p.name == *k)) {
        return Err(QmpError::generic(format!(
            "Parameter '{extra}' is unexpected"
        )));
    }
    Ok(())
}

/// A checked string member.
pub fn str_arg<'a>(args: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

/// A checked integer member.
pub fn int_arg(args: &Map<String, Value>, name: &str) -> Option<i64> {
    args.get(name).and_then(Value::as_i64)
}

/// A checked boolean member.
pub fn bool_arg(args: &Map<String, Value>, name: &str) -> Option<bool> {
    args.get(name).and_then(Value::as_bool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: &[Param] = &[
        req("file", Ty::Str),
        opt("speed", Ty::Int),
        opt("flag", Ty::Bool),
        opt("format", Ty::Enum(&["vma", "pbs"])),
    ];

    fn run(v: Value) -> Result<(), String> {
        check(v.as_object().unwrap(), P).map_err(|e| e.desc)
    }

    #[test]
    fn qapi_messages() {
        assert_eq!(run(json!({"file": "x", "speed": 5, "flag": true})), Ok(()));
        for (args, desc) in [
            (json!({}), "Parameter 'file' is missing"),
            (
                json!({"file": 1}),
                "Invalid parameter type for 'file', expected: string",
            ),
            (
                json!({"file": "x", "speed": "1"}),
                "Invalid parameter type for 'speed', expected: integer",
            ),
            (
                json!({"file": "x", "speed": 1.5}),
                "Invalid parameter type for 'speed', expected: integer",
            ),
            (
                json!({"file": "x", "speed": u64::MAX}),
                "Invalid parameter type for 'speed', expected: integer",
            ),
            (
                json!({"file": "x", "flag": 1}),
                "Invalid parameter type for 'flag', expected: boolean",
            ),
            (
                json!({"file": "x", "format": "dir"}),
                "Parameter 'format' does not accept value 'dir'",
            ),
            (
                json!({"file": "x", "bogus": 1}),
                "Parameter 'bogus' is unexpected",
            ),
            // Member errors come before leftovers.
            (json!({"bogus": 1}), "Parameter 'file' is missing"),
        ] {
            assert_eq!(run(args.clone()), Err(desc.into()), "{args}");
        }
    }
}
