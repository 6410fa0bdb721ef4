//! Import through the gate. Into an empty table an import is a bootstrap: every record loaded
//! as it is, one event naming the file and its SHA-256. Into a table with records nothing
//! changes that the policy or a permitted person did not allow, and all of it can be undone:
//! new records are created as one run of changes (each the record from nothing to its
//! snapshot, so `crmgate revert --run R` deletes exactly them); each field that differs on an
//! existing record becomes a proposal, decided by the policy like any other; identical records
//! change nothing. `--direct` (an admin's, when `[roles]` is set) writes the differences at
//! once, as field changes of the same run.
//!
//! The file is checked whole first: a bad row refuses it and nothing is written. The creates
//! (and direct writes) commit in one transaction, the proposals in the next, through
//! [`proposals::propose`], the one way proposals get in.

use std::io::Write;

use crate::apply::{Importing, create_record, write_imported};
use crate::error::{Error, Result};
use crate::ingest::proposals::{self, COLUMNS};
use crate::ingest::{Format, Input};
use crate::model::Value;
use crate::policy::Policy;
use crate::records::{ImportReport, bootstrap, object, read_records};
use crate::schema::Object;
use crate::store::{Store, Writer, same};

/// An import, as asked.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub object: &'a str,
    pub input: &'a Input,
    pub actor: &'a str,
    pub now: &'a str,
    /// The source the proposals of differing fields are queued under (`import` by default).
    pub source: Option<String>,
    /// Write the differences at once instead of proposing them.
    pub direct: bool,
}

/// The source of an import's proposals when none is named.
pub const DEFAULT_SOURCE: &str = "import";

/// One field of an existing record that the file holds otherwise.
#[derive(Debug, Clone)]
struct Diff {
    record: String,
    field: String,
    before: Value,
    after: Value,
}

/// Imports `req.input` into `req.object`; see the module's documentation.
pub fn run(store: &mut Store, req: &Request<'_>) -> Result<ImportReport> {
    let obj = object(store.schema(), req.object)?.clone();
    let policy = match store.current_policy()? {
        Some(_) => Some(crate::admin::policy::load(store)?),
        None => None,
    };
    if req.direct {
        check_direct(policy.as_ref().map(|(_, p)| p), req.actor)?;
    }
    store.set_cache_kib(64 * 1024)?;
    let (mut report, diffs) = store.write(req.now, |w| {
        refuse_if_paused(w, req)?;
        if !w.has_records(&obj)? {
            return Ok((bootstrap(w, &obj, req.input, req.actor)?, Vec::new()));
        }
        gated(w, &obj, req, policy.is_some())
    })?;
    if let (false, Some((version, policy))) = (diffs.is_empty(), &policy) {
        let queued = propose(store, req, &obj, &diffs, policy, *version)?;
        report.queued = queued.ingested;
        report.already_queued = queued.duplicates;
        report.by_decision = queued.by_decision;
    }
    Ok(report)
}

/// An import writes records: a pause of the whole store, or of the source its proposals go
/// under, refuses it whole. Read in the import's own transaction, so a pause that committed
/// before it began is seen.
fn refuse_if_paused(w: &Writer<'_>, req: &Request<'_>) -> Result<()> {
    let source = req.source.as_deref().unwrap_or(DEFAULT_SOURCE);
    let pauses = w.pauses()?;
    let Some(pause) = pauses
        .iter()
        .find(|p| p.source.is_none() || p.source.as_deref() == Some(source))
    else {
        return Ok(());
    };
    let (what, resume) = match &pause.source {
        None => (
            "the store is paused".to_string(),
            "crmgate resume".to_string(),
        ),
        Some(s) => (
            format!("source {s} is paused"),
            format!("crmgate resume --source {s}"),
        ),
    };
    Err(Error::refused_with_hint(
        crate::ui::safe(&format!(
            "nothing was imported: {what} ({}, by {})",
            pause.reason, pause.actor
        ))
        .into_owned(),
        format!(
            "an admin lifts the pause with `{}`, then import again",
            crate::ui::safe(&resume)
        ),
    ))
}

/// `--direct` skips the review of what it changes: with `[roles]` set, only an admin may.
fn check_direct(policy: Option<&Policy>, actor: &str) -> Result<()> {
    let Some(policy) = policy.filter(|p| !p.roles.is_empty()) else {
        return Ok(());
    };
    if policy.has_role(actor, "admin") {
        return Ok(());
    }
    Err(Error::refused_with_hint(
        format!(
            "{} may not import --direct: writing the differences without review takes the admin role",
            crate::ui::safe(actor)
        ),
        "import without --direct to queue the differences as proposals for review",
    ))
}

