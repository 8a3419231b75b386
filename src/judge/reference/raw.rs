//! The reference file as written, before it is checked.

use super::AnalyteRule;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub(super) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) version: S<String>,
    pub(super) rules: Rules,
    #[serde(default)]
    pub(super) analyte: Vec<RawAnalyte>,
    #[serde(default)]
    pub(super) groups: BTreeMap<String, S<Vec<S<String>>>>,
    #[serde(default)]
    pub(super) category: Vec<RawCategory>,
    #[serde(default)]
    pub(super) limit: Vec<RawLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rules {
    pub(super) inhibition_rate: Inhibition,
    pub(super) colloidal_gold: Gold,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Inhibition {
    pub(super) threshold: S<f64>,
    pub(super) source: S<String>,
    pub(super) min_control_delta_a0: S<f64>,
    pub(super) control_source: S<String>,
    pub(super) max_rate_difference: S<f64>,
    #[serde(default)]
    pub(super) standard: Vec<InhibitionStandard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InhibitionStandard {
    pub(super) code: S<String>,
    pub(super) threshold: S<f64>,
    pub(super) source: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Gold {
    pub(super) min_c_line: u32,
    pub(super) source: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnalyte {
    pub(super) id: S<String>,
    #[serde(default)]
    pub(super) aliases: Vec<S<String>>,
    pub(super) rule: S<AnalyteRule>,
    pub(super) source: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCategory {
    pub(super) id: S<String>,
    pub(super) code: Option<S<String>>,
    #[serde(default)]
    pub(super) commodities: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimit {
    pub(super) analyte: S<String>,
    pub(super) categories: S<Vec<S<String>>>,
    pub(super) value: S<f64>,
    pub(super) unit: S<String>,
    pub(super) source: S<String>,
    #[serde(default)]
    pub(super) verify: bool,
    #[serde(default)]
    #[allow(dead_code)] // for people reading the file
    pub(super) note: Option<String>,
}
