//! Thirty days of past readings, so that the dashboard of a fresh demo has coverage, a trend
//! and failures to show at once.
//!
//! Every reading goes through the real path of a live one: judged by the [`Judge`], stored by
//! [`insert_batch`] in the writer's transaction (identity, sample, hold and outbox together),
//! but with no upstream routes: its failures open holds and queue no events. Those events
//! would have been delivered long ago to the city's system; sending them now would flood the
//! demo's receiver with a month of old failures, and marking them delivered would record
//! deliveries that never happened. The receiver shows only what happens live.
//!
//! The city it draws: a few markets never test, about a fifth test less than their quota,
//! the rest meet it on most days; a market's testing room has an enzyme-inhibition photometer
//! for vegetables, a colloidal gold reader for meat and fish, and a spectrophotometer for
//! formaldehyde in aquatic products. A handful of samples fail each day.

use crate::judge::{Judge, Verdict};
use crate::store::holds::{set_hold_status, HoldStatus};
use crate::store::{insert_batch, Batch, NewReading, Origin, Store, StoreError, StoreSettings};
use chrono::{DateTime, Duration, FixedOffset, NaiveTime, TimeZone, Utc};
use foodgate_parsers::synth::Rng;
use foodgate_parsers::{DeviceVerdict, Protocol, Reading};

/// Readings stored per writer job: big enough that commits do not dominate.
const BATCH: usize = 4096;
/// Markets of the built-in registry.
const MARKETS: u32 = 484;
/// Holds older than this are settled (confirmed: the goods were destroyed).
const SETTLED_AFTER_DAYS: i64 = 2;

/// What [`generate`] stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    pub readings: usize,
    pub failures: usize,
    pub markets: usize,
}

/// How a market tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Habit {
    Never,
    /// Tests on most days, fewer samples than its quota of 10.
    BelowQuota,
    /// Meets its quota on most days.
    Regular,
}

fn habit(market: u32) -> Habit {
    // A fixed spread (not random) so that the same markets behave alike on every run.
    match market % 17 {
        0 => Habit::Never,
        1..=3 => Habit::BelowQuota,
        _ => Habit::Regular,
    }
}

const VEGETABLES: [&str; 10] = [
    "菠菜",
    "小白菜",
    "上海青",
    "芹菜",
    "韭菜",
    "黄瓜",
    "豇豆",
    "生菜",
    "油麦菜",
    "茼蒿",
];
const MEATS: [&str; 4] = ["猪肉", "猪肝", "牛肉", "羊肉"];
const FISH: [&str; 4] = ["草鱼", "鲫鱼", "鲈鱼", "对虾"];

/// One failure in this many samples: about ten a day across the city.
const FAIL_ONE_IN: u64 = 400;

