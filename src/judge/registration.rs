//! What a registered sample gives the readings of its sample id: the registration names the
//! sample's stall, name and category, and the category decides the limit (so the judge judges
//! again when it changes: [`super::Judge::take_registered`]).

use foodgate_parsers::Reading;

/// What a registered sample gives the readings of its sample id (a field left out keeps the
/// reading's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub stall: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
}

/// What taking a registration changed in a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Taken {
    /// Any field changed.
    pub changed: bool,
    /// The category changed: the reading must be judged again.
    pub category: bool,
}

impl Registered {
    /// Give `reading` the registered stall (as its `source`), name and category.
    pub fn give(&self, reading: &mut Reading) -> Taken {
        let mut taken = Taken::default();
        if let Some(stall) = &self.stall {
            if reading.source.as_deref() != Some(stall.as_str()) {
                reading.source = Some(stall.as_str().into());
                taken.changed = true;
            }
        }
        if let Some(name) = &self.name {
            if reading.sample_name.as_deref() != Some(name.as_str()) {
                reading.sample_name = Some(name.as_str().into());
                taken.changed = true;
            }
        }
        if let Some(category) = &self.category {
            if reading.category.as_deref() != Some(category.as_str()) {
                reading.category = Some(category.as_str().into());
                taken.changed = true;
                taken.category = true;
            }
        }
        taken
    }
}
