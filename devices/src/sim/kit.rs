//! What every simulator shares: the samples a market tests, and the line with what was
//! said on it recorded.

use super::setup::{SimConfig, SimReport};
use chrono::{FixedOffset, Utc};
use foodgate_parsers::synth::Rng;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// One sample as tested.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SimSample {
    pub(super) id: String,
    pub(super) stall: String,
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    pub(super) positive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Vegetable,
    Meat,
    Fish,
    Processed,
}

pub(super) const VEGETABLES: [&str; 8] = [
    "菠菜",
    "小白菜",
    "上海青",
    "芹菜",
    "韭菜",
    "黄瓜",
    "豇豆",
    "生菜",
];
pub(super) const MEATS: [&str; 4] = ["猪肉", "猪肝", "牛肉", "羊肉"];
pub(super) const FISH: [&str; 4] = ["草鱼", "鲫鱼", "鲈鱼", "基围虾"];
pub(super) const PROCESSED: [&str; 4] = ["腊肉", "水发鱿鱼", "银耳", "手工面条"];

pub(super) struct Samples {
    pub(super) rng: Rng,
    pub(super) rate: u64,
    pub(super) n: usize,
}

impl Samples {
    pub(super) fn new(cfg: &SimConfig) -> Self {
        Samples {
            rng: Rng::new(cfg.seed),
            rate: (cfg.positive_rate.clamp(0.0, 1.0) * 1_000_000.0) as u64,
            n: 0,
        }
    }

    pub(super) fn next(&mut self, kinds: &[Kind]) -> SimSample {
        self.n += 1;
        let kind = self.rng.pick(kinds);
        let name = match kind {
            Kind::Vegetable => self.rng.pick(&VEGETABLES),
            Kind::Meat => self.rng.pick(&MEATS),
            Kind::Fish => self.rng.pick(&FISH),
            Kind::Processed => self.rng.pick(&PROCESSED),
        };
        let positive = self.rng.below(1_000_000) < self.rate;
        SimSample {
            id: format!("S{:04}", self.n),
            stall: format!("A{:02}", self.rng.range(1, 40)),
            name,
            kind,
            positive,
        }
    }

    /// A decimal in `lo..=hi` with `decimals` digits.
    pub(super) fn decimal(&mut self, lo: f64, hi: f64, decimals: i32) -> f64 {
        let scale = 10f64.powi(decimals);
        let (a, b) = ((lo * scale) as u64, (hi * scale) as u64);
        self.rng.range(a, b) as f64 / scale
    }
}

pub(super) fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or(FixedOffset::east_opt(0).expect("UTC"))
}

pub(super) fn stamp() -> String {
    Utc::now()
        .with_timezone(&china())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// The byte stream with what was said on it recorded.
pub(super) struct Wire<T> {
    pub(super) io: T,
    pub(super) report: SimReport,
    pub(super) buf: Vec<u8>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Wire<T> {
    pub(super) async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await?;
        self.report.sent.extend_from_slice(bytes);
        Ok(())
    }

    /// Wait up to `wait` for `pick` to find an answer in what has arrived.
    pub(super) async fn answer<R>(
        &mut self,
        wait: Duration,
        mut pick: impl FnMut(&mut Vec<u8>) -> Option<R>,
    ) -> io::Result<Option<R>> {
        let deadline = Instant::now() + wait;
        let mut tmp = [0u8; 1024];
        loop {
            if let Some(r) = pick(&mut self.buf) {
                return Ok(Some(r));
            }
            if self.buf.len() > 64 * 1024 {
                self.buf.clear();
            }
            let read = tokio::time::timeout_at(deadline, self.io.read(&mut tmp)).await;
            match read {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the link closed the line",
                    ))
                }
                Ok(Ok(n)) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    self.report.received.extend_from_slice(&tmp[..n]);
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Forget answers that came late (to an earlier try).
    pub(super) async fn drain(&mut self) -> io::Result<()> {
        while self.answer(Duration::ZERO, |_| None::<()>).await?.is_none() {
            if self.buf.is_empty() {
                break;
            }
            self.buf.clear();
        }
        self.buf.clear();
        Ok(())
    }
}

pub(super) fn verdict_word(positive: bool) -> &'static str {
    if positive {
        "positive"
    } else {
        "negative"
    }
}
