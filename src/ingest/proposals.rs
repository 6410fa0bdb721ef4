//! Proposal rows → validated [`NewProposal`]s → the queue. One transaction for the whole
//! command: by default one bad row anywhere means nothing is ingested; with `skip_invalid` the
//! good rows go in and the bad ones are written to the rejects file.
//!
//! Idempotency without a slow bulk path: each proposal carries an 8-byte key of (source, id), or
//! of its content when it has no id. The index on that key is small enough to stay in the page
//! cache while a million rows stream in; every hit is confirmed on the full values.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Cell, Input, Item, Row, read_rows};
use crate::error::{Error, Problems, Result};
use crate::model::{Kind, NewEvent, NewProposal, State, Value, key64, source_id_key};
use crate::schema::{Column, Object, suggestion_suffix};
use crate::store::{IngestCounts, Writer};
use crate::validate::{self, short};

/// The columns of a proposal file (SPEC §3), in the order the rejects file repeats them.
pub const COLUMNS: [&str; 12] = [
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

const MAX_ID_BYTES: usize = 256;

pub struct Options<'a> {
    /// `--source`: the source of rows that do not name one.
    pub source: Option<String>,
    pub skip_invalid: bool,
    pub actor: String,
    pub rejects: Option<&'a mut csv::Writer<std::fs::File>>,
    /// Called now and then with the bytes read so far of the current file.
    pub progress: &'a dyn Fn(&Input, u64),
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct FileReport {
    pub file: String,
    pub format: &'static str,
    pub sha256: String,
    pub rows: u64,
    pub ingested: u64,
    pub duplicates: u64,
    pub superseded: u64,
    pub rejected: u64,
    /// Proposals whose `expected` already differs from the record: they will conflict at apply.
    pub stale: u64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub files: Vec<FileReport>,
    pub ingested: u64,
    pub duplicates: u64,
    pub superseded: u64,
    pub rejected: u64,
    pub stale: u64,
    /// New proposals by kind.
    pub by_kind: Vec<(String, u64)>,
}

/// Ingests every input in the writer's transaction. Returns `Err(Error::Invalid)` (and the
/// caller's transaction rolls back) when any row is bad and `skip_invalid` is off, or when a
/// file is unreadable as a whole.
pub fn ingest(w: &mut Writer<'_>, inputs: &[Input], opts: &mut Options<'_>) -> Result<Report> {
    let mut report = Report::default();
    let mut problems = Problems::default();
    let mut by_kind = [0u64; 5];
    let required: Vec<&str> = if opts.source.is_some() {
        vec!["kind", "object", "record"]
    } else {
        vec!["source", "kind", "object", "record"]
    };
    let mut targets = TargetFilter::new();
    w.for_each_open_target(|k| targets.insert(k))?;
    for input in inputs {
        let name = input.display_name();
        let ingest_id = w.begin_ingest(&opts.actor, &name, input.format.as_str())?;
        let mut fr = FileReport {
            file: name.clone(),
            format: input.format.as_str(),
            ..FileReport::default()
        };
        let bytes = Arc::new(AtomicU64::new(0));
        let mut note =
            |line: u64, message: String, row: Option<&Row>, fr: &mut FileReport| -> Result<()> {
                fr.rejected += 1;
                if let Some(rej) = opts.rejects.as_deref_mut() {
                    write_reject(rej, &name, line, &message, row)?;
                }
                problems.push(&name, line, message);
                Ok(())
            };
        let summary = read_rows(input, &COLUMNS, &required, bytes.clone(), &mut |item| {
            fr.rows += 1;
            if fr.rows.is_multiple_of(8192) {
                (opts.progress)(input, bytes.load(Ordering::Relaxed));
            }
            let row = match item {
                Item::Unreadable { line, message } => return note(line, message, None, &mut fr),
                Item::Row(row) => row,
            };
            if !row.problems.is_empty() {
                let msg = row.problems.join("; ");
                return note(row.line, msg, Some(&row), &mut fr);
            }
            let p = match check_row(w, &row, opts.source.as_deref()) {
                Ok(p) => p,
                Err(msg) => return note(row.line, msg, Some(&row), &mut fr),
            };
            // Once the command is bound to fail, keep checking rows for the report but write nothing.
            let failing = !opts.skip_invalid && fr.rejected + report.rejected > 0;
            if failing {
                return Ok(());
            }
            match queue(w, &p, ingest_id, &opts.actor, &mut targets)? {
                Queued::Duplicate => fr.duplicates += 1,
                Queued::Conflict(msg) => return note(row.line, msg, Some(&row), &mut fr),
                Queued::New { id, superseded } => {
                    fr.ingested += 1;
                    fr.superseded += superseded;
                    fr.first_id.get_or_insert(id);
                    fr.last_id = Some(id);
                    if p.expected
                        .as_ref()
                        .is_some_and(|e| !loosely_equal(e, &p.baseline))
                    {
                        fr.stale += 1;
                    }
                    by_kind[Kind::ALL.iter().position(|k| *k == p.kind).expect("kind")] += 1;
                }
            }
            Ok(())
        })?;
        (opts.progress)(input, summary.bytes);
        fr.sha256 = summary.sha256;
        if summary.fatal.is_some() {
            // A file that cannot be read to the end is never partly ingested.
            return Err(problems.into_error(summary.fatal));
        }
        let counts = IngestCounts {
            rows: fr.rows,
            ingested: fr.ingested,
            duplicates: fr.duplicates,
            superseded: fr.superseded,
            rejected: fr.rejected,
        };
        if fr.ingested == 0 {
            w.discard_ingest(ingest_id)?;
        } else {
            w.finish_ingest(ingest_id, &fr.sha256, &counts)?;
            w.append_event(&NewEvent {
                actor: opts.actor.clone(),
                actor_kind: "human",
                action: "ingest",
                detail: serde_json::json!({
                    "ingest_id": ingest_id,
                    "file": fr.file,
                    "format": fr.format,
                    "sha256": fr.sha256,
                    "rows": fr.rows,
                    "ingested": fr.ingested,
                    "duplicates": fr.duplicates,
                    "superseded": fr.superseded,
                    "rejected": fr.rejected,
                    "first_proposal": fr.first_id,
                    "last_proposal": fr.last_id,
                }),
                ..NewEvent::default()
            })?;
        }
        report.ingested += fr.ingested;
        report.duplicates += fr.duplicates;
        report.superseded += fr.superseded;
        report.rejected += fr.rejected;
        report.stale += fr.stale;
        report.files.push(fr);
    }
    if report.rejected > 0 && !opts.skip_invalid {
        return Err(problems.into_error(None));
    }
    report.by_kind = Kind::ALL
        .iter()
        .zip(by_kind)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.as_str().to_string(), n))
        .collect();
    Ok(report)
}

