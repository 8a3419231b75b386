//! Result values and abnormal flags as lab instruments send them.

use crate::reading::{DeviceVerdict, Qualifier};
use nom::branch::alt;
use nom::bytes::complete::take_while1;
use nom::character::complete::one_of;
use nom::combinator::{all_consuming, opt, recognize};
use nom::{IResult, Parser};

/// A value field, interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Value {
    pub value: Option<f64>,
    pub qualifier: Option<Qualifier>,
    pub device_verdict: Option<DeviceVerdict>,
}

fn decimal(i: &str) -> IResult<&str, &str> {
    let digits = || take_while1(|c: char| c.is_ascii_digit());
    recognize((
        opt(one_of("+-")),
        alt((
            recognize((digits(), opt((one_of("."), opt(digits()))))),
            recognize((one_of("."), digits())),
        )),
    ))
    .parse(i)
}

/// A plain decimal: optional sign, digits, optional fraction. No exponent, no `inf`/`nan`.
pub fn parse_decimal(text: &str) -> Option<f64> {
    let (_, n) = all_consuming(decimal).parse(text.trim()).ok()?;
    n.parse().ok()
}

const POSITIVE_WORDS: [&str; 3] = ["POS", "+", "阳性"];
const NEGATIVE_WORDS: [&str; 3] = ["NEG", "-", "阴性"];

/// Interpret a value as sent: `<x`/`>x` keep the number with a qualifier, `ND` is not
/// detected, `POS`/`NEG` (`+`/`-`, `阳性`/`阴性`) are qualitative, a decimal is a number.
/// Anything else carries no number (the caller keeps the text).
pub fn interpret(text: &str) -> Value {
    let t = text.trim();
    if t.is_empty() {
        return Value::default();
    }
    if t.eq_ignore_ascii_case("ND") {
        return Value {
            value: None,
            qualifier: Some(Qualifier::NotDetected),
            device_verdict: Some(DeviceVerdict::Negative),
        };
    }
    if POSITIVE_WORDS.iter().any(|w| t.eq_ignore_ascii_case(w)) {
        return Value {
            device_verdict: Some(DeviceVerdict::Positive),
            ..Value::default()
        };
    }
    if NEGATIVE_WORDS.iter().any(|w| t.eq_ignore_ascii_case(w)) {
        return Value {
            device_verdict: Some(DeviceVerdict::Negative),
            ..Value::default()
        };
    }
    let (qualifier, rest) = match t.as_bytes()[0] {
        b'<' => (Some(Qualifier::Below), &t[1..]),
        b'>' => (Some(Qualifier::Above), &t[1..]),
        _ => (None, t),
    };
    match parse_decimal(rest) {
        Some(v) => Value {
            value: Some(v),
            qualifier,
            device_verdict: None,
        },
        None => Value::default(),
    }
}

/// The device verdict an abnormal flag stands for (ASTM R.7, HL7 OBX-8).
pub fn flag_verdict(flag: &str) -> Option<DeviceVerdict> {
    let f = flag.trim();
    const POS: [&str; 5] = ["POS", "A", "H", "HH", ">"];
    const NEG: [&str; 5] = ["NEG", "N", "L", "LL", "<"];
    if POS.iter().any(|w| f.eq_ignore_ascii_case(w)) {
        Some(DeviceVerdict::Positive)
    } else if NEG.iter().any(|w| f.eq_ignore_ascii_case(w)) {
        Some(DeviceVerdict::Negative)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("74.5"), Some(74.5));
        assert_eq!(parse_decimal("  5.5"), Some(5.5));
        assert_eq!(parse_decimal("-2.0"), Some(-2.0));
        assert_eq!(parse_decimal(".5"), Some(0.5));
        assert_eq!(parse_decimal("3."), Some(3.0));
        for bad in ["", "inf", "NaN", "1e5", "1.2.3", "-----", "+", "."] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
    }

    #[test]
    fn value_forms() {
        let v = interpret("<0.05");
        assert_eq!((v.value, v.qualifier), (Some(0.05), Some(Qualifier::Below)));
        let v = interpret(">100");
        assert_eq!(
            (v.value, v.qualifier),
            (Some(100.0), Some(Qualifier::Above))
        );
        let v = interpret("nd");
        assert_eq!(v.qualifier, Some(Qualifier::NotDetected));
        assert_eq!(v.device_verdict, Some(DeviceVerdict::Negative));
        for (t, d) in [
            ("POS", DeviceVerdict::Positive),
            ("+", DeviceVerdict::Positive),
            ("阳性", DeviceVerdict::Positive),
            ("neg", DeviceVerdict::Negative),
            ("-", DeviceVerdict::Negative),
            ("阴性", DeviceVerdict::Negative),
        ] {
            let v = interpret(t);
            assert_eq!(
                (v.value, v.qualifier, v.device_verdict),
                (None, None, Some(d)),
                "{t}"
            );
        }
        assert_eq!(interpret("-----"), Value::default());
        assert_eq!(interpret("<abc"), Value::default());
    }

    #[test]
    fn flags() {
        for f in ["POS", "A", "H", "HH", ">"] {
            assert_eq!(flag_verdict(f), Some(DeviceVerdict::Positive), "{f}");
        }
        for f in ["NEG", "N", "L", "LL", "<"] {
            assert_eq!(flag_verdict(f), Some(DeviceVerdict::Negative), "{f}");
        }
        assert_eq!(flag_verdict(""), None);
        assert_eq!(flag_verdict("W"), None);
    }
}
