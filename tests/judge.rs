//! Judging: every limit row of the reference data and every method rule on both sides of each boundary,
//! unit conversions, category resolution, "More outcomes", malformed reference files, and
//! every fixture end to end through `foodgate parse`.

use foodgate::judge::reference::{BUILTIN_NAME, BUILTIN_TEXT};
use foodgate::judge::{
    AppliedLimit, Judge, JudgedReading, Problem, Reference, ReferenceError, Verdict, NOT_JUDGED,
};
use foodgate_parsers::{AliasTable, DeviceVerdict, Protocol, Qualifier, Reading};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use Verdict::{Fail, Invalid, Pass, Unknown};

const VEGETABLES: [&str; 6] = [
    "leafy_vegetable",
    "brassica_vegetable",
    "bulb_vegetable",
    "fruiting_vegetable",
    "legume_vegetable",
    "root_vegetable",
];

fn judge(r: Reading) -> JudgedReading {
    let r = Judge::builtin().judged(r);
    assert!(!r.reason.is_empty() && *r.reason != *NOT_JUDGED);
    r
}

/// A numeric reading of `analyte` in `category` (an HL7-like upload: no method details).
fn num(analyte: &str, category: Option<&str>, value: f64, unit: &str) -> Reading {
    let mut r = Reading::new(Protocol::Hl7, analyte);
    r.value = Some(value);
    r.unit = Some(unit.into());
    r.category = category.map(Into::into);
    r.result_status = Some("F".into());
    r
}

fn qual(mut r: Reading, q: Qualifier) -> Reading {
    r.qualifier = Some(q);
    if q == Qualifier::NotDetected {
        r.value = None;
    }
    r
}

fn limit(value: f64, unit: &str, source: &str) -> Option<AppliedLimit> {
    Some(AppliedLimit {
        value,
        unit: unit.into(),
        source: source.into(),
    })
}

fn inhibition_limit() -> Option<AppliedLimit> {
    limit(50.0, "%", "GB/T 5009.199-2003")
}

// ---------------------------------------------------------------------------------------
// Numeric limits: every row, just under / equal / just over.

/// (analyte, categories, limit, unit, shown source) for every limit row of the reference data.
fn limit_rows() -> Vec<(
    &'static str,
    Vec<&'static str>,
    f64,
    &'static str,
    &'static str,
)> {
    let v = VEGETABLES.to_vec();
    vec![
        (
            "nitrite",
            vec!["cured_meat"],
            30.0,
            "mg/kg",
            "GB 2760 (2014 text; 2024 revision in force 2025-02-08) (verify)",
        ),
        (
            "nitrite",
            vec!["western_ham"],
            70.0,
            "mg/kg",
            "GB 2760 (verify)",
        ),
        (
            "nitrite",
            vec!["pickled_vegetable"],
            20.0,
            "mg/kg",
            "GB 2762-2022 (verify)",
        ),
        (
            "sulfur_dioxide",
            vec!["dried_vegetable"],
            0.2,
            "g/kg",
            "GB 2760 (verify)",
        ),
        (
            "sulfur_dioxide",
            vec!["dried_fruit"],
            0.1,
            "g/kg",
            "GB 2760 (verify)",
        ),
        (
            "sulfur_dioxide",
            vec!["pickled_vegetable"],
            0.1,
            "g/kg",
            "GB 2760 (verify)",
        ),
        (
            "sulfur_dioxide",
            vec!["candied_fruit"],
            0.35,
            "g/kg",
            "GB 2760 (verify)",
        ),
        (
            "sulfur_dioxide",
            vec!["bean_product"],
            0.2,
            "g/kg",
            "GB 2760 (腐竹类) (verify)",
        ),
        (
            "formaldehyde",
            vec!["aquatic_product"],
            10.0,
            "mg/kg",
            "action level for rapid screening (common analyzer default)",
        ),
        (
            "enrofloxacin",
            vec!["livestock_meat", "poultry_meat", "aquatic_product"],
            100.0,
            "ug/kg",
            "GB 31650-2019 (verify)",
        ),
        (
            "omethoate",
            v.clone(),
            0.02,
            "mg/kg",
            "GB 2763-2021 (verify)",
        ),
        (
            "carbofuran",
            v.clone(),
            0.02,
            "mg/kg",
            "GB 2763-2021 (verify)",
        ),
        ("phorate", v.clone(), 0.01, "mg/kg", "GB 2763-2021 (verify)"),
        ("methamidophos", v, 0.05, "mg/kg", "GB 2763-2021 (verify)"),
        (
            "chlorpyrifos",
            vec!["leafy_vegetable", "bulb_vegetable"],
            0.02,
            "mg/kg",
            "GB 2763-2021 (verify)",
        ),
    ]
}

#[test]
fn every_limit_row_on_both_sides_of_the_boundary() {
    for (analyte, cats, l, unit, source) in limit_rows() {
        for cat in cats {
            let step = l / 100.0;
            for (value, want) in [(l - step, Pass), (l, Pass), (l + step, Fail), (0.0, Pass)] {
                let r = judge(num(analyte, Some(cat), value, unit));
                assert_eq!(r.verdict, want, "{analyte} {cat} {value}: {}", r.reason);
                assert_eq!(r.limit, limit(l, unit, source), "{analyte} {cat}");
                assert!(r.reason.contains(source), "{}", r.reason);
                assert!(r.reason.contains(cat), "{}", r.reason);
                assert_eq!(r.reading.category.as_deref(), Some(cat));
            }
            // `<x`: x ≤ limit passes, x above it cannot tell.
            for (x, want) in [(l - step, Pass), (l, Pass), (l + step, Unknown)] {
                let r = judge(qual(num(analyte, Some(cat), x, unit), Qualifier::Below));
                assert_eq!(r.verdict, want, "{analyte} {cat} <{x}: {}", r.reason);
                assert_eq!(r.limit, limit(l, unit, source));
            }
            // `>x`: x ≥ limit fails, else unknown.
            for (x, want) in [(l - step, Unknown), (l, Fail), (l + step, Fail)] {
                let r = judge(qual(num(analyte, Some(cat), x, unit), Qualifier::Above));
                assert_eq!(r.verdict, want, "{analyte} {cat} >{x}: {}", r.reason);
                assert_eq!(r.limit, limit(l, unit, source));
            }
            // ND passes when a row exists.
            let r = judge(qual(
                num(analyte, Some(cat), 0.0, unit),
                Qualifier::NotDetected,
            ));
            assert_eq!(r.verdict, Pass, "{}", r.reason);
            assert_eq!(r.limit, limit(l, unit, source));
        }
    }
}

#[test]
fn no_row_for_the_category_or_no_category_is_unknown() {
    for (analyte, cat) in [
        ("nitrite", "aquatic_product"),
        ("sulfur_dioxide", "leafy_vegetable"),
        ("enrofloxacin", "leafy_vegetable"),
        ("chlorpyrifos", "fruiting_vegetable"),
        ("omethoate", "fruit"),
        ("formaldehyde", "noodle_product"),
    ] {
        for r in [
            judge(num(analyte, Some(cat), 1000.0, "mg/kg")),
            judge(qual(
                num(analyte, Some(cat), 0.0, "mg/kg"),
                Qualifier::NotDetected,
            )),
        ] {
            assert_eq!(r.verdict, Unknown, "{analyte} {cat}");
            assert_eq!(r.limit, None);
            assert!(
                r.reason.contains(analyte) && r.reason.contains(cat),
                "{}",
                r.reason
            );
        }
    }
    let mut r = num("nitrite", None, 1000.0, "mg/kg");
    r.sample_name = Some("unobtainium".into());
    let r = judge(r);
    assert_eq!(r.verdict, Unknown);
    assert!(r.reason.contains("unobtainium"), "{}", r.reason);
    assert!(r.reason.contains("no food category"), "{}", r.reason);
    let r = judge(qual(
        num("nitrite", None, 0.0, "mg/kg"),
        Qualifier::NotDetected,
    ));
    assert_eq!(r.verdict, Unknown, "ND with no category: {}", r.reason);
}

