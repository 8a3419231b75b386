//! Judging: each decoded [`Reading`] gets a verdict, a one-sentence reason and the limit it
//! was compared with, by the rules of `docs/judging.md`.
//!
//! Judging knows no decoding and no storage: it reads the reading's fields and the
//! [`Reference`] data, writes the reading's `category` (and `recomputed_rate` where it
//! recomputes one), and returns a [`Judgement`]; a reading with its judgement is a
//! [`JudgedReading`].
//!
//! - [`verdict`]: what judging gives (`Verdict`, `AppliedLimit`, `Judgement`, `JudgedReading`).
//! - [`types`]: values with rules (`AnalyteId`, `Category`, `Unit`, `Limit`).
//! - [`reference`]: the reference data (`reference.toml`, or `--limits FILE`), checked at load.
//! - [`rules`]: the rules, in their order (`docs/judging.md`).
//! - [`registration`]: judging again a reading that takes a registered sample's category.

pub mod reference;
pub mod registration;
pub mod rules;
pub mod types;
pub mod verdict;

pub use reference::{Analyte, AnalyteRule, CategoryDef, Problem, Reference, ReferenceError};
pub use registration::Registered;
pub use types::{AnalyteId, Category, Limit, Unit};
pub use verdict::{AppliedLimit, JudgedReading, Judgement, Verdict, NOT_JUDGED};

use foodgate_parsers::Reading;
use std::sync::Arc;

/// Where a reading's category came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategorySource {
    /// The reading carried it (an instrument code mapped by the decoder, or an upload).
    Reading,
    /// The instrument's category code, by the reference's code table.
    Code,
    /// The commodity dictionary, by sample name.
    Commodity,
}

/// Judges readings against one [`Reference`]; cheap to clone, shareable across threads.
#[derive(Debug, Clone)]
pub struct Judge {
    reference: Arc<Reference>,
}

impl Judge {
    pub fn new(reference: Arc<Reference>) -> Judge {
        Judge { reference }
    }

    /// A judge with the built-in reference data.
    pub fn builtin() -> Judge {
        Judge::new(Reference::builtin())
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The category of a reading (index into the reference) and where it came from: the
    /// reading's own `category` when the reference knows it, else its instrument category
    /// code, else the commodity dictionary by `sample_name`.
    pub fn resolve_category(&self, reading: &Reading) -> Option<(usize, CategorySource)> {
        let r = &*self.reference;
        reading
            .category
            .as_deref()
            .and_then(|c| r.category_index(c))
            .map(|i| (i, CategorySource::Reading))
            .or_else(|| {
                reading
                    .category_code
                    .as_deref()
                    .and_then(|c| r.category_code_index(c))
                    .map(|i| (i, CategorySource::Code))
            })
            .or_else(|| {
                reading
                    .sample_name
                    .as_deref()
                    .and_then(|n| r.commodity_index(n))
                    .map(|i| (i, CategorySource::Commodity))
            })
    }

    /// Give `judged` the registered stall (as its `source`), name and category, and judge it
    /// again when its category changes. Returns whether anything changed.
    pub fn take_registered(&self, judged: &mut JudgedReading, reg: &Registered) -> bool {
        let taken = reg.give(&mut judged.reading);
        if taken.category {
            let judgement = self.judge(&mut judged.reading);
            judged.set(judgement);
        }
        taken.changed
    }

    /// Judge one reading: sets its `category` to the resolved category (null when unknown)
    /// and its `recomputed_rate` when the rules recomputed one, and returns the judgement.
    pub fn judge(&self, reading: &mut Reading) -> Judgement {
        let category = self.resolve_category(reading);
        let decision = rules::decide(&self.reference, reading, category);
        reading.category =
            category.map(|(i, _)| self.reference.category_at(i).id().as_str().into());
        if reading.recomputed_rate.is_none() {
            if let Some(rate) = decision.recomputed_rate {
                reading.recomputed_rate = Some(rate);
            }
        }
        decision.judgement
    }

    /// `reading` judged.
    pub fn judged(&self, mut reading: Reading) -> JudgedReading {
        let judgement = self.judge(&mut reading);
        JudgedReading::new(reading, judgement)
    }
}
