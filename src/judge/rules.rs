//! The rules of `docs/judging.md` ("Order of the rules"): the first that applies decides.
//!
//! 1. invalid input, 2. unknown analyte, 3. colloidal gold, 4. inhibition rate,
//! 5. qualitative, 6. prohibited, 7. numeric limit, 8. otherwise unknown.

use super::reference::{Analyte, AnalyteRule, Reference};
use super::types::{compare, Unit};
use super::verdict::{AppliedLimit, Judgement, Verdict};
use super::CategorySource;
use foodgate_parsers::{DeviceVerdict, Protocol, Qualifier, Reading};
use std::cmp::Ordering;
use std::fmt::Write as _;

/// What the rules decided for a reading: its judgement (with a limit for rules 3, 4 and 7)
/// and what they learned on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub judgement: Judgement,
    /// The inhibition rate recomputed from ΔA0 and ΔAt, to one decimal, when it was.
    pub recomputed_rate: Option<f64>,
}

fn outcome(verdict: Verdict, reason: String, limit: Option<AppliedLimit>) -> Decision {
    Decision {
        judgement: Judgement {
            verdict,
            reason,
            limit,
        },
        recomputed_rate: None,
    }
}

/// The value of a reading, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Measure {
    Number(f64),
    Below(f64),
    Above(f64),
    NotDetected,
    /// No number and no usable qualifier.
    Nothing,
}

impl Measure {
    fn of(r: &Reading) -> Measure {
        match (r.qualifier, r.value.filter(|v| v.is_finite())) {
            (Some(Qualifier::NotDetected), _) => Measure::NotDetected,
            (Some(Qualifier::Below), Some(v)) => Measure::Below(v),
            (Some(Qualifier::Above), Some(v)) => Measure::Above(v),
            (None, Some(v)) => Measure::Number(v),
            _ => Measure::Nothing,
        }
    }
}

/// A number for a sentence: no float noise from conversions (at most 9 decimals).
struct Num(f64);

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let x = (self.0 * 1e9).round() / 1e9;
        if x.is_finite() {
            write!(f, "{x}")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// `74.5%`, `0.2 g/kg`, `<0.05 ug/kg`, `ND`.
fn quantity(m: Measure, unit: Option<&str>) -> String {
    let (prefix, v) = match m {
        Measure::Number(v) => ("", v),
        Measure::Below(v) => ("<", v),
        Measure::Above(v) => (">", v),
        Measure::NotDetected => return "ND".to_string(),
        Measure::Nothing => return "no value".to_string(),
    };
    match unit.map(str::trim).filter(|u| !u.is_empty()) {
        Some("%") => format!("{prefix}{}%", Num(v)),
        Some(u) => format!("{prefix}{} {u}", Num(v)),
        None => format!("{prefix}{}", Num(v)),
    }
}

fn is_colloidal_gold(r: &Reading) -> bool {
    r.method
        .as_deref()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("colloidal_gold"))
}

/// Decide a reading's verdict. `category` is the resolved category (see
/// [`super::Judge::resolve_category`]).
pub fn decide(
    reference: &Reference,
    r: &Reading,
    category: Option<(usize, CategorySource)>,
) -> Decision {
    let m = Measure::of(r);
    if let Some(o) = invalid_input(reference, r, m) {
        return o;
    }
    let Some(ai) = reference.analyte_index(&r.analyte) else {
        let code = r.analyte.strip_prefix("unknown:").unwrap_or(&r.analyte);
        return outcome(
            Verdict::Unknown,
            format!(
                "analyte code {code:?} is not in the reference data (version {}), so no rule applies",
                reference.version()
            ),
            None,
        );
    };
    let analyte = reference.analyte_at(ai);
    if is_colloidal_gold(r) {
        if let (Some(t), Some(c)) = (r.t_line, r.c_line) {
            return colloidal_gold(reference, r, t, c);
        }
    }
    if analyte.rule() == AnalyteRule::InhibitionRate {
        let in_percent = r
            .unit
            .as_deref()
            .is_some_and(|u| Unit::parse(u) == Ok(Unit::PERCENT));
        if m == Measure::NotDetected || (in_percent && m != Measure::Nothing) {
            return inhibition(reference, r, m);
        }
    }
    if m == Measure::Nothing {
        return qualitative(reference, analyte, r.device_verdict);
    }
    match analyte.rule() {
        AnalyteRule::Prohibited => prohibited(analyte, r, m),
        AnalyteRule::Limit | AnalyteRule::ActionLevel => numeric(reference, ai, r, m, category),
        AnalyteRule::InhibitionRate => outcome(
            Verdict::Unknown,
            format!(
                "{} {} is not an inhibition rate in % and no numeric limit exists for {}",
                analyte.id(),
                quantity(m, r.unit.as_deref()),
                analyte.id()
            ),
            None,
        ),
        AnalyteRule::None => no_rule(analyte),
    }
}

