//! HL7 v2 ORU^R01 over MLLP, protocol `hl7`.

use crate::decoder::{Decoder, DecoderConfig};
use crate::event::Event;

/// Streaming decoder of protocol `hl7`.
#[derive(Debug)]
pub struct Hl7Decoder {
    #[allow(dead_code)]
    config: DecoderConfig,
}

impl Hl7Decoder {
    pub fn new(config: DecoderConfig) -> Self {
        Hl7Decoder { config }
    }
}

impl Decoder for Hl7Decoder {
    fn feed(&mut self, _chunk: &[u8], _out: &mut Vec<Event>) {}
    fn finish(&mut self, _out: &mut Vec<Event>) {}
}
