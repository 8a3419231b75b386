//! The normalized result every decoder emits (`docs/reference.md`, "Reading").

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Short text of a reading. Inline up to 24 bytes (codes, ids, units, dates, most names),
/// so building a reading costs no allocation per field.
pub type Text = compact_str::CompactString;

/// `s` without surrounding whitespace, or `None` when nothing is left; no copy when there
/// was nothing to trim.
pub fn trimmed(s: Text) -> Option<Text> {
    let t = s.trim();
    if t.is_empty() {
        None
    } else if t.len() == s.len() {
        Some(s)
    } else {
        Some(Text::from(t))
    }
}

/// The wire protocols foodgate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Astm,
    Hl7,
    EnzymePrint,
    GoldCard,
    Spectro,
    /// Polled vendor devices: the host asks for a day's records (`docs/protocols.md`).
    Lz4000t,
    Tl310,
    Dy723pc,
}

impl Protocol {
    pub const ALL: [Protocol; 8] = [
        Protocol::Astm,
        Protocol::Hl7,
        Protocol::EnzymePrint,
        Protocol::GoldCard,
        Protocol::Spectro,
        Protocol::Lz4000t,
        Protocol::Tl310,
        Protocol::Dy723pc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Astm => "astm",
            Protocol::Hl7 => "hl7",
            Protocol::EnzymePrint => "enzyme-print",
            Protocol::GoldCard => "gold-card",
            Protocol::Spectro => "spectro",
            Protocol::Lz4000t => "lz4000t",
            Protocol::Tl310 => "tl310",
            Protocol::Dy723pc => "dy723pc",
        }
    }

    /// The instrument answers only when asked: the host polls it (`docs/protocols.md`,
    /// "Polled instruments").
    pub fn is_polled(self) -> bool {
        matches!(
            self,
            Protocol::Lz4000t | Protocol::Tl310 | Protocol::Dy723pc
        )
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol name that is not one of [`Protocol::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?}: expected one of astm, hl7, enzyme-print, gold-card, spectro, lz4000t, tl310, dy723pc")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProtocol(s.to_string()))
    }
}

/// How a value relates to the number it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Qualifier {
    /// Below the number (e.g. below the quantification limit).
    #[serde(rename = "<")]
    Below,
    /// Above the number (beyond the measuring range).
    #[serde(rename = ">")]
    Above,
    /// Not detected: no number.
    #[serde(rename = "ND")]
    NotDetected,
}

/// What the instrument itself concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceVerdict {
    Positive,
    Negative,
    Invalid,
}

/// One measurement of one analyte in one sample, as every protocol is normalized to.
///
/// The first block of fields is the documented contract (`docs/reference.md`) and is always serialized (as `null`
/// where the source has none); the rest are details kept for judging and tracing, serialized
/// only when known. A decoder does not judge: the verdict, reason and limit are foodgate's,
/// kept beside the reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub protocol: Protocol,
    pub instrument: Option<Text>,
    pub sample_id: Option<Text>,
    pub sample_name: Option<Text>,
    pub source: Option<Text>,
    pub analyte: Text,
    pub method: Option<Text>,
    pub value: Option<f64>,
    pub unit: Option<Text>,
    pub qualifier: Option<Qualifier>,
    pub device_verdict: Option<DeviceVerdict>,
    pub measured_at: Option<DateTime<FixedOffset>>,
    pub category: Option<Text>,

    /// Byte offset in the decoded stream of the record or frame this reading came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The test or item code exactly as the instrument sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyte_code: Option<Text>,
    /// The value field exactly as sent (decoded text), for identity and audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_text: Option<Text>,
    /// Result status letter as sent: `F` final, `C` correction, `P` preliminary, `X` failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_status: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_range: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abnormal_flag: Option<Text>,
    /// Vendor (stall holder) name as sent: personal data, never shown publicly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Text>,
    /// Instrument category code as sent (`spectro`), before mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_code: Option<Text>,
    /// Comment records / segments that followed the result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<Text>,
    /// HL7 message control id (MSH-10) of the message that carried the reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Text>,
    /// The instrument's sequence number of the frame or sentence (`gold-card`, `spectro`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,

    // Colloidal gold details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c_line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assay_format: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot: Option<Text>,

    // Enzyme inhibition details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_a0: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recomputed_rate: Option<f64>,
    /// The conclusion the instrument printed or sent in words, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<Text>,
    /// Who ran the test, as printed (`enzyme-print` `检测员`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tester: Option<Text>,
    /// Report header facts with no field of their own (`enzyme-print`: `method`, the
    /// printed method text, and header keys the decoder does not know, as printed).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,

    // Spectrophotometric details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absorbance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dilution: Option<f64>,

    // Polled devices' details.
    /// The channel (hole) of a multi-channel reader (`tl310`, `dy723pc`): part of the
    /// record's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u32>,
    /// The standard byte of a `tl310` record as sent (two hex digits): it picks the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard: Option<Text>,
    /// The check code a `dy723pc` record ends with, as sent (its algorithm is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Text>,
}

impl Reading {
    /// A reading with every optional key empty.
    pub fn new(protocol: Protocol, analyte: impl Into<Text>) -> Self {
        Reading {
            protocol,
            instrument: None,
            sample_id: None,
            sample_name: None,
            source: None,
            analyte: analyte.into(),
            method: None,
            value: None,
            unit: None,
            qualifier: None,
            device_verdict: None,
            measured_at: None,
            category: None,
            offset: None,
            analyte_code: None,
            value_text: None,
            result_status: None,
            reference_range: None,
            abnormal_flag: None,
            vendor: None,
            category_code: None,
            comments: Vec::new(),
            message_id: None,
            sequence: None,
            t_line: None,
            c_line: None,
            cutoff: None,
            assay_format: None,
            lot: None,
            delta_a0: None,
            delta_at: None,
            recomputed_rate: None,
            conclusion: None,
            tester: None,
            metadata: Metadata::default(),
            absorbance: None,
            dilution: None,
            channel: None,
            standard: None,
            check: None,
        }
    }
}

/// Facts an instrument printed that have no field of their own, in the order printed.
///
/// A short list rather than a map: a report has one or two, and every reading of the report
/// carries a copy. Serialized as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata(Vec<(Text, Text)>);

impl Metadata {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Set `key` (replacing an earlier value of the same key).
    pub fn insert(&mut self, key: impl Into<Text>, value: impl Into<Text>) {
        let (key, value) = (key.into(), value.into());
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<Text, Text>::deserialize(d)?;
        Ok(Metadata(map.into_iter().collect()))
    }
}