#[test]
fn unit_conversions() {
    // nitrite in cured_meat: 30 mg/kg; sulfur_dioxide in dried_vegetable: 0.2 g/kg;
    // enrofloxacin in livestock_meat: 100 ug/kg.
    let cases: [(&str, &str, f64, &str, Verdict); 26] = [
        ("nitrite", "cured_meat", 0.03, "g/kg", Pass),
        ("nitrite", "cured_meat", 0.0301, "g/kg", Fail),
        ("nitrite", "cured_meat", 0.0299, "g/kg", Pass),
        ("nitrite", "cured_meat", 30000.0, "ug/kg", Pass),
        ("nitrite", "cured_meat", 30001.0, "ug/kg", Fail),
        ("nitrite", "cured_meat", 30000.0, "μg/kg", Pass),
        ("nitrite", "cured_meat", 30001.0, "µg/kg", Fail),
        ("nitrite", "cured_meat", 3.0, "mg/100g", Pass),
        ("nitrite", "cured_meat", 3.01, "mg/100g", Fail),
        ("nitrite", "cured_meat", 30.0, "MG/KG", Pass),
        ("nitrite", "cured_meat", 30.0, "mg/L", Unknown),
        ("nitrite", "cured_meat", 30.0, "%", Unknown),
        ("nitrite", "cured_meat", 30.0, "ppm", Unknown),
        ("nitrite", "cured_meat", 30.0, "T/C", Unknown),
        ("sulfur_dioxide", "dried_vegetable", 200.0, "mg/kg", Pass),
        ("sulfur_dioxide", "dried_vegetable", 201.0, "mg/kg", Fail),
        ("sulfur_dioxide", "dried_vegetable", 199.0, "mg/kg", Pass),
        ("sulfur_dioxide", "dried_vegetable", 200000.0, "ug/kg", Pass),
        ("sulfur_dioxide", "dried_vegetable", 20.0, "mg/100g", Pass),
        ("sulfur_dioxide", "dried_vegetable", 20.1, "mg/100g", Fail),
        ("sulfur_dioxide", "candied_fruit", 350.0, "mg/kg", Pass),
        ("sulfur_dioxide", "candied_fruit", 350.1, "mg/kg", Fail),
        ("enrofloxacin", "livestock_meat", 0.1, "mg/kg", Pass),
        ("enrofloxacin", "livestock_meat", 0.1001, "mg/kg", Fail),
        ("enrofloxacin", "livestock_meat", 0.0001, "g/kg", Pass),
        ("enrofloxacin", "livestock_meat", 0.00011, "g/kg", Fail),
    ];
    for (analyte, cat, value, unit, want) in cases {
        let r = judge(num(analyte, Some(cat), value, unit));
        assert_eq!(r.verdict, want, "{analyte} {value} {unit}: {}", r.reason);
        if want == Unknown {
            assert!(r.reason.contains(unit), "{}", r.reason);
            assert_eq!(r.limit, None, "no silent comparison");
        } else {
            assert!(r.limit.is_some());
        }
    }
    // mg/L compares with mg/L only: a limit file with a mg/L row.
    let text = BUILTIN_TEXT.replace(
        "value = 10\nunit = \"mg/kg\"",
        "value = 10\nunit = \"mg/L\"",
    );
    let judge_l = Judge::new(Arc::new(Reference::parse(&text, "t").expect("valid")));
    for (value, unit, want) in [
        (10.0, "mg/L", Pass),
        (10.1, "mg/L", Fail),
        (10.0, "mg/kg", Unknown),
        (0.01, "g/kg", Unknown),
    ] {
        let r = judge_l.judged(num("formaldehyde", Some("aquatic_product"), value, unit));
        assert_eq!(r.verdict, want, "{value} {unit}: {}", r.reason);
    }
    // No unit at all: never a silent comparison.
    let mut r = num("nitrite", Some("cured_meat"), 1.0, "");
    r.unit = None;
    let r = judge(r);
    assert_eq!(r.verdict, Unknown);
    assert!(r.reason.contains("no unit"), "{}", r.reason);
}

// ---------------------------------------------------------------------------------------
// Method rules.

#[test]
fn inhibition_rate_threshold() {
    for (value, want) in [
        (49.9, Pass),
        (50.0, Fail),
        (50.1, Fail),
        (0.0, Pass),
        (100.0, Fail),
    ] {
        let r = judge(num("op_carbamate", None, value, "%"));
        assert_eq!(r.verdict, want, "{value}: {}", r.reason);
        assert_eq!(r.limit, inhibition_limit());
        assert!(r.reason.contains("GB/T 5009.199-2003"), "{}", r.reason);
    }
    for (x, want) in [(49.9, Pass), (50.0, Pass), (50.1, Unknown)] {
        let r = judge(qual(num("op_carbamate", None, x, "%"), Qualifier::Below));
        assert_eq!(r.verdict, want, "<{x}: {}", r.reason);
        assert_eq!(r.limit, inhibition_limit());
    }
    for (x, want) in [(49.9, Unknown), (50.0, Fail), (50.1, Fail)] {
        let r = judge(qual(num("op_carbamate", None, x, "%"), Qualifier::Above));
        assert_eq!(r.verdict, want, ">{x}: {}", r.reason);
        assert_eq!(r.limit, inhibition_limit());
    }
    // ND in any unit (or none) passes.
    for unit in ["%", "mg/kg", ""] {
        let mut r = qual(num("op_carbamate", None, 0.0, unit), Qualifier::NotDetected);
        if unit.is_empty() {
            r.unit = None;
        }
        let r = judge(r);
        assert_eq!(r.verdict, Pass, "ND {unit}");
        assert_eq!(r.limit, inhibition_limit());
    }
    // Whatever method the source names (spectro says enzyme_inhibition, ASTM nothing).
    let mut r = num("op_carbamate", None, 62.4, "%");
    r.method = Some("spectrophotometric".into());
    assert_eq!(judge(r).verdict, Fail);
    // A value not in %: not an inhibition rate, and op_carbamate has no limit.
    let r = judge(num("op_carbamate", Some("leafy_vegetable"), 0.5, "mg/kg"));
    assert_eq!(r.verdict, Unknown);
    assert_eq!(r.limit, None);
    // A device verdict is kept for the record only, without ΔA0 and ΔAt.
    let mut r = num("op_carbamate", None, 74.5, "%");
    r.device_verdict = Some(DeviceVerdict::Negative);
    assert_eq!(judge(r).verdict, Fail);
}

