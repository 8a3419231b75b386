//! Synthetic captures shaped like a food-testing analyzer's traffic, for benchmarks, tests
//! and simulators.
//!
//! Everything is deterministic in the seed (a splitmix64 generator, so no dependency and the
//! same bytes on every platform), and valid: an ASTM capture decodes with no error
//! diagnostic and exactly one reading per `R` record generated.

use crate::astm::{encode_transfer, escape};
use std::fmt::Write as _;

/// Frame text limit of E1381-95 senders (247-byte frames): longer messages go out as
/// `ETB` chains.
pub const ASTM_FRAME_TEXT: usize = 240;

/// splitmix64: tiny, fast, and good enough to vary test traffic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n == 0`); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// One of `items`, which must not be empty.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

/// What a generated capture holds, for tests that check a decoder against it.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub bytes: Vec<u8>,
    /// Complete messages (ASTM `H`…`L`, HL7 `MSH`…).
    pub messages: usize,
    /// Result records (ASTM `R`, HL7 `OBX`): one reading each.
    pub results: usize,
}

/// One analyte as the analyzer reports it.
struct SynthTest {
    code: &'static str,
    /// Chinese name (HL7 OBX-3 text component).
    name: &'static str,
    unit: &'static str,
    range: &'static str,
    /// Numeric results drawn from `0..max` with `decimals` digits; above `limit` is flagged.
    max: f64,
    decimals: usize,
    limit: f64,
    /// Rapid test that reports `POS`/`NEG` (or `<LOD`) rather than a number, sometimes.
    qualitative: bool,
    lod: &'static str,
}

const TESTS: [SynthTest; 6] = [
    SynthTest {
        code: "OPI",
        name: "农药残留",
        unit: "%",
        range: "<50",
        max: 100.0,
        decimals: 1,
        limit: 50.0,
        qualitative: false,
        lod: "<5.0",
    },
    SynthTest {
        code: "CLB",
        name: "克伦特罗",
        unit: "ug/kg",
        range: "<0.5",
        max: 3.0,
        decimals: 2,
        limit: 0.5,
        qualitative: true,
        lod: "<0.05",
    },
    SynthTest {
        code: "RAC",
        name: "莱克多巴胺",
        unit: "ug/kg",
        range: "<0.5",
        max: 3.0,
        decimals: 2,
        limit: 0.5,
        qualitative: true,
        lod: "<0.05",
    },
    SynthTest {
        code: "HCHO",
        name: "甲醛",
        unit: "mg/kg",
        range: "<10",
        max: 40.0,
        decimals: 1,
        limit: 10.0,
        qualitative: false,
        lod: "<0.5",
    },
    SynthTest {
        code: "SO2",
        name: "二氧化硫",
        unit: "g/kg",
        range: "<0.1",
        max: 0.4,
        decimals: 3,
        limit: 0.1,
        qualitative: false,
        lod: "<0.005",
    },
    SynthTest {
        code: "NO2",
        name: "亚硝酸盐",
        unit: "mg/kg",
        range: "<30",
        max: 90.0,
        decimals: 1,
        limit: 30.0,
        qualitative: false,
        lod: "<1.0",
    },
];

/// Market-stall commodities (latin-1 safe: the ASTM default encoding is Latin-1).
const FOODS: [&str; 12] = [
    "spinach",
    "pak choi",
    "celery",
    "leek",
    "cucumber",
    "pork",
    "pork liver",
    "beef",
    "tofu",
    "rice noodles",
    "bean sprouts",
    "salt & pepper shrimp",
];

/// Vendor names, `family^given`; one Latin-1 name exercises the decoding.
const VENDORS: [&str; 8] = [
    "Wang^Wei",
    "Li^Na",
    "Zhang^Min",
    "Liu^Yang",
    "Chen^Jie",
    "Huang^Li",
    "Zhao^Lei",
    "Müller^Jörg",
];

