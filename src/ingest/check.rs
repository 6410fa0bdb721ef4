//! The first stage of a propose run: each row read from a proposal file, checked on its own
//! (against the live schema, and each value for its field) into a [`NewProposal`], or the
//! reason it cannot be one. Nothing here looks at the store's rows, so it runs on the reading
//! thread, beside the one that stages what passes.

use super::{Cell, Item, Row};
use crate::model::{Kind, NewProposal, Value, key64, source_id_key};
use crate::schema::{Column, Object, Schema, suggestion_suffix};
use crate::validate::{self, short};

/// The columns of a proposal file (docs/formats.md), in the order the rejects file repeats them.
pub const COLUMNS: [&str; 13] = [
    "id",
    "source",
    "kind",
    "object",
    "record",
    "field",
    "value",
    "merge_into",
    "confidence",
    "expected",
    "trigger",
    "reason",
    "evidence",
];
const ID: usize = 0;
const SOURCE: usize = 1;
const KIND: usize = 2;
const OBJECT: usize = 3;
const RECORD: usize = 4;
const FIELD: usize = 5;
const VALUE: usize = 6;
const MERGE_INTO: usize = 7;
const CONFIDENCE: usize = 8;
const EXPECTED: usize = 9;
const TRIGGER: usize = 10;
const REASON: usize = 11;
const EVIDENCE: usize = 12;

/// The longest evidence a proposal may carry.
pub const MAX_EVIDENCE_BYTES: usize = 4 * 1024;

const MAX_ID_BYTES: usize = 256;

fn source_name_problem(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (!ok).then(|| {
        format!(
            "source \"{}\" is not a valid name (1 to 64 of a-z A-Z 0-9 - _ .)",
            short(s)
        )
    })
}

/// Every check of a proposal row that needs no lookup: against the live schema, and of each
/// value for its field. The record lookups follow in [`Judge`](super::judge::Judge).
fn check_row(
    schema: &Schema,
    row: &Row,
    default_source: Option<&str>,
) -> Result<NewProposal, String> {
    let c = &row.cells;
    let source = row_source(c, default_source)?;
    let ext_id = row_ext_id(c)?;
    let kind = row_kind(c)?;
    let obj = row_object(c, schema)?;
    let record = required(c, RECORD)?.to_string();
    let stated_confidence = row_confidence(c)?;
    let mut p = NewProposal {
        line: row.line,
        source: source.to_string(),
        ext_id,
        kind,
        object: obj.name.clone(),
        record,
        field: None,
        value: Value::Null,
        merge_into: None,
        stated_confidence,
        expected: None,
        trigger: c[TRIGGER].trimmed().map(str::to_string),
        reason: c[REASON]
            .text()
            .map(str::to_string)
            .filter(|s| !s.is_empty()),
        evidence: row_evidence(c)?,
        baseline: Value::Null,
        baseline_fp: None,
        content_key: 0,
        dedupe_key: 0,
    };
    match kind {
        Kind::Merge => check_merge(obj, row, &mut p)?,
        Kind::Create => check_create(obj, row, &mut p)?,
        _ => check_field_write(obj, row, &mut p)?,
    }
    set_keys(&mut p);
    Ok(p)
}

/// The trimmed text of a column the row must have.
fn required(c: &[Cell], i: usize) -> Result<&str, String> {
    match &c[i] {
        Cell::Text(s) if !s.trim().is_empty() => Ok(s.trim()),
        _ => Err(format!("missing \"{}\"", COLUMNS[i])),
    }
}

/// The row's source, or `--source` for a row that names none.
fn row_source<'r>(c: &'r [Cell], default: Option<&'r str>) -> Result<&'r str, String> {
    let source = match (c[SOURCE].trimmed(), default) {
        (Some(s), Some(d)) if s != d => {
            return Err(format!("source \"{}\" differs from --source {d}", short(s)));
        }
        (Some(s), _) => s,
        (None, Some(d)) => d,
        (None, None) => return Err("missing \"source\" (or pass --source NAME)".into()),
    };
    match source_name_problem(source) {
        Some(p) => Err(p),
        None => Ok(source),
    }
}

/// The source's own id for the proposal, when it gives one.
fn row_ext_id(c: &[Cell]) -> Result<Option<String>, String> {
    match &c[ID] {
        Cell::Text(s) if !s.is_empty() => {
            if s.len() > MAX_ID_BYTES || s.chars().any(char::is_control) {
                return Err(format!(
                    "id \"{}\" is too long or has control characters",
                    short(s)
                ));
            }
            Ok(Some(s.clone()))
        }
        _ => Ok(None),
    }
}

