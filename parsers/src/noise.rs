//! Runs of bytes skipped between frames, reported once per run.

use crate::event::{Diagnostic, Event};

/// The run of noise being skipped: where it started and how many bytes it has.
#[derive(Debug, Default)]
pub(crate) struct Noise {
    run: Option<(u64, u64)>,
}

impl Noise {
    /// `n` noise bytes at stream `offset`.
    pub(crate) fn add(&mut self, offset: u64, n: u64) {
        if n == 0 {
            return;
        }
        match &mut self.run {
            Some((_, count)) => *count += n,
            None => self.run = Some((offset, n)),
        }
    }

    /// The bytes of `bytes` (at stream `offset`) other than CR and LF: line ends between
    /// frames are usual, not noise.
    pub(crate) fn add_except_line_ends(&mut self, offset: u64, bytes: &[u8]) {
        let Some(first) = bytes.iter().position(|&b| b != b'\r' && b != b'\n') else {
            return;
        };
        let n = bytes[first..]
            .iter()
            .filter(|&&b| b != b'\r' && b != b'\n')
            .count() as u64;
        self.add(offset + first as u64, n);
    }

    /// The run ended: one warning for it, saying outside of what (`frame`, `sentence`…).
    pub(crate) fn flush(&mut self, outside: &str, out: &mut Vec<Event>) {
        if let Some((start, n)) = self.run.take() {
            out.push(Event::Diagnostic(Diagnostic::warning(
                "noise",
                start,
                format!("skipped {n} byte(s) outside any {outside}"),
            )));
        }
    }

    pub(crate) fn clear(&mut self) {
        self.run = None;
    }
}
