//! ASTM encoders: frames with checksums, whole transfers. Used by simulators and tests.

use super::wire::{ENQ, EOT, ETB, ETX, STX};

/// Checksum of a frame: the sum of the bytes from FN through ETX/ETB inclusive, mod 256.
pub fn checksum(number_and_text_and_end: &[u8]) -> u8 {
    number_and_text_and_end
        .iter()
        .fold(0u8, |acc, &b| acc.wrapping_add(b))
}

/// One frame to put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Frame number 0–7.
    pub number: u8,
    pub text: &'a [u8],
    /// `ETX` (last frame of a message) rather than `ETB`.
    pub last: bool,
}

/// `STX FN text ETX|ETB C1 C2 CR LF`.
pub fn encode_frame(frame: Frame<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(STX);
    out.push(b'0' + frame.number % 8);
    out.extend_from_slice(frame.text);
    out.push(if frame.last { ETX } else { ETB });
    let sum = checksum(&out[start + 1..]);
    out.extend_from_slice(format!("{sum:02X}\r\n").as_bytes());
}

/// A whole transfer: `ENQ`, each message's text cut into frames of at most `max_text`
/// bytes (ETB between, ETX at the end of each message), frame numbers from 1, `EOT`.
pub fn encode_transfer(messages: &[Vec<u8>], max_text: usize) -> Vec<u8> {
    let max_text = max_text.max(1);
    let mut out = vec![ENQ];
    let mut number = 1u8;
    for msg in messages {
        let mut chunks = msg.chunks(max_text).peekable();
        if chunks.peek().is_none() {
            continue;
        }
        while let Some(text) = chunks.next() {
            let last = chunks.peek().is_none();
            encode_frame(Frame { number, text, last }, &mut out);
            number = (number + 1) % 8;
        }
    }
    out.push(EOT);
    out
}

/// Escape a field's text with the default delimiters (`|\^&`).
pub fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => s.push_str("&F&"),
            '^' => s.push_str("&S&"),
            '\\' => s.push_str("&R&"),
            '&' => s.push_str("&E&"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_bytes() {
        let mut out = Vec::new();
        encode_frame(
            Frame {
                number: 7,
                text: b"L|1|N\r",
                last: true,
            },
            &mut out,
        );
        // '7' + "L|1|N\r" + ETX
        let sum = checksum(b"7L|1|N\r\x03");
        assert_eq!(
            out,
            [
                &b"\x027L|1|N\r\x03"[..],
                format!("{sum:02X}\r\n").as_bytes()
            ]
            .concat()
        );
    }

    #[test]
    fn transfer_numbers_wrap() {
        let out = encode_transfer(&[b"abcdefghij".to_vec()], 1);
        let numbers: Vec<u8> = out
            .windows(2)
            .filter(|w| w[0] == STX)
            .map(|w| w[1])
            .collect();
        assert_eq!(numbers, b"1234567012");
    }
}
