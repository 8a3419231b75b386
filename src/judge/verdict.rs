//! What judging gives a reading: a [`Verdict`], a one-sentence reason and the limit it was
//! compared with ([`Judgement`]), and a decoded reading together with its judgement
//! ([`JudgedReading`]), which is what every layer above the judge stores, serves and sends.

use foodgate_parsers::Reading;
use serde::{Deserialize, Serialize};

/// Reason given to a reading that no judge has looked at.
pub const NOT_JUDGED: &str = "not judged: decoded only, no limit or method rule was applied";

/// foodgate's own judgement of a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Invalid,
    Unknown,
}

/// The numeric threshold a verdict was reached with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedLimit {
    pub value: f64,
    pub unit: String,
    pub source: String,
}

/// What the judge decided for a reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub verdict: Verdict,
    /// One sentence: the rule or limit applied and its source, or why none could be.
    pub reason: String,
    /// The threshold a value was compared with, else `None`.
    pub limit: Option<AppliedLimit>,
}

impl Judgement {
    /// The judgement of a reading no judge has looked at.
    pub fn not_judged() -> Judgement {
        Judgement {
            verdict: Verdict::Unknown,
            reason: NOT_JUDGED.to_string(),
            limit: None,
        }
    }
}

/// A decoded reading and its judgement.
///
/// Serialized as one object: the reading's keys, then `verdict`, `reason`, `limit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgedReading {
    #[serde(flatten)]
    pub reading: Reading,
    pub verdict: Verdict,
    pub reason: String,
    pub limit: Option<AppliedLimit>,
}

impl JudgedReading {
    pub fn new(reading: Reading, judgement: Judgement) -> JudgedReading {
        let Judgement {
            verdict,
            reason,
            limit,
        } = judgement;
        JudgedReading {
            reading,
            verdict,
            reason,
            limit,
        }
    }

    /// Replace the judgement.
    pub fn set(&mut self, judgement: Judgement) {
        self.verdict = judgement.verdict;
        self.reason = judgement.reason;
        self.limit = judgement.limit;
    }

    /// A judged reading from its JSON object.
    ///
    /// Reads the reading and the judgement each straight from the text (each ignores the
    /// other's keys) instead of through `#[serde(flatten)]`, which buffers every value of the
    /// object first: this is what stored rows are read back with.
    pub fn from_json(text: &str) -> serde_json::Result<JudgedReading> {
        let reading: Reading = serde_json::from_str(text)?;
        let judgement: Judgement = serde_json::from_str(text)?;
        Ok(JudgedReading::new(reading, judgement))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foodgate_parsers::Protocol;

    #[test]
    fn a_judged_reading_is_one_object_and_reads_back_both_ways() {
        let mut r = Reading::new(Protocol::Astm, "nitrite");
        r.value = Some(12.5);
        r.comments.push("re-run".into());
        let j = JudgedReading::new(
            r.clone(),
            Judgement {
                verdict: Verdict::Fail,
                reason: "above the limit".into(),
                limit: Some(AppliedLimit {
                    value: 10.0,
                    unit: "mg/kg".into(),
                    source: "GB 2762".into(),
                }),
            },
        );
        let text = serde_json::to_string(&j).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["analyte"], "nitrite");
        assert_eq!(v["verdict"], "fail");
        assert_eq!(v["limit"]["unit"], "mg/kg");
        assert_eq!(v["comments"][0], "re-run");
        assert!(v["category"].is_null() && v.get("offset").is_none());

        let mut plain = serde_json::to_value(&r).unwrap();
        let extra = serde_json::to_value(Judgement {
            verdict: j.verdict,
            reason: j.reason.clone(),
            limit: j.limit.clone(),
        })
        .unwrap();
        for (k, val) in extra.as_object().unwrap() {
            plain
                .as_object_mut()
                .unwrap()
                .insert(k.clone(), val.clone());
        }
        assert_eq!(
            v, plain,
            "the reading's keys and the judgement's, nothing else"
        );

        assert_eq!(JudgedReading::from_json(&text).unwrap(), j);
        assert_eq!(serde_json::from_str::<JudgedReading>(&text).unwrap(), j);
    }

    #[test]
    fn a_row_written_when_the_reading_carried_its_verdict_reads_back() {
        // The judge's keys between `category` and the details, as rows were once written.
        let old = r#"{"protocol":"astm","instrument":null,"sample_id":"S1","sample_name":null,"source":null,"analyte":"nitrite","method":null,"value":0.5,"unit":"mg/kg","qualifier":null,"device_verdict":null,"measured_at":null,"category":"cured_meat","verdict":"pass","reason":"below the limit","limit":{"value":30.0,"unit":"mg/kg","source":"GB 2760"},"offset":12}"#;
        let j = JudgedReading::from_json(old).unwrap();
        assert_eq!(j.verdict, Verdict::Pass);
        assert_eq!(j.reason, "below the limit");
        assert_eq!(j.limit.as_ref().map(|l| l.value), Some(30.0));
        assert_eq!(j.reading.category.as_deref(), Some("cured_meat"));
        assert_eq!(j.reading.offset, Some(12));
        let again: serde_json::Value = serde_json::to_value(&j).unwrap();
        let was: serde_json::Value = serde_json::from_str(old).unwrap();
        assert_eq!(again, was, "the same keys and values");
    }
}
