//! Importing CRM records (an upsert by id, validated like proposals, atomic) and exporting them.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::error::{Error, Problems, Result};
use crate::ingest::{Cell, Format, Input, Item, read_rows};
use crate::model::{NewEvent, Value};
use crate::schema::{Object, Schema, suggestion_suffix};
use crate::store::{Store, UpsertOutcome, Writer};
use crate::validate::{self, short};

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ImportReport {
    pub object: String,
    pub file: String,
    pub sha256: String,
    pub rows: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// The object `name`, checked against the live schema: a table that cannot be one, or a name
/// that is none, is refused with what there is.
pub fn object<'s>(schema: &'s Schema, name: &str) -> Result<&'s Object> {
    schema
        .object(name)
        .ok_or_else(|| match schema.unusable.get(name) {
            Some(why) => Error::refused(format!(
                "table \"{name}\" cannot be used as an object: {why}"
            )),
            None => Error::refused_with_hint(
                format!(
                    "unknown object \"{}\"{}",
                    crate::ui::safe(name),
                    suggestion_suffix(name, schema.objects.keys().map(String::as_str))
                ),
                format!(
                    "objects in this store: {}",
                    schema
                        .objects
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        })
}

/// Imports `input` into the object named `object_name` for `actor`, in one transaction.
pub fn import_file(
    store: &mut Store,
    object_name: &str,
    input: &Input,
    actor: &str,
    now: &str,
) -> Result<ImportReport> {
    let obj = object(store.schema(), object_name)?.clone();
    store.set_cache_kib(64 * 1024)?;
    store.write(now, |w| import(w, &obj, input, actor))
}

/// Upserts every row of `input` into `obj`. Any bad row fails the whole import.
pub fn import(
    w: &mut Writer<'_>,
    obj: &Object,
    input: &Input,
    actor: &str,
) -> Result<ImportReport> {
    let name = input.display_name();
    let columns: Vec<&str> = obj.column_names().collect();
    let pk_name = obj.pk_column().name.clone();
    let mut report = ImportReport {
        object: obj.name.clone(),
        file: name.clone(),
        ..ImportReport::default()
    };
    let mut problems = Problems::default();
    let mut cols: Vec<usize> = Vec::with_capacity(columns.len());
    let mut values: Vec<Value> = Vec::with_capacity(columns.len());
    let summary = read_rows(
        input,
        &columns,
        &[pk_name.as_str()],
        Arc::new(AtomicU64::new(0)),
        &mut |item| {
            report.rows += 1;
            let row = match item {
                Item::Unreadable { line, message } => {
                    problems.push(&name, line, message);
                    return Ok(());
                }
                Item::Row(row) => row,
            };
            if !row.problems.is_empty() {
                problems.push(&name, row.line, row.problems.join("; "));
                return Ok(());
            }
            cols.clear();
            values.clear();
            let mut bad = Vec::new();
            for (i, cell) in row.cells.iter().enumerate() {
                let column = &obj.columns[i];
                let raw = match cell {
                    Cell::Absent => continue,
                    Cell::Null => None,
                    Cell::Text(s) if s.is_empty() => None,
                    Cell::Text(s) => Some(s.as_str()),
                };
                if column.primary_key && raw.is_none() {
                    bad.push(format!("missing \"{}\" (the record's id)", column.name));
                    continue;
                }
                // A left-out column keeps its default; an empty one under NOT NULL does too.
                if raw.is_none() && column.not_null && column.has_default {
                    continue;
                }
                match validate::value_for(column, raw) {
                    Ok(v) => {
                        if let Some(parent) = w.missing_parent(column, &v)? {
                            bad.push(format!(
                                "{}: \"{}\" does not exist in {}",
                                column.name,
                                short(&v.display()),
                                parent.name
                            ));
                        }
                        cols.push(i);
                        values.push(v);
                    }
                    Err(e) => bad.push(format!("{}: {e}", column.name)),
                }
            }
            if !cols.contains(&obj.pk) && bad.is_empty() {
                bad.push(format!(
                    "missing \"{}\" (the record's id)",
                    obj.pk_column().name
                ));
            }
            if !bad.is_empty() {
                problems.push(&name, row.line, bad.join("; "));
                return Ok(());
            }
            if !problems.is_empty() {
                return Ok(());
            }
            match w.upsert(obj, &cols, &values)? {
                UpsertOutcome::Inserted => report.inserted += 1,
                UpsertOutcome::Updated => report.updated += 1,
                UpsertOutcome::Unchanged => report.unchanged += 1,
            }
            Ok(())
        },
    )?;
    if summary.fatal.is_some() || !problems.is_empty() {
        return Err(problems.into_error(summary.fatal, "nothing was imported; fix the rows above"));
    }
    report.sha256 = summary.sha256;
    if report.inserted + report.updated > 0 {
        w.append_event(NewEvent {
            actor: actor.to_string(),
            actor_kind: "human",
            action: "import",
            object: Some(obj.name.clone()),
            detail: serde_json::json!({
                "file": report.file,
                "sha256": report.sha256,
                "rows": report.rows,
                "inserted": report.inserted,
                "updated": report.updated,
                "unchanged": report.unchanged,
            }),
            ..NewEvent::default()
        })?;
    }
    Ok(report)
}

/// A CSV writer's error on stdout, as crmgate's: a closed pipe stays an I/O error, which the
/// command line treats as the reader having had enough.
pub(crate) fn csv_err(e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => Error::io("<stdout>", e),
        other => Error::Store(format!("{other:?}")),
    }
}