fn row_kind(c: &[Cell]) -> Result<Kind, String> {
    let kind = required(c, KIND)?;
    Kind::parse(kind).ok_or_else(|| {
        format!(
            "bad kind \"{}\" (one of: update, verify, lifecycle, owner, merge, create){}",
            short(kind),
            suggestion_suffix(kind, Kind::ALL.iter().map(|k| k.as_str()))
        )
    })
}

/// The object the row names, as the live schema has it.
fn row_object<'s>(c: &[Cell], schema: &'s Schema) -> Result<&'s Object, String> {
    let name = required(c, OBJECT)?;
    schema
        .object(name)
        .ok_or_else(|| match schema.unusable.get(name) {
            Some(why) => format!("object \"{name}\" cannot be used: {why}"),
            None => format!(
                "unknown object \"{}\"{}",
                short(name),
                suggestion_suffix(name, schema.objects.keys().map(String::as_str))
            ),
        })
}

/// What the proposer relied on, when it says: a URL or the text itself, checked like any text
/// (no NUL byte) and at most [`MAX_EVIDENCE_BYTES`].
fn row_evidence(c: &[Cell]) -> Result<Option<String>, String> {
    let Some(s) = c[EVIDENCE].text().filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    if s.len() > MAX_EVIDENCE_BYTES {
        return Err(format!(
            "evidence is {} bytes; the limit is {MAX_EVIDENCE_BYTES} (link to a longer text)",
            s.len()
        ));
    }
    if s.contains('\0') {
        return Err("evidence contains a NUL byte".into());
    }
    Ok(Some(s.to_string()))
}

/// The confidence the source states, when it states one: a number from 0 to 1.
fn row_confidence(c: &[Cell]) -> Result<Option<f64>, String> {
    let Some(s) = c[CONFIDENCE].trimmed() else {
        return Ok(None);
    };
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && (0.0..=1.0).contains(&f) => Ok(Some(f)),
        Ok(_) => Err(format!("confidence {s} is outside 0..1")),
        Err(_) => Err(format!("confidence \"{}\" is not a number", short(s))),
    }
}

/// The proposal's content key (over every column as checked) and dedupe key (of the source
/// and id, or the content key when there is no id).
fn set_keys(p: &mut NewProposal) {
    // Straight into a buffer (`to_string` would go through `Display`): every row is keyed.
    let json = |v: &Value| serde_json::to_string(&v.to_json()).expect("JSON serializes");
    let json_or_empty = |v: &Option<Value>| v.as_ref().map(json).unwrap_or_default();
    let parts: [&str; 12] = [
        &p.source,
        p.ext_id.as_deref().unwrap_or(""),
        p.kind.as_str(),
        &p.object,
        &p.record,
        p.field.as_deref().unwrap_or(""),
        &json(&p.value),
        p.merge_into.as_deref().unwrap_or(""),
        &p.stated_confidence
            .map(|f| f.to_string())
            .unwrap_or_default(),
        &json_or_empty(&p.expected),
        p.trigger.as_deref().unwrap_or(""),
        p.reason.as_deref().unwrap_or(""),
    ];
    // Evidence joins the content only when given: a row without it keeps the key it had
    // before proposals carried evidence, so re-proposing an old file changes nothing.
    p.content_key = match &p.evidence {
        None => key64(&parts),
        Some(e) => {
            let mut with = [""; 13];
            with[..12].copy_from_slice(&parts);
            with[12] = e;
            key64(&with)
        }
    };
    p.dedupe_key = match &p.ext_id {
        Some(id) => source_id_key(&p.source, id),
        None => p.content_key,
    };
}

fn check_merge(obj: &Object, row: &Row, p: &mut NewProposal) -> Result<(), String> {
    let c = &row.cells;
    if c[FIELD].trimmed().is_some() {
        return Err("a merge takes no \"field\"".into());
    }
    if c[VALUE].trimmed().is_some() {
        return Err("a merge takes no \"value\"".into());
    }
    if c[EXPECTED].trimmed().is_some() {
        return Err("a merge takes no \"expected\"".into());
    }
    let into = c[MERGE_INTO]
        .trimmed()
        .ok_or("a merge needs \"merge_into\": the id of the record that survives")?;
    if into == p.record {
        return Err(format!(
            "cannot merge {}/{} into itself",
            obj.name,
            short(&p.record)
        ));
    }
    p.merge_into = Some(into.to_string());
    Ok(())
}

