//! Virtual instruments: each speaks its protocol with its link level, for tests and demos.
//!
//! - astm: `ENQ`, frames of at most 240 text bytes each waiting for `ACK`, a frame sent again
//!   on `NAK` or after `ack_timeout` (15 s) up to 6 times, `EOT`; one message per transfer.
//! - hl7: an MLLP `ORU^R01` per sample, waiting for its `ACK`; sent again on `AR` or after
//!   `ack_timeout`; `AE` is final.
//! - gold-card: a device-info frame, then one result frame per strip, sent again with the
//!   same sequence number after 1 s without ack, up to 3 times.
//! - spectro: `$FSI`, then `$FSA` sentences (a `$FSH` heartbeat every 10); no answers.
//! - enzyme-print: printed reports of up to 4 channels; no answers.
//!
//! - lz4000t, tl310, dy723pc: devices that answer only when asked ([`polled`]).
//!
//! Samples are deterministic in the seed: commodity names as markets write them (菠菜,
//! 小白菜, 猪肉, 草鱼…), plausible values, and the requested share of positives.

use chrono::Utc;
use foodgate_parsers::astm::{encode_frame, escape, Frame};
use foodgate_parsers::enzyme_print::{encode_report, Report, ReportRow as Row};
use foodgate_parsers::gold_card::{self, ResultPayload};
use foodgate_parsers::hl7::{Obr, Obx, Oru};
use foodgate_parsers::spectro::{encode_fsh, encode_fsi, Fsa};
use foodgate_parsers::Protocol;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

mod kit;
pub mod polled;
mod setup;

use kit::{china, stamp, verdict_word, Kind, Samples, SimSample, Wire};
pub use polled::PolledControl;
pub use setup::{Faults, PolledOptions, SimConfig, SimReport};

const ENQ: u8 = 0x05;
const ACK: u8 = 0x06;
const NAK: u8 = 0x15;
const EOT: u8 = 0x04;
const VT: u8 = 0x0B;
const FS: u8 = 0x1C;

/// First ACK, NAK or EOT in `buf` (anything before it dropped).
fn control_reply(buf: &mut Vec<u8>) -> Option<u8> {
    let p = buf.iter().position(|b| matches!(*b, ACK | NAK | EOT))?;
    let b = buf[p];
    buf.drain(..=p);
    Some(b)
}

/// `MSA-1` of the first MLLP block acknowledging `control_id`.
fn hl7_reply(buf: &mut Vec<u8>, control_id: &str) -> Option<String> {
    loop {
        let start = buf.iter().position(|&b| b == VT)?;
        let end = start + buf[start..].windows(2).position(|w| w == [FS, b'\r'])?;
        let block = String::from_utf8_lossy(&buf[start + 1..end]).into_owned();
        buf.drain(..end + 2);
        let msa = block.split('\r').find(|s| s.starts_with("MSA|"))?;
        let mut f = msa.split('|');
        let code = f.nth(1).unwrap_or("").to_string();
        if f.next() == Some(control_id) {
            return Some(code);
        }
    }
}

/// Whether the ack of `seq` has arrived.
fn gold_reply(buf: &mut Vec<u8>, seq: u16) -> Option<()> {
    let ack = gold_card::encode_ack(seq);
    let p = buf.windows(ack.len()).position(|w| w == ack.as_slice())?;
    buf.drain(..p + ack.len());
    Some(())
}

/// Run the simulated instrument on `io` until `cfg.count` readings are sent; `log` gets
/// one line per sample. A polled device (lz4000t, tl310, dy723pc) holds `cfg.count`
/// records at start, a new one every `cfg.interval` (zero: none), and answers until the
/// host closes the line; `log` gets a line per request and per new record.
pub async fn run<T>(
    cfg: &SimConfig,
    io: T,
    log: &mut (dyn FnMut(String) + Send),
) -> io::Result<SimReport>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    if cfg.protocol.is_polled() {
        return polled::serve(cfg, io, &PolledControl::new(), log).await;
    }
    let mut wire = Wire {
        io,
        report: SimReport::default(),
        buf: Vec::new(),
    };
    let mut samples = Samples::new(cfg);
    match cfg.protocol {
        Protocol::Astm => astm(cfg, &mut wire, &mut samples, log).await?,
        Protocol::Hl7 => hl7(cfg, &mut wire, &mut samples, log).await?,
        Protocol::GoldCard => gold(cfg, &mut wire, &mut samples, log).await?,
        Protocol::Spectro => spectro(cfg, &mut wire, &mut samples, log).await?,
        Protocol::EnzymePrint => enzyme(cfg, &mut wire, &mut samples, log).await?,
        Protocol::Lz4000t | Protocol::Tl310 | Protocol::Dy723pc => {}
    }
    Ok(wire.report)
}