const HL7_VENDORS: [&str; 6] = ["王^伟", "李^娜", "张^敏", "刘^洋", "陈^杰", "赵^磊"];

/// A clock that moves forward a little with every message.
struct Clock {
    /// Seconds since 2025-03-01 00:00:00 local.
    secs: u64,
}

impl Clock {
    fn new(rng: &mut Rng) -> Self {
        Clock {
            secs: 8 * 3600 + rng.below(3600),
        }
    }

    fn tick(&mut self, rng: &mut Rng) {
        self.secs += rng.range(20, 400);
    }

    /// `YYYYMMDDHHMMSS` (days counted into March 2025 onwards, civil calendar).
    fn stamp(&self, out: &mut String, extra_secs: u64) {
        let t = self.secs + extra_secs;
        let (day, rem) = (t / 86_400, t % 86_400);
        let (y, m, d) = civil_from_days(days_from_civil(2025, 3, 1) + day as i64);
        let _ = write!(
            out,
            "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        );
    }
}

// Howard Hinnant's algorithms: exact civil calendar without a date library.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// A result: the value as sent and its abnormal flag.
fn result_value(rng: &mut Rng, t: &SynthTest) -> (String, &'static str) {
    let roll = rng.below(100);
    if t.qualitative && roll < 25 {
        return if rng.chance(1, 5) {
            ("POS".into(), "A")
        } else {
            ("NEG".into(), "N")
        };
    }
    if roll < 35 {
        return ("ND".into(), "N");
    }
    if roll < 50 {
        return (t.lod.into(), "N");
    }
    let v = rng.below(1_000_000) as f64 / 1_000_000.0 * t.max;
    let flag = if v > t.limit { "H" } else { "N" };
    (format!("{v:.*}", t.decimals), flag)
}

/// Stream state shared by consecutive messages of one generator.
struct SynthStream {
    rng: Rng,
    clock: Clock,
    serial: String,
    booth: u64,
    sample: u64,
}

impl SynthStream {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let clock = Clock::new(&mut rng);
        let serial = format!("SN{:08}", rng.below(100_000_000));
        SynthStream {
            rng,
            clock,
            serial,
            booth: 1,
            sample: 0,
        }
    }

    /// One ASTM message: records each ended by CR (`H`, `P`, `O`, 1–8 `R`, `L`), Latin-1.
    /// Returns the text and its number of `R` records.
    fn astm_message(&mut self) -> (Vec<u8>, usize) {
        let rng = &mut self.rng;
        self.clock.tick(rng);
        let mut s = String::with_capacity(1024);
        s.push_str("H|\\^&|||FSA-8^2.1^");
        s.push_str(&self.serial);
        s.push_str("|||||||P|E1394-97|");
        self.clock.stamp(&mut s, 0);
        s.push('\r');

        self.booth = (self.booth + rng.range(0, 2)) % 60 + 1;
        let vendor = rng.pick(&VENDORS);
        let _ = write!(s, "P|1|ZB-0003-A{:02}|||{vendor}\r", self.booth);

        self.sample += 1;
        let food = escape(rng.pick(&FOODS));
        let n = rng.range(1, 8) as usize;
        let first = rng.below(TESTS.len() as u64) as usize;
        let _ = write!(s, "O|1|S{:06}||^^^{}|R||", self.sample, TESTS[first].code);
        self.clock.stamp(&mut s, 0);
        let _ = write!(s, "||||||||{food}\r");

        for k in 0..n {
            let t = &TESTS[(first + k) % TESTS.len()];
            let (value, flag) = result_value(rng, t);
            let _ = write!(
                s,
                "R|{}|^^^{}|{}|{}|{}|{flag}||F||||",
                k + 1,
                t.code,
                value,
                escape(t.unit),
                t.range
            );
            self.clock.stamp(&mut s, 30 + 10 * k as u64);
            let _ = write!(s, "|{}\r", self.serial);
        }
        s.push_str("L|1|N\r");
        (latin1(&s), n)
    }

