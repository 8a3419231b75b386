//! Judging a reading whose sample was registered: the registration names the sample's
//! category, and the category decides the limit.

use super::Judge;
use super::JudgedReading;

/// What a registered sample gives the readings of its sample id (a field left out keeps the
/// reading's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub stall: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
}

impl Judge {
    /// Give `reading` the registered stall (as its `source`), name and category, and judge it
    /// again when its category changes. Returns whether anything changed.
    pub fn take_registered(&self, judged: &mut JudgedReading, reg: &Registered) -> bool {
        let reading = &mut judged.reading;
        let mut changed = false;
        if let Some(stall) = &reg.stall {
            if reading.source.as_deref() != Some(stall.as_str()) {
                reading.source = Some(stall.as_str().into());
                changed = true;
            }
        }
        if let Some(name) = &reg.name {
            if reading.sample_name.as_deref() != Some(name.as_str()) {
                reading.sample_name = Some(name.as_str().into());
                changed = true;
            }
        }
        if let Some(category) = &reg.category {
            if reading.category.as_deref() != Some(category.as_str()) {
                reading.category = Some(category.as_str().into());
                let judgement = self.judge(reading);
                judged.set(judgement);
                changed = true;
            }
        }
        changed
    }
}