/// Test code, name, value, unit, range and flag of an ASTM/HL7 result for `s`.
fn lab_result(
    samples: &mut Samples,
    s: &SimSample,
) -> (
    &'static str,
    &'static str,
    String,
    &'static str,
    &'static str,
    &'static str,
) {
    let p = s.positive;
    match s.kind {
        Kind::Meat => {
            // A prohibited drug has no tolerated amount: a clean sample reads "not detected"
            // (any number would be judged a finding).
            let v = if p {
                format!("{:.2}", samples.decimal(0.6, 3.0, 2))
            } else {
                "ND".to_string()
            };
            (
                "CLB",
                "克伦特罗",
                v,
                "ug/kg",
                "<0.5",
                if p { "H" } else { "N" },
            )
        }
        Kind::Fish | Kind::Processed => {
            let v = if p {
                samples.decimal(12.0, 40.0, 1)
            } else {
                samples.decimal(0.5, 6.0, 1)
            };
            (
                "HCHO",
                "甲醛",
                format!("{v:.1}"),
                "mg/kg",
                "<10",
                if p { "H" } else { "N" },
            )
        }
        Kind::Vegetable => {
            let v = if p {
                samples.decimal(50.5, 95.0, 1)
            } else {
                samples.decimal(1.0, 40.0, 1)
            };
            (
                "OPI",
                "农药残留",
                format!("{v:.1}"),
                "%",
                "<50",
                if p { "POS" } else { "NEG" },
            )
        }
    }
}

async fn astm<T: AsyncRead + AsyncWrite + Unpin>(
    cfg: &SimConfig,
    wire: &mut Wire<T>,
    samples: &mut Samples,
    log: &mut (dyn FnMut(String) + Send),
) -> io::Result<()> {
    let mut ordinal = 0usize;
    for i in 0..cfg.count {
        if i > 0 {
            tokio::time::sleep(cfg.interval).await;
        }
        let s = samples.next(&[Kind::Vegetable, Kind::Vegetable, Kind::Meat, Kind::Fish]);
        let (code, _, value, unit, range, flag) = lab_result(samples, &s);
        let ts = stamp();
        let e = escape;
        let text = format!(
            "H|\\^&|||FSA-8^2.1^{serial}|||||||P|E1394-97|{ts}\rP|1|{stall}\rO|1|{id}||^^^{code}|R||{ts}||||||||{name}\rR|1|^^^{code}|{value}|{unit}|{range}|{flag}||F||||{ts}|{serial}\rL|1|N\r",
            serial = e(&cfg.serial),
            stall = e(&s.stall),
            id = e(&s.id),
            name = e(s.name),
        );
        let bytes = cfg.encoding.encode(&text);
        wire.report.readings += 1;
        let line = format!(
            "astm {}/{}: {} {} {} {} {} ({})",
            i + 1,
            cfg.count,
            s.id,
            s.name,
            code,
            value,
            unit,
            verdict_word(s.positive)
        );
        // ENQ until the receiver is ready.
        let mut ready = false;
        for _ in 0..cfg.max_tries.max(1) {
            wire.drain().await?;
            wire.send(&[ENQ]).await?;
            match wire.answer(cfg.ack_timeout, control_reply).await? {
                Some(ACK) => {
                    ready = true;
                    break;
                }
                Some(_) => tokio::time::sleep(cfg.retry_delay).await,
                None => {}
            }
        }
        if !ready {
            wire.report.failed += 1;
            log(format!("{line}: receiver not ready, given up"));
            continue;
        }
        let mut number = 1u8;
        let mut delivered = true;
        let chunks: Vec<&[u8]> = bytes
            .chunks(foodgate_parsers::synth::ASTM_FRAME_TEXT)
            .collect();
        for (k, chunk) in chunks.iter().enumerate() {
            let mut frame = Vec::new();
            encode_frame(
                Frame {
                    number,
                    text: chunk,
                    last: k + 1 == chunks.len(),
                },
                &mut frame,
            );
            let mut acked = false;
            for attempt in 0..cfg.max_tries.max(1) {
                if attempt > 0 {
                    wire.report.retransmissions += 1;
                }
                let mut out = frame.clone();
                if attempt == 0 && cfg.faults.corrupt_first_send.contains(&ordinal) {
                    corrupt_astm_checksum(&mut out);
                }
                wire.send(&out).await?;
                let reply = wire.answer(cfg.ack_timeout, control_reply).await?;
                if attempt == 0
                    && reply == Some(ACK)
                    && cfg.faults.lose_first_ack.contains(&ordinal)
                {
                    // As if the ACK was lost: the timer runs out, the frame goes again.
                    tokio::time::sleep(cfg.ack_timeout).await;
                    continue;
                }
                if reply == Some(ACK) {
                    acked = true;
                    break;
                }
            }
            ordinal += 1;
            if !acked {
                delivered = false;
                break;
            }
            number = (number + 1) % 8;
        }
        wire.send(&[EOT]).await?;
        if delivered {
            wire.report.acknowledged += 1;
            log(format!("{line}: ACK"));
        } else {
            wire.report.failed += 1;
            log(format!("{line}: no ACK after {} tries, EOT", cfg.max_tries));
        }
    }
    Ok(())
}

