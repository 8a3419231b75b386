//! The streaming decoder API every protocol implements.

use crate::analytes::AliasTable;
use crate::event::Event;
use crate::text::Encoding;
use chrono::FixedOffset;
use std::sync::Arc;

/// A push decoder: feed it bytes as they arrive, collect the events that are complete.
///
/// Contract, tested for every protocol:
/// - the events for a byte stream are the same however it is cut into chunks;
/// - memory is bounded whatever the input (a frame that never ends is dropped at its
///   protocol's size bound, with an error);
/// - no input makes it panic.
pub trait Decoder: Send {
    /// Decode `chunk`, appending every event that is now complete to `out`.
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>);
    /// End of input: flush or discard (with an error) whatever is unfinished.
    fn finish(&mut self, out: &mut Vec<Event>);
}

/// Per-instrument settings a decoder needs (`docs/reference.md`, "Configuration").
#[derive(Debug, Clone)]
pub struct DecoderConfig {
    /// Text encoding; `None` takes the protocol's default.
    pub encoding: Option<Encoding>,
    /// Offset of the instrument's local clock.
    pub utc_offset: FixedOffset,
    /// Configured instrument id, used when the stream names none.
    pub instrument: Option<crate::reading::Text>,
    /// Test codes to canonical analytes, instrument overrides included.
    pub aliases: Arc<AliasTable>,
    /// Check the CRC of record frames (`tl310` `crc = "ignore"` turns a mismatch into a
    /// counted warning, for a firmware found to differ).
    pub check_crc: bool,
}

/// China Standard Time, the default instrument offset.
pub fn default_offset() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            encoding: None,
            utc_offset: default_offset(),
            instrument: None,
            aliases: Arc::new(AliasTable::builtin().clone()),
            check_crc: true,
        }
    }
}

/// Decode a whole input at once (tests, small captures).
pub fn decode_all(decoder: &mut dyn Decoder, bytes: &[u8]) -> Vec<Event> {
    let mut out = Vec::new();
    decoder.feed(bytes, &mut out);
    decoder.finish(&mut out);
    out
}
