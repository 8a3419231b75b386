//! Multi-item food safety analyzers, NMEA-style result sentences, protocol `spectro`.
//!
//! `$FSA,…*CS` (a result), `$FSI,…*CS` (device info), `$FSH,…*CS` (heartbeat); `CS` is the
//! XOR of the bytes between `$` and `*`. Sentences are bounded (512 bytes), so the decoder
//! never buffers more than that while it looks for the `*`.

mod encode;
mod fields;
mod sentence;
mod wire;

pub use encode::{checksum, encode_fsh, encode_fsi, encode_sentence, Fsa};
pub use fields::BadField;
pub use sentence::SpectroDecoder;
pub use wire::MAX_SENTENCE;