/// Into a table with records: creates the new ones and writes (with `--direct`) or collects the
/// differing fields of the others, in the caller's transaction.
fn gated(
    w: &mut Writer<'_>,
    obj: &Object,
    req: &Request<'_>,
    has_policy: bool,
) -> Result<(ImportReport, Vec<Diff>)> {
    let mut report = ImportReport::default();
    let mut diffs = Vec::new();
    let file = req.input.display_name();
    read_records(
        w,
        obj,
        req.input,
        &mut report,
        &mut |w, report, cols, values| {
            let pk = cols.iter().position(|&c| c == obj.pk).unwrap_or_default();
            let id = values[pk].display();
            let Some(current) = w.record_row(obj, &id)? else {
                let how = importing(w, req, &file, &mut report.run)?;
                create_record(w, how, obj, cols, values)?;
                report.created += 1;
                return Ok(());
            };
            let differs = differences(obj, &id, &current, cols, values);
            if differs.is_empty() {
                report.unchanged += 1;
            } else if req.direct {
                let how = importing(w, req, &file, &mut report.run)?;
                for d in &differs {
                    write_imported(w, how, obj, &d.record, &d.field, (&d.before, &d.after))?;
                }
                report.updated += 1;
            } else {
                diffs.extend(differs);
            }
            Ok(())
        },
    )?;
    if !diffs.is_empty() && !has_policy {
        return Err(no_policy(diffs.len()));
    }
    Ok((report, diffs))
}

/// The import's run, begun at its first write.
fn importing<'a>(
    w: &Writer<'_>,
    req: &Request<'a>,
    file: &'a str,
    run: &mut Option<i64>,
) -> Result<Importing<'a>> {
    let run = match *run {
        Some(r) => r,
        None => *run.insert(w.begin_run("import", req.actor)?),
    };
    Ok(Importing {
        actor: req.actor,
        run,
        file,
    })
}

/// The fields the file gives that the record holds otherwise (never its id).
fn differences(
    obj: &Object,
    id: &str,
    current: &[Value],
    cols: &[usize],
    values: &[Value],
) -> Vec<Diff> {
    cols.iter()
        .zip(values)
        .filter(|&(&c, v)| c != obj.pk && !same(&current[c], v))
        .map(|(&c, v)| Diff {
            record: id.to_string(),
            field: obj.columns[c].name.clone(),
            before: current[c].clone(),
            after: v.clone(),
        })
        .collect()
}

fn no_policy(n: usize) -> Error {
    Error::refused_with_hint(
        format!(
            "nothing was imported: {n} fields of existing records differ, and no policy is in force to decide their proposals"
        ),
        "set one with `crmgate policy set FILE`, or (admin) `crmgate import OBJECT FILE --direct` to write them at once",
    )
}

/// Queues one proposal per differing field, through the ingest like any proposal file: written
/// to a temporary CSV, each naming the value it expects to replace.
fn propose(
    store: &mut Store,
    req: &Request<'_>,
    obj: &Object,
    diffs: &[Diff],
    policy: &Policy,
    policy_version: i64,
) -> Result<proposals::Report> {
    let file = proposal_file(req, obj, diffs)?;
    let path = file.path().to_string_lossy().into_owned();
    let inputs = [Input::from_arg(&path, Some(Format::Csv))?];
    let request = proposals::Request {
        inputs: &inputs,
        source: Some(req.source.clone().unwrap_or_else(|| DEFAULT_SOURCE.into())),
        skip_invalid: false,
        rejects: None,
        actor: req.actor.to_string(),
        now: req.now.to_string(),
        policy,
        policy_version,
        bulk_min_rows: proposals::BULK_MIN_ROWS,
        progress: &|_, _| {},
    };
    proposals::propose(store, &request)
}

/// The proposals of `diffs` as a proposal CSV in a temporary file, removed when dropped.
fn proposal_file(
    req: &Request<'_>,
    obj: &Object,
    diffs: &[Diff],
) -> Result<tempfile::NamedTempFile> {
    let io = |e: std::io::Error| Error::io("a temporary proposal file", e);
    // Named after the import's file, so that the ingest event's file says where they came from.
    let base: String = std::path::Path::new(&req.input.display_name())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut file = tempfile::Builder::new()
        .prefix(&format!("crmgate-import-of-{base}-"))
        .suffix(".csv")
        .tempfile()
        .map_err(io)?;
    let reason = format!("import of {}", req.input.display_name());
    {
        let mut w = crate::ui::csv_writer(file.as_file_mut());
        w.write_record(COLUMNS).map_err(crate::records::csv_err)?;
        for d in diffs {
            let (value, expected) = (d.after.display(), d.before.display());
            let row: [&str; 13] = [
                "", "", "update", &obj.name, &d.record, &d.field, &value, "", "", &expected, "",
                &reason, "",
            ];
            w.write_record(row).map_err(crate::records::csv_err)?;
        }
        w.flush().map_err(io)?;
    }
    file.as_file_mut().flush().map_err(io)?;
    Ok(file)
}