fn enzyme(a0: Option<f64>, at: f64, printed: f64, conclusion: Option<DeviceVerdict>) -> Reading {
    let mut r = Reading::new(Protocol::EnzymePrint, "op_carbamate");
    r.method = Some("enzyme_inhibition".into());
    r.value = Some(printed);
    r.unit = Some("%".into());
    r.delta_a0 = a0;
    r.delta_at = Some(at);
    r.device_verdict = conclusion;
    r.conclusion = conclusion.map(|c| {
        match c {
            DeviceVerdict::Positive => "阳性",
            DeviceVerdict::Negative => "阴性",
            DeviceVerdict::Invalid => "无效",
        }
        .into()
    });
    r.sample_name = Some("菠菜".into());
    r
}

#[test]
fn enzyme_inhibition_control_recomputation_and_conclusion() {
    use DeviceVerdict::{Invalid as DInvalid, Negative as Neg, Positive as Pos};
    // Control: ΔA0 below 0.3 or missing invalidates every row.
    let r = judge(enzyme(Some(0.299), 0.1, 66.6, Some(Pos)));
    assert_eq!(r.verdict, Invalid, "{}", r.reason);
    assert!(
        r.reason.contains("0.299") && r.reason.contains("0.3"),
        "{}",
        r.reason
    );
    assert_eq!(r.limit, None);
    let r = judge(enzyme(Some(0.3), 0.15, 50.0, Some(Pos)));
    assert_eq!(r.verdict, Fail, "ΔA0 = 0.3 is enough: {}", r.reason);
    let r = judge(enzyme(None, 0.105, 74.5, Some(Pos)));
    assert_eq!(r.verdict, Invalid);
    assert!(r.reason.contains("no control ΔA0"), "{}", r.reason);
    // A failed control travels with uploads too.
    let mut r = num("op_carbamate", None, 10.0, "%");
    r.delta_a0 = Some(0.2);
    r.delta_at = Some(0.18);
    assert_eq!(judge(r).verdict, Invalid);

    // The rule applies to the recomputed rate: 0.4 → 0.2 is exactly 50%.
    let r = judge(enzyme(Some(0.4), 0.2, 50.0, Some(Pos)));
    assert_eq!(r.verdict, Fail, "{}", r.reason);
    assert_eq!(r.limit, inhibition_limit());
    assert_eq!(r.reading.recomputed_rate, Some(50.0));
    let r = judge(enzyme(Some(0.4), 0.2004, 49.9, Some(Neg)));
    assert_eq!(r.verdict, Pass, "49.9%: {}", r.reason);
    let r = judge(enzyme(Some(0.412), 0.105, 74.5, Some(Pos)));
    assert_eq!(r.verdict, Fail);
    assert!(r.reason.contains("74.5%"), "{}", r.reason);

    // Printed rate vs recomputed: 1.0 point apart is tolerated, more is not.
    let r = judge(enzyme(Some(0.4), 0.2, 49.0, Some(Pos)));
    assert_eq!(r.verdict, Fail, "1.0 point off: {}", r.reason);
    let r = judge(enzyme(Some(0.4), 0.2, 51.0, Some(Pos)));
    assert_eq!(r.verdict, Fail, "1.0 point off: {}", r.reason);
    for printed in [48.9, 51.1, 10.0] {
        let r = judge(enzyme(Some(0.4), 0.2, printed, Some(Pos)));
        assert_eq!(r.verdict, Invalid, "{printed}: {}", r.reason);
        assert!(r.reason.contains("differs"), "{}", r.reason);
        assert_eq!(r.limit, inhibition_limit());
    }
    // The printed conclusion against the rule.
    for (at, printed, conclusion) in [
        (0.105, 74.5, Neg),
        (0.398, 3.4, Pos),
        (0.105, 74.5, DInvalid),
        (0.398, 3.4, DInvalid),
    ] {
        let r = judge(enzyme(Some(0.412), at, printed, Some(conclusion)));
        assert_eq!(r.verdict, Invalid, "{conclusion:?}: {}", r.reason);
        assert!(r.reason.contains("conclusion"), "{}", r.reason);
    }
    // No conclusion printed: nothing to cross-check.
    assert_eq!(judge(enzyme(Some(0.412), 0.398, 3.4, None)).verdict, Pass);
    // The recomputed rate is filled in when the reading came without one.
    let mut r = num("op_carbamate", None, 74.5, "%");
    r.delta_a0 = Some(0.412);
    r.delta_at = Some(0.105);
    assert_eq!(judge(r).reading.recomputed_rate, Some(74.5));
}

fn strip(
    analyte: &str,
    format: &str,
    t: u32,
    c: u32,
    cutoff: u32,
    reader: Option<DeviceVerdict>,
) -> Reading {
    let mut r = Reading::new(Protocol::GoldCard, analyte);
    r.method = Some("colloidal_gold".into());
    r.t_line = Some(t);
    r.c_line = Some(c);
    r.cutoff = Some(cutoff);
    r.assay_format = (!format.is_empty()).then(|| format.into());
    r.value = (c > 0).then(|| (f64::from(t) / f64::from(c) * 1000.0).round() / 1000.0);
    r.unit = Some("T/C".into());
    r.device_verdict = reader;
    r
}

