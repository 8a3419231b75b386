//! The ASTM control bytes and bounds every part of the protocol shares.

pub const ENQ: u8 = 0x05;
pub const ACK: u8 = 0x06;
pub const NAK: u8 = 0x15;
pub const EOT: u8 = 0x04;
pub(crate) const STX: u8 = 0x02;
pub(crate) const ETX: u8 = 0x03;
pub(crate) const ETB: u8 = 0x17;
pub(crate) const CR: u8 = 0x0D;
pub(crate) const LF: u8 = 0x0A;

/// Longest frame text accepted (LIS01-A2 senders go up to 63,993 bytes).
pub const MAX_FRAME_TEXT: usize = 64 * 1024;
/// Longest record or bare line accepted.
pub const MAX_RECORD: usize = 1024 * 1024;
/// Most results one message may carry before it is refused as runaway.
pub const MAX_RESULTS_PER_MESSAGE: usize = 100_000;