/// Store `days` days of history (today up to `now` included) for the built-in markets.
pub fn generate(
    store: &Store,
    judge: &Judge,
    offset: FixedOffset,
    now: DateTime<Utc>,
    days: u32,
    seed: u64,
) -> Result<History, StoreError> {
    // Committing dominates (drawing on a thread of its own beside the writer measured no
    // faster), so the batches are stored as they are drawn.
    let mut holds = Vec::new();
    let mut stored = 0;
    let mut failed = None;
    let mut out = draw(judge, offset, now, days, seed, |mut batch| {
        match flush(store, &mut batch, &mut holds) {
            Ok(n) => {
                stored += n;
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    out.readings = stored;
    settle(store, holds, now)?;
    Ok(out)
}

/// Draw and judge the history in batches of [`BATCH`], handed to `emit` until it says stop.
/// `readings` of the result is left to the caller (what was stored).
fn draw(
    judge: &Judge,
    offset: FixedOffset,
    now: DateTime<Utc>,
    days: u32,
    seed: u64,
    mut emit: impl FnMut(Vec<NewReading>) -> bool,
) -> History {
    let mut rng = Rng::new(seed);
    let mut out = History::default();
    let mut pending: Vec<NewReading> = Vec::with_capacity(BATCH);
    let today = now.with_timezone(&offset).date_naive();
    for market in 1..=MARKETS {
        let habit = habit(market);
        if habit == Habit::Never {
            continue;
        }
        out.markets += 1;
        let code = format!("ZB-{market:04}");
        for back in (0..i64::from(days)).rev() {
            let day = today - Duration::days(back);
            let samples = match habit {
                Habit::Never => 0,
                // Skips about one day in five.
                Habit::BelowQuota if rng.chance(1, 5) => 0,
                Habit::BelowQuota => rng.range(3, 8),
                Habit::Regular if rng.chance(1, 20) => rng.range(4, 9),
                Habit::Regular => rng.range(10, 13),
            };
            for n in 0..samples {
                // Testing rooms work from 06:00 to 17:00.
                let minute = rng.range(6 * 60, 17 * 60 - 1) as u32;
                let time = NaiveTime::from_hms_opt(minute / 60, minute % 60, rng.below(60) as u32)
                    .unwrap_or_default();
                let Some(at) = offset.from_local_datetime(&day.and_time(time)).single() else {
                    continue;
                };
                if at.with_timezone(&Utc) > now {
                    continue;
                }
                let sample = format!("{}-{}-{:02}", code, day.format("%y%m%d"), n + 1);
                let fail = rng.chance(1, FAIL_ONE_IN);
                let reading = judge.judged(sample_reading(&mut rng, &code, &sample, at, fail));
                if reading.verdict == Verdict::Fail {
                    out.failures += 1;
                }
                let origin = Origin::Instrument(
                    reading
                        .reading
                        .instrument
                        .as_deref()
                        .unwrap_or("unknown")
                        .to_string(),
                );
                pending.push(NewReading {
                    reading,
                    market: code.clone(),
                    stall: Some(format!("A{:02}", rng.range(1, 40))),
                    origin,
                    // Stored a few seconds after the measurement, as a live link would.
                    received_at: at.with_timezone(&Utc) + Duration::seconds(3),
                    frame: None,
                });
                if pending.len() == BATCH
                    && !emit(std::mem::replace(&mut pending, Vec::with_capacity(BATCH)))
                {
                    return out;
                }
            }
        }
    }
    if !pending.is_empty() {
        emit(pending);
    }
    out
}

/// Submit `pending`; remember the holds it opened. Returns the readings stored.
fn flush(
    store: &Store,
    pending: &mut Vec<NewReading>,
    holds: &mut Vec<(String, DateTime<Utc>)>,
) -> Result<usize, StoreError> {
    if pending.is_empty() {
        return Ok(0);
    }
    let readings = std::mem::take(pending);
    let times: Vec<DateTime<Utc>> = readings.iter().map(|r| r.received_at).collect();
    let settings = StoreSettings {
        routes: Vec::new(),
        ..store.settings().clone()
    };
    let batch = Batch {
        frames: Vec::new(),
        readings,
    };
    let committed = store.write(move |tx| insert_batch(tx, &settings, batch))?;
    for (o, at) in committed.outcomes.iter().zip(times) {
        if let crate::store::Outcome::Stored { hold: Some(h), .. } = o {
            holds.push((h.clone(), at));
        }
    }
    Ok(committed.stored())
}

/// Old holds were retested and confirmed long ago; recent ones are still open.
fn settle(
    store: &Store,
    holds: Vec<(String, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let old: Vec<(String, String)> = holds
        .into_iter()
        .filter(|(_, at)| now - *at > Duration::days(SETTLED_AFTER_DAYS))
        .map(|(h, at)| {
            let when = at + Duration::hours(2);
            (h, crate::store::insert::rfc3339(when))
        })
        .collect();
    store.write(move |tx| {
        for (hold, at) in &old {
            set_hold_status(
                tx,
                hold,
                HoldStatus::Confirmed,
                "demo-history",
                "retest failed too: goods destroyed",
                at,
            )?;
        }
        Ok(())
    })
}

/// One market testing room reading of `sample`, failing when `fail`.
fn sample_reading(
    rng: &mut Rng,
    market: &str,
    sample: &str,
    at: DateTime<FixedOffset>,
    fail: bool,
) -> Reading {
    let mut r = match rng.below(10) {
        0..=5 => enzyme(rng, fail),
        6..=7 => gold(rng, fail),
        _ => formaldehyde(rng, fail),
    };
    let instrument = match r.protocol {
        Protocol::EnzymePrint => "EP1",
        Protocol::GoldCard => "GC1",
        _ => "SP1",
    };
    r.instrument = Some(format!("{market}-{instrument}").into());
    r.sample_id = Some(sample.into());
    r.measured_at = Some(at);
    r
}

/// Pesticide screening by enzyme inhibition: ΔA0 of the control, ΔAt of the sample and the
/// rate recomputed from them, printed as the photometer prints it.
fn enzyme(rng: &mut Rng, fail: bool) -> Reading {
    let mut r = Reading::new(Protocol::EnzymePrint, "op_carbamate");
    let a0 = rng.range(380, 460) as f64 / 1000.0;
    let target = if fail {
        rng.range(520, 900)
    } else {
        rng.range(20, 450)
    } as f64
        / 10.0;
    let at = ((a0 * (1.0 - target / 100.0)) * 1000.0).round() / 1000.0;
    let rate = ((a0 - at) / a0 * 1000.0).round() / 10.0;
    r.sample_name = Some(rng.pick(&VEGETABLES).into());
    r.method = Some("enzyme_inhibition".into());
    r.delta_a0 = Some(a0);
    r.delta_at = Some(at);
    r.recomputed_rate = Some(rate);
    r.value = Some(rate);
    r.value_text = Some(format!("{rate:.1}").into());
    r.unit = Some("%".into());
    r.device_verdict = Some(if rate >= 50.0 {
        DeviceVerdict::Positive
    } else {
        DeviceVerdict::Negative
    });
    r
}

/// A β-agonist (meat) or malachite green (fish) strip: competitive format, a faded T line
/// (T/C at or under the cut-off) is positive.
fn gold(rng: &mut Rng, fail: bool) -> Reading {
    let fish = rng.chance(1, 3);
    let (analyte, code, name) = if fish {
        ("malachite_green", "0x0202", rng.pick(&FISH))
    } else {
        ("clenbuterol", "0x0101", rng.pick(&MEATS))
    };
    let mut r = Reading::new(Protocol::GoldCard, analyte);
    let c = rng.range(800, 1500) as u32;
    let ratio = if fail {
        rng.range(100, 450)
    } else {
        rng.range(600, 1200)
    } as u32;
    let t = c * ratio / 1000;
    r.analyte_code = Some(code.into());
    r.sample_name = Some(name.into());
    r.method = Some("colloidal_gold".into());
    r.t_line = Some(t);
    r.c_line = Some(c);
    r.cutoff = Some(500);
    r.assay_format = Some("competitive".into());
    r.value = Some(f64::from(t) / f64::from(c));
    r.unit = Some("T/C".into());
    r.device_verdict = Some(if t * 1000 <= 500 * c {
        DeviceVerdict::Positive
    } else {
        DeviceVerdict::Negative
    });
    r
}

/// Formaldehyde in aquatic products by spectrophotometry (mg/kg).
fn formaldehyde(rng: &mut Rng, fail: bool) -> Reading {
    let mut r = Reading::new(Protocol::Spectro, "formaldehyde");
    let v = if fail {
        rng.range(120, 400)
    } else {
        rng.range(5, 60)
    } as f64
        / 10.0;
    r.analyte_code = Some("HCHO".into());
    r.sample_name = Some(rng.pick(&FISH).into());
    r.category = Some("aquatic_product".into());
    r.method = Some("spectrophotometric".into());
    r.value = Some(v);
    r.value_text = Some(format!("{v:.1}").into());
    r.unit = Some("mg/kg".into());
    r.device_verdict = Some(if fail {
        DeviceVerdict::Positive
    } else {
        DeviceVerdict::Negative
    });
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::JudgedReading;

    fn judged(r: Reading) -> JudgedReading {
        Judge::builtin().judged(r)
    }

    #[test]
    fn generated_samples_pass_or_fail_as_intended() {
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            for fail in [false, true] {
                for r in [
                    enzyme(&mut rng, fail),
                    gold(&mut rng, fail),
                    formaldehyde(&mut rng, fail),
                ] {
                    let want = if fail { Verdict::Fail } else { Verdict::Pass };
                    let r = judged(r);
                    assert_eq!(r.verdict, want, "{}: {}", r.reading.analyte, r.reason);
                    assert!(
                        r.reading.category.is_some(),
                        "{} has a category",
                        r.reading.analyte
                    );
                }
            }
        }
    }

    #[test]
    fn habits_spread_over_the_registry() {
        let count = |h: Habit| (1..=MARKETS).filter(|m| habit(*m) == h).count();
        assert_eq!(count(Habit::Never), 28);
        assert_eq!(count(Habit::BelowQuota), 87);
        assert_eq!(count(Habit::Regular), 369);
    }
}