    /// One HL7 ORU^R01 message (segments ended by CR), UTF-8. Returns it and its OBX count.
    fn hl7_message(&mut self, control: u64) -> (Vec<u8>, usize) {
        let rng = &mut self.rng;
        self.clock.tick(rng);
        let mut s = String::with_capacity(1536);
        s.push_str("MSH|^~\\&|FSA-8|ZB-0003|foodgate|city|");
        self.clock.stamp(&mut s, 0);
        if rng.chance(1, 4) {
            s.push_str("+0800");
        }
        let _ = write!(s, "||ORU^R01|FG{control:08}|P|2.5.1||||||UNICODE UTF-8\r");

        self.booth = (self.booth + rng.range(0, 2)) % 60 + 1;
        let _ = write!(
            s,
            "PID|1||ZB-0003-A{:02}||{}\r",
            self.booth,
            rng.pick(&HL7_VENDORS)
        );

        self.sample += 1;
        let n = rng.range(1, 8) as usize;
        let first = rng.below(TESTS.len() as u64) as usize;
        let _ = write!(
            s,
            "OBR|1||S{:06}|{}^{}^L|||",
            self.sample, TESTS[first].code, TESTS[first].name
        );
        self.clock.stamp(&mut s, 0);
        let _ = write!(s, "||||||||{}\r", hl7_escape(rng.pick(&FOODS)));

        for k in 0..n {
            let t = &TESTS[(first + k) % TESTS.len()];
            let (value, flag) = result_value(rng, t);
            let kind = if value.parse::<f64>().is_ok() {
                "NM"
            } else {
                "ST"
            };
            let _ = write!(
                s,
                "OBX|{}|{kind}|{}^{}^L||{value}|{}|{}|{flag}|||F|||",
                k + 1,
                t.code,
                t.name,
                hl7_escape(t.unit),
                t.range
            );
            self.clock.stamp(&mut s, 30 + 10 * k as u64);
            let _ = write!(s, "|||{}\r", self.serial);
        }
        (s.into_bytes(), n)
    }
}

/// Text whose characters are all Latin-1, as Latin-1 bytes.
fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// HL7 escapes for the default encoding characters `|^~\&`.
fn hl7_escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => s.push_str("\\F\\"),
            '^' => s.push_str("\\S\\"),
            '~' => s.push_str("\\R\\"),
            '\\' => s.push_str("\\E\\"),
            '&' => s.push_str("\\T\\"),
            c => s.push(c),
        }
    }
    s
}

/// `n` ASTM message texts (records each ended by CR), the same messages, in the same order,
/// that [`astm_capture`] with this seed frames.
pub fn astm_messages(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut a = SynthStream::new(seed);
    (0..n).map(|_| a.astm_message().0).collect()
}

/// An ASTM E1381 capture of at least `target_bytes` (it stops after the transfer that
/// reaches it): transfers `ENQ`, 1–3 messages in frames of at most 240 text bytes, `EOT`.
pub fn astm_capture(target_bytes: usize, seed: u64) -> Vec<u8> {
    astm_capture_counted(target_bytes, seed).bytes
}

/// [`astm_capture`] with its message and `R` record counts.
pub fn astm_capture_counted(target_bytes: usize, seed: u64) -> Capture {
    let mut a = SynthStream::new(seed);
    // Grouping draws from its own stream so the messages match `astm_messages`.
    let mut grouping = Rng::new(seed ^ 0x5EED_A57A);
    let mut cap = Capture {
        bytes: Vec::with_capacity(target_bytes + 4096),
        ..Capture::default()
    };
    let mut transfer = Vec::with_capacity(3);
    while cap.bytes.len() < target_bytes {
        transfer.clear();
        for _ in 0..grouping.range(1, 3) {
            let (msg, n) = a.astm_message();
            transfer.push(msg);
            cap.messages += 1;
            cap.results += n;
        }
        cap.bytes
            .extend_from_slice(&encode_transfer(&transfer, ASTM_FRAME_TEXT));
    }
    cap
}