#[test]
fn colloidal_gold_exact_integers_and_reader_cross_check() {
    use DeviceVerdict::{Invalid as DInvalid, Negative as Neg, Positive as Pos};
    let cut = limit(0.5, "T/C", "strip cut-off");
    // Competitive: positive when T × 1000 ≤ cut-off × C.
    for (t, c, want) in [
        (499, 1000, Fail),
        (500, 1000, Fail),
        (501, 1000, Pass),
        (750, 1500, Fail),
        (751, 1500, Pass),
    ] {
        let reader = if want == Fail { Pos } else { Neg };
        let r = judge(strip("clenbuterol", "competitive", t, c, 500, Some(reader)));
        assert_eq!(r.verdict, want, "T {t} C {c}: {}", r.reason);
        assert_eq!(r.limit, cut);
        // Without a reader verdict, the same.
        assert_eq!(
            judge(strip("clenbuterol", "competitive", t, c, 500, None)).verdict,
            want
        );
    }
    // Sandwich: positive when T × 1000 ≥ cut-off × C.
    for (t, want) in [(499, Pass), (500, Fail), (501, Fail)] {
        let reader = if want == Fail { Pos } else { Neg };
        let r = judge(strip(
            "enrofloxacin",
            "sandwich",
            t,
            1000,
            500,
            Some(reader),
        ));
        assert_eq!(r.verdict, want, "sandwich T {t}: {}", r.reason);
        assert_eq!(r.limit, cut);
    }
    // The decision uses integers, not the rounded ratio: 333/1000 vs cut-off 333.
    let r = judge(strip("clenbuterol", "competitive", 1, 3, 333, None));
    assert_eq!(r.verdict, Invalid, "C = 3 did not run");
    let r = judge(strip("clenbuterol", "competitive", 1000, 3001, 333, None));
    assert_eq!(r.verdict, Pass, "1000/3001 = 0.33322 > 0.333: {}", r.reason);
    let r = judge(strip("clenbuterol", "competitive", 1000, 3003, 333, None));
    assert_eq!(r.reading.value, Some(0.333), "rounds to the cut-off");
    assert_eq!(
        r.verdict, Pass,
        "but 1000 × 1000 > 333 × 3003: {}",
        r.reason
    );
    let r = judge(strip("clenbuterol", "competitive", 1000, 3004, 333, None));
    assert_eq!(r.verdict, Fail, "1000 × 1000 ≤ 333 × 3004: {}", r.reason);
    assert_eq!(r.limit, limit(0.333, "T/C", "strip cut-off"));
    // Reader disagreeing → invalid, naming both.
    let r = judge(strip(
        "clenbuterol",
        "competitive",
        300,
        1000,
        500,
        Some(Neg),
    ));
    assert_eq!(r.verdict, Invalid);
    assert!(
        r.reason.contains("negative") && r.reason.contains("positive"),
        "{}",
        r.reason
    );
    assert_eq!(r.limit, cut);
    let r = judge(strip(
        "clenbuterol",
        "competitive",
        800,
        1000,
        500,
        Some(Pos),
    ));
    assert_eq!(r.verdict, Invalid);
    let r = judge(strip(
        "clenbuterol",
        "competitive",
        800,
        1000,
        500,
        Some(DInvalid),
    ));
    assert_eq!(r.verdict, Invalid);
    // C below 200 → invalid whatever the reader said; 200 runs.
    for reader in [Some(Pos), Some(Neg), Some(DInvalid), None] {
        let r = judge(strip("clenbuterol", "competitive", 100, 199, 500, reader));
        assert_eq!(r.verdict, Invalid);
        assert!(r.reason.contains("199"), "{}", r.reason);
        assert_eq!(r.limit, None);
        let r = judge(strip("clenbuterol", "competitive", 0, 0, 500, reader));
        assert_eq!(r.verdict, Invalid);
    }
    assert_eq!(
        judge(strip("clenbuterol", "competitive", 100, 200, 500, None)).verdict,
        Fail
    );
    // The T/C rule decides for every analyte, numeric-limit and op_carbamate ones too.
    assert_eq!(
        judge(strip("op_carbamate", "competitive", 800, 1000, 500, None)).verdict,
        Pass
    );
    assert_eq!(
        judge(strip("enrofloxacin", "competitive", 100, 1000, 500, None)).verdict,
        Fail
    );
    assert_eq!(
        judge(strip(
            "hydrogen_peroxide",
            "competitive",
            100,
            1000,
            500,
            None
        ))
        .verdict,
        Fail
    );
    // Unknown items: invalid when the strip did not run, else unknown.
    assert_eq!(
        judge(strip("unknown:0x0999", "", 100, 150, 500, None)).verdict,
        Invalid
    );
    let r = judge(strip("unknown:0x0999", "", 333, 1000, 500, None));
    assert_eq!(r.verdict, Unknown);
    assert!(r.reason.contains("0x0999"), "{}", r.reason);
    // Missing format or cut-off: cannot tell.
    assert_eq!(
        judge(strip("clenbuterol", "", 100, 1000, 500, None)).verdict,
        Unknown
    );
    let mut r = strip("clenbuterol", "competitive", 100, 1000, 500, None);
    r.cutoff = None;
    assert_eq!(judge(r).verdict, Unknown);
}

#[test]
fn qualitative_rule() {
    use DeviceVerdict::{Negative as Neg, Positive as Pos};
    let cases = [
        ("clenbuterol", Pos, Fail),
        ("clenbuterol", Neg, Pass),
        ("borax", Pos, Fail),
        ("rongalite", Neg, Pass),
        ("op_carbamate", Pos, Fail),
        ("op_carbamate", Neg, Pass),
        ("nitrite", Pos, Unknown),
        ("nitrite", Neg, Unknown),
        ("formaldehyde", Pos, Unknown),
        ("enrofloxacin", Neg, Unknown),
        ("hydrogen_peroxide", Pos, Unknown),
    ];
    for (analyte, device, want) in cases {
        let mut r = Reading::new(Protocol::Astm, analyte);
        r.device_verdict = Some(device);
        r.category = Some("cured_meat".into());
        let r = judge(r);
        assert_eq!(r.verdict, want, "{analyte} {device:?}: {}", r.reason);
        assert_eq!(r.limit, None, "qualitative sets no limit");
        assert!(r.reason.contains(analyte), "{}", r.reason);
    }
}

#[test]
fn prohibited_rule() {
    for analyte in [
        "clenbuterol",
        "ractopamine",
        "salbutamol",
        "chloramphenicol",
        "malachite_green",
        "nitrofuran_aoz",
        "borax",
        "rongalite",
    ] {
        let source = if matches!(analyte, "borax" | "rongalite") {
            "食品中可能违法添加的非食用物质名单"
        } else {
            "农业农村部公告第250号 (2019)"
        };
        let cases = [
            (num(analyte, Some("livestock_meat"), 0.0, "ug/kg"), Pass),
            (num(analyte, Some("livestock_meat"), -0.1, "ug/kg"), Pass),
            (num(analyte, Some("livestock_meat"), 0.001, "ug/kg"), Fail),
            (num(analyte, None, 3.2, "whatever"), Fail),
            (
                qual(num(analyte, None, 0.05, "ug/kg"), Qualifier::Below),
                Pass,
            ),
            (
                qual(num(analyte, None, 100.0, "ug/kg"), Qualifier::Above),
                Fail,
            ),
            (
                qual(num(analyte, None, 0.0, "ug/kg"), Qualifier::NotDetected),
                Pass,
            ),
        ];
        for (r, want) in cases {
            let r = judge(r);
            assert_eq!(r.verdict, want, "{analyte}: {}", r.reason);
            assert_eq!(r.limit, None, "prohibited sets no limit");
            assert!(r.reason.contains(source), "{}", r.reason);
        }
    }
}

#[test]
fn invalid_input_and_unknown_analyte_come_first() {
    // Status X, even with a value.
    let mut r = num("nitrite", Some("cured_meat"), 1.0, "mg/kg");
    r.result_status = Some("X".into());
    assert_eq!(judge(r).verdict, Invalid);
    let mut r = num("unknown:WBC", None, 1.0, "mg/kg");
    r.result_status = Some("X".into());
    assert_eq!(judge(r).verdict, Invalid, "rule 1 before rule 2");
    // A failed measurement: no value, no qualifier, no device verdict.
    let r = judge(Reading::new(Protocol::Hl7, "clenbuterol"));
    assert_eq!(r.verdict, Invalid);
    assert!(r.reason.contains("failed"), "{}", r.reason);
    // Device verdict invalid with no value.
    let mut r = Reading::new(Protocol::Astm, "formaldehyde");
    r.device_verdict = Some(DeviceVerdict::Invalid);
    assert_eq!(judge(r).verdict, Invalid);
    // spectro: an empty value field is a failed measurement whatever the device verdict.
    let mut r = Reading::new(Protocol::Spectro, "nitrite");
    r.device_verdict = Some(DeviceVerdict::Negative);
    r.category = Some("cured_meat".into());
    assert_eq!(judge(r).verdict, Invalid);
    // Unknown analyte.
    let r = judge(num("unknown:XYZ", Some("cured_meat"), 1.0, "mg/kg"));
    assert_eq!(r.verdict, Unknown);
    assert!(r.reason.contains("XYZ"), "{}", r.reason);
    // No rule yet.
    let r = judge(num("hydrogen_peroxide", Some("bean_product"), 0.8, "mg/L"));
    assert_eq!(r.verdict, Unknown);
    assert!(r.reason.contains("no rule"), "{}", r.reason);
    // A preliminary result is still judged.
    let mut r = num("op_carbamate", None, 55.1, "%");
    r.result_status = Some("P".into());
    assert_eq!(judge(r).verdict, Fail);
}

