//! Log lines the library hands to its caller's sink (it never prints itself).

/// Severity of a log line, as vzdump's `debugmsg` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `INFO:`.
    Info,
    /// `WARN:` (today's qemu-server warns where the seed had no line, e.g. an ignored
    /// setting; the backup job also reports a failed power-state restore this way, which
    /// qemu-server prints with Perl's `warn`).
    Warn,
    /// `ERROR:`.
    Err,
}

/// One line for the task log, without prefix or newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its severity.
    pub level: Level,
    /// Its text.
    pub text: String,
}

impl LogLine {
    /// An `INFO:` line.
    pub fn info(text: impl Into<String>) -> Self {
        LogLine {
            level: Level::Info,
            text: text.into(),
        }
    }
}