/// An HL7 capture of at least `target_bytes`: MLLP blocks `VT` ORU^R01 `FS CR`.
pub fn hl7_capture(target_bytes: usize, seed: u64) -> Vec<u8> {
    hl7_capture_counted(target_bytes, seed).bytes
}

/// [`hl7_capture`] with its message and `OBX` counts.
pub fn hl7_capture_counted(target_bytes: usize, seed: u64) -> Capture {
    let mut a = SynthStream::new(seed);
    let mut cap = Capture {
        bytes: Vec::with_capacity(target_bytes + 4096),
        ..Capture::default()
    };
    while cap.bytes.len() < target_bytes {
        let (msg, n) = a.hl7_message(cap.messages as u64 + 1);
        cap.bytes.push(0x0B);
        cap.bytes.extend_from_slice(&msg);
        cap.bytes.extend_from_slice(&[0x1C, 0x0D]);
        cap.messages += 1;
        cap.results += n;
    }
    cap
}

/// A `gold-card` capture of at least `target_bytes`: result frames (type `01`) with
/// sequence numbers counting up, three items, GBK sample names.
pub fn gold_card_capture_counted(target_bytes: usize, seed: u64) -> Capture {
    use crate::gold_card::{encode_frame, ResultPayload, TYPE_RESULT};
    const NAMES: [&str; 4] = ["猪肉", "牛肉", "羊肉", "鸡肉"];
    let mut rng = Rng::new(seed);
    let mut cap = Capture {
        bytes: Vec::with_capacity(target_bytes + 256),
        ..Capture::default()
    };
    let mut seq = 0u16;
    while cap.bytes.len() < target_bytes {
        let t_line = 200 + rng.below(800) as u16;
        let p = ResultPayload {
            sample_id: format!("GC-{:05}", cap.results % 100_000),
            item: 0x0101 + rng.below(3) as u16,
            assay_format: 0,
            verdict: u8::from(t_line < 500),
            t_line,
            c_line: 1000,
            cutoff: 500,
            test_time: 1_795_829_535 + 30 * cap.results as u32,
            lot: "LOT2611A".into(),
            sample_name: rng.pick(&NAMES).into(),
        };
        cap.bytes.extend(encode_frame(
            TYPE_RESULT,
            seq,
            &p.encode(crate::text::Encoding::Gbk),
        ));
        seq = seq.wrapping_add(1);
        cap.messages += 1;
        cap.results += 1;
    }
    cap
}

