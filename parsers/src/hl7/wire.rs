//! The MLLP framing bytes and bounds every part of the protocol shares.

/// MLLP start block.
pub const VT: u8 = 0x0B;
/// MLLP end block (followed by `CR`).
pub const FS: u8 = 0x1C;
pub(crate) const CR: u8 = 0x0D;
pub(crate) const LF: u8 = 0x0A;

/// Longest message accepted, framed or bare.
pub const MAX_MESSAGE: usize = 1024 * 1024;
