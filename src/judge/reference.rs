//! The reference data judging reads (`docs/judging.md`): analytes and their aliases, the
//! method rules, food categories with their instrument codes and commodities, and the
//! numeric limits. Loaded from TOML in two stages: the file as written ([`raw`]), then a
//! checked [`Reference`] in which every name resolves, or an error naming the file, the
//! line, the key and what is wrong.

use super::types::{AnalyteId, BadLimit, BadUnit, Category, Limit, Unit};
use foodgate_parsers::AliasTable;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The reference file shipped in the binary (`src/judge/reference.toml`).
pub const BUILTIN_TEXT: &str = include_str!("reference.toml");
/// How the built-in file is named in error messages.
pub const BUILTIN_NAME: &str = "<built-in reference.toml>";

/// A reference file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("{file}: cannot read the reference file: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or not the shape of a reference file (unknown key, wrong type, missing key).
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    /// Well-formed but inconsistent.
    #[error("{file}:{line}: {key}: {problem}")]
    Invalid {
        file: String,
        line: usize,
        key: String,
        problem: Box<Problem>,
    },
}

impl ReferenceError {
    /// The 1-based line the error is at (0 for a file that could not be read).
    pub fn line(&self) -> usize {
        match self {
            ReferenceError::Read { .. } => 0,
            ReferenceError::Syntax { line, .. } | ReferenceError::Invalid { line, .. } => *line,
        }
    }

    /// The inconsistency, for a file that parsed.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ReferenceError::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// What is inconsistent in a reference file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("the version is empty")]
    EmptyVersion,
    #[error(transparent)]
    BadId(#[from] super::types::BadId),
    #[error("{0}")]
    BadValue(String),
    #[error(transparent)]
    BadUnit(#[from] BadUnit),
    #[error(transparent)]
    BadLimit(#[from] BadLimit),
    #[error("unknown analyte {0:?}: no [[analyte]] has this id")]
    UnknownAnalyte(String),
    #[error("unknown category {0:?}: no [[category]] or group has this name")]
    UnknownCategory(String),
    #[error("analyte {0:?} is defined twice")]
    DuplicateAnalyte(String),
    #[error("alias {alias:?} is claimed by both {first} and {second}")]
    DuplicateAlias {
        alias: String,
        first: String,
        second: String,
    },
    #[error("category {0:?} is defined twice")]
    DuplicateCategory(String),
    #[error("instrument code {code} is already the code of {first}")]
    DuplicateCode { code: u8, first: String },
    #[error("commodity {name:?} is already listed under {first}")]
    DuplicateCommodity { name: String, first: String },
    #[error("group {0:?} has the name of a category")]
    GroupClash(String),
    #[error("duplicate limit row for ({analyte}, {category}): the first is at line {first_line}")]
    DuplicateLimit {
        analyte: String,
        category: String,
        first_line: usize,
    },
    #[error(
        "a limit row for {analyte} never applies: its rule is {rule}, not limit or action_level"
    )]
    LimitNeverApplies { analyte: String, rule: &'static str },
    #[error("a prohibited analyte needs the `source` that prohibits it")]
    MissingSource,
}

/// How an analyte is judged (`docs/judging.md`, "The reference data").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalyteRule {
    /// Enzyme inhibition rate (%), GB/T 5009.199-2003.
    InhibitionRate,
    /// Must not be present at all.
    Prohibited,
    /// Numeric limit per food category.
    Limit,
    /// A screening action level, judged like a limit.
    ActionLevel,
    /// No rule yet: verdict `unknown`.
    None,
}

impl AnalyteRule {
    pub fn as_str(self) -> &'static str {
        match self {
            AnalyteRule::InhibitionRate => "inhibition_rate",
            AnalyteRule::Prohibited => "prohibited",
            AnalyteRule::Limit => "limit",
            AnalyteRule::ActionLevel => "action_level",
            AnalyteRule::None => "none",
        }
    }

    /// Judged by a numeric limit per category (rule 7).
    pub fn is_numeric(self) -> bool {
        matches!(self, AnalyteRule::Limit | AnalyteRule::ActionLevel)
    }
}

/// One canonical analyte.
#[derive(Debug, Clone, PartialEq)]
pub struct Analyte {
    id: AnalyteId,
    aliases: Vec<Box<str>>,
    rule: AnalyteRule,
    source: Option<Box<str>>,
}