// ---------------------------------------------------------------------------------------
// Category resolution.

#[test]
fn category_resolution_paths() {
    let j = Judge::builtin();
    let run = |category: Option<&str>, code: Option<&str>, name: Option<&str>| {
        let mut r = num("nitrite", None, 25.0, "mg/kg");
        r.category = category.map(Into::into);
        r.category_code = code.map(Into::into);
        r.sample_name = name.map(Into::into);
        j.judged(r)
    };
    // The reading's own category wins over its sample name.
    let r = run(Some("cured_meat"), None, Some("酸菜"));
    assert_eq!(r.reading.category.as_deref(), Some("cured_meat"));
    assert_eq!(r.verdict, Pass);
    // An instrument code (the reference's table), `1` and `01` alike.
    let r = run(None, Some("22"), Some("腊肉"));
    assert_eq!(r.reading.category.as_deref(), Some("pickled_vegetable"));
    assert_eq!(r.verdict, Fail, "25 > 20 for pickled_vegetable");
    assert_eq!(
        run(None, Some("1"), None).reading.category.as_deref(),
        Some("leafy_vegetable")
    );
    // A category the reference does not know falls through to the code, then the name.
    let r = run(Some("moon_rock"), Some("99"), Some("腊肠"));
    assert_eq!(r.reading.category.as_deref(), Some("cured_meat"));
    // The commodity dictionary: exact, either of two names, case, spaces.
    for (name, cat) in [
        ("腊肉", "cured_meat"),
        ("芫荽", "leafy_vegetable"),
        ("香菜", "leafy_vegetable"),
        ("甘蓝", "brassica_vegetable"),
        ("卷心菜", "brassica_vegetable"),
        ("西蓝花", "brassica_vegetable"),
        ("土豆", "root_vegetable"),
        ("猪腰", "offal"),
        ("  菠菜  ", "leafy_vegetable"),
        ("\u{3000}菠菜\u{3000}", "leafy_vegetable"),
        ("Spinach", "leafy_vegetable"),
        ("SPINACH ", "leafy_vegetable"),
        ("西式火腿", "western_ham"),
    ] {
        assert_eq!(
            run(None, None, Some(name)).reading.category.as_deref(),
            Some(cat),
            "{name:?}"
        );
    }
    // Unknown: null, and the reason says what is missing.
    for r in [
        run(None, None, Some("菠菜 | bulk")),
        run(None, None, None),
        run(Some("moon_rock"), None, None),
    ] {
        assert_eq!(r.reading.category, None);
        assert_eq!(r.verdict, Unknown);
        assert!(r.reason.contains("no food category"), "{}", r.reason);
    }
}

#[test]
fn every_commodity_of_limits_md_is_in_the_dictionary() {
    let reference = Reference::builtin();
    let table = [
        (
            "leafy_vegetable",
            "菠菜, 小白菜, 青菜, 上海青, 油麦菜, 生菜, 茼蒿, 芹菜, 空心菜, 苋菜, 菜心, 芫荽/香菜",
        ),
        (
            "brassica_vegetable",
            "大白菜, 甘蓝/包菜/卷心菜, 花椰菜/菜花, 西兰花/西蓝花",
        ),
        ("bulb_vegetable", "韭菜, 大葱, 小葱, 洋葱, 大蒜, 蒜苗"),
        (
            "fruiting_vegetable",
            "番茄/西红柿, 黄瓜, 茄子, 辣椒, 青椒, 西葫芦, 苦瓜",
        ),
        ("legume_vegetable", "豇豆, 菜豆/四季豆, 荷兰豆, 毛豆"),
        ("root_vegetable", "萝卜, 胡萝卜, 马铃薯/土豆, 生姜, 山药"),
        ("fruit", "苹果, 梨, 葡萄, 草莓, 柑橘, 香蕉"),
        ("livestock_meat", "猪肉, 牛肉, 羊肉"),
        ("poultry_meat", "鸡肉, 鸭肉, 鹅肉"),
        ("offal", "猪肝, 猪肾/猪腰, 牛肝, 羊肝"),
        (
            "aquatic_product",
            "草鱼, 鲫鱼, 鲈鱼, 鲤鱼, 带鱼, 鱿鱼, 虾, 对虾, 蟹, 海参",
        ),
        ("cured_meat", "腊肉, 腊肠, 香肠, 咸肉, 熏肉, 酱肉"),
        ("western_ham", "火腿, 西式火腿"),
        ("pickled_vegetable", "酸菜, 榨菜, 泡菜, 咸菜, 腌菜"),
        ("dried_vegetable", "黄花菜, 干辣椒, 脱水蔬菜, 笋干"),
        ("dried_fruit", "葡萄干, 杏干, 红枣干, 柿饼"),
        ("candied_fruit", "蜜饯, 果脯, 话梅"),
        ("noodle_product", "面条, 湿面, 米粉, 河粉"),
        ("bean_product", "腐竹, 豆腐, 豆腐皮, 豆干"),
        ("meat_product", "肉丸, 牛肉丸, 鱼丸"),
    ];
    assert_eq!(reference.categories().len(), table.len());
    for (cat, names) in table {
        for name in names.split(", ").flat_map(|n| n.split('/')) {
            let found = reference
                .category_for_commodity(name)
                .map(|c| c.id().as_str());
            assert_eq!(found, Some(cat), "{name}");
        }
    }
    // The `vegetable` group is the six vegetable categories.
    let groups: Vec<_> = reference.groups().collect();
    assert_eq!(groups.len(), 1);
    let (name, members) = reference.groups().next().expect("a group");
    assert_eq!(name.as_str(), "vegetable");
    assert_eq!(members.map(|c| c.as_str()).collect::<Vec<_>>(), VEGETABLES);
}

// ---------------------------------------------------------------------------------------
// The reference file.

#[test]
fn builtin_reference_agrees_with_the_parsers_tables() {
    let reference = Reference::builtin();
    assert_eq!(reference.version(), "2026.1");
    // Analytes and aliases: the decoders' default table is the same one.
    assert_eq!(&reference.alias_table(), AliasTable::builtin());
    assert_eq!(reference.analytes().len(), 19);
    // Category codes: the spectro decoder maps the same codes to the same categories.
    for code in 0..=120u32 {
        let code = format!("{code:02}");
        assert_eq!(
            reference.category_for_code(&code).map(|c| c.id().as_str()),
            foodgate_parsers::categories::category_for_code(&code),
            "code {code}"
        );
    }
}

#[test]
fn the_built_in_file_loads_from_disk_too() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/judge/reference.toml");
    let r = Reference::load(&path).expect("loads");
    assert_eq!(r.version(), Reference::builtin().version());
    let err = Reference::load(Path::new("/nonexistent/limits.toml")).expect_err("no file");
    assert!(
        err.to_string().contains("/nonexistent/limits.toml"),
        "{err}"
    );
}

/// Replace `from` (which must occur once) and return the text and the line `at` is on.
fn edit(from: &str, to: &str, at: &str) -> (String, usize) {
    assert_eq!(
        BUILTIN_TEXT.matches(from).count(),
        1,
        "{from:?} occurs once"
    );
    let text = BUILTIN_TEXT.replacen(from, to, 1);
    let pos = text
        .find(at)
        .unwrap_or_else(|| panic!("{at:?} in the edited text"));
    (text.clone(), text[..pos].matches('\n').count() + 1)
}