fn no_rule(analyte: &Analyte) -> Decision {
    outcome(
        Verdict::Unknown,
        format!(
            "the reference data has no rule for {} yet, so it cannot be judged",
            analyte.id()
        ),
        None,
    )
}

/// Rule 1: status `X`, a failed measurement, a failed control, a strip that did not run.
fn invalid_input(reference: &Reference, r: &Reading, m: Measure) -> Option<Decision> {
    let invalid = |reason: String| Some(outcome(Verdict::Invalid, reason, None));
    if r.result_status
        .as_deref()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("X"))
    {
        return invalid("result status X: the instrument could not do the test".into());
    }
    let gold = reference.gold();
    if is_colloidal_gold(r) {
        if let Some(c) = r.c_line.filter(|&c| c < gold.min_c_line) {
            return invalid(format!(
                "colloidal gold rule: C line {c} is below {}, so the strip did not run, whatever the reader said",
                gold.min_c_line
            ));
        }
    }
    let inh = reference.inhibition();
    match r.delta_a0 {
        Some(a0) if !a0.is_finite() || compare(a0, inh.min_control_delta_a0) == Ordering::Less => {
            return invalid(format!(
                "control ΔA0 {} is below {}: the enzyme shows no activity, so the whole run is invalid ({})",
                Num(a0),
                Num(inh.min_control_delta_a0),
                inh.control_source
            ))
        }
        None if r.protocol == Protocol::EnzymePrint => {
            return invalid(format!(
                "the report has no control ΔA0, so the enzyme's activity is unproven and the whole run is invalid ({})",
                inh.control_source
            ))
        }
        _ => {}
    }
    if m == Measure::Nothing {
        match r.device_verdict {
            None => {
                return invalid(
                    "the measurement failed: no value, no qualifier and no device verdict".into(),
                )
            }
            Some(DeviceVerdict::Invalid) => {
                return invalid("the instrument reported the test invalid and gave no value".into())
            }
            // A spectro sentence always carries a number when the measurement worked.
            Some(_) if r.protocol == Protocol::Spectro => return invalid(
                "the value field is empty, so the measurement failed, whatever the device verdict"
                    .into(),
            ),
            Some(_) => {}
        }
    }
    None
}

/// Rule 3: T/C against the strip's cut-off, by exact integers, and the reader's verdict.
fn colloidal_gold(reference: &Reference, r: &Reading, t: u32, c: u32) -> Decision {
    let Some(cutoff) = r.cutoff else {
        return outcome(
            Verdict::Unknown,
            "colloidal gold rule: the strip's cut-off is missing, so T/C cannot be judged".into(),
            None,
        );
    };
    let format = r.assay_format.as_deref().map(str::trim);
    let lhs = u64::from(t) * 1000;
    let rhs = u64::from(cutoff) * u64::from(c);
    let (positive, sign) = match format {
        Some(f) if f.eq_ignore_ascii_case("competitive") => (lhs <= rhs, if lhs <= rhs { "≤" } else { ">" }),
        Some(f) if f.eq_ignore_ascii_case("sandwich") => (lhs >= rhs, if lhs >= rhs { "≥" } else { "<" }),
        _ => {
            return outcome(
                Verdict::Unknown,
                "colloidal gold rule: the assay format (competitive or sandwich) is unknown, so T/C cannot be judged"
                    .into(),
                None,
            )
        }
    };
    let format = format.unwrap_or_default();
    let gold = reference.gold();
    let limit = Some(AppliedLimit {
        value: f64::from(cutoff) / 1000.0,
        unit: Unit::T_OVER_C.as_str().into(),
        source: (&*gold.source).into(),
    });
    let result = if positive { "positive" } else { "negative" };
    let comparison = format!("T {t} × 1000 {sign} cut-off {cutoff} × C {c}");
    let disagrees = match r.device_verdict {
        Some(DeviceVerdict::Positive) => (!positive).then_some("positive"),
        Some(DeviceVerdict::Negative) => positive.then_some("negative"),
        Some(DeviceVerdict::Invalid) => Some("invalid"),
        None => None,
    };
    if let Some(reader) = disagrees {
        return outcome(
            Verdict::Invalid,
            format!(
                "colloidal gold rule: the reader said {reader} but the {format} strip is {result} ({comparison})"
            ),
            limit,
        );
    }
    outcome(
        if positive {
            Verdict::Fail
        } else {
            Verdict::Pass
        },
        format!(
            "colloidal gold rule: {format} strip {result} ({comparison}, {})",
            gold.source
        ),
        limit,
    )
}