/// A create: `value` is a JSON object of the new record's fields (a JSON text cell in CSV),
/// checked as an import checks a row (each field exists, each value is valid for it), its id
/// `record`. The foreign keys and whether the id is free are the judge's: they need the store.
/// The value kept is the record as checked: a JSON object of the typed values, in column order.
fn check_create(obj: &Object, row: &Row, p: &mut NewProposal) -> Result<(), String> {
    let c = &row.cells;
    for (i, what) in [
        (FIELD, "field"),
        (MERGE_INTO, "merge_into"),
        (EXPECTED, "expected"),
    ] {
        if c[i].trimmed().is_some() {
            return Err(format!("a create takes no \"{what}\""));
        }
    }
    let text = match &c[VALUE] {
        Cell::Object(s) => s.as_str(),
        Cell::Text(s) if !s.trim().is_empty() => s.as_str(),
        _ => {
            return Err(
                "a create needs \"value\": a JSON object of the new record's fields".into(),
            );
        }
    };
    let fields = json_object(text).map_err(|e| format!("value: {e}"))?;
    let mut cells = vec![Cell::Absent; obj.columns.len()];
    for (name, cell) in fields {
        let Some(i) = obj.columns.iter().position(|col| col.name == name) else {
            return Err(unknown_field(obj, &name));
        };
        cells[i] = cell;
    }
    let pk = obj.pk_column();
    match &cells[obj.pk] {
        Cell::Absent => cells[obj.pk] = Cell::Text(p.record.clone()),
        Cell::Text(id) if *id == p.record => {}
        other => {
            return Err(format!(
                "the value's \"{}\" is {}, not the record \"{}\" the row names",
                pk.name,
                other
                    .text()
                    .map_or("empty".into(), |t| format!("\"{}\"", short(t))),
                short(&p.record)
            ));
        }
    }
    let (mut cols, mut values) = (Vec::new(), Vec::new());
    let mut bad = crate::validate::check_cells(obj, &cells, &mut cols, &mut values);
    if bad.is_empty() {
        bad = crate::validate::missing_required(obj, &cols);
    }
    if !bad.is_empty() {
        return Err(bad.join("; "));
    }
    let record: serde_json::Map<String, serde_json::Value> = cols
        .iter()
        .zip(&values)
        .map(|(&i, v)| (obj.columns[i].name.clone(), v.to_json()))
        .collect();
    p.value = Value::Text(serde_json::Value::Object(record).to_string());
    Ok(())
}

/// The keys and values of a JSON object, in order, each value a cell as a JSON row's would be:
/// text, null, or a number or boolean as written. Nested values and repeated keys are refused.
fn json_object(text: &str) -> Result<Vec<(String, Cell)>, String> {
    use serde_json::value::RawValue;
    let pairs: Vec<(String, Box<RawValue>)> = serde_json::from_str::<Pairs>(text)
        .map_err(|e| format!("not a JSON object of fields: {e}"))?
        .0;
    let mut out: Vec<(String, Cell)> = Vec::with_capacity(pairs.len());
    for (key, raw) in pairs {
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("duplicate key \"{}\"", short(&key)));
        }
        let raw = raw.get();
        let cell = match raw.as_bytes().first() {
            Some(b'"') => Cell::Text(serde_json::from_str(raw).map_err(|e| e.to_string())?),
            Some(b'n') => Cell::Null,
            Some(b'{') | Some(b'[') => {
                return Err(format!(
                    "\"{}\" must be a single value, not an object or array",
                    short(&key)
                ));
            }
            _ => Cell::Text(raw.to_string()),
        };
        out.push((key, cell));
    }
    Ok(out)
}