fn refused(text: &str) -> ReferenceError {
    Reference::parse(text, "limits.toml").expect_err("refused")
}

#[test]
fn malformed_reference_files_are_refused_with_line_and_key() {
    // (replace, with, the text the error is at, key, the problem expected)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        fn(&Problem) -> bool,
    );
    let cases: Vec<Case> = vec![
        // Unknown analyte in a limit.
        (
            "analyte = \"phorate\"",
            "analyte = \"phorat\"",
            "analyte = \"phorat\"",
            ".analyte",
            |p| matches!(p, Problem::UnknownAnalyte(a) if a == "phorat"),
        ),
        // Aliases are not accepted in limit rows.
        (
            "analyte = \"phorate\"",
            "analyte = \"甲拌磷\"",
            "analyte = \"甲拌磷\"",
            ".analyte",
            |p| matches!(p, Problem::UnknownAnalyte(_)),
        ),
        // A unit that does not parse.
        (
            "value = 0.01\nunit = \"mg/kg\"",
            "value = 0.01\nunit = \"mg/kgg\"",
            "unit = \"mg/kgg\"",
            ".unit",
            |p| matches!(p, Problem::BadUnit(_)),
        ),
        // A duplicate row: chlorpyrifos in leafy_vegetable twice.
        (
            "categories = [\"leafy_vegetable\", \"bulb_vegetable\"]",
            "categories = [\"leafy_vegetable\", \"bulb_vegetable\", \"leafy_vegetable\"]",
            "categories = [\"leafy_vegetable\", \"bulb_vegetable\", \"leafy_vegetable\"]",
            ".categories[2]",
            |p| matches!(p, Problem::DuplicateLimit { category, .. } if category == "leafy_vegetable"),
        ),
        // A duplicate row through the group.
        (
            "analyte = \"chlorpyrifos\"\ncategories = [\"leafy_vegetable\", \"bulb_vegetable\"]",
            "analyte = \"omethoate\"\ncategories = [\"leafy_vegetable\", \"bulb_vegetable\"]",
            "categories = [\"leafy_vegetable\", \"bulb_vegetable\"]",
            ".categories[0]",
            |p| matches!(p, Problem::DuplicateLimit { analyte, .. } if analyte == "omethoate"),
        ),
        // A category named in a limit that does not exist.
        (
            "categories = [\"western_ham\"]",
            "categories = [\"western_hams\"]",
            "categories = [\"western_hams\"]",
            ".categories[0]",
            |p| matches!(p, Problem::UnknownCategory(c) if c == "western_hams"),
        ),
        // A category named in a group that does not exist.
        (
            "    \"root_vegetable\",\n]",
            "    \"root_vegetables\",\n]",
            "\"root_vegetables\"",
            "groups.vegetable[5]",
            |p| matches!(p, Problem::UnknownCategory(_)),
        ),
        // An alias claimed by two analytes (case-insensitive).
        (
            "aliases = [\"RAC\", \"莱克多巴胺\"]",
            "aliases = [\"RAC\", \"莱克多巴胺\", \"clb\"]",
            "aliases = [\"RAC\", \"莱克多巴胺\", \"clb\"]",
            ".aliases[2]",
            |p| matches!(p, Problem::DuplicateAlias { first, second, .. } if first == "clenbuterol" && second == "ractopamine"),
        ),
        // An alias equal to another analyte's id.
        (
            "aliases = [\"SAL\", \"沙丁胺醇\"]",
            "aliases = [\"SAL\", \"沙丁胺醇\", \"Borax\"]",
            "id = \"borax\"",
            ".id",
            |p| {
                matches!(p, Problem::DuplicateAlias { first, second, .. } if first == "salbutamol" && second == "borax")
            },
        ),
        // A commodity in two categories.
        (
            "\"酸菜\", \"榨菜\"",
            "\"酸菜\", \"菠菜\", \"榨菜\"",
            "\"酸菜\", \"菠菜\"",
            ".commodities[1]",
            |p| matches!(p, Problem::DuplicateCommodity { first, .. } if first == "leafy_vegetable"),
        ),
        // The same analyte twice.
        (
            "id = \"phorate\"",
            "id = \"carbofuran\"",
            "id = \"carbofuran\"\naliases = [\"甲拌磷\"]",
            ".id",
            |p| matches!(p, Problem::DuplicateAnalyte(_)),
        ),
        // The same category twice.
        (
            "id = \"fruit\"",
            "id = \"offal\"",
            "id = \"offal\"\ncode = \"12\"",
            ".id",
            |p| matches!(p, Problem::DuplicateCategory(_)),
        ),
        // Two categories with one instrument code.
        (
            "code = \"07\"",
            "code = \"6\"",
            "code = \"6\"",
            ".code",
            |p| matches!(p, Problem::DuplicateCode { code: 6, .. }),
        ),
        // A bad code.
        ("code = \"07\"", "code = \"7a\"", "code = \"7a\"", ".code", |p| matches!(p, Problem::BadValue(_))),
        // An id that is not an id.
        (
            "id = \"methamidophos\"",
            "id = \"Methamidophos\"",
            "id = \"Methamidophos\"",
            ".id",
            |p| matches!(p, Problem::BadId(_)),
        ),
        // A negative limit.
        (
            "value = 70",
            "value = -70",
            "value = -70",
            ".value",
            |p| matches!(p, Problem::BadLimit(_)),
        ),
        // A limit for an analyte whose rule never looks at limits.
        (
            "analyte = \"methamidophos\"",
            "analyte = \"borax\"",
            "analyte = \"borax\"",
            ".analyte",
            |p| matches!(p, Problem::LimitNeverApplies { .. }),
        ),
        // A prohibited analyte with no source.
        (
            "rule = \"prohibited\"\nsource = \"食品中可能违法添加的非食用物质名单\"\n\n[[analyte]]\nid = \"hydrogen_peroxide\"",
            "rule = \"prohibited\"\n\n[[analyte]]\nid = \"hydrogen_peroxide\"",
            "rule = \"prohibited\"\n\n[[analyte]]\nid = \"hydrogen_peroxide\"",
            ".source",
            |p| matches!(p, Problem::MissingSource),
        ),
        // A group named like a category.
        ("[groups]\nvegetable", "[groups]\nfruit", "fruit = [", "groups.fruit", |p| {
            matches!(p, Problem::GroupClash(_))
        }),
        // An empty version.
        ("version = \"2026.1\"", "version = \" \"", "version = \" \"", "version", |p| {
            matches!(p, Problem::EmptyVersion)
        }),
    ];
    for (from, to, at, key, check) in cases {
        let (text, line) = edit(from, to, at);
        let err = refused(&text);
        let msg = err.to_string();
        assert_eq!(err.line(), line, "{msg}");
        assert!(msg.starts_with(&format!("limits.toml:{line}: ")), "{msg}");
        assert!(msg.contains(key), "key {key} in {msg}");
        let problem = err.problem().unwrap_or_else(|| panic!("a problem: {msg}"));
        assert!(check(problem), "{msg}");
    }
}

