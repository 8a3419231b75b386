//! Stable identities: of a reading (what makes "the same reading again"), and of the events
//! and holds derived from it.

use foodgate_parsers::Reading;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Namespace of foodgate's UUID v5 ids.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6f0d_6a7e_2c1b_5d4e_9a3f_0c8b_7e21_4d55);

/// Who a reading came from: part of its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An instrument, by its id as sent (or as configured when it sends none).
    Instrument(String),
    /// An uploader (token name) of `POST /api/v1/results`.
    Uploader(String),
    /// One row of an upload: the uploader's own row id is what tells two rows apart
    /// (two rows may carry the same sample, analyte, time and value for different stalls).
    UploadRow { uploader: String, row: String },
}

impl Origin {
    pub fn instrument(&self) -> Option<&str> {
        match self {
            Origin::Instrument(s) => Some(s),
            Origin::Uploader(_) | Origin::UploadRow { .. } => None,
        }
    }
    pub fn uploader(&self) -> Option<&str> {
        match self {
            Origin::Uploader(s) | Origin::UploadRow { uploader: s, .. } => Some(s),
            Origin::Instrument(_) => None,
        }
    }
    /// Name for hold history `by`.
    pub fn name(&self) -> &str {
        match self {
            Origin::Instrument(s) | Origin::Uploader(s) => s,
            Origin::UploadRow { uploader, .. } => uploader,
        }
    }
}

/// Hex SHA-256 of (origin, sample id, analyte as sent, measured-at, value as sent, and the
/// channel of a multi-channel reader).
///
/// Fields are length-prefixed so no choice of field text can make two different readings
/// collide by shifting a separator.
pub fn reading_identity(origin: &Origin, r: &Reading) -> String {
    let mut h = Sha256::new();
    let mut field = |tag: &[u8], s: Option<&str>| {
        h.update(tag);
        match s {
            None => h.update([0u8]),
            Some(s) => {
                h.update([1u8]);
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
    };
    match origin {
        Origin::Instrument(s) => field(b"i", Some(s)),
        Origin::Uploader(s) => field(b"u", Some(s)),
        Origin::UploadRow { uploader, row } => {
            field(b"u", Some(uploader));
            field(b"r", Some(row));
        }
    }
    field(b"s", r.sample_id.as_deref());
    field(b"a", Some(r.analyte_code.as_deref().unwrap_or(&r.analyte)));
    let measured = r
        .measured_at
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false));
    field(b"t", measured.as_deref());
    let value = value_as_sent(r);
    field(b"v", value.as_deref());
    // A multi-channel reader's record is also told apart by its channel. Hashed only when
    // known, so the identities of every other reading stay as they were.
    if let Some(c) = r.channel {
        field(b"c", Some(&c.to_string()));
    }
    hex::encode(h.finalize())
}

/// The integer key migration 0012 indexes a hex id by (`readings.identity_key`,
/// `outbox.event_key`): its first 15 hex digits (dashes skipped), a character outside `0-9a-f`
/// counting -1 and a missing one 0, exactly as the migration computes it in SQL for the rows
/// it copies. Ids are hashes, so keys rarely repeat; rows that share one are told apart by
/// the whole id.
pub fn hex_key(id: &str) -> i64 {
    let mut digits = id.bytes().filter(|&b| b != b'-');
    (0..15).fold(0i64, |key, i| {
        let d = match digits.next() {
            None => 0,
            Some(b) => match b {
                b'0'..=b'9' => i64::from(b - b'0'),
                b'a'..=b'f' => i64::from(b - b'a' + 10),
                _ => -1,
            },
        };
        key + (d << (4 * (14 - i)))
    })
}

/// Bit 62: a `readings.identity_key` made by [`reading_key`]; keys of readings stored before
/// migration 0013 are [`hex_key`]s of their identity, all below it.
pub const TIMED_KEY: i64 = 1 << 62;

/// The `readings.identity_key` of a reading stored from migration 0013 on: [`TIMED_KEY`],
/// then the minute it was measured (28 bits from 1970, 0 when it has no time), then the low
/// 34 bits of its identity's [`hex_key`]. Readings arrive about in the order they were
/// measured, so new keys go to the end of the index and a committed batch rewrites a few of
/// its pages; a hash key put every new row on a random page, and at a million readings each
/// batch rewrote most of the index. Rows sharing a key are told apart by the whole identity.
pub fn reading_key(r: &Reading, identity: &str) -> i64 {
    const MINUTE_BITS: u32 = 28;
    const HASH_BITS: u32 = 34;
    let minute = r
        .measured_at
        .map_or(0, |t| t.timestamp().div_euclid(60))
        .clamp(0, (1 << MINUTE_BITS) - 1);
    TIMED_KEY | (minute << HASH_BITS) | (hex_key(identity) & ((1 << HASH_BITS) - 1))
}

