//! Values with rules of their own: built only through constructors that check them, so a
//! judge never meets an analyte id with spaces, a limit of NaN or a unit nobody can convert.

use super::verdict::AppliedLimit;
use std::cmp::Ordering;
use std::fmt;

/// Why a string is not an id (analyte or category).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an id (lowercase ASCII letters, digits and _)")]
pub struct BadId(pub String);

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Box<str>);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, BadId> {
                if is_id(s) {
                    Ok($name(s.into()))
                } else {
                    Err(BadId(s.to_string()))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A canonical analyte id (`op_carbamate`, `nitrite`, …).
    AnalyteId
);
id_type!(
    /// A canonical food category (`leafy_vegetable`, `cured_meat`, …).
    Category
);

/// A unit that cannot be converted to anything (or is not a unit at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unit {0:?} is not one of g/kg, mg/kg, ug/kg (μg/kg, µg/kg), mg/100g, mg/L, %, T/C")]
pub struct BadUnit(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum UnitKind {
    /// Mass per mass, as the power of ten of its size in mg/kg (g/kg = 3, ug/kg = -3).
    MassFraction(i8),
    MgPerL,
    Percent,
    TOverC,
}

/// A unit of measurement the judge knows how to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Unit(UnitKind);

const SPELLINGS: [(&str, UnitKind); 9] = [
    ("g/kg", UnitKind::MassFraction(3)),
    ("mg/kg", UnitKind::MassFraction(0)),
    ("ug/kg", UnitKind::MassFraction(-3)),
    ("μg/kg", UnitKind::MassFraction(-3)), // U+03BC GREEK SMALL LETTER MU
    ("µg/kg", UnitKind::MassFraction(-3)), // U+00B5 MICRO SIGN
    ("mg/100g", UnitKind::MassFraction(1)),
    ("mg/L", UnitKind::MgPerL),
    ("%", UnitKind::Percent),
    ("T/C", UnitKind::TOverC),
];

impl Unit {
    pub const PERCENT: Unit = Unit(UnitKind::Percent);
    pub const T_OVER_C: Unit = Unit(UnitKind::TOverC);

    /// Parse a unit as instruments spell it (ASCII case and surrounding spaces ignored).
    pub fn parse(s: &str) -> Result<Unit, BadUnit> {
        let t = s.trim();
        SPELLINGS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(t))
            .map(|(_, kind)| Unit(*kind))
            .ok_or_else(|| BadUnit(s.to_string()))
    }

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self.0 {
            UnitKind::MassFraction(3) => "g/kg",
            UnitKind::MassFraction(1) => "mg/100g",
            UnitKind::MassFraction(-3) => "ug/kg",
            UnitKind::MassFraction(_) => "mg/kg",
            UnitKind::MgPerL => "mg/L",
            UnitKind::Percent => "%",
            UnitKind::TOverC => "T/C",
        }
    }

    /// `value` in this unit expressed in `to`, or `None` when the two do not convert (mass
    /// fractions convert among themselves; every other unit only to itself).
    pub fn convert(self, value: f64, to: Unit) -> Option<f64> {
        match (self.0, to.0) {
            (UnitKind::MassFraction(from), UnitKind::MassFraction(to)) => {
                // Scale by an exact power of ten, multiplying or dividing so that a value
                // like 200 mg/kg becomes exactly the double nearest 0.2 g/kg.
                let steps = i32::from(from) - i32::from(to);
                let factor = 10f64.powi(steps.abs());
                Some(if steps >= 0 {
                    value * factor
                } else {
                    value / factor
                })
            }
            (a, b) if a == b => Some(value),
            _ => None,
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compare two measured quantities, treating them as equal when they differ only by the
/// rounding of a unit conversion or of a recomputation (relative 1e-9): a value equal to a
/// limit must pass, whichever unit it came in.
pub fn compare(a: f64, b: f64) -> Ordering {
    if (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) {
        Ordering::Equal
    } else if a < b {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

/// Why a limit row cannot be a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadLimit {
    #[error("limit value {0} is not a finite number ≥ 0")]
    Value(String),
    #[error("a limit needs a non-empty source")]
    NoSource,
}

/// A numeric threshold with its unit and the source that sets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    value: f64,
    unit: Unit,
    source: Box<str>,
    verify: bool,
    /// The source as a judgement shows it: with " (verify)" when the row is marked.
    shown_source: Box<str>,
}

impl Limit {
    pub fn new(value: f64, unit: Unit, source: &str, verify: bool) -> Result<Limit, BadLimit> {
        if !value.is_finite() || value < 0.0 {
            return Err(BadLimit::Value(value.to_string()));
        }
        let source = source.trim();
        if source.is_empty() {
            return Err(BadLimit::NoSource);
        }
        let shown_source = if verify {
            format!("{source} (verify)")
        } else {
            source.to_string()
        };
        Ok(Limit {
            value,
            unit,
            source: source.into(),
            verify,
            shown_source: shown_source.into(),
        })
    }

    pub fn value(&self) -> f64 {
        self.value
    }

    pub fn unit(&self) -> Unit {
        self.unit
    }

    /// The source as written in the reference.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the row is marked *verify* (recalled, not checked against a primary source).
    pub fn verify(&self) -> bool {
        self.verify
    }

    /// The source with its *verify* mark, as judgements show it.
    pub fn shown_source(&self) -> &str {
        &self.shown_source
    }

    /// The `limit` object of a judgement.
    pub fn applied(&self) -> AppliedLimit {
        AppliedLimit {
            value: self.value,
            unit: self.unit.as_str().into(),
            source: (&*self.shown_source).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_not_validate() {
        assert!(AnalyteId::parse("op_carbamate").is_ok());
        assert!(Category::parse("leafy_vegetable").is_ok());
        for bad in ["", "Op", "a b", "a-b", "克伦特罗"] {
            assert_eq!(AnalyteId::parse(bad), Err(BadId(bad.to_string())));
        }
    }

    #[test]
    fn unit_spellings() {
        for (s, canon) in [
            ("g/kg", "g/kg"),
            (" MG/KG ", "mg/kg"),
            ("ug/kg", "ug/kg"),
            ("μg/kg", "ug/kg"),
            ("µg/kg", "ug/kg"),
            ("mg/100g", "mg/100g"),
            ("mg/l", "mg/L"),
            ("%", "%"),
            ("t/c", "T/C"),
        ] {
            assert_eq!(Unit::parse(s).map(Unit::as_str), Ok(canon), "{s}");
        }
        for bad in ["", "ppm", "mg", "kg/kg", "mg/100 g"] {
            assert!(Unit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conversions() {
        let u = |s| Unit::parse(s).unwrap();
        assert_eq!(u("mg/kg").convert(200.0, u("g/kg")), Some(0.2));
        assert_eq!(u("mg/kg").convert(350.0, u("g/kg")), Some(0.35));
        assert_eq!(u("g/kg").convert(0.1, u("mg/kg")), Some(100.0));
        assert_eq!(u("ug/kg").convert(20.0, u("mg/kg")), Some(0.02));
        assert_eq!(u("mg/kg").convert(0.1, u("ug/kg")), Some(100.0));
        assert_eq!(u("μg/kg").convert(1.0, u("µg/kg")), Some(1.0));
        assert_eq!(u("mg/100g").convert(3.0, u("mg/kg")), Some(30.0));
        assert_eq!(u("mg/100g").convert(20.0, u("g/kg")), Some(0.2));
        assert_eq!(u("g/kg").convert(1.0, u("ug/kg")), Some(1_000_000.0));
        assert_eq!(u("mg/L").convert(1.0, u("mg/L")), Some(1.0));
        assert_eq!(u("mg/L").convert(1.0, u("mg/kg")), None);
        assert_eq!(u("mg/kg").convert(1.0, u("mg/L")), None);
        assert_eq!(u("%").convert(1.0, u("mg/kg")), None);
        assert_eq!(u("%").convert(1.0, u("%")), Some(1.0));
        assert_eq!(u("T/C").convert(1.0, u("%")), None);
    }

    #[test]
    fn compare_tolerates_conversion_noise_only() {
        assert_eq!(compare(0.1 * 3.0, 0.3), Ordering::Equal);
        assert_eq!(compare(0.0, 0.0), Ordering::Equal);
        assert_eq!(compare(0.020001, 0.02), Ordering::Greater);
        assert_eq!(compare(0.019999, 0.02), Ordering::Less);
        assert_eq!(compare(49.99, 50.0), Ordering::Less);
    }

    #[test]
    fn limits_check_their_values() {
        let mgkg = Unit::parse("mg/kg").unwrap();
        let l = Limit::new(30.0, mgkg, "GB 2760", true).unwrap();
        assert_eq!(l.shown_source(), "GB 2760 (verify)");
        assert_eq!(l.applied().source, "GB 2760 (verify)");
        assert_eq!(
            Limit::new(f64::NAN, mgkg, "x", false),
            Err(BadLimit::Value("NaN".into()))
        );
        assert!(Limit::new(-1.0, mgkg, "x", false).is_err());
        assert_eq!(Limit::new(1.0, mgkg, " ", false), Err(BadLimit::NoSource));
    }
}