#[test]
fn syntax_and_shape_errors_name_the_line() {
    for (from, to, at, words) in [
        ("value = 70", "value = 70 70", "value = 70 70", "expected"),
        ("verify = true\n\n[[limit]]\nanalyte = \"sulfur_dioxide\"\nnote = \"residue\"\ncategories = [\"dried_fruit\"]",
         "verify = true\n\n[[limit]]\nanalyte = \"sulfur_dioxide\"\nnote = \"residue\"\ncategory = [\"dried_fruit\"]",
         "category = [\"dried_fruit\"]", "unknown field"),
        ("min_c_line = 200", "min_c_line = \"200\"", "\"200\"", "invalid type"),
        ("rule = \"action_level\"", "rule = \"action level\"", "\"action level\"", "unknown variant"),
    ] {
        let (text, line) = edit(from, to, at);
        let err = refused(&text);
        let msg = err.to_string();
        assert!(matches!(err, ReferenceError::Syntax { .. }), "{msg}");
        assert_eq!(err.line(), line, "{msg}");
        assert!(msg.starts_with(&format!("limits.toml:{line}: ")), "{msg}");
        assert!(msg.contains(words), "{msg}");
    }
    let err = refused("this is not toml");
    assert_eq!(err.line(), 1);
    let err = refused("version = \"1\"");
    assert!(err.to_string().contains("rules"), "{err}");
}

#[test]
fn a_replaced_reference_changes_limits_aliases_and_the_dictionary() {
    let text = BUILTIN_TEXT
        .replace("value = 30\n", "value = 40\n")
        .replace(
            "id = \"nitrite\"\naliases = [\"NO2\"",
            "id = \"nitrite\"\naliases = [\"NO2\", \"NIT\"",
        )
        .replace("\"腊肉\",", "\"腊肉\", \"bacon\",");
    let reference = Arc::new(Reference::parse(&text, BUILTIN_NAME).expect("valid"));
    let j = Judge::new(reference.clone());
    let mut r = num("nitrite", None, 35.0, "mg/kg");
    r.sample_name = Some("Bacon".into());
    let r = j.judged(r);
    assert_eq!(r.verdict, Pass, "{}", r.reason);
    assert_eq!(r.reading.category.as_deref(), Some("cured_meat"));
    assert_eq!(reference.alias_table().lookup("nit"), Some("nitrite"));
    assert_eq!(
        reference.analyte("NIT").map(|a| a.id().as_str()),
        Some("nitrite")
    );
}