impl Analyte {
    pub fn id(&self) -> &AnalyteId {
        &self.id
    }
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.aliases.iter().map(|a| &**a)
    }
    pub fn rule(&self) -> AnalyteRule {
        self.rule
    }
    /// The source of a prohibition.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
}

/// One food category.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryDef {
    id: Category,
    code: Option<u8>,
    commodities: Vec<Vec<Box<str>>>,
}

impl CategoryDef {
    pub fn id(&self) -> &Category {
        &self.id
    }
    /// The instrument (`spectro`) category code.
    pub fn code(&self) -> Option<u8> {
        self.code
    }
    /// Each commodity with its names (the first is the main one).
    pub fn commodities(&self) -> impl Iterator<Item = &[Box<str>]> {
        self.commodities.iter().map(Vec::as_slice)
    }
}

/// The inhibition-rate method rule (GB/T 5009.199-2003).
#[derive(Debug, Clone, PartialEq)]
pub struct InhibitionRule {
    pub threshold: Limit,
    pub min_control_delta_a0: f64,
    pub control_source: Box<str>,
    pub max_rate_difference: f64,
    /// Thresholds of the standards a reader may name by code (TL310 `00`, `01`).
    pub standards: Vec<(Box<str>, Limit)>,
}

impl InhibitionRule {
    /// The threshold of the standard with `code` (case-insensitive), if listed.
    pub fn by_standard(&self, code: &str) -> Option<&Limit> {
        self.standards
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(code.trim()))
            .map(|(_, l)| l)
    }
}

/// The colloidal gold method rule.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldRule {
    pub min_c_line: u32,
    pub source: Box<str>,
}

/// Checked reference data. Indices are dense so that judging a reading looks up a few
/// hash entries and one vector slot.
#[derive(Debug, Clone)]
pub struct Reference {
    version: Box<str>,
    inhibition: InhibitionRule,
    gold: GoldRule,
    analytes: Vec<Analyte>,
    /// Lowercased id and aliases → index in `analytes`.
    analyte_names: HashMap<Box<str>, usize>,
    categories: Vec<CategoryDef>,
    category_ids: HashMap<Box<str>, usize>,
    category_codes: HashMap<u8, usize>,
    /// Lowercased commodity names → index in `categories`.
    commodities: HashMap<Box<str>, usize>,
    groups: Vec<(Category, Vec<usize>)>,
    limit_rows: Vec<Limit>,
    /// `analytes.len() × categories.len()` slots, index into `limit_rows`.
    limits: Vec<Option<u32>>,
}

/// The lookup key of a name: trimmed, lowercased; borrowed when it already is.
fn name_key(name: &str) -> std::borrow::Cow<'_, str> {
    let t = name.trim();
    if t.chars().any(char::is_uppercase) {
        std::borrow::Cow::Owned(t.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(t)
    }
}