/// A JSON object's entries in order, repeated keys kept (to be refused).
struct Pairs(Vec<(String, Box<serde_json::value::RawValue>)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry()? {
                    out.push(entry);
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A field the object does not have, with the nearest name and how to add it.
fn unknown_field(obj: &Object, name: &str) -> String {
    format!(
        "field \"{}\" does not exist on {}{}{}",
        short(name),
        obj.name,
        suggestion_suffix(name, obj.column_names()),
        add_column_hint(&obj.name, name)
    )
}

fn check_field_write(obj: &Object, row: &Row, p: &mut NewProposal) -> Result<(), String> {
    let c = &row.cells;
    if c[MERGE_INTO].trimmed().is_some() {
        return Err(format!("\"merge_into\" is only for merges, not {}", p.kind));
    }
    let given = c[FIELD].trimmed();
    let field_name = match (p.kind.implied_field(), given) {
        (None, None) => return Err(format!("{} needs a \"field\"", p.kind)),
        (None, Some(f)) => f,
        (Some(implied), Some(f)) if f != implied => {
            return Err(format!(
                "{} always writes \"{implied}\", not \"{}\"",
                p.kind,
                short(f)
            ));
        }
        (Some(implied), _) => implied,
    };
    let column: &Column = obj
        .column(field_name)
        .ok_or_else(|| unknown_field(obj, field_name))?;
    if column.primary_key {
        return Err(format!(
            "\"{field_name}\" is the primary key of {}; it cannot be changed",
            obj.name
        ));
    }
    let raw = match &c[VALUE] {
        Cell::Absent => return Err("missing \"value\" (an empty value clears the field)".into()),
        Cell::Null => None,
        // JSON's "" is the empty string; a CSV cell cannot say it (empty is null there).
        Cell::Text(s) => Some(s.as_str()),
        Cell::Object(_) => {
            return Err(
                "\"value\" must be a single value, not an object or array (only a create's value is an object)"
                    .into(),
            );
        }
    };
    let value = validate::value_for(column, raw).map_err(|e| format!("{field_name}: {e}"))?;
    p.expected = c[EXPECTED].text().filter(|s| !s.is_empty()).map(|s| {
        validate::value_for(column, Some(s)).unwrap_or_else(|_| Value::Text(s.to_string()))
    });
    p.field = Some(column.name.clone());
    p.value = value;
    Ok(())
}

/// How to go forward when the field is meant to be a new column: the SQL that adds it. Only
/// for plain names, so the command can be pasted into a shell as it is.
fn add_column_hint(table: &str, field: &str) -> String {
    let plain = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !plain(table) || !plain(field) {
        return String::new();
    }
    format!(
        "; to add it as a column: sqlite3 STORE 'ALTER TABLE {table} ADD COLUMN {field}', then \
         propose again"
    )
}

/// A row as the reading thread leaves it: a proposal that passed every check needing no
/// lookup, or why it did not (with its cells, for the rejects file). Nearly every row is the
/// large variant, so boxing it would only add an allocation per row.
#[allow(clippy::large_enum_variant)]
pub(super) enum Checked {
    Good(NewProposal),
    Bad {
        line: u64,
        message: String,
        cells: Option<Vec<String>>,
    },
}

impl Checked {
    pub(super) fn of(schema: &Schema, item: Item, source: Option<&str>) -> Checked {
        match item {
            Item::Unreadable { line, message } => Checked::Bad {
                line,
                message,
                cells: None,
            },
            Item::Row(row) if !row.problems.is_empty() => Checked::Bad {
                line: row.line,
                message: row.problems.join("; "),
                cells: Some(row_cells(&row)),
            },
            Item::Row(row) => match check_row(schema, &row, source) {
                Ok(p) => Checked::Good(p),
                Err(message) => Checked::Bad {
                    line: row.line,
                    message,
                    cells: Some(row_cells(&row)),
                },
            },
        }
    }
}

/// A row's cells as read, for the rejects file.
fn row_cells(row: &Row) -> Vec<String> {
    row.cells
        .iter()
        .map(|c| match c {
            Cell::Object(s) => s.clone(),
            c => c.text().unwrap_or_default().to_string(),
        })
        .collect()
}

/// A staged proposal's cells, in `COLUMNS` order, for the rejects file.
pub(super) fn proposal_cells(p: &NewProposal) -> Vec<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    vec![
        opt(&p.ext_id),
        p.source.clone(),
        p.kind.as_str().to_string(),
        p.object.clone(),
        p.record.clone(),
        opt(&p.field),
        p.value.display(),
        opt(&p.merge_into),
        p.stated_confidence
            .map(|c| c.to_string())
            .unwrap_or_default(),
        p.expected.as_ref().map(Value::display).unwrap_or_default(),
        opt(&p.trigger),
        opt(&p.reason),
        opt(&p.evidence),
    ]
}

/// The header of a rejects file.
pub fn rejects_header() -> Vec<&'static str> {
    let mut h = vec!["file", "line", "error"];
    h.extend(COLUMNS);
    h
}