enum Queued {
    New {
        id: i64,
        superseded: u64,
    },
    Duplicate,
    /// The same (source, id) came before with other content.
    Conflict(String),
}

/// A set of target keys with no false negatives: only a key it may hold is looked up in the
/// store, so the supersede check costs a lookup only where an undecided twin can exist.
struct TargetFilter {
    bits: Vec<u64>,
}

impl TargetFilter {
    /// 2^24 bits (2 MiB): about one false positive in eight with two million keys.
    const BITS: u64 = 1 << 24;

    fn new() -> Self {
        TargetFilter {
            bits: vec![0; (Self::BITS / 64) as usize],
        }
    }

    fn slot(key: i64) -> (usize, u64) {
        let b = (key as u64) % Self::BITS;
        ((b / 64) as usize, 1 << (b % 64))
    }

    fn insert(&mut self, key: i64) {
        let (i, m) = Self::slot(key);
        self.bits[i] |= m;
    }

    fn may_contain(&self, key: i64) -> bool {
        let (i, m) = Self::slot(key);
        self.bits[i] & m != 0
    }
}

fn queue(
    w: &mut Writer<'_>,
    p: &NewProposal,
    ingest_id: i64,
    actor: &str,
    targets: &mut TargetFilter,
) -> Result<Queued> {
    let Some(id) = w.insert_proposal(p, ingest_id, State::Pending)? else {
        // The key is taken: the same proposal again, or an id reused for something else.
        let hit = w.find_dedupe(p.dedupe_key)?.into_iter().next();
        return Ok(match hit {
            Some(h)
                if h.source == p.source
                    && h.ext_id == p.ext_id
                    && h.content_key == p.content_key =>
            {
                Queued::Duplicate
            }
            Some(h) if h.source == p.source && h.ext_id.is_some() && h.ext_id == p.ext_id => {
                Queued::Conflict(format!(
                    "{}:{} was already ingested as proposal {} with different content; give the new proposal a new id",
                    p.source,
                    p.ext_id.as_deref().unwrap_or_default(),
                    h.id
                ))
            }
            Some(h) => Queued::Conflict(format!(
                "this proposal's key collides with proposal {}; give it an id (or a different one)",
                h.id
            )),
            None => Queued::Conflict("the proposal could not be queued".into()),
        });
    };
    let maybe_twin = targets.may_contain(p.target_key);
    targets.insert(p.target_key);
    if !maybe_twin {
        return Ok(Queued::New { id, superseded: 0 });
    }
    let mut superseded = 0;
    for old in w.open_for_target(p.target_key)? {
        let same_target = old.id != id
            && old.source == p.source
            && old.object == p.object
            && old.record == p.record
            && old.field == p.field;
        if !same_target {
            continue;
        }
        w.supersede(old.id, id)?;
        w.append_event(&NewEvent {
            actor: actor.to_string(),
            actor_kind: "system",
            action: "supersede",
            proposal_id: Some(old.id),
            object: Some(p.object.clone()),
            record: Some(p.record.clone()),
            field: p.field.clone(),
            source: Some(p.source.clone()),
            detail: serde_json::json!({ "superseded_by": id }),
            ..NewEvent::default()
        })?;
        superseded += 1;
    }
    Ok(Queued::New { id, superseded })
}