/// An instrument category code: decimal, `1` and `01` the same (as the `spectro` decoder).
fn parse_code(code: &str) -> Option<u8> {
    let digits = code.trim().trim_start_matches('0');
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Reference {
    /// The built-in reference, parsed once.
    pub fn builtin() -> Arc<Reference> {
        static BUILTIN: OnceLock<Arc<Reference>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                Arc::new(
                    Reference::parse(BUILTIN_TEXT, BUILTIN_NAME)
                        .expect("the built-in reference file is valid (tested)"),
                )
            })
            .clone()
    }

    /// Read and check a reference file.
    pub fn load(path: &Path) -> Result<Reference, ReferenceError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ReferenceError::Read {
            file: file.clone(),
            source,
        })?;
        Reference::parse(&text, &file)
    }

    /// Check reference data; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Reference, ReferenceError> {
        let raw: raw::File = toml::from_str(text).map_err(|e| ReferenceError::Syntax {
            file: file.to_string(),
            line: line_of(text, e.span().map_or(0, |s| s.start)),
            message: e.message().trim().to_string(),
        })?;
        Builder {
            text,
            file,
            raw: &raw,
        }
        .build()
    }

    pub fn version(&self) -> &str {
        &self.version
    }
    pub fn inhibition(&self) -> &InhibitionRule {
        &self.inhibition
    }
    pub fn gold(&self) -> &GoldRule {
        &self.gold
    }
    pub fn analytes(&self) -> &[Analyte] {
        &self.analytes
    }
    pub fn categories(&self) -> &[CategoryDef] {
        &self.categories
    }
    /// Group names and the categories they stand for.
    pub fn groups(&self) -> impl Iterator<Item = (&Category, impl Iterator<Item = &Category>)> {
        self.groups
            .iter()
            .map(|(g, members)| (g, members.iter().map(|&i| &self.categories[i].id)))
    }

    /// The analyte a canonical id or alias names (case-insensitive, trimmed).
    pub fn analyte(&self, name: &str) -> Option<&Analyte> {
        self.analyte_index(name).map(|i| &self.analytes[i])
    }

    /// The test item as people in a market call it: the analyte's first Chinese alias, else
    /// `analyte` as it is.
    pub fn item_name(&self, analyte: &str) -> String {
        self.analyte(analyte)
            .and_then(|a| a.aliases().find(|n| !n.is_ascii()).map(str::to_string))
            .unwrap_or_else(|| analyte.to_string())
    }

    pub(crate) fn analyte_index(&self, name: &str) -> Option<usize> {
        // Canonical ids arrive as they are stored: try them without building a key.
        if let Some(&i) = self.analyte_names.get(name) {
            return Some(i);
        }
        self.analyte_names.get(&*name_key(name)).copied()
    }

    /// A category by its canonical id.
    pub fn category(&self, id: &str) -> Option<&CategoryDef> {
        self.category_index(id).map(|i| &self.categories[i])
    }

    pub(crate) fn category_index(&self, id: &str) -> Option<usize> {
        if let Some(&i) = self.category_ids.get(id) {
            return Some(i);
        }
        self.category_ids.get(&*name_key(id)).copied()
    }

    /// The category of an instrument category code (`1` and `01` alike).
    pub fn category_for_code(&self, code: &str) -> Option<&CategoryDef> {
        self.category_code_index(code).map(|i| &self.categories[i])
    }

    pub(crate) fn category_code_index(&self, code: &str) -> Option<usize> {
        parse_code(code).and_then(|c| self.category_codes.get(&c).copied())
    }

    /// The category of a commodity name (any of its names, case-insensitive, trimmed).
    pub fn category_for_commodity(&self, name: &str) -> Option<&CategoryDef> {
        self.commodity_index(name).map(|i| &self.categories[i])
    }

    pub(crate) fn commodity_index(&self, name: &str) -> Option<usize> {
        self.commodities.get(&*name_key(name)).copied()
    }

    pub(crate) fn analyte_at(&self, i: usize) -> &Analyte {
        &self.analytes[i]
    }

    pub(crate) fn category_at(&self, i: usize) -> &CategoryDef {
        &self.categories[i]
    }

    pub(crate) fn limit_at(&self, analyte: usize, category: usize) -> Option<&Limit> {
        let slot = analyte
            .checked_mul(self.categories.len())?
            .checked_add(category)?;
        let row = (*self.limits.get(slot)?)?;
        self.limit_rows.get(row as usize)
    }

    /// The numeric limit for (analyte, category), by canonical ids or aliases.
    pub fn limit(&self, analyte: &str, category: &str) -> Option<&Limit> {
        self.limit_at(self.analyte_index(analyte)?, self.category_index(category)?)
    }

    /// The decoders' alias table: every analyte's id and aliases.
    pub fn alias_table(&self) -> AliasTable {
        let mut table = AliasTable::default();
        for a in &self.analytes {
            table.insert(a.id.as_str(), a.id.as_str());
            for alias in &a.aliases {
                table.insert(alias, a.id.as_str());
            }
        }
        table
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The file as written.
mod raw;

/// Turns the raw file into a [`Reference`], one check at a time.
struct Builder<'a> {
    text: &'a str,
    file: &'a str,
    raw: &'a raw::File,
}

