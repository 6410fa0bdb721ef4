//! Importing CRM records (an upsert by id, validated like proposals, atomic) and exporting them.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::error::{Error, Problems, Result};
use crate::ingest::{Cell, Format, Input, Item, read_rows};
use crate::model::{NewEvent, Value};
use crate::schema::{Object, Schema, suggestion_suffix};
use crate::store::{Store, UpsertOutcome, Writer};
use crate::validate;

/// What an import did. Into an empty table every record is loaded as it is (`bootstrap`, one
/// event); into a table with records, the new ones are created as a run of changes (`run`), the
/// fields that differ are queued as proposals (or with `--direct` written, `updated`).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ImportReport {
    pub object: String,
    pub file: String,
    pub sha256: String,
    pub rows: u64,
    pub bootstrap: bool,
    pub created: u64,
    /// Records whose differing fields were written at once (`--direct`).
    pub updated: u64,
    pub unchanged: u64,
    /// Proposals queued, one per field that differs.
    pub queued: u64,
    /// Fields that differ whose same proposal is already in the queue (not queued twice).
    pub already_queued: u64,
    /// The proposals queued, by the policy's decision.
    pub by_decision: Vec<(String, u64)>,
    /// The run of the creates and direct writes, for `crmgate revert --run`.
    pub run: Option<i64>,
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

/// Imports `input` into the object named `object_name` for `actor`: into an empty table as it
/// is, into one with records through the gate (see [`crate::import`]), its differences
/// proposed under the source `import`.
pub fn import_file(
    store: &mut Store,
    object_name: &str,
    input: &Input,
    actor: &str,
    now: &str,
) -> Result<ImportReport> {
    crate::import::run(
        store,
        &crate::import::Request {
            object: object_name,
            input,
            actor,
            now,
            source: None,
            direct: false,
        },
    )
}

/// Loads every row of `input` into `obj`, an empty table, as it is: one event names the file.
pub fn bootstrap(
    w: &mut Writer<'_>,
    obj: &Object,
    input: &Input,
    actor: &str,
) -> Result<ImportReport> {
    let mut report = ImportReport {
        bootstrap: true,
        ..ImportReport::default()
    };
    read_records(
        w,
        obj,
        input,
        &mut report,
        &mut |w, report, cols, values| {
            match w.upsert(obj, cols, values)? {
                UpsertOutcome::Inserted => report.created += 1,
                UpsertOutcome::Updated => report.updated += 1,
                UpsertOutcome::Unchanged => report.unchanged += 1,
            }
            Ok(())
        },
    )?;
    if report.created + report.updated > 0 {
        w.append_event(NewEvent {
            actor: actor.to_string(),
            actor_kind: "human",
            action: "import",
            object: Some(obj.name.clone()),
            detail: serde_json::json!({
                "file": report.file,
                "sha256": report.sha256,
                "rows": report.rows,
                "inserted": report.created,
                "updated": report.updated,
                "unchanged": report.unchanged,
            }),
            ..NewEvent::default()
        })?;
    }
    Ok(report)
}

/// What [`read_records`] does with each good row: its columns (indexing `obj.columns`, the
/// primary key among them) and values.
pub type Take<'t> =
    dyn FnMut(&mut Writer<'_>, &mut ImportReport, &[usize], &[Value]) -> Result<()> + 't;

/// Reads and checks every row of `input` for `obj`, handing each good one to `take` while no
/// row before it was bad. Any bad row fails the whole import, naming every bad row; the
/// caller's transaction then rolls back what `take` did.
pub fn read_records(
    w: &mut Writer<'_>,
    obj: &Object,
    input: &Input,
    report: &mut ImportReport,
    take: &mut Take<'_>,
) -> Result<()> {
    let name = input.display_name();
    let columns: Vec<&str> = obj.column_names().collect();
    let pk_name = obj.pk_column().name.clone();
    report.object = obj.name.clone();
    report.file = name.clone();
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
            let bad = check_record(w, obj, &row.cells, &mut cols, &mut values)?;
            if !bad.is_empty() {
                problems.push(&name, row.line, bad.join("; "));
                return Ok(());
            }
            if !problems.is_empty() {
                return Ok(());
            }
            take(w, report, &cols, &values)
        },
    )?;
    if summary.fatal.is_some() || !problems.is_empty() {
        return Err(problems.into_error(summary.fatal, "nothing was imported; fix the rows above"));
    }
    report.sha256 = summary.sha256;
    Ok(())
}

/// Checks one row's cells against `obj`, filling `cols` and `values` with what it gives;
/// returns what is wrong with it, nothing when it is good.
fn check_record(
    w: &Writer<'_>,
    obj: &Object,
    cells: &[Cell],
    cols: &mut Vec<usize>,
    values: &mut Vec<Value>,
) -> Result<Vec<String>> {
    let mut bad = validate::check_cells(obj, cells, cols, values);
    bad.extend(validate::dangling(obj, cols, values, &mut |c, v| {
        w.missing_parent(c, v)
    })?);
    Ok(bad)
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
            let mut w = crate::ui::csv_writer(out);
            w.write_record(obj.column_names()).map_err(csv_err)?;
            let n = store.for_each_record(obj, |vals| {
                let cells = vals.iter().map(|v| {
                    let s = v.display();
                    match v {
                        Value::Text(_) if spreadsheet_safe => {
                            crate::ui::sheet_cell(&s).into_owned()
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
