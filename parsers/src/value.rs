//! Result values and abnormal flags as lab instruments send them.

use crate::reading::{DeviceVerdict, Qualifier};

/// A value field, interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Value {
    pub value: Option<f64>,
    pub qualifier: Option<Qualifier>,
    pub device_verdict: Option<DeviceVerdict>,
}

/// Powers of ten a `f64` holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A plain decimal: optional sign, digits, optional fraction. No exponent, no `inf`/`nan`.
pub fn parse_decimal(text: &str) -> Option<f64> {
    let t = text.trim();
    let b = t.as_bytes();
    let (negative, body) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let mut mantissa = 0u64;
    let mut digits = 0usize;
    let mut fraction = None;
    for (i, &c) in body.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                digits += 1;
                if digits <= 19 {
                    mantissa = mantissa * 10 + u64::from(c - b'0');
                }
            }
            b'.' if fraction.is_none() => fraction = Some(body.len() - i - 1),
            _ => return None,
        }
    }
    if digits == 0 {
        return None;
    }
    let scale = fraction.unwrap_or(0);
    // With at most 15 digits the mantissa and the power of ten are exact, so one division
    // is correctly rounded: the very value the full parser gives.
    let v = if digits <= 15 && scale < POW10.len() {
        mantissa as f64 / POW10[scale]
    } else {
        return t.parse().ok();
    };
    Some(if negative { -v } else { v })
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
        for bad in [
            "", "inf", "NaN", "1e5", "1.2.3", "-----", "+", ".", "-.", "1-", "+-1",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
        assert_eq!(
            parse_decimal("-0").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
    }

    #[test]
    fn decimals_match_the_full_parser() {
        let mut r = crate::synth::Rng::new(7);
        for _ in 0..20_000 {
            let int_digits = r.below(12) as u32 + 1;
            let int = r.below(10u64.pow(int_digits));
            let frac_digits = r.below(12) as usize;
            let frac = r.below(10u64.pow(frac_digits as u32));
            let sign = ["", "-", "+"][r.below(3) as usize];
            let text = if frac_digits == 0 {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac:0frac_digits$}")
            };
            let want: f64 = text.parse().unwrap();
            assert_eq!(
                parse_decimal(&text).map(f64::to_bits),
                Some(want.to_bits()),
                "{text}"
            );
        }
        for long in [
            "12345678901234567.5",
            "0.00000000000000000000000001",
            "99999999999999999999",
        ] {
            assert_eq!(parse_decimal(long), long.parse().ok(), "{long}");
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