/// Replace the checksum's second digit with a different valid hex digit.
fn corrupt_astm_checksum(frame: &mut [u8]) {
    let n = frame.len();
    if n >= 3 {
        let c = &mut frame[n - 3];
        *c = if *c == b'0' { b'1' } else { b'0' };
    }
}

async fn hl7<T: AsyncRead + AsyncWrite + Unpin>(
    cfg: &SimConfig,
    wire: &mut Wire<T>,
    samples: &mut Samples,
    log: &mut (dyn FnMut(String) + Send),
) -> io::Result<()> {
    for i in 0..cfg.count {
        if i > 0 {
            tokio::time::sleep(cfg.interval).await;
        }
        let s = samples.next(&[Kind::Vegetable, Kind::Meat, Kind::Fish]);
        let (code, name, value, unit, range, flag) = lab_result(samples, &s);
        let ts = stamp();
        let control_id = format!("SIM{}-{}", cfg.seed, i + 1);
        let oru = Oru {
            sending_application: "SIM-LIS".into(),
            sending_facility: "LAB".into(),
            receiving_application: "FOODGATE".into(),
            receiving_facility: String::new(),
            timestamp: ts.clone(),
            control_id: control_id.clone(),
            version: "2.5".into(),
            charset: None,
            source_id: s.stall.clone(),
            vendor: vec!["王".into(), "伟".into()],
            orders: vec![Obr {
                sample_id: s.id.clone(),
                service: format!("{code}^{name}"),
                observed_at: ts.clone(),
                sample_name: s.name.into(),
                results: vec![Obx {
                    value_type: "NM".into(),
                    code: code.into(),
                    name: name.into(),
                    value: value.clone(),
                    unit: unit.into(),
                    reference_range: range.into(),
                    flag: flag.into(),
                    status: "F".into(),
                    observed_at: ts,
                    equipment: cfg.serial.clone(),
                    comments: Vec::new(),
                }],
            }],
        };
        let bytes = oru.to_mllp(cfg.encoding);
        wire.report.readings += 1;
        let line = format!(
            "hl7 {}/{} {control_id}: {} {} {code} {value} {unit} ({})",
            i + 1,
            cfg.count,
            s.id,
            s.name,
            verdict_word(s.positive)
        );
        let mut outcome = None;
        for attempt in 0..cfg.max_tries.max(1) {
            if attempt > 0 {
                wire.report.retransmissions += 1;
            }
            wire.send(&bytes).await?;
            let reply = wire
                .answer(cfg.ack_timeout, |b| hl7_reply(b, &control_id))
                .await?;
            if attempt == 0 && reply.is_some() && cfg.faults.lose_first_ack.contains(&i) {
                tokio::time::sleep(cfg.ack_timeout).await;
                continue;
            }
            match reply.as_deref() {
                Some("AA") | Some("CA") => {
                    outcome = Some("AA".to_string());
                    break;
                }
                Some("AR") | Some("CR") => tokio::time::sleep(cfg.retry_delay).await,
                Some(other) => {
                    outcome = Some(other.to_string());
                    break;
                }
                None => {}
            }
        }
        match outcome.as_deref() {
            Some("AA") => {
                wire.report.acknowledged += 1;
                log(format!("{line}: AA"));
            }
            Some(code) => {
                wire.report.failed += 1;
                log(format!("{line}: {code}"));
            }
            None => {
                wire.report.failed += 1;
                log(format!("{line}: no AA after {} tries", cfg.max_tries));
            }
        }
    }
    Ok(())
}