/// A `spectro` capture of at least `target_bytes`: `$FSA` result sentences, four items.
pub fn spectro_capture_counted(target_bytes: usize, seed: u64) -> Capture {
    use crate::spectro::Fsa;
    const ITEMS: [(&str, &str); 4] = [
        ("HCHO", "mg/kg"),
        ("SO2", "g/kg"),
        ("NO2", "mg/kg"),
        ("OPI", "%"),
    ];
    const NAMES: [&str; 4] = ["草鱼", "豆腐", "粉丝", "Bok Choy"];
    let mut rng = Rng::new(seed);
    let mut cap = Capture {
        bytes: Vec::with_capacity(target_bytes + 256),
        ..Capture::default()
    };
    let mut seq = 0u64;
    while cap.bytes.len() < target_bytes {
        let (item, unit) = rng.pick(&ITEMS);
        let value = rng.below(1000);
        let secs = seq % 86_400;
        let s = Fsa {
            seq: seq.to_string(),
            time: format!(
                "20261128{:02}{:02}{:02}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            ),
            item: item.into(),
            sample_id: format!("S-{:06}", seq % 1_000_000),
            sample_name: rng.pick(&NAMES).into(),
            category: "13".into(),
            absorbance: format!("0.{:03}", rng.below(1000)),
            value: format!("{}.{}", value / 10, value % 10),
            unit: unit.into(),
            dilution: "1".into(),
            verdict: if value > 800 { "F" } else { "P" }.into(),
        };
        cap.bytes.extend(s.encode(crate::text::Encoding::Gbk));
        seq += 1;
        cap.messages += 1;
        cap.results += 1;
    }
    cap
}

/// An `enzyme-print` capture of at least `target_bytes`: 12-channel printed reports with
/// ESC/POS commands, GBK text.
pub fn enzyme_print_capture_counted(target_bytes: usize, seed: u64) -> Capture {
    use crate::enzyme_print::{encode_report, Report, ReportRow};
    const NAMES: [&str; 4] = ["菠菜", "小白菜", "上海青", "Bok Choy"];
    let mut rng = Rng::new(seed);
    let mut cap = Capture {
        bytes: Vec::with_capacity(target_bytes + 4096),
        ..Capture::default()
    };
    let mut report = Report::example();
    while cap.bytes.len() < target_bytes {
        report.rows = (1..=12)
            .map(|c| {
                let at = 0.1 + rng.below(300) as f64 / 1000.0;
                let rate = ((0.412 - at) / 0.412 * 1000.0).round() / 10.0;
                ReportRow::Used {
                    channel: c,
                    sample_id: format!("S{:04}", (cap.results + usize::from(c)) % 10_000),
                    name: rng.pick(&NAMES).into(),
                    delta_at: at,
                    rate,
                    conclusion: if rate >= 50.0 { "阳性" } else { "阴性" }.into(),
                }
            })
            .collect();
        cap.bytes
            .extend_from_slice(&encode_report(&report, crate::text::Encoding::Gbk, true));
        cap.messages += 1;
        cap.results += 12;
    }
    cap
}

/// A capture of `protocol` of at least `target_bytes` (see the per-protocol functions).
pub fn capture_counted(protocol: crate::Protocol, target_bytes: usize, seed: u64) -> Capture {
    use crate::Protocol;
    match protocol {
        Protocol::Astm => astm_capture_counted(target_bytes, seed),
        Protocol::Hl7 => hl7_capture_counted(target_bytes, seed),
        Protocol::GoldCard => gold_card_capture_counted(target_bytes, seed),
        Protocol::Spectro => spectro_capture_counted(target_bytes, seed),
        Protocol::EnzymePrint => enzyme_print_capture_counted(target_bytes, seed),
        Protocol::Lz4000t | Protocol::Tl310 | Protocol::Dy723pc => {
            polled_capture_counted(protocol, target_bytes, seed)
        }
    }
}

/// The replies of a polled device of `protocol` to reads of day after day (from 2026-01-01),
/// 20 records a day, a fifth of them failing: at least `target_bytes`.
pub fn polled_capture_counted(
    protocol: crate::Protocol,
    target_bytes: usize,
    seed: u64,
) -> Capture {
    use crate::text::Encoding;
    use crate::Protocol;
    use chrono::{Duration, NaiveDate};
    const NAMES: [&str; 4] = ["白菜", "菠菜", "韭菜", "生菜"];
    const PER_DAY: u16 = 20;
    let mut rng = Rng::new(seed);
    let mut cap = Capture {
        bytes: Vec::with_capacity(target_bytes + 4096),
        ..Capture::default()
    };
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    let mut day_n = 0;
    while cap.bytes.len() < target_bytes {
        let day = start + Duration::days(day_n % 3650);
        day_n += 1;
        if protocol == Protocol::Lz4000t {
            cap.bytes
                .extend_from_slice(&crate::lz4000t::count_reply(day, PER_DAY));
        }
        for i in 1..=PER_DAY {
            let at = day
                .and_hms_opt(8 + u32::from(i) / 4, u32::from(i) * 3 % 60, 0)
                .unwrap_or_default();
            let failing = rng.below(5) == 0;
            let rate = if failing {
                500 + rng.below(400)
            } else {
                rng.below(450)
            } as u16;
            match protocol {
                Protocol::Lz4000t => {
                    let rec = crate::lz4000t::Lz4000tRecord {
                        number: i,
                        name: NAMES[usize::from(i) % NAMES.len()].into(),
                        tested_at: at,
                        rate_x100: rate * 10,
                    };
                    cap.bytes.extend_from_slice(&crate::lz4000t::record_frame(
                        &rec,
                        i,
                        PER_DAY,
                        Encoding::Gbk,
                    ));
                }
                Protocol::Tl310 => {
                    let rec = crate::tl310::Tl310Record {
                        channel: (i % 12 + 1) as u8,
                        standard: 0,
                        tested_at: at,
                        number: i,
                        rate_x10: rate,
                        conclusion: if rate >= 500 { 0x01 } else { 0x02 },
                    };
                    cap.bytes
                        .extend_from_slice(&crate::tl310::record_frame(&rec, i, PER_DAY));
                }
                _ => {
                    let rec = crate::dy723pc::Dy723pcRecord {
                        sample: format!("{i:04}"),
                        channel: u32::from(i % 12 + 1),
                        item: "有机磷".into(),
                        absorbance: "0.512".into(),
                        value: format!("{}.{}", rate / 10, rate % 10),
                        unit: "%".into(),
                        conclusion: if rate >= 500 { "不合格" } else { "合格" }.into(),
                        tested_at: at,
                        check: "5A".into(),
                    };
                    cap.bytes
                        .extend_from_slice(&crate::dy723pc::record_line(&rec, Encoding::Gb18030));
                }
            }
            cap.results += 1;
        }
        if protocol == Protocol::Dy723pc {
            cap.bytes.extend_from_slice(crate::dy723pc::finish());
        }
        cap.messages += 1;
    }
    cap
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Level, LinkEvent};
    use crate::{decode_all, new_decoder, DecoderConfig, Protocol};

    fn decode(protocol: Protocol, bytes: &[u8]) -> Vec<Event> {
        let mut d = new_decoder(protocol, DecoderConfig::default());
        decode_all(d.as_mut(), bytes)
    }

    #[test]
    fn astm_capture_decodes_to_every_result_without_errors() {
        let cap = astm_capture_counted(300_000, 7);
        assert!(cap.bytes.len() >= 300_000);
        let events = decode(Protocol::Astm, &cap.bytes);
        let readings = events
            .iter()
            .filter(|e| matches!(e, Event::Reading(_)))
            .count();
        let ends = events
            .iter()
            .filter(|e| matches!(e, Event::Link(LinkEvent::MessageEnd { .. })))
            .count();
        let diagnostics: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Diagnostic(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(readings, cap.results);
        assert_eq!(ends, cap.messages);
        assert!(
            diagnostics.iter().all(|d| d.level != Level::Error),
            "{diagnostics:?}"
        );
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
    }

    #[test]
    fn every_protocols_capture_decodes_to_its_results_without_diagnostics() {
        for protocol in Protocol::ALL {
            let cap = capture_counted(protocol, 100_000, 3);
            assert!(cap.bytes.len() >= 100_000, "{protocol}");
            let events = decode(protocol, &cap.bytes);
            let readings = events
                .iter()
                .filter(|e| matches!(e, Event::Reading(_)))
                .count();
            let diagnostics: Vec<_> = events
                .iter()
                .filter(|e| matches!(e, Event::Diagnostic(_)))
                .collect();
            assert_eq!(readings, cap.results, "{protocol}");
            assert!(
                diagnostics.is_empty(),
                "{protocol}: {:?}",
                diagnostics.first()
            );
        }
    }

    #[test]
    fn astm_readings_carry_the_generated_fields() {
        let cap = astm_capture(20_000, 3);
        let events = decode(Protocol::Astm, &cap);
        let r = events
            .iter()
            .find_map(|e| match e {
                Event::Reading(r) => Some(r),
                _ => None,
            })
            .expect("a reading");
        assert!(r.instrument.as_deref().is_some_and(|s| s.starts_with("SN")));
        assert!(r.sample_id.as_deref().is_some_and(|s| s.starts_with('S')));
        assert!(r
            .source
            .as_deref()
            .is_some_and(|s| s.starts_with("ZB-0003-A")));
        assert!(r.measured_at.is_some());
        assert!(!r.analyte.starts_with("unknown:"), "{}", r.analyte);
        // Escaped names come back unescaped.
        let names: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Reading(r) => r.sample_name.clone(),
                _ => None,
            })
            .collect();
        assert!(
            names.iter().all(|n| FOODS.contains(&n.as_str())),
            "{names:?}"
        );
    }

    #[test]
    fn astm_frames_respect_the_240_byte_limit_and_chain_with_etb() {
        let cap = astm_capture(50_000, 11);
        let mut etb = 0;
        let mut i = 0;
        while let Some(p) = cap[i..].iter().position(|&b| b == 0x02) {
            let start = i + p;
            let end = start
                + cap[start..]
                    .iter()
                    .position(|&b| b == 0x03 || b == 0x17)
                    .expect("terminated");
            assert!(end - start - 2 <= ASTM_FRAME_TEXT);
            if cap[end] == 0x17 {
                etb += 1;
            }
            i = end;
        }
        assert!(etb > 0, "long messages must be chained");
    }

    #[test]
    fn generation_is_deterministic_and_messages_match_the_capture() {
        assert_eq!(astm_capture(10_000, 5), astm_capture(10_000, 5));
        assert_ne!(astm_capture(10_000, 5), astm_capture(10_000, 6));
        assert_eq!(hl7_capture(10_000, 5), hl7_capture(10_000, 5));
        let msgs = astm_messages(3, 5);
        let framed = encode_transfer(&msgs[..1], ASTM_FRAME_TEXT);
        let cap = astm_capture(1, 5);
        // The first transfer carries 1–3 messages; the first frame is the same either way.
        let first_frame_end = framed.iter().position(|&b| b == 0x0A).expect("frame");
        assert_eq!(cap[..first_frame_end], framed[..first_frame_end]);
        assert!(msgs
            .iter()
            .all(|m| m.starts_with(b"H|\\^&|||FSA-8^2.1^SN") && m.ends_with(b"L|1|N\r")));
    }

    #[test]
    fn hl7_capture_is_mllp_wrapped_oru() {
        let cap = hl7_capture_counted(20_000, 9);
        let blocks: Vec<&[u8]> = cap
            .bytes
            .split(|&b| b == 0x0B)
            .filter(|b| !b.is_empty())
            .collect();
        assert_eq!(blocks.len(), cap.messages);
        let mut obx = 0;
        for b in blocks {
            assert!(b.ends_with(&[0x1C, 0x0D]));
            let text = std::str::from_utf8(&b[..b.len() - 2]).expect("utf-8");
            assert!(text.starts_with("MSH|^~\\&|FSA-8|ZB-0003|foodgate|city|"));
            assert!(text.contains("|ORU^R01|FG"));
            assert!(text.contains("\rPID|1||ZB-0003-A"));
            obx += text.split('\r').filter(|s| s.starts_with("OBX|")).count();
        }
        assert_eq!(obx, cap.results);
    }

    #[test]
    fn calendar_round_trips() {
        for z in [-1, 0, 59, 60, 365, 20_000, 20_148] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(days_from_civil(2025, 3, 1)), (2025, 3, 1));
        assert_eq!(
            civil_from_days(days_from_civil(2024, 2, 29) + 1),
            (2024, 3, 1)
        );
    }
}