impl Builder<'_> {
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        key: String,
        problem: Problem,
    ) -> Result<T, ReferenceError> {
        Err(ReferenceError::Invalid {
            file: self.file.to_string(),
            line: line_of(self.text, span.start),
            key,
            problem: Box::new(problem),
        })
    }

    fn non_negative(&self, v: &raw::S<f64>, key: &str) -> Result<f64, ReferenceError> {
        let x = *v.get_ref();
        if x.is_finite() && x >= 0.0 {
            Ok(x)
        } else {
            self.err(
                v.span(),
                key.to_string(),
                Problem::BadValue(format!("{x} is not a finite number ≥ 0")),
            )
        }
    }

    fn standards(
        &self,
        raw: &[raw::InhibitionStandard],
    ) -> Result<Vec<(Box<str>, Limit)>, ReferenceError> {
        let mut out: Vec<(Box<str>, Limit)> = Vec::with_capacity(raw.len());
        for s in raw {
            let key = "rules.inhibition_rate.standard";
            let code = self.non_empty(&s.code, &format!("{key}.code"))?;
            if out.iter().any(|(c, _)| c.eq_ignore_ascii_case(&code)) {
                return self.err(
                    s.code.span(),
                    format!("{key}.code"),
                    Problem::BadValue(format!("standard {code:?} is listed twice")),
                );
            }
            let threshold = self.non_negative(&s.threshold, &format!("{key}.threshold"))?;
            let source = self.non_empty(&s.source, &format!("{key}.source"))?;
            let limit = Limit::new(threshold, Unit::PERCENT, &source, false)
                .or_else(|e| self.err(s.threshold.span(), format!("{key}.threshold"), e.into()))?;
            out.push((code, limit));
        }
        Ok(out)
    }

    fn non_empty(&self, v: &raw::S<String>, key: &str) -> Result<Box<str>, ReferenceError> {
        let t = v.get_ref().trim();
        if t.is_empty() {
            self.err(
                v.span(),
                key.to_string(),
                Problem::BadValue("empty text".into()),
            )
        } else {
            Ok(t.into())
        }
    }

    fn build(self) -> Result<Reference, ReferenceError> {
        let raw = self.raw;
        let version = raw.version.get_ref().trim();
        if version.is_empty() {
            return self.err(raw.version.span(), "version".into(), Problem::EmptyVersion);
        }

        let inh = &raw.rules.inhibition_rate;
        let threshold = self.non_negative(&inh.threshold, "rules.inhibition_rate.threshold")?;
        let source = self.non_empty(&inh.source, "rules.inhibition_rate.source")?;
        let threshold = Limit::new(threshold, Unit::PERCENT, &source, false).or_else(|e| {
            self.err(
                inh.threshold.span(),
                "rules.inhibition_rate.threshold".into(),
                e.into(),
            )
        })?;
        let inhibition = InhibitionRule {
            threshold,
            min_control_delta_a0: self.non_negative(
                &inh.min_control_delta_a0,
                "rules.inhibition_rate.min_control_delta_a0",
            )?,
            control_source: self
                .non_empty(&inh.control_source, "rules.inhibition_rate.control_source")?,
            max_rate_difference: self.non_negative(
                &inh.max_rate_difference,
                "rules.inhibition_rate.max_rate_difference",
            )?,
            standards: self.standards(&inh.standard)?,
        };
        let gold = GoldRule {
            min_c_line: raw.rules.colloidal_gold.min_c_line,
            source: self.non_empty(
                &raw.rules.colloidal_gold.source,
                "rules.colloidal_gold.source",
            )?,
        };

        let (analytes, analyte_names) = self.analytes()?;
        let (categories, category_ids, category_codes, commodities) = self.categories()?;
        let groups = self.groups(&category_ids)?;
        let (limit_rows, limits) = self.limits(
            &analytes,
            &analyte_names,
            &categories,
            &category_ids,
            &groups,
        )?;

        Ok(Reference {
            version: version.into(),
            inhibition,
            gold,
            analytes,
            analyte_names,
            categories,
            category_ids,
            category_codes,
            commodities,
            groups,
            limit_rows,
            limits,
        })
    }

    #[allow(clippy::type_complexity)]
    fn analytes(&self) -> Result<(Vec<Analyte>, HashMap<Box<str>, usize>), ReferenceError> {
        let mut analytes: Vec<Analyte> = Vec::with_capacity(self.raw.analyte.len());
        let mut names: HashMap<Box<str>, usize> = HashMap::new();
        for (n, a) in self.raw.analyte.iter().enumerate() {
            let key = |field: &str| format!("analyte[{n}].{field}");
            let id = AnalyteId::parse(a.id.get_ref().trim())
                .or_else(|e| self.err(a.id.span(), key("id"), e.into()))?;
            if analytes.iter().any(|x| x.id == id) {
                return self.err(
                    a.id.span(),
                    key("id"),
                    Problem::DuplicateAnalyte(id.to_string()),
                );
            }
            let rule = *a.rule.get_ref();
            let source = match &a.source {
                Some(s) => Some(self.non_empty(s, &key("source"))?),
                None if rule == AnalyteRule::Prohibited => {
                    return self.err(a.rule.span(), key("source"), Problem::MissingSource)
                }
                None => None,
            };
            let index = analytes.len();
            let mut aliases = Vec::with_capacity(a.aliases.len());
            let spelled = std::iter::once((&a.id, key("id"))).chain(
                a.aliases
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s, key(&format!("aliases[{i}]")))),
            );
            for (name, k) in spelled {
                let trimmed = name.get_ref().trim();
                if trimmed.is_empty() {
                    return self.err(name.span(), k, Problem::BadValue("empty alias".into()));
                }
                match names.entry(name_key(trimmed).into()) {
                    Entry::Occupied(e) if *e.get() != index => {
                        return self.err(
                            name.span(),
                            k,
                            Problem::DuplicateAlias {
                                alias: trimmed.to_string(),
                                first: analytes[*e.get()].id.to_string(),
                                second: id.to_string(),
                            },
                        )
                    }
                    Entry::Occupied(_) => {}
                    Entry::Vacant(e) => {
                        e.insert(index);
                    }
                }
                if !std::ptr::eq(name, &a.id) {
                    aliases.push(trimmed.into());
                }
            }
            analytes.push(Analyte {
                id,
                aliases,
                rule,
                source,
            });
        }
        Ok((analytes, names))
    }

    #[allow(clippy::type_complexity)]
    fn categories(
        &self,
    ) -> Result<
        (
            Vec<CategoryDef>,
            HashMap<Box<str>, usize>,
            HashMap<u8, usize>,
            HashMap<Box<str>, usize>,
        ),
        ReferenceError,
    > {
        let mut categories: Vec<CategoryDef> = Vec::with_capacity(self.raw.category.len());
        let mut ids: HashMap<Box<str>, usize> = HashMap::new();
        let mut codes: HashMap<u8, usize> = HashMap::new();
        let mut commodities: HashMap<Box<str>, usize> = HashMap::new();
        for (n, c) in self.raw.category.iter().enumerate() {
            let key = |field: &str| format!("category[{n}].{field}");
            let id = Category::parse(c.id.get_ref().trim())
                .or_else(|e| self.err(c.id.span(), key("id"), e.into()))?;
            let index = categories.len();
            if ids.insert(id.as_str().into(), index).is_some() {
                return self.err(
                    c.id.span(),
                    key("id"),
                    Problem::DuplicateCategory(id.to_string()),
                );
            }
            let code = match &c.code {
                None => None,
                Some(code) => {
                    let Some(v) = parse_code(code.get_ref()) else {
                        return self.err(
                            code.span(),
                            key("code"),
                            Problem::BadValue(format!(
                                "instrument code {:?} is not a number from 1 to 99",
                                code.get_ref()
                            )),
                        );
                    };
                    if let Some(&first) = codes.get(&v) {
                        return self.err(
                            code.span(),
                            key("code"),
                            Problem::DuplicateCode {
                                code: v,
                                first: categories[first].id.to_string(),
                            },
                        );
                    }
                    codes.insert(v, index);
                    Some(v)
                }
            };
            let mut list = Vec::with_capacity(c.commodities.len());
            for (i, entry) in c.commodities.iter().enumerate() {
                let k = key(&format!("commodities[{i}]"));
                let mut names = Vec::new();
                for name in entry.get_ref().split('/').map(str::trim) {
                    if name.is_empty() {
                        return self.err(
                            entry.span(),
                            k,
                            Problem::BadValue("empty commodity name".into()),
                        );
                    }
                    match commodities.entry(name_key(name).into()) {
                        Entry::Occupied(e) => {
                            let first = if *e.get() == index {
                                &id
                            } else {
                                &categories[*e.get()].id
                            };
                            return self.err(
                                entry.span(),
                                k,
                                Problem::DuplicateCommodity {
                                    name: name.to_string(),
                                    first: first.to_string(),
                                },
                            );
                        }
                        Entry::Vacant(e) => {
                            e.insert(index);
                        }
                    }
                    names.push(name.into());
                }
                list.push(names);
            }
            categories.push(CategoryDef {
                id,
                code,
                commodities: list,
            });
        }
        Ok((categories, ids, codes, commodities))
    }

    fn groups(
        &self,
        ids: &HashMap<Box<str>, usize>,
    ) -> Result<Vec<(Category, Vec<usize>)>, ReferenceError> {
        let mut groups = Vec::with_capacity(self.raw.groups.len());
        for (name, members) in &self.raw.groups {
            let key = format!("groups.{name}");
            let group = Category::parse(name)
                .or_else(|e| self.err(members.span(), key.clone(), e.into()))?;
            if ids.contains_key(group.as_str()) {
                return self.err(members.span(), key, Problem::GroupClash(name.clone()));
            }
            let mut list = Vec::with_capacity(members.get_ref().len());
            for (i, m) in members.get_ref().iter().enumerate() {
                match ids.get(m.get_ref().trim()) {
                    Some(&c) => list.push(c),
                    None => {
                        return self.err(
                            m.span(),
                            format!("{key}[{i}]"),
                            Problem::UnknownCategory(m.get_ref().clone()),
                        )
                    }
                }
            }
            groups.push((group, list));
        }
        Ok(groups)
    }

    #[allow(clippy::type_complexity)]
    fn limits(
        &self,
        analytes: &[Analyte],
        analyte_ids: &HashMap<Box<str>, usize>,
        categories: &[CategoryDef],
        category_ids: &HashMap<Box<str>, usize>,
        groups: &[(Category, Vec<usize>)],
    ) -> Result<(Vec<Limit>, Vec<Option<u32>>), ReferenceError> {
        let mut rows = Vec::with_capacity(self.raw.limit.len());
        let mut slots: Vec<Option<u32>> = vec![None; analytes.len() * categories.len()];
        // Where each filled slot was defined, for the duplicate message.
        let mut slot_lines: HashMap<usize, usize> = HashMap::new();
        for (n, l) in self.raw.limit.iter().enumerate() {
            let key = |field: &str| format!("limit[{n}].{field}");
            let name = l.analyte.get_ref().trim();
            // Limits name analytes by canonical id only: an alias here would hide a typo.
            let analyte = match analyte_ids.get(name) {
                Some(&a) if analytes[a].id.as_str() == name => a,
                _ => {
                    return self.err(
                        l.analyte.span(),
                        key("analyte"),
                        Problem::UnknownAnalyte(name.to_string()),
                    )
                }
            };
            let rule = analytes[analyte].rule;
            if !rule.is_numeric() {
                return self.err(
                    l.analyte.span(),
                    key("analyte"),
                    Problem::LimitNeverApplies {
                        analyte: name.to_string(),
                        rule: rule.as_str(),
                    },
                );
            }
            let unit = Unit::parse(l.unit.get_ref())
                .or_else(|e| self.err(l.unit.span(), key("unit"), e.into()))?;
            let source = self.non_empty(&l.source, &key("source"))?;
            let limit = Limit::new(*l.value.get_ref(), unit, &source, l.verify)
                .or_else(|e| self.err(l.value.span(), key("value"), e.into()))?;
            if l.categories.get_ref().is_empty() {
                return self.err(
                    l.categories.span(),
                    key("categories"),
                    Problem::BadValue("a limit row needs at least one category".into()),
                );
            }
            let row = u32::try_from(rows.len()).unwrap_or(u32::MAX);
            rows.push(limit);
            for (i, c) in l.categories.get_ref().iter().enumerate() {
                let cname = c.get_ref().trim();
                let k = key(&format!("categories[{i}]"));
                let expanded: &[usize] = match category_ids.get(cname) {
                    Some(idx) => std::slice::from_ref(idx),
                    None => match groups.iter().find(|(g, _)| g.as_str() == cname) {
                        Some((_, members)) => members,
                        None => {
                            return self.err(
                                c.span(),
                                k,
                                Problem::UnknownCategory(cname.to_string()),
                            )
                        }
                    },
                };
                for &cat in expanded {
                    let slot = analyte * categories.len() + cat;
                    let line = line_of(self.text, c.span().start);
                    if let Some(&first_line) = slot_lines.get(&slot) {
                        return self.err(
                            c.span(),
                            k,
                            Problem::DuplicateLimit {
                                analyte: name.to_string(),
                                category: categories[cat].id.to_string(),
                                first_line,
                            },
                        );
                    }
                    slot_lines.insert(slot, line);
                    slots[slot] = Some(row);
                }
            }
        }
        Ok((rows, slots))
    }
}