async fn gold<T: AsyncRead + AsyncWrite + Unpin>(
    cfg: &SimConfig,
    wire: &mut Wire<T>,
    samples: &mut Samples,
    log: &mut (dyn FnMut(String) + Send),
) -> io::Result<()> {
    let mut seq: u16 = 1;
    let info = gold_card::device_info_payload(&cfg.serial, "2.3.1");
    wire.send(&gold_card::encode_frame(0x03, seq, &info))
        .await?;
    for i in 0..cfg.count {
        if i > 0 {
            tokio::time::sleep(cfg.interval).await;
        }
        seq = seq.wrapping_add(1);
        let s = samples.next(&[Kind::Meat, Kind::Fish]);
        let (item, item_name) = match s.kind {
            Kind::Fish => (0x0202, "孔雀石绿"),
            _ => (0x0101, "克伦特罗"),
        };
        let cutoff: u16 = 500;
        let c = samples.rng.range(800, 1500);
        // Competitive format: a faded T line (T/C at or under the cut-off) is positive.
        let ratio = if s.positive {
            samples.rng.range(100, 450)
        } else {
            samples.rng.range(600, 1200)
        };
        let t = c * ratio / 1000;
        let payload = ResultPayload {
            sample_id: s.id.clone(),
            item,
            assay_format: 0,
            verdict: u8::from(t * 1000 <= u64::from(cutoff) * c),
            t_line: t as u16,
            c_line: c as u16,
            cutoff,
            test_time: Utc::now().timestamp().clamp(0, i64::from(u32::MAX)) as u32,
            lot: "LOT2026A".into(),
            sample_name: s.name.into(),
        }
        .encode(cfg.encoding);
        let frame = gold_card::encode_frame(0x01, seq, &payload);
        wire.report.readings += 1;
        let line = format!(
            "gold-card {}/{} seq {seq}: {} {} {item_name} T={t} C={c} ({})",
            i + 1,
            cfg.count,
            s.id,
            s.name,
            verdict_word(s.positive)
        );
        let mut acked = false;
        for attempt in 0..cfg.max_tries.max(1) {
            if attempt > 0 {
                wire.report.retransmissions += 1;
            }
            let mut out = frame.clone();
            if attempt == 0 && cfg.faults.corrupt_first_send.contains(&i) {
                if let Some(last) = out.last_mut() {
                    *last ^= 0xFF;
                }
            }
            wire.send(&out).await?;
            let reply = wire.answer(cfg.ack_timeout, |b| gold_reply(b, seq)).await?;
            if attempt == 0 && reply.is_some() && cfg.faults.lose_first_ack.contains(&i) {
                tokio::time::sleep(cfg.ack_timeout).await;
                continue;
            }
            if reply.is_some() {
                acked = true;
                break;
            }
        }
        if acked {
            wire.report.acknowledged += 1;
            log(format!("{line}: ack"));
        } else {
            wire.report.failed += 1;
            log(format!("{line}: no ack after {} tries", cfg.max_tries));
        }
    }
    Ok(())
}

