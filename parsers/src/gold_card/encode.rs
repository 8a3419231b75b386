//! gold-card encoders: frames, the result / heartbeat / device-info payloads, and the
//! host's acknowledgement. Used by simulators, tests, and the live link to answer readers.

use super::wire::{MAGIC, TYPE_ACK, VERSION};
use crate::text::Encoding;
use crc::{Crc, Table, CRC_16_MODBUS};

const MODBUS: Crc<u16, Table<16>> = Crc::<u16, Table<16>>::new(&CRC_16_MODBUS);

/// CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF, no final xor).
pub fn crc16(bytes: &[u8]) -> u16 {
    MODBUS.checksum(bytes)
}

/// A whole frame. A payload longer than `u16::MAX` is cut (the protocol allows 1024 bytes;
/// tests build longer ones only through the declared length field by hand).
pub fn encode_frame(kind: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let payload = payload.get(..usize::from(len)).unwrap_or(payload);
    let mut out = Vec::with_capacity(10 + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc16(&out[2..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The host's acknowledgement of result frame `seq`: type `81`, payload = `seq`. The frame's
/// own sequence field repeats `seq` (the host keeps no counter of its own).
pub fn encode_ack(seq: u16) -> Vec<u8> {
    encode_frame(TYPE_ACK, seq, &seq.to_le_bytes())
}

/// Heartbeat payload: empty, or the uptime in seconds.
pub fn heartbeat_payload(uptime_s: Option<u32>) -> Vec<u8> {
    uptime_s.map_or_else(Vec::new, |u| u.to_le_bytes().to_vec())
}

/// `n` bytes of `text`, NUL padded (cut when longer).
fn padded(out: &mut Vec<u8>, text: &[u8], n: usize) {
    let take = text.len().min(n);
    out.extend_from_slice(&text[..take]);
    out.resize(out.len() + (n - take), 0);
}

/// Device-info payload: 16-byte serial number, 8-byte firmware version, NUL padded.
pub fn device_info_payload(serial: &str, firmware: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    padded(&mut out, serial.as_bytes(), 16);
    padded(&mut out, firmware.as_bytes(), 8);
    out
}

/// The fields of a result payload (type `01`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResultPayload {
    pub sample_id: String,
    pub item: u16,
    /// `0` competitive, `1` sandwich.
    pub assay_format: u8,
    /// `0` negative, `1` positive, `2` invalid.
    pub verdict: u8,
    pub t_line: u16,
    pub c_line: u16,
    /// T/C × 1000.
    pub cutoff: u16,
    /// Unix seconds, UTC.
    pub test_time: u32,
    pub lot: String,
    pub sample_name: String,
}

impl ResultPayload {
    /// The payload bytes, the sample name in `encoding` (GBK on real readers); a name longer
    /// than 255 bytes is cut.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        let name = encoding.encode(&self.sample_name);
        let name = name.get(..255).unwrap_or(&name);
        let mut out = Vec::with_capacity(43 + name.len());
        padded(&mut out, self.sample_id.as_bytes(), 16);
        out.extend_from_slice(&self.item.to_le_bytes());
        out.push(self.assay_format);
        out.push(self.verdict);
        out.extend_from_slice(&self.t_line.to_le_bytes());
        out.extend_from_slice(&self.c_line.to_le_bytes());
        out.extend_from_slice(&self.cutoff.to_le_bytes());
        out.extend_from_slice(&self.test_time.to_le_bytes());
        padded(&mut out, self.lot.as_bytes(), 12);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modbus_check_value() {
        // The catalogue's check value for "123456789".
        assert_eq!(crc16(b"123456789"), 0x4B37);
    }

    #[test]
    fn ack_bytes() {
        let ack = encode_ack(0x1234);
        assert_eq!(&ack[..8], &[0xAA, 0x55, 0x01, 0x81, 0x02, 0x00, 0x34, 0x12]);
        assert_eq!(&ack[8..10], &[0x34, 0x12]);
        let crc = crc16(&ack[2..10]);
        assert_eq!(&ack[10..], &crc.to_le_bytes());
    }

    #[test]
    fn result_layout() {
        let p = ResultPayload {
            sample_id: "S1".into(),
            item: 0x0101,
            assay_format: 0,
            verdict: 1,
            t_line: 300,
            c_line: 1000,
            cutoff: 500,
            test_time: 1_700_000_000,
            lot: "L1".into(),
            sample_name: "猪肉".into(),
        }
        .encode(Encoding::Gbk);
        assert_eq!(p.len(), 43 + 4);
        assert_eq!(&p[16..18], &[0x01, 0x01]);
        assert_eq!(p[42], 4);
        assert_eq!(&p[43..], &[0xD6, 0xED, 0xC8, 0xE2]);
    }
}
