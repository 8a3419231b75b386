//! What decoders emit.

use crate::reading::{Reading, Text};
use serde::Serialize;

/// One thing a decoder found in the stream, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Reading(Box<Reading>),
    Diagnostic(Diagnostic),
    Device(DeviceInfo),
    Heartbeat(Heartbeat),
    Link(LinkEvent),
}

/// `error` when data was dropped, `warning` for what is only noted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// A decode problem: a short stable code, where in the stream, and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub level: Level,
    /// Short stable code, e.g. `bad_checksum`.
    pub error: &'static str,
    /// Byte offset in the stream where the problem starts.
    pub offset: u64,
    pub message: String,
}

impl Diagnostic {
    pub fn error(code: &'static str, offset: u64, message: impl Into<String>) -> Self {
        Diagnostic {
            level: Level::Error,
            error: code,
            offset,
            message: message.into(),
        }
    }

    pub fn warning(code: &'static str, offset: u64, message: impl Into<String>) -> Self {
        Diagnostic {
            level: Level::Warning,
            error: code,
            offset,
            message: message.into(),
        }
    }
}

/// Identity the instrument reported about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DeviceInfo {
    pub offset: u64,
    pub serial_number: Option<Text>,
    pub model: Option<Text>,
    pub firmware: Option<Text>,
}

/// The instrument is alive; no result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heartbeat {
    pub offset: u64,
    pub uptime_s: Option<u64>,
}

/// Link-level facts a live session answers on (ACK/NAK, MLLP ACK, gold-card ack).
///
/// Every reading a frame or message carries is emitted *before* the link event that
/// closes it, so a link session can commit the readings and only then acknowledge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// ASTM `ENQ`: the sender asks to start a transfer.
    Enq { offset: u64 },
    /// ASTM `EOT`: the transfer is over.
    Eot { offset: u64 },
    /// A frame was read whole (ASTM frame, gold-card frame).
    Frame {
        offset: u64,
        /// ASTM frame number or gold-card sequence number.
        number: u32,
        outcome: FrameOutcome,
    },
    /// A message ended (ASTM `L` record, HL7 message).
    MessageEnd {
        offset: u64,
        /// HL7 MSH-10, for the acknowledgement.
        control_id: Option<Text>,
        /// HL7 MSH-3 / MSH-4, to swap into the acknowledgement.
        sending_application: Option<Text>,
        sending_facility: Option<Text>,
        /// Readings the message gave.
        readings: usize,
        /// Why the message was not usable, when it was not (HL7 `AE`).
        rejected: Option<String>,
    },
    /// A polled device answered one of the host's requests (`lz4000t`, `tl310`, `dy723pc`).
    /// A record's reading, if it gave one, comes before its reply.
    Reply { offset: u64, reply: PolledReply },
}

/// What a polled device answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolledReply {
    /// The reply to the comm test: the device is there. `firmware` as the device sent it
    /// (hex of the reply's bytes, or of its version byte).
    CommTest { firmware: Text },
    /// How many records the device holds for `date` (`lz4000t`).
    Count {
        date: chrono::NaiveDate,
        records: u16,
    },
    /// One record frame of a read reply: record `index` of `total`. `Rejected` when it was
    /// dropped (bad CRC, malformed); an NA record is `Accepted` without a reading.
    Record {
        total: u16,
        index: u16,
        outcome: FrameOutcome,
    },
    /// A text reply ended (`dy723pc` `FINISH`), after `records` records (0: no data).
    End { records: u32 },
}

/// What became of a frame whose bytes were read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameOutcome {
    /// Good frame, taken (ACK).
    Accepted,
    /// Same frame again after a lost acknowledgement: ACK again, not taken twice.
    Retransmission,
    /// Bad checksum, malformed, or out of sequence (NAK).
    Rejected,
}
