//! A string that never shows up in logs, errors or `Debug` output.

use zeroize::Zeroize;

/// A password or key password. Its only way out is [`Secret::expose`], used when the value
/// is put on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Do not leave the password in freed memory (volatile writes: not optimised away).
        self.0.zeroize();
    }
}
