//! Which qemu-server the library reproduces: the 2020 seed or today's.

/// Whose log lines, texts and rules to reproduce. The status loop differs most (the seed's
/// raw byte counts against today's binary units); QMP failure texts differ in two places
/// (see [`crate::Error`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Style {
    /// The 2020 seed: raw byte counts, decimal MB/s, strict end check; the QMP client of
    /// its time.
    #[default]
    Seed,
    /// qemu-server 6.2-12 and later (9.2 today): binary units, dirty/reused aware,
    /// `finishing` message.
    Current,
}