/// Rule 4: the inhibition rate against the 50% threshold, with the recomputation checks
/// where ΔA0 and ΔAt are known.
fn inhibition(reference: &Reference, r: &Reading, m: Measure) -> Decision {
    let inh = reference.inhibition();
    // A reader that names its standard is judged by that standard's threshold.
    let threshold = match r.standard.as_deref() {
        None => &inh.threshold,
        Some(code) => match inh.by_standard(code) {
            Some(t) => t,
            None => {
                return outcome(
                    Verdict::Invalid,
                    format!(
                        "the reader names standard {code:?}, which is not a standard of the reference data (version {}): no threshold applies",
                        reference.version()
                    ),
                    None,
                )
            }
        },
    };
    let thr = threshold.value();
    let source = threshold.shown_source();
    let limit = Some(threshold.applied());
    let deltas = match (r.delta_a0, r.delta_at) {
        (Some(a0), Some(at)) if a0.is_finite() && at.is_finite() && a0 > 0.0 => Some((a0, at)),
        _ => None,
    };
    if let Some((a0, at)) = deltas {
        let rate = (a0 - at) / a0 * 100.0;
        let shown = (rate * 10.0).round() / 10.0;
        let positive = compare(rate, thr) != Ordering::Less;
        let rule_says = if positive { "≥" } else { "<" };
        let with_rate = |verdict, reason| Decision {
            judgement: Judgement {
                verdict,
                reason,
                limit: limit.clone(),
            },
            recomputed_rate: Some(shown),
        };
        let recomputed = format!(
            "the recomputed rate {}% (ΔA0 {}, ΔAt {})",
            Num(shown),
            Num(a0),
            Num(at)
        );
        if let Measure::Number(printed) = m {
            if compare((printed - rate).abs(), inh.max_rate_difference) == Ordering::Greater {
                return with_rate(
                    Verdict::Invalid,
                    format!(
                        "the printed rate {}% differs from {recomputed} by more than {} point, an instrument or transcription fault",
                        Num(printed),
                        Num(inh.max_rate_difference)
                    ),
                );
            }
        }
        let against = match r.device_verdict {
            Some(DeviceVerdict::Positive) => !positive,
            Some(DeviceVerdict::Negative) => positive,
            Some(DeviceVerdict::Invalid) => true,
            None => false,
        };
        if against {
            let printed = r
                .conclusion
                .as_deref()
                .map(str::to_string)
                .or_else(|| r.device_verdict.map(|d| format!("{d:?}").to_lowercase()))
                .unwrap_or_default();
            return with_rate(
                Verdict::Invalid,
                format!(
                    "the printed conclusion {printed} disagrees with {recomputed} {rule_says} {}% ({source})",
                    Num(thr)
                ),
            );
        }
        return with_rate(
            if positive {
                Verdict::Fail
            } else {
                Verdict::Pass
            },
            format!(
                "inhibition rate rule: {recomputed} {rule_says} {}% ({source})",
                Num(thr)
            ),
        );
    }
    let unit = r.unit.as_deref();
    let q = quantity(m, unit);
    // An enzyme-inhibition reader that concludes by itself (TL310) must agree with the rule.
    if let (Measure::Number(v), Some(device)) = (m, r.device_verdict) {
        let by_method = r
            .method
            .as_deref()
            .is_some_and(|x| x.eq_ignore_ascii_case("enzyme_inhibition"));
        let positive = compare(v, thr) != Ordering::Less;
        let against = match device {
            DeviceVerdict::Positive => !positive,
            DeviceVerdict::Negative => positive,
            DeviceVerdict::Invalid => true,
        };
        if by_method && against {
            let rule_says = if positive { "≥" } else { "<" };
            let said = format!("{device:?}").to_lowercase();
            return outcome(
                Verdict::Invalid,
                format!(
                    "the reader's conclusion {said} disagrees with the inhibition rate rule: {q} {rule_says} {}% ({source})",
                    Num(thr)
                ),
                limit,
            );
        }
    }
    let (verdict, reason) = match m {
        Measure::NotDetected => (
            Verdict::Pass,
            format!(
                "inhibition rate rule: not detected (ND) passes the {}% threshold ({source})",
                Num(thr)
            ),
        ),
        Measure::Number(v) if compare(v, thr) != Ordering::Less => (
            Verdict::Fail,
            format!("inhibition rate rule: {q} ≥ {}% ({source})", Num(thr)),
        ),
        Measure::Number(_) => (
            Verdict::Pass,
            format!("inhibition rate rule: {q} < {}% ({source})", Num(thr)),
        ),
        Measure::Below(x) if compare(x, thr) != Ordering::Greater => (
            Verdict::Pass,
            format!(
                "inhibition rate rule: {q} is under the {}% threshold ({source})",
                Num(thr)
            ),
        ),
        Measure::Below(_) => (
            Verdict::Unknown,
            format!(
                "inhibition rate rule: {q} cannot tell against the {}% threshold ({source})",
                Num(thr)
            ),
        ),
        Measure::Above(x) if compare(x, thr) != Ordering::Less => (
            Verdict::Fail,
            format!(
                "inhibition rate rule: {q} is at or over the {}% threshold ({source})",
                Num(thr)
            ),
        ),
        Measure::Above(_) | Measure::Nothing => (
            Verdict::Unknown,
            format!(
                "inhibition rate rule: {q} cannot tell against the {}% threshold ({source})",
                Num(thr)
            ),
        ),
    };
    outcome(verdict, reason, limit)
}