/// Whether an expected value matches the record's: compared as typed when both parse the same
/// way, else as text (a proposer writes "5" for the integer 5).
pub fn loosely_equal(a: &Value, b: &Value) -> bool {
    a == b || (!matches!(a, Value::Null) && !matches!(b, Value::Null) && a.display() == b.display())
}

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

/// Every check of SPEC §3 on one row, against the live schema and records.
fn check_row(
    w: &Writer<'_>,
    row: &Row,
    default_source: Option<&str>,
) -> Result<NewProposal, String> {
    let c = &row.cells;
    let required = |i: usize| -> Result<&str, String> {
        match &c[i] {
            Cell::Text(s) if !s.trim().is_empty() => Ok(s.trim()),
            _ => Err(format!("missing \"{}\"", COLUMNS[i])),
        }
    };
    let source = match (c[SOURCE].trimmed(), default_source) {
        (Some(s), Some(d)) if s != d => {
            return Err(format!("source \"{}\" differs from --source {d}", short(s)));
        }
        (Some(s), _) => s,
        (None, Some(d)) => d,
        (None, None) => return Err("missing \"source\" (or pass --source NAME)".into()),
    };
    if let Some(p) = source_name_problem(source) {
        return Err(p);
    }
    let ext_id = match &c[ID] {
        Cell::Text(s) if !s.is_empty() => {
            if s.len() > MAX_ID_BYTES || s.chars().any(char::is_control) {
                return Err(format!(
                    "id \"{}\" is too long or has control characters",
                    short(s)
                ));
            }
            Some(s.clone())
        }
        _ => None,
    };
    let kind_s = required(KIND)?;
    let kind = Kind::parse(kind_s).ok_or_else(|| {
        format!(
            "bad kind \"{}\" (one of: update, verify, lifecycle, owner, merge){}",
            short(kind_s),
            suggestion_suffix(kind_s, Kind::ALL.iter().map(|k| k.as_str()))
        )
    })?;
    let object_s = required(OBJECT)?;
    let schema = w.schema();
    let obj: &Object =
        schema
            .object(object_s)
            .ok_or_else(|| match schema.unusable.get(object_s) {
                Some(why) => format!("object \"{object_s}\" cannot be used: {why}"),
                None => format!(
                    "unknown object \"{}\"{}",
                    short(object_s),
                    suggestion_suffix(object_s, schema.objects.keys().map(String::as_str))
                ),
            })?;
    let record = required(RECORD)?.to_string();
    let confidence = match c[CONFIDENCE].trimmed() {
        None => None,
        Some(s) => match s.parse::<f64>() {
            Ok(f) if f.is_finite() && (0.0..=1.0).contains(&f) => Some(f),
            Ok(_) => return Err(format!("confidence {s} is outside 0..1")),
            Err(_) => return Err(format!("confidence \"{}\" is not a number", short(s))),
        },
    };
    let trigger = c[TRIGGER].trimmed().map(str::to_string);
    let reason = c[REASON]
        .text()
        .map(str::to_string)
        .filter(|s| !s.is_empty());

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
        stated_confidence: confidence,
        expected: None,
        trigger,
        reason,
        baseline: Value::Null,
        baseline_fp: None,
        content_key: 0,
        dedupe_key: 0,
        target_key: 0,
    };
    if kind == Kind::Merge {
        check_merge(w, obj, row, &mut p)?;
    } else {
        check_field_write(w, obj, row, &mut p)?;
    }
    let json_or_empty = |v: &Option<Value>| {
        v.as_ref()
            .map(|v| v.to_json().to_string())
            .unwrap_or_default()
    };
    p.content_key = key64(&[
        &p.source,
        p.ext_id.as_deref().unwrap_or(""),
        kind.as_str(),
        &p.object,
        &p.record,
        p.field.as_deref().unwrap_or(""),
        &p.value.to_json().to_string(),
        p.merge_into.as_deref().unwrap_or(""),
        &p.stated_confidence
            .map(|f| f.to_string())
            .unwrap_or_default(),
        &json_or_empty(&p.expected),
        p.trigger.as_deref().unwrap_or(""),
        p.reason.as_deref().unwrap_or(""),
    ]);
    p.dedupe_key = match &p.ext_id {
        Some(id) => source_id_key(&p.source, id),
        None => p.content_key,
    };
    p.target_key = key64(&[
        "target",
        &p.source,
        &p.object,
        &p.record,
        p.field.as_deref().unwrap_or("\u{0}merge"),
    ]);
    Ok(p)
}

