//! The live schema of the store's CRM objects, as read from SQLite. Object and field names in
//! input are only ever checked against this, and identifiers reach SQL only after that check.

use std::collections::BTreeMap;

/// SQLite's column affinity, derived from the declared type by SQLite's own rules (§3.1 of the
/// datatype documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

impl Affinity {
    pub fn from_decl(decl: &str) -> Affinity {
        let d = decl.to_ascii_uppercase();
        if d.contains("INT") {
            Affinity::Integer
        } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
            Affinity::Text
        } else if d.contains("BLOB") || d.is_empty() {
            Affinity::Blob
        } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub table: String,
    pub column: String,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub decl_type: String,
    pub affinity: Affinity,
    pub not_null: bool,
    pub has_default: bool,
    pub primary_key: bool,
    pub foreign_key: Option<ForeignKey>,
}

/// A CRM table with a single-column primary key.
#[derive(Debug, Clone)]
pub struct Object {
    pub name: String,
    pub columns: Vec<Column>,
    /// Index into `columns` of the primary key.
    pub pk: usize,
    /// Triggers fire on its writes: undoing a write then takes a savepoint, not a write back.
    pub has_triggers: bool,
    /// The statement that reads one whole record by primary key, built once by the store
    /// (apply and revert read a record per change).
    pub select_row: String,
}

impl Object {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn pk_column(&self) -> &Column {
        &self.columns[self.pk]
    }

    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub objects: BTreeMap<String, Object>,
    /// Tables that cannot be objects, with the reason (e.g. a composite primary key).
    pub unusable: BTreeMap<String, String>,
}

impl Schema {
    pub fn object(&self, name: &str) -> Option<&Object> {
        self.objects.get(name)
    }

    /// Tables whose foreign keys point at `object`, with the referencing column: the rows a merge
    /// has to re-point.
    pub fn referencing(&self, object: &str) -> Vec<(&Object, &Column)> {
        let mut out = Vec::new();
        for o in self.objects.values() {
            for c in &o.columns {
                if c.foreign_key.as_ref().is_some_and(|fk| fk.table == object) {
                    out.push((o, c));
                }
            }
        }
        out
    }
}

/// The closest candidate to a misspelt name, for "did you mean" hints.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// "unknown X "name" on Y (did you mean "z"?)" style suffix.
pub fn suggestion_suffix<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match did_you_mean(name, candidates) {
        Some(c) => format!(" (did you mean \"{c}\"?)"),
        None => String::new(),
    }
}