/// Rule 5: a device verdict with no number and no qualifier.
fn qualitative(
    reference: &Reference,
    analyte: &Analyte,
    device: Option<DeviceVerdict>,
) -> Decision {
    // Rule 1 took readings with no device verdict or an invalid one.
    let positive = device == Some(DeviceVerdict::Positive);
    let screen = if positive { "positive" } else { "negative" };
    let source = match analyte.rule() {
        AnalyteRule::Prohibited => analyte.source().unwrap_or_default(),
        AnalyteRule::InhibitionRate => reference.inhibition().threshold.shown_source(),
        AnalyteRule::Limit | AnalyteRule::ActionLevel => {
            let reason = if positive {
                format!(
                    "qualitative rule: a positive screen does not say whether the {} limit is exceeded",
                    analyte.id()
                )
            } else {
                format!(
                    "qualitative rule: a negative screen is not a measurement against the {} limit",
                    analyte.id()
                )
            };
            return outcome(Verdict::Unknown, reason, None);
        }
        AnalyteRule::None => return no_rule(analyte),
    };
    let what = if analyte.rule() == AnalyteRule::Prohibited {
        "prohibited "
    } else {
        ""
    };
    outcome(
        if positive {
            Verdict::Fail
        } else {
            Verdict::Pass
        },
        format!(
            "qualitative rule: {screen} screen for {what}{} ({source})",
            analyte.id()
        ),
        None,
    )
}

/// Rule 6: any detected amount of a prohibited analyte fails.
fn prohibited(analyte: &Analyte, r: &Reading, m: Measure) -> Decision {
    let q = quantity(m, r.unit.as_deref());
    let source = analyte.source().unwrap_or_default();
    let id = analyte.id();
    let (verdict, reason) = match m {
        Measure::Number(v) if v > 0.0 => (
            Verdict::Fail,
            format!("prohibited rule: {id} is prohibited and was found at {q} ({source})"),
        ),
        Measure::Above(_) => (
            Verdict::Fail,
            format!("prohibited rule: {id} is prohibited and was found at {q} ({source})"),
        ),
        _ => (
            Verdict::Pass,
            format!("prohibited rule: {id} is prohibited and was not detected ({q}) ({source})"),
        ),
    };
    outcome(verdict, reason, None)
}

