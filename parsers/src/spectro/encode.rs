//! spectro encoders: whole sentences with their checksum. Used by simulators and tests.

use crate::text::Encoding;

/// XOR of the bytes strictly between `$` and `*`.
pub fn checksum(body: &[u8]) -> u8 {
    // Eight bytes at a time: the XOR of the lanes folds to the XOR of the bytes.
    let mut chunks = body.chunks_exact(8);
    let mut wide = 0u64;
    for c in &mut chunks {
        let mut lane = [0u8; 8];
        lane.copy_from_slice(c);
        wide ^= u64::from_le_bytes(lane);
    }
    let folded = wide.to_le_bytes().iter().fold(0u8, |a, &b| a ^ b);
    chunks.remainder().iter().fold(folded, |a, &b| a ^ b)
}

/// `$` body `*` CS CR LF, CS in uppercase hex.
pub fn encode_sentence(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(b'$');
    out.extend_from_slice(body);
    out.extend_from_slice(format!("*{:02X}\r\n", checksum(body)).as_bytes());
    out
}

/// The fields of an `FSA` result sentence, as text (so tests can send malformed ones).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fsa {
    pub seq: String,
    /// `YYYYMMDDHHMMSS`, instrument local time.
    pub time: String,
    pub item: String,
    pub sample_id: String,
    pub sample_name: String,
    pub category: String,
    pub absorbance: String,
    pub value: String,
    pub unit: String,
    pub dilution: String,
    /// `P`, `F` or `-`.
    pub verdict: String,
}

impl Fsa {
    /// The sentence body (between `$` and `*`), text in `encoding`.
    pub fn body(&self, encoding: Encoding) -> Vec<u8> {
        let fields = [
            &self.seq,
            &self.time,
            &self.item,
            &self.sample_id,
            &self.sample_name,
            &self.category,
            &self.absorbance,
            &self.value,
            &self.unit,
            &self.dilution,
            &self.verdict,
        ];
        let mut body = b"FSA".to_vec();
        for f in fields {
            body.push(b',');
            body.extend_from_slice(&encoding.encode(f));
        }
        body
    }

    /// The whole sentence, text in `encoding`.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        encode_sentence(&self.body(encoding))
    }
}

/// `$FSI,<serial>,<model>,<firmware>*CS`.
pub fn encode_fsi(serial: &str, model: &str, firmware: &str) -> Vec<u8> {
    encode_sentence(format!("FSI,{serial},{model},{firmware}").as_bytes())
}

/// `$FSH,<uptime seconds>*CS`.
pub fn encode_fsh(uptime_s: u64) -> Vec<u8> {
    encode_sentence(format!("FSH,{uptime_s}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_xor_between_dollar_and_star() {
        // A classic NMEA example.
        assert_eq!(
            checksum(b"GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
            0x47
        );
        let body = b"FSH,3600";
        let by_byte = body.iter().fold(0u8, |a, &b| a ^ b);
        assert_eq!(checksum(body), by_byte);
        assert_eq!(
            encode_fsh(3600),
            format!("$FSH,3600*{by_byte:02X}\r\n").into_bytes()
        );
    }
}