/// Writes every record of `obj` to `out`. CSV cells a spreadsheet would run as a formula are
/// neutralised when `spreadsheet_safe` is set; otherwise the export is exact, for re-import.
pub fn export(
    store: &Store,
    obj: &Object,
    format: Format,
    spreadsheet_safe: bool,
    out: &mut dyn Write,
) -> Result<u64> {
    let io = |e: std::io::Error| Error::io("<stdout>", e);
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(obj.column_names()).map_err(csv_err)?;
            let n = store.for_each_record(obj, |vals| {
                let cells = vals.iter().map(|v| {
                    let s = v.display();
                    match v {
                        Value::Text(_) if spreadsheet_safe => {
                            crate::ui::formula_safe(&s).into_owned()
                        }
                        _ => s,
                    }
                });
                w.write_record(cells).map_err(csv_err)
            })?;
            w.flush().map_err(io)?;
            Ok(n)
        }
        Format::Json | Format::Jsonl => {
            let mut stream = JsonStream::begin(out, format == Format::Json)?;
            store.for_each_record(obj, |vals| {
                let m: serde_json::Map<String, serde_json::Value> = obj
                    .columns
                    .iter()
                    .zip(vals)
                    .map(|(c, v)| (c.name.clone(), v.to_json()))
                    .collect();
                stream.item(&m)
            })?;
            stream.end()
        }
    }
}

/// Items written to standard output as one JSON array, or as JSON Lines, one at a time: an
/// export of a million records or events never holds them all.
pub(crate) struct JsonStream<'w> {
    out: &'w mut dyn Write,
    array: bool,
    n: u64,
}

impl<'w> JsonStream<'w> {
    pub(crate) fn begin(out: &'w mut dyn Write, array: bool) -> Result<JsonStream<'w>> {
        if array {
            out.write_all(b"[").map_err(stdout_err)?;
        }
        Ok(JsonStream { out, array, n: 0 })
    }

    pub(crate) fn item(&mut self, item: &impl serde::Serialize) -> Result<()> {
        let sep: &[u8] = match (self.array, self.n) {
            (true, 0) => b"\n",
            (true, _) => b",\n",
            (false, _) => b"",
        };
        self.n += 1;
        self.out.write_all(sep).map_err(stdout_err)?;
        serde_json::to_writer(&mut *self.out, item).map_err(|e| stdout_err(e.into()))?;
        if !self.array {
            self.out.write_all(b"\n").map_err(stdout_err)?;
        }
        Ok(())
    }

    /// Closes the array; returns how many items were written.
    pub(crate) fn end(self) -> Result<u64> {
        if self.array {
            self.out.write_all(b"\n]\n").map_err(stdout_err)?;
        }
        self.out.flush().map_err(stdout_err)?;
        Ok(self.n)
    }
}

fn stdout_err(e: std::io::Error) -> Error {
    Error::io("<stdout>", e)
}