// ---------------------------------------------------------------------------------------
// End to end through `foodgate parse`.

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn parse(
    protocol: &str,
    file: &Path,
    extra: &[&str],
) -> (Option<i32>, Vec<serde_json::Value>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_foodgate"));
    cmd.args(["parse", "--protocol", protocol]).args(extra);
    let enc = file.with_extension("encoding");
    let enc = std::fs::read_to_string(&enc).ok();
    if let Some(e) = &enc {
        cmd.args(["--encoding", e.trim()]);
    }
    let out = cmd.arg(file).output().expect("run foodgate");
    let lines = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    (
        out.status.code(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture_readings(protocol: &str, name: &str) -> Vec<serde_json::Value> {
    let (code, lines, err) = parse(protocol, &fixtures().join(protocol).join(name), &[]);
    assert_eq!(code, Some(0), "{err}");
    lines
}

#[test]
fn every_reading_of_every_fixture_is_judged() {
    let mut total = 0;
    for protocol in [
        "astm",
        "hl7",
        "enzyme-print",
        "gold-card",
        "spectro",
        "lz4000t",
        "tl310",
        "dy723pc",
    ] {
        let dir = fixtures().join(protocol);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("fixture dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{protocol}");
        for file in files {
            let (code, lines, err) = parse(protocol, &file, &[]);
            assert_eq!(code, Some(0), "{}: {err}", file.display());
            for r in lines {
                total += 1;
                let verdict = r["verdict"].as_str().expect("verdict");
                assert!(["pass", "fail", "invalid", "unknown"].contains(&verdict));
                let reason = r["reason"].as_str().expect("reason");
                assert!(
                    !reason.is_empty() && reason != NOT_JUDGED,
                    "{}: {r}",
                    file.display()
                );
                assert!(r.get("limit").is_some() && r.get("category").is_some());
            }
        }
    }
    assert!(total > 100, "{total} readings");
}

fn pick<'a>(rows: &'a [serde_json::Value], keys: &[&str]) -> Vec<Vec<&'a serde_json::Value>> {
    rows.iter()
        .map(|r| keys.iter().map(|k| &r[*k]).collect())
        .collect()
}

#[test]
fn astm_food_screening() {
    let rows = fixture_readings("astm", "food_screening.bin");
    assert_eq!(rows[0]["analyte"], "op_carbamate");
    assert_eq!(rows[0]["value"], 74.5);
    assert_eq!(rows[0]["verdict"], "fail");
    assert_eq!(
        rows[0]["limit"],
        serde_json::json!({"value": 50.0, "unit": "%", "source": "GB/T 5009.199-2003"})
    );
    assert_eq!(rows[0]["category"], "leafy_vegetable");
    let verdicts: Vec<&str> = rows
        .iter()
        .map(|r| r["verdict"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(verdicts, ["fail", "pass", "fail"]);
    assert_eq!(rows[2]["analyte"], "clenbuterol");
    assert_eq!(
        rows[2]["limit"],
        serde_json::Value::Null,
        "qualitative: no limit"
    );
}

#[test]
fn astm_value_forms() {
    let rows = fixture_readings("astm", "value_forms.bin");
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["analyte"].as_str().unwrap_or("").to_string(),
                r["verdict"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expect = [
        ("clenbuterol", "pass"),       // <0.05
        ("nitrite", "unknown"),        // >100, spinach has no nitrite row
        ("ractopamine", "pass"),       // ND
        ("salbutamol", "fail"),        // POS
        ("chloramphenicol", "pass"),   // NEG
        ("malachite_green", "fail"),   // +
        ("nitrofuran_aoz", "pass"),    // -
        ("op_carbamate", "fail"),      // 55.1 %, preliminary
        ("op_carbamate", "pass"),      // 48 %, correction
        ("formaldehyde", "invalid"),   // status X
        ("sulfur_dioxide", "unknown"), // no row for leafy_vegetable
        ("borax", "pass"),             // 0
        ("unknown:XYZ", "unknown"),
        ("enrofloxacin", "unknown"), // no row for leafy_vegetable
    ];
    let got_ref: Vec<(&str, &str)> = got.iter().map(|(a, v)| (a.as_str(), v.as_str())).collect();
    assert_eq!(got_ref, expect);
}

#[test]
fn enzyme_print_reports() {
    let rows = fixture_readings("enzyme-print", "example.bin");
    assert_eq!(
        pick(&rows, &["sample_name", "verdict", "category"]),
        vec![
            vec!["菠菜", "fail", "leafy_vegetable"],
            vec!["小白菜", "pass", "leafy_vegetable"],
            vec!["上海青", "pass", "leafy_vegetable"],
        ]
    );
    for r in &rows {
        assert_eq!(r["limit"]["value"], 50.0);
        assert!(
            r["reason"].as_str().unwrap_or("").contains("recomputed"),
            "{r}"
        );
    }
    for r in fixture_readings("enzyme-print", "no_delta_a0.bin") {
        assert_eq!(r["verdict"], "invalid", "{r}");
        assert_eq!(r["limit"], serde_json::Value::Null);
    }
    let rows = fixture_readings("enzyme-print", "control_value_key.bin");
    let invalid: Vec<_> = rows.iter().filter(|r| r["conclusion"] == "无效").collect();
    assert!(!invalid.is_empty());
    for r in invalid {
        assert_eq!(r["verdict"], "invalid", "{r}");
    }
}

#[test]
fn gold_card_session() {
    let rows = fixture_readings("gold-card", "session.bin");
    assert_eq!(
        pick(&rows, &["analyte", "verdict"]),
        vec![
            // T/C 0.8 above the 0.5 cut-off: a clean competitive strip, as the reader said.
            vec!["clenbuterol", "pass"],
            vec!["chloramphenicol", "fail"],
            vec!["enrofloxacin", "fail"],
            // C = 0: the strip did not run.
            vec!["malachite_green", "invalid"],
        ]
    );
    assert_eq!(
        rows[1]["limit"],
        serde_json::json!({"value": 0.5, "unit": "T/C", "source": "strip cut-off"})
    );
    assert_eq!(rows[1]["category"], "aquatic_product");
    assert_eq!(rows[3]["limit"], serde_json::Value::Null);
}

#[test]
fn spectro_session() {
    let rows = fixture_readings("spectro", "session.bin");
    assert_eq!(
        pick(&rows, &["analyte", "verdict", "category"]),
        vec![
            vec!["formaldehyde", "fail", "aquatic_product"],
            vec!["sulfur_dioxide", "unknown", "aquatic_product"],
            vec!["borax", "pass", "noodle_product"],
            vec!["sulfur_dioxide", "pass", "dried_vegetable"],
            vec!["nitrite", "invalid", "cured_meat"],
            vec!["op_carbamate", "fail", "leafy_vegetable"],
            vec!["op_carbamate", "pass", "leafy_vegetable"],
            // Code 99 is unknown: the sample name decides.
            vec!["rongalite", "fail", "aquatic_product"],
            vec!["hydrogen_peroxide", "unknown", "bean_product"],
        ]
    );
    assert_eq!(
        rows[0]["limit"],
        serde_json::json!({"value": 10.0, "unit": "mg/kg",
            "source": "action level for rapid screening (common analyzer default)"})
    );
    assert_eq!(
        rows[3]["limit"],
        serde_json::json!({"value": 0.2, "unit": "g/kg", "source": "GB 2760 (verify)"})
    );
}

#[test]
fn polled_devices_are_judged_by_their_standards_and_conclusions() {
    let lz = fixture_readings("lz4000t", "dates_and_names.bin");
    assert_eq!(
        pick(&lz, &["value", "verdict"]),
        vec![
            vec![&serde_json::json!(100.0), &serde_json::json!("fail")],
            vec![&serde_json::json!(0.0), &serde_json::json!("pass")],
            // Exactly 50 % fails (the vendor's "≤ 50 passes" is wrong at 50).
            vec![&serde_json::json!(50.0), &serde_json::json!("fail")],
        ]
    );
    let tl = fixture_readings("tl310", "standards.bin");
    assert_eq!(
        pick(&tl, &["standard", "verdict"]),
        vec![
            vec!["00", "fail"],
            // 60 % passes the 70 % of NY/T 448-2001.
            vec!["01", "pass"],
            vec!["07", "invalid"],
            // 65 % under 70 %, yet the reader says it exceeds: a person looks.
            vec!["01", "invalid"],
        ]
    );
    assert_eq!(
        tl[1]["limit"],
        serde_json::json!({"value": 70.0, "unit": "%", "source": "NY/T 448-2001"})
    );
    assert!(
        tl[2]["reason"].as_str().unwrap().contains("\"07\""),
        "{}",
        tl[2]
    );
    assert!(
        tl[3]["reason"].as_str().unwrap().contains("disagrees"),
        "{}",
        tl[3]
    );
    let dy = fixture_readings("dy723pc", "items.bin");
    assert_eq!(
        pick(&dy, &["analyte", "verdict"]),
        vec![
            vec!["op_carbamate", "fail"],
            vec!["nitrite", "unknown"],
            vec!["formaldehyde", "unknown"],
            vec!["sulfur_dioxide", "unknown"],
            vec!["rongalite", "pass"],
            vec!["borax", "fail"],
        ]
    );
}

#[test]
fn hl7_value_forms() {
    let rows = fixture_readings("hl7", "value_forms.bin");
    assert!(rows.iter().any(|r| r["verdict"] == "fail"));
    for r in &rows {
        let expect = match (r["qualifier"].as_str(), r["result_status"].as_str()) {
            (_, Some("X")) => "invalid",
            (Some("<"), _) | (Some("ND"), _) => "pass",
            (Some(">"), _) => "fail",
            _ => continue,
        };
        assert_eq!(r["verdict"], expect, "{r}");
    }
}

#[test]
fn parse_with_limits_file() {
    let dir = std::env::temp_dir().join(format!("foodgate-judge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // A replaced file: the 50% threshold moved and OPI no longer an alias.
    let good = dir.join("limits.toml");
    std::fs::write(
        &good,
        BUILTIN_TEXT
            .replace("threshold = 50.0", "threshold = 80.0")
            .replace("aliases = [\"OPI\", ", "aliases = ["),
    )
    .expect("write");
    let (code, rows, err) = parse(
        "astm",
        &fixtures().join("astm/food_screening.bin"),
        &["--limits", good.to_str().expect("utf-8 path")],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        rows[0]["analyte"], "unknown:OPI",
        "aliases come from the file"
    );
    assert_eq!(rows[0]["verdict"], "unknown");
    let (_, rows, _) = parse(
        "spectro",
        &fixtures().join("spectro/session.bin"),
        &["--limits", good.to_str().expect("utf-8 path")],
    );
    assert_eq!(rows[5]["value"], 62.4);
    assert_eq!(rows[5]["verdict"], "unknown", "OPI unknown here too");

    // A bad file: exit 2, the file, line and key in the message.
    let bad = dir.join("bad.toml");
    let (text, line) = edit(
        "value = 70",
        "value = 70\nunit = \"mg/kg\"",
        "unit = \"mg/kg\"\nunit",
    );
    std::fs::write(&bad, &text).expect("write");
    let (code, rows, err) = parse(
        "astm",
        &fixtures().join("astm/food_screening.bin"),
        &["--limits", bad.to_str().expect("utf-8 path")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(rows.is_empty());
    assert!(err.contains("bad.toml"), "{err}");
    assert!(
        err.contains(&format!(":{}:", line + 1)) || err.contains(&format!(":{line}:")),
        "{err}"
    );
    let (text, line) = edit(
        "analyte = \"phorate\"",
        "analyte = \"phorat\"",
        "analyte = \"phorat\"",
    );
    std::fs::write(&bad, &text).expect("write");
    let (code, _, err) = parse(
        "astm",
        &fixtures().join("astm/food_screening.bin"),
        &["--limits", bad.to_str().expect("utf-8 path")],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains(&format!("bad.toml:{line}: limit[")), "{err}");
    assert!(err.contains("phorat"), "{err}");
    // A missing file is a bad argument too.
    let (code, _, err) = parse(
        "astm",
        &fixtures().join("astm/food_screening.bin"),
        &["--limits", "/nonexistent/limits.toml"],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/limits.toml"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