fn check_merge(w: &Writer<'_>, obj: &Object, row: &Row, p: &mut NewProposal) -> Result<(), String> {
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
            obj.name, p.record
        ));
    }
    let lookup = |id: &str| -> Result<Vec<Value>, String> {
        w.record_row(obj, id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("record {}/{} does not exist", obj.name, short(id)))
    };
    let dup = lookup(&p.record)?;
    let survivor = lookup(into)?;
    let snapshot = serde_json::json!([
        dup.iter().map(Value::to_json).collect::<Vec<_>>(),
        survivor.iter().map(Value::to_json).collect::<Vec<_>>(),
    ]);
    p.baseline_fp = Some(crate::audit::sha256_hex(snapshot.to_string().as_bytes()));
    p.merge_into = Some(into.to_string());
    Ok(())
}

fn check_field_write(
    w: &Writer<'_>,
    obj: &Object,
    row: &Row,
    p: &mut NewProposal,
) -> Result<(), String> {
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
    let column: &Column = obj.column(field_name).ok_or_else(|| {
        format!(
            "field \"{}\" does not exist on {}{}",
            short(field_name),
            obj.name,
            suggestion_suffix(field_name, obj.column_names())
        )
    })?;
    if column.primary_key {
        return Err(format!(
            "\"{field_name}\" is the primary key of {}; it cannot be changed",
            obj.name
        ));
    }
    let raw = match &c[VALUE] {
        Cell::Absent => return Err("missing \"value\" (an empty value clears the field)".into()),
        Cell::Null => None,
        Cell::Text(s) if s.is_empty() => None,
        Cell::Text(s) => Some(s.as_str()),
    };
    let value = validate::value_for(column, raw).map_err(|e| format!("{field_name}: {e}"))?;
    if let Some(parent) = w
        .missing_parent(column, &value)
        .map_err(|e| e.to_string())?
    {
        return Err(format!(
            "{field_name}: \"{}\" does not exist in {}",
            short(&value.display()),
            parent.name
        ));
    }
    p.expected = c[EXPECTED].text().filter(|s| !s.is_empty()).map(|s| {
        validate::value_for(column, Some(s)).unwrap_or_else(|_| Value::Text(s.to_string()))
    });
    p.baseline = w
        .record_field(obj, &p.record, column)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("record {}/{} does not exist", obj.name, short(&p.record)))?;
    p.field = Some(column.name.clone());
    p.value = value;
    Ok(())
}

fn write_reject(
    w: &mut csv::Writer<std::fs::File>,
    file: &str,
    line: u64,
    message: &str,
    row: Option<&Row>,
) -> Result<()> {
    let mut rec: Vec<String> = vec![file.to_string(), line.to_string(), message.to_string()];
    for i in 0..COLUMNS.len() {
        rec.push(
            row.and_then(|r| r.cells[i].text())
                .unwrap_or_default()
                .to_string(),
        );
    }
    w.write_record(&rec)
        .map_err(|e| Error::io("rejects file", std::io::Error::other(e.to_string())))
}

/// The header of a rejects file.
pub fn rejects_header() -> Vec<&'static str> {
    let mut h = vec!["file", "line", "error"];
    h.extend(COLUMNS);
    h
}