async fn spectro<T: AsyncRead + AsyncWrite + Unpin>(
    cfg: &SimConfig,
    wire: &mut Wire<T>,
    samples: &mut Samples,
    log: &mut (dyn FnMut(String) + Send),
) -> io::Result<()> {
    wire.send(&encode_fsi(&cfg.serial, "FS-3000", "1.4.2"))
        .await?;
    for i in 0..cfg.count {
        if i > 0 {
            tokio::time::sleep(cfg.interval).await;
        }
        if i > 0 && i % 10 == 0 {
            wire.send(&encode_fsh(i as u64 * 60)).await?;
        }
        let s = samples.next(&[Kind::Processed, Kind::Fish, Kind::Meat]);
        let p = s.positive;
        let (item, value, unit) = match (s.kind, s.name) {
            (_, "腊肉") | (Kind::Meat, _) => {
                let v = if p {
                    samples.decimal(35.0, 90.0, 1)
                } else {
                    samples.decimal(1.0, 20.0, 1)
                };
                ("NO2", format!("{v:.1}"), "mg/kg")
            }
            (_, "银耳") => {
                let v = if p {
                    samples.decimal(0.15, 0.4, 3)
                } else {
                    samples.decimal(0.01, 0.08, 3)
                };
                ("SO2", format!("{v:.3}"), "g/kg")
            }
            (_, "手工面条") => {
                if p {
                    let v = samples.decimal(0.5, 3.0, 2);
                    ("BORAX", format!("{v:.2}"), "g/kg")
                } else {
                    ("BORAX", "ND".to_string(), "g/kg")
                }
            }
            _ => {
                let v = if p {
                    samples.decimal(12.0, 40.0, 1)
                } else {
                    samples.decimal(0.5, 6.0, 1)
                };
                ("HCHO", format!("{v:.1}"), "mg/kg")
            }
        };
        let fsa = Fsa {
            seq: (i + 1).to_string(),
            time: stamp(),
            item: item.into(),
            sample_id: s.id.clone(),
            sample_name: s.name.into(),
            category: String::new(),
            absorbance: format!("{:.3}", samples.decimal(0.05, 1.2, 3)),
            value: value.clone(),
            unit: unit.into(),
            dilution: "1".into(),
            verdict: if p { "F" } else { "P" }.into(),
        };
        wire.send(&fsa.encode(cfg.encoding)).await?;
        wire.report.readings += 1;
        wire.report.acknowledged += 1;
        log(format!(
            "spectro {}/{}: {} {} {item} {value} {unit} ({})",
            i + 1,
            cfg.count,
            s.id,
            s.name,
            verdict_word(p)
        ));
    }
    Ok(())
}

async fn enzyme<T: AsyncRead + AsyncWrite + Unpin>(
    cfg: &SimConfig,
    wire: &mut Wire<T>,
    samples: &mut Samples,
    log: &mut (dyn FnMut(String) + Send),
) -> io::Result<()> {
    let mut sent = 0;
    let mut report_no = 0;
    while sent < cfg.count {
        if report_no > 0 {
            tokio::time::sleep(cfg.interval).await;
        }
        report_no += 1;
        let a0 = samples.decimal(0.38, 0.46, 3);
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for channel in 1..=4u8 {
            if sent >= cfg.count {
                break;
            }
            let s = samples.next(&[Kind::Vegetable]);
            let target = if s.positive {
                samples.decimal(52.0, 90.0, 1)
            } else {
                samples.decimal(2.0, 45.0, 1)
            };
            // Print ΔAt with three decimals and the rate recomputed from it, as the
            // instrument does, so that the printed figures agree.
            let at = ((a0 * (1.0 - target / 100.0)) * 1000.0).round() / 1000.0;
            let rate = ((a0 - at) / a0 * 1000.0).round() / 10.0;
            let positive = rate >= 50.0;
            lines.push(format!(
                "enzyme-print report {report_no} channel {channel:02}: {} {} {rate:.1}% ({})",
                s.id,
                s.name,
                verdict_word(positive)
            ));
            rows.push(Row::Used {
                channel,
                sample_id: s.id,
                name: s.name.into(),
                delta_at: at,
                rate,
                conclusion: if positive { "阳性" } else { "阴性" }.into(),
            });
            sent += 1;
        }
        let now = Utc::now().with_timezone(&china());
        let report = Report {
            title: "      农药残留快速检测报告".into(),
            header: vec![
                ("仪器型号".into(), "NC-12".into()),
                ("仪器编号".into(), cfg.serial.clone()),
                (
                    "检测日期".into(),
                    now.format("%Y-%m-%d %H:%M:%S").to_string(),
                ),
                ("检测方法".into(), "GB/T 5009.199-2003".into()),
                ("对照 ΔA0".into(), format!("{a0:.3}")),
            ],
            rows,
            tester: Some("李明".into()),
            crlf: true,
            full_width: false,
        };
        wire.send(&encode_report(&report, cfg.encoding, true))
            .await?;
        wire.report.readings += lines.len();
        wire.report.acknowledged += lines.len();
        for l in lines {
            log(l);
        }
    }
    Ok(())
}