/// The value text as the source sent it; rebuilt from the number when a source gave none.
fn value_as_sent(r: &Reading) -> Option<String> {
    if let Some(t) = &r.value_text {
        return Some(t.to_string());
    }
    let q = r.qualifier.map(|q| match q {
        foodgate_parsers::Qualifier::Below => "<",
        foodgate_parsers::Qualifier::Above => ">",
        foodgate_parsers::Qualifier::NotDetected => "ND",
    });
    match (q, r.value) {
        (None, None) => r.device_verdict.map(|d| format!("{d:?}")),
        (q, v) => Some(format!(
            "{}{}",
            q.unwrap_or(""),
            v.map(|v| v.to_string()).unwrap_or_default()
        )),
    }
}

/// UUID v5 of an event: the same reading never makes two different events of one type.
pub fn event_id(identity: &str, event_type: &str) -> Uuid {
    let mut name = String::with_capacity(identity.len() + event_type.len() + 1);
    name.push_str(identity);
    name.push('/');
    name.push_str(event_type);
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// The id of the hold reading `reading` (row id, identity `identity`) opens at `at_ms`: a
/// UUID v7 of that time whose other bits are the reading's row id (40 bits) and 34 bits of a
/// name hash of its identity. Holds opened later sort later, so the indexes by hold id
/// (`holds`, `hold_history`, `outbox`) grow at their end; a name-hash id put each new hold on
/// a random page of each, and at a million readings every batch rewrote most of them.
pub fn hold_id(identity: &str, reading: i64, at_ms: i64) -> Uuid {
    let hash = u128::from_be_bytes(*event_id(identity, "hold").as_bytes());
    let bits = ((reading as u128 & ((1 << 40) - 1)) << 34) | (hash & ((1 << 34) - 1));
    // 74 bits: the top 12 are rand_a, the rest rand_b (the builder sets version and variant).
    let rand_a = (bits >> 62) as u16;
    let rand_b = (bits & ((1 << 62) - 1)) as u64;
    let mut counter = [0u8; 10];
    counter[..2].copy_from_slice(&rand_a.to_be_bytes());
    counter[2..].copy_from_slice(&rand_b.to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(at_ms).unwrap_or(0), &counter)
        .into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use foodgate_parsers::Protocol;

    #[test]
    fn hold_ids_sort_by_time_then_reading_and_differ_by_identity() {
        let a = hold_id("aa", 7, 1_700_000_000_000);
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a, hold_id("aa", 7, 1_700_000_000_000));
        assert_ne!(a, hold_id("ab", 7, 1_700_000_000_000));
        let ordered = [
            hold_id("zz", 1, 1_700_000_000_000),
            hold_id("aa", 2, 1_700_000_000_000),
            hold_id("aa", 1 << 39, 1_700_000_000_000),
            hold_id("aa", 1, 1_700_000_000_001),
        ];
        for w in ordered.windows(2) {
            assert!(w[0].to_string() < w[1].to_string(), "{} {}", w[0], w[1]);
        }
    }

    #[test]
    fn identity_depends_on_each_part_only() {
        let mut r = Reading::new(Protocol::Astm, "chlorpyrifos");
        r.sample_id = Some("S1".into());
        r.value_text = Some("0.05".into());
        let o = Origin::Instrument("I1".into());
        let a = reading_identity(&o, &r);
        let mut same = r.clone();
        // Judging is not identity: what the judge writes into a reading (its category).
        let _ = crate::judge::Judge::builtin().judge(&mut same);
        same.category = Some("leafy_vegetable".into());
        assert_eq!(a, reading_identity(&o, &same));
        let mut other = r.clone();
        other.value_text = Some("0.050".into());
        assert_ne!(a, reading_identity(&o, &other));
        assert_ne!(a, reading_identity(&Origin::Uploader("I1".into()), &r));
        // Shifting text between fields changes the identity.
        let mut shifted = r.clone();
        shifted.sample_id = Some("S10".into());
        shifted.value_text = Some(".05".into());
        assert_ne!(a, reading_identity(&o, &shifted));
        assert_eq!(a.len(), 64);
        let failed = crate::store::EventKind::SampleFailed.as_str();
        let recorded = crate::store::EventKind::ResultRecorded.as_str();
        assert_ne!(event_id(&a, failed), event_id(&a, recorded));
        assert_eq!(event_id(&a, failed), event_id(&a, failed));
    }

    #[test]
    fn a_channel_tells_records_apart_and_leaves_other_identities_as_they_were() {
        let mut r = Reading::new(Protocol::Astm, "chlorpyrifos");
        r.sample_id = Some("S1".into());
        r.value_text = Some("0.05".into());
        let o = Origin::Instrument("I1".into());
        // The identity this reading had before channels were hashed.
        assert_eq!(
            reading_identity(&o, &r),
            "151c4f76a62cf34c16088b771125198caeb578057cceba5fe18b784b22b9563e"
        );
        let mut one = r.clone();
        one.channel = Some(1);
        let mut two = r.clone();
        two.channel = Some(2);
        assert_ne!(reading_identity(&o, &one), reading_identity(&o, &two));
        assert_ne!(reading_identity(&o, &one), reading_identity(&o, &r));
    }
}