/// Rule 7: the numeric limit for (analyte, category), after unit conversion.
fn numeric(
    reference: &Reference,
    ai: usize,
    r: &Reading,
    m: Measure,
    category: Option<(usize, CategorySource)>,
) -> Decision {
    let id = reference.analyte_at(ai).id();
    let Some((ci, _)) = category else {
        let mut reason = String::from("no food category is known for this sample");
        match (r.category.as_deref(), r.sample_name.as_deref()) {
            (Some(c), _) => {
                let _ = write!(reason, " (category {c:?} is not in the reference data)");
            }
            (None, Some(name)) => {
                let _ = write!(reason, " ({name:?} is not in the commodity dictionary)");
            }
            (None, None) => reason.push_str(" (no category and no sample name)"),
        }
        let _ = write!(reason, ", so no {id} limit can be chosen");
        return outcome(Verdict::Unknown, reason, None);
    };
    let cat = reference.category_at(ci).id();
    let Some(limit) = reference.limit_at(ai, ci) else {
        return outcome(
            Verdict::Unknown,
            format!("the reference data has no {id} limit for {cat}"),
            None,
        );
    };
    let lim = format!(
        "the {cat} limit of {} {} ({})",
        Num(limit.value()),
        limit.unit(),
        limit.shown_source()
    );
    if m == Measure::NotDetected {
        return outcome(
            Verdict::Pass,
            format!("limit rule: {id} not detected (ND) is within {lim}"),
            Some(limit.applied()),
        );
    }
    let unit = r.unit.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let Some(unit_text) = unit else {
        return outcome(
            Verdict::Unknown,
            format!("the {id} value has no unit, so it cannot be compared with {lim}"),
            None,
        );
    };
    let convert = |v: f64| Unit::parse(unit_text).ok()?.convert(v, limit.unit());
    let (v, make): (f64, fn(f64) -> Measure) = match m {
        Measure::Number(v) => (v, Measure::Number),
        Measure::Below(v) => (v, Measure::Below),
        Measure::Above(v) => (v, Measure::Above),
        Measure::NotDetected | Measure::Nothing => {
            return outcome(
                Verdict::Unknown,
                format!("the {id} reading has no number to compare with {lim}"),
                None,
            )
        }
    };
    let Some(converted) = convert(v) else {
        return outcome(
            Verdict::Unknown,
            format!(
                "unit {unit_text:?} cannot be converted to {}, so the {id} value cannot be compared with {lim}",
                limit.unit()
            ),
            None,
        );
    };
    let mut q = quantity(m, Some(unit_text));
    if Unit::parse(unit_text).ok() != Some(limit.unit()) {
        let _ = write!(
            q,
            " (= {})",
            quantity(make(converted), Some(limit.unit().as_str()))
        );
    }
    let ord = compare(converted, limit.value());
    let (verdict, reason) = match m {
        Measure::Number(_) if ord == Ordering::Greater => {
            (Verdict::Fail, format!("limit rule: {id} {q} exceeds {lim}"))
        }
        Measure::Number(_) => (
            Verdict::Pass,
            format!("limit rule: {id} {q} is within {lim}"),
        ),
        Measure::Below(_) if ord != Ordering::Greater => (
            Verdict::Pass,
            format!("limit rule: {id} {q} is within {lim}"),
        ),
        Measure::Below(_) => (
            Verdict::Unknown,
            format!("limit rule: {id} {q} cannot tell whether it is within {lim}"),
        ),
        Measure::Above(_) if ord != Ordering::Less => {
            (Verdict::Fail, format!("limit rule: {id} {q} exceeds {lim}"))
        }
        _ => (
            Verdict::Unknown,
            format!("limit rule: {id} {q} cannot tell whether it exceeds {lim}"),
        ),
    };
    outcome(verdict, reason, Some(limit.applied()))
}
