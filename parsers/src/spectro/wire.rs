//! The spectro sentence bound every part of the protocol shares.

/// Longest sentence, `$` through the checksum digits (CR LF not counted).
pub const MAX_SENTENCE: usize = 512;
