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

impl Column {
    /// Whether SQLite stores `v` in this column exactly as given, which it does when the
    /// column's affinity converts nothing of `v`'s kind: a value of the column's own storage
    /// class, any value where the column has no affinity (BLOB), a BLOB anywhere. Not a NULL
    /// in a NOT NULL column (`ON CONFLICT REPLACE` stores the default instead), a NaN (stored as
    /// NULL) or a negative zero in a REAL column (stored as the integer 0, read back as 0.0).
    /// Triggers, which may change anything, are the caller's to rule out.
    pub fn stores_as_given(&self, v: &crate::model::Value) -> bool {
        use crate::model::Value;
        match v {
            Value::Null => !self.not_null,
            Value::Blob(_) => true,
            Value::Text(_) => matches!(self.affinity, Affinity::Text | Affinity::Blob),
            Value::Integer(_) => matches!(
                self.affinity,
                Affinity::Integer | Affinity::Numeric | Affinity::Blob
            ),
            Value::Real(f) => {
                matches!(self.affinity, Affinity::Real | Affinity::Blob)
                    && !f.is_nan()
                    && !(*f == 0.0 && f.is_sign_negative())
            }
        }
    }
}

/// What a write to an object's records may change besides the field or record it names.
/// Apply and revert read every record at its turn, so what a write reached is seen when the
/// run comes to it; this says where more than that is needed: a savepoint to undo a write
/// that did not hold, a value read back rather than assumed, a revert in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reach {
    /// Nothing else: no trigger fires on the table and no foreign key acts on its rows.
    #[default]
    Named,
    /// Rows of other records: a foreign key that references the table cascades, or sets null
    /// or its default, when a referenced row is updated or deleted.
    ForeignKeyAction,
    /// Anything: a trigger fires on the table.
    Trigger,
}

impl Reach {
    /// Whether a write may change more than it names.
    pub fn beyond(self) -> bool {
        self != Reach::Named
    }
}

/// A CRM table with a single-column primary key.
#[derive(Debug, Clone)]
pub struct Object {
    pub name: String,
    pub columns: Vec<Column>,
    /// Index into `columns` of the primary key.
    pub pk: usize,
    /// What its writes may change besides what they name.
    pub reach: Reach,
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
