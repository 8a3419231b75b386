//! Instrument food-category codes to canonical food categories (`docs/judging.md`, "The reference data").

/// Code → category, as the `spectro` analyzers number them. The codes are numbers: `1` and
/// `01` name the same category.
const CODES: [(u8, &str); 20] = [
    (1, "leafy_vegetable"),
    (2, "brassica_vegetable"),
    (3, "bulb_vegetable"),
    (4, "fruiting_vegetable"),
    (5, "legume_vegetable"),
    (6, "root_vegetable"),
    (7, "fruit"),
    (10, "livestock_meat"),
    (11, "poultry_meat"),
    (12, "offal"),
    (13, "aquatic_product"),
    (20, "cured_meat"),
    (21, "western_ham"),
    (22, "pickled_vegetable"),
    (23, "dried_vegetable"),
    (24, "dried_fruit"),
    (25, "candied_fruit"),
    (26, "noodle_product"),
    (27, "bean_product"),
    (28, "meat_product"),
];

/// The canonical category of an instrument category code (surrounding spaces and leading
/// zeros ignored), or `None` for an empty, non-numeric or unknown code.
pub fn category_for_code(code: &str) -> Option<&'static str> {
    let digits = code.trim().trim_start_matches('0');
    // Anything longer than two significant digits cannot be in the table (and cannot overflow).
    if digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u8 = digits.parse().ok()?;
    CODES.iter().find(|(c, _)| *c == n).map(|(_, cat)| *cat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zeros_do_not_matter() {
        assert_eq!(category_for_code("1"), Some("leafy_vegetable"));
        assert_eq!(category_for_code("01"), Some("leafy_vegetable"));
        assert_eq!(category_for_code(" 001 "), Some("leafy_vegetable"));
        assert_eq!(category_for_code("13"), Some("aquatic_product"));
        assert_eq!(category_for_code("28"), Some("meat_product"));
    }

    #[test]
    fn every_row_of_limits_md() {
        let rows = [
            ("01", "leafy_vegetable"),
            ("02", "brassica_vegetable"),
            ("03", "bulb_vegetable"),
            ("04", "fruiting_vegetable"),
            ("05", "legume_vegetable"),
            ("06", "root_vegetable"),
            ("07", "fruit"),
            ("10", "livestock_meat"),
            ("11", "poultry_meat"),
            ("12", "offal"),
            ("13", "aquatic_product"),
            ("20", "cured_meat"),
            ("21", "western_ham"),
            ("22", "pickled_vegetable"),
            ("23", "dried_vegetable"),
            ("24", "dried_fruit"),
            ("25", "candied_fruit"),
            ("26", "noodle_product"),
            ("27", "bean_product"),
            ("28", "meat_product"),
        ];
        for (code, cat) in rows {
            assert_eq!(category_for_code(code), Some(cat), "{code}");
        }
    }

    #[test]
    fn unknown_codes() {
        for code in [
            "", "0", "00", "08", "09", "14", "29", "99", "100", "1a", "-1", "+1", "一",
        ] {
            assert_eq!(category_for_code(code), None, "{code:?}");
        }
    }
}
