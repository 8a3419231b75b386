//! What to simulate, and what happened on the wire.

use foodgate_parsers::{Encoding, Protocol};
use std::time::Duration;

/// Test hooks: faults the instrument side injects, by frame ordinal (0-based, counting
/// each distinct frame or message once, not its retries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Send these frames with a wrong checksum/CRC the first time.
    pub corrupt_first_send: Vec<usize>,
    /// Ignore the first acknowledgement of these frames, as if it was lost on the line.
    pub lose_first_ack: Vec<usize>,
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub protocol: Protocol,
    /// Readings to send.
    pub count: usize,
    /// Pause between samples.
    pub interval: Duration,
    /// Share of positive samples, 0.0 … 1.0.
    pub positive_rate: f64,
    pub seed: u64,
    /// Serial number the instrument reports.
    pub serial: String,
    pub encoding: Encoding,
    /// Time to wait for an acknowledgement before sending again.
    pub ack_timeout: Duration,
    /// Sends of one frame or message before giving up (the first included).
    pub max_tries: u32,
    /// Pause after a refusal (`NAK` to `ENQ`, HL7 `AR`) before trying again.
    pub retry_delay: Duration,
    pub faults: Faults,
    /// lz4000t, tl310, dy723pc: the days of records held, firmware, and their own faults
    /// (`faults.corrupt_first_send` counts the device's records, oldest first).
    pub polled: PolledOptions,
}

impl SimConfig {
    /// The documents' link timing: astm 15 s × 6 tries, hl7 10 s × 5, gold-card 1 s × 4.
    pub fn new(protocol: Protocol) -> Self {
        let (ack_timeout, max_tries) = match protocol {
            Protocol::Astm => (Duration::from_secs(15), 6),
            Protocol::Hl7 => (Duration::from_secs(10), 5),
            Protocol::GoldCard => (Duration::from_secs(1), 4),
            Protocol::Spectro | Protocol::EnzymePrint => (Duration::ZERO, 1),
            // A polled device only answers: it never waits for anything.
            Protocol::Lz4000t | Protocol::Tl310 | Protocol::Dy723pc => (Duration::ZERO, 1),
        };
        SimConfig {
            protocol,
            count: 10,
            interval: Duration::from_millis(1000),
            positive_rate: 0.1,
            seed: 1,
            // Gold-card serial numbers have 16 bytes.
            serial: match protocol {
                Protocol::GoldCard => "SIM-GOLD-0001".into(),
                _ => format!("SIM-{}-0001", protocol.as_str().to_uppercase()),
            },
            encoding: match protocol {
                Protocol::Hl7 => Encoding::Utf8,
                _ => Encoding::Gbk,
            },
            ack_timeout,
            max_tries,
            retry_delay: Duration::from_secs(10),
            faults: Faults::default(),
            polled: PolledOptions::default(),
        }
    }
}

/// What happened on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Every byte the instrument sent, and received.
    pub sent: Vec<u8>,
    pub received: Vec<u8>,
    /// Readings sent (each once, however often its frame went out).
    pub readings: usize,
    /// Readings whose frame or message was acknowledged (send-only protocols: all sent).
    pub acknowledged: usize,
    /// Frames or messages sent again.
    pub retransmissions: usize,
    /// Frames or messages given up on.
    pub failed: usize,
}

/// What a polled device simulator holds and how it misbehaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolledOptions {
    /// Days, ending today, over which the records held at start (`count`) are spread.
    pub history_days: u32,
    /// TL310 firmware version byte of the comm-test reply (`10`: the host reads all).
    pub firmware: u8,
    /// Every n-th record frame sent has a bad CRC (0: never).
    pub bad_crc_every: usize,
    /// Every n-th request gets no answer (0: never).
    pub silent_every: usize,
    /// Every n-th answer is cut short (0: never).
    pub cut_every: usize,
    /// Requests (0-based, in the order received, comm tests included) never answered.
    pub silent_requests: Vec<usize>,
    /// Requests whose answer is cut short (half of it sent).
    pub cut_requests: Vec<usize>,
}

impl Default for PolledOptions {
    fn default() -> Self {
        PolledOptions {
            history_days: 3,
            firmware: 0x21,
            bad_crc_every: 0,
            silent_every: 0,
            cut_every: 0,
            silent_requests: Vec::new(),
            cut_requests: Vec::new(),
        }
    }
}
