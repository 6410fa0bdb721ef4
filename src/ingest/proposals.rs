//! A propose run, from proposal files to the queue. Each stage is a file of its own, all of them
//! working on the one [`Run`] defined here:
//!
//! 1. [`check`](super::check): each row read and checked on its own, on a reading thread;
//! 2. [`stage`](super::stage): what passes goes to a staging table, so that the later stages
//!    can take the rows in the order that suits SQLite rather than the file's;
//! 3. [`dedupe`](super::dedupe): rows whose dedupe key was taken before them, in this run or
//!    in the queue, are skipped (or rejected, when an id comes back with other content);
//! 4. [`judge`](super::judge): each record looked up, each proposal scored and decided, on a
//!    second thread over a snapshot;
//! 5. [`queue`](super::queue): the judged rows queued in the same order, a record's
//!    undecided twins superseded by the newest.
//!
//! One transaction for the whole run: by default one bad row anywhere means nothing is
//! ingested; with `skip_invalid` the good rows go in and the bad ones are written to the
//! rejects file, which appears only when the run commits, and a file that cannot be read to
//! its end is set aside whole, named once in the rejects file. Memory does not grow with the run:
//! what is kept per row is kept in SQLite's tables, and problems beyond the first few are
//! counted, not kept.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::Input;
pub use super::check::{COLUMNS, MAX_EVIDENCE_BYTES, rejects_header};
use super::queue::Tally;
use crate::alerts::{Alert, AlertKind};
use crate::error::{Error, Problem, Problems, Result};
use crate::model::{Kind, NewEvent};
use crate::policy::{Action, Policy};
use crate::store::{IngestCounts, Store, Writer};

/// What a propose run is asked to do, checked: the policy is parsed, the inputs' formats known.
pub struct Request<'a> {
    pub inputs: &'a [Input],
    /// `--source`: the source of rows that do not name one.
    pub source: Option<String>,
    /// Queue the good rows and write the bad ones to `rejects`, instead of queueing nothing.
    pub skip_invalid: bool,
    /// Where the rejected rows go, with their file, line and reason (CSV).
    pub rejects: Option<PathBuf>,
    pub actor: String,
    pub now: String,
    /// The policy in force, and its version.
    pub policy: &'a Policy,
    pub policy_version: i64,
    /// From this many new rows on (when they are also a quarter of the queue or more), the
    /// proposal index by dedupe key is rebuilt after the load instead of updated row by row.
    pub bulk_min_rows: u64,
    /// Called now and then with the bytes read so far of the current file.
    pub progress: &'a dyn Fn(&Input, u64),
}

/// The default for [`Request::bulk_min_rows`].
pub const BULK_MIN_ROWS: u64 = 20_000;

const INGEST_HINT: &str = "nothing was ingested; fix the rows above, or pass --skip-invalid --rejects FILE to ingest the good rows";

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
    /// Why the file was set aside whole (`line N: why`): it could not be read to its end, and
    /// none of its rows were queued.
    pub set_aside: Option<String>,
    /// Where the file was moved, when the run was asked to archive what it read.
    pub archived_to: Option<String>,
}

/// What a run did: a line per file and totals, however many rows it read.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub files: Vec<FileReport>,
    pub ingested: u64,
    pub duplicates: u64,
    pub superseded: u64,
    pub rejected: u64,
    pub stale: u64,
    /// Files set aside whole.
    pub set_aside: u64,
    /// Files that could not be archived, and why; they stay where they were.
    pub not_archived: Vec<String>,
    /// New proposals by kind.
    pub by_kind: Vec<(String, u64)>,
    /// New proposals by the policy's decision.
    pub by_decision: Vec<(String, u64)>,
    /// The first and last ingest the run queued proposals under, if it queued any: what
    /// [`propose_and_apply`] applies.
    #[serde(skip)]
    pub ingests: Option<(i64, i64)>,
}

/// Ingests `req.inputs` into `store` in one transaction: committed with its events when every
/// row is good (or `skip_invalid` is set), else rolled back, leaving the store as it was.
/// Returns `Err(Error::Invalid)`, naming the first problems by file and line, when any row is
/// bad or a file cannot be read to its end, and `skip_invalid` is off.
pub fn propose(store: &mut Store, req: &Request<'_>) -> Result<Report> {
    let mut rejects = req.rejects.as_deref().map(Rejects::create).transpose()?;
    // Bulk ingest: a page cache large enough for the lookup indexes, within the memory budget.
    store.set_bulk_cache()?;
    let report = store.write(&req.now, |w| {
        Run::new(w, req, rejects.as_mut().map(|r| &mut r.writer)).ingest()
    })?;
    if let Some(r) = rejects {
        r.persist()?;
    }
    alert_blocked(store, req, &report);
    Ok(report)
}

/// One `blocked` alert for the run, with how many new proposals a stop rule blocked.
fn alert_blocked(store: &mut Store, req: &Request<'_>, report: &Report) {
    let blocked = Action::Block.as_str();
    let count = report
        .by_decision
        .iter()
        .find(|(d, _)| d == blocked)
        .map_or(0, |(_, n)| *n);
    if count == 0 {
        return;
    }
    let files: Vec<&str> = report.files.iter().map(|f| f.file.as_str()).collect();
    let detail = serde_json::json!({ "count": count, "at": "ingest", "files": files });
    let alert =
        Alert::new(AlertKind::Blocked, &req.now, detail).about_source(req.source.as_deref());
    crate::alerts::send(store, req.policy, &[alert]);
}

/// [`propose`], then, once the run has committed, every file it read moved into `archive`
/// (a file set aside whole into its `failed/`), so the next run over the same inbox does not
/// read it again. A file that cannot be moved stays where it was, named in `not_archived`.
pub fn propose_and_archive(
    store: &mut Store,
    req: &Request<'_>,
    archive: Option<&Path>,
) -> Result<Report> {
    let mut report = propose(store, req)?;
    if let Some(dir) = archive {
        super::archive::archive(req.inputs, &mut report, dir);
    }
    Ok(report)
}

/// How [`propose_and_apply`] applies: the clock and chunk size of [`crate::apply::run`], and
/// who watches it.
pub struct ThenApply<'a> {
    pub clock: fn() -> String,
    pub chunk: usize,
    pub progress: &'a mut dyn crate::apply::Progress,
}

/// [`propose_and_archive`], then, once the ingest has committed, the proposals the policy
/// approved in it applied, through [`crate::apply::run`] with every re-check it makes, as
/// `req.actor` under `req.policy`. Proposals approved before this run are left in the queue.
/// An ingest that queued nothing applies nothing. Once the ingest has committed, an error of
/// the apply is returned in [`crate::apply::Applied::stopped`], beside the ingest's report.
pub fn propose_and_apply(
    store: &mut Store,
    req: &Request<'_>,
    archive: Option<&Path>,
    then: ThenApply<'_>,
) -> Result<(Report, crate::apply::Applied)> {
    let report = propose_and_archive(store, req, archive)?;
    let Some(ingests) = report.ingests else {
        return Ok((report, crate::apply::Applied::nothing(None)));
    };
    let apply = crate::apply::ApplyRequest {
        policy: req.policy,
        version: req.policy_version,
        actor: &req.actor,
        opts: crate::apply::Options {
            ingests: Some(ingests),
            ..crate::apply::Options::default()
        },
        follow: None,
        make_plan: false,
        dry_run: false,
        clock: then.clock,
        chunk: then.chunk,
    };
    // The ingest stays committed whatever the apply meets: what stopped it is reported with it.
    let applied = crate::apply::run(store, &apply, then.progress)
        .unwrap_or_else(|e| crate::apply::Applied::nothing(Some(e)));
    Ok((report, applied))
}

/// The rejects file, written beside its destination and moved into place only when the run
/// commits, so a failed run never leaves a half-written one.
struct Rejects {
    tmp: tempfile::NamedTempFile,
    writer: csv::Writer<File>,
    path: PathBuf,
}

impl Rejects {
    fn create(path: &Path) -> Result<Rejects> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        // The temporary file's own name would only confuse: the error names the rejects file.
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| Error::io(path, std::io::Error::from(e.kind())))?;
        let mut writer = crate::ui::csv_writer(tmp.reopen().map_err(|e| Error::io(path, e))?);
        writer
            .write_record(rejects_header())
            .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
        Ok(Rejects {
            tmp,
            writer,
            path: path.to_path_buf(),
        })
    }

    fn persist(mut self) -> Result<()> {
        self.writer.flush().map_err(|e| Error::io(&self.path, e))?;
        drop(self.writer);
        self.tmp
            .persist(&self.path)
            .map_err(|e| Error::io(&self.path, e.error))?;
        Ok(())
    }
}

/// One file of a run: its ingest row, and its line of the report as it fills in.
pub(super) struct FileRun {
    pub ingest_id: i64,
    pub report: FileReport,
}

/// One propose run, as its stages share it: the transaction it writes in, what it was asked,
/// where each file stands, and what was wrong so far.
pub(super) struct Run<'a, 's> {
    pub w: &'a Writer<'s>,
    pub req: &'a Request<'a>,
    pub files: Vec<FileRun>,
    /// Rows staged, over every file.
    pub staged: u64,
    /// Rows rejected, over every file: once there is one and `skip_invalid` is off, the run
    /// goes on checking, for the report, but writes nothing more.
    rejected: u64,
    problems: Problems,
    rejects: Option<&'a mut csv::Writer<File>>,
}

impl<'a, 's> Run<'a, 's> {
    fn new(
        w: &'a Writer<'s>,
        req: &'a Request<'a>,
        rejects: Option<&'a mut csv::Writer<File>>,
    ) -> Self {
        Run {
            w,
            req,
            files: Vec::new(),
            staged: 0,
            rejected: 0,
            problems: Problems::default(),
            rejects,
        }
    }

    /// The stages in order; see the module's documentation.
    fn ingest(mut self) -> Result<Report> {
        self.w.stage_create()?;
        for input in self.req.inputs {
            self.stage_file(input)?;
        }
        self.skip_duplicates()?;
        let tally = self.judge_and_queue()?;
        // The staged rows are queued: their space is freed at commit, for the checkpoint to reuse.
        self.w.stage_drop()?;
        if self.failing() {
            let files: Vec<String> = self.files.iter().map(|f| f.report.file.clone()).collect();
            self.problems.sort_by_position(&files);
            return Err(self.error(None));
        }
        self.finish(tally)
    }

    /// The file a staged row or proposal of this run came from.
    pub fn file(&self, ingest_id: i64) -> usize {
        self.files
            .iter()
            .position(|f| f.ingest_id == ingest_id)
            .expect("a staged row's ingest belongs to this run")
    }

    /// Whether the run is bound to fail: a row was rejected and `skip_invalid` is off.
    pub fn failing(&self) -> bool {
        self.rejected > 0 && !self.req.skip_invalid
    }

    /// The error that ends a failed run: the problems found so far, led by `fatal` (a problem
    /// with a file as a whole) when there is one.
    pub fn error(&mut self, fatal: Option<Problem>) -> Error {
        std::mem::take(&mut self.problems).into_error(fatal, INGEST_HINT)
    }

    /// Rejects the row at `line` of file `file`, with why: counted, written to the rejects
    /// file (with its cells, when known), and kept among the problems.
    pub fn reject(
        &mut self,
        file: usize,
        line: u64,
        message: String,
        cells: Option<Vec<String>>,
    ) -> Result<()> {
        self.rejected += 1;
        let report = &mut self.files[file].report;
        report.rejected += 1;
        if let Some(w) = self.rejects.as_deref_mut() {
            let mut rec = vec![report.file.clone(), line.to_string(), message.clone()];
            rec.extend(cells.unwrap_or_else(|| vec![String::new(); COLUMNS.len()]));
            w.write_record(rec.iter().map(|c| crate::ui::sheet_cell(c).into_owned()))
                .map_err(|e| Error::io("rejects file", std::io::Error::other(e.to_string())))?;
        }
        self.problems.push(&report.file, line, message);
        Ok(())
    }

    /// Where the rejects file ends now: see [`Run::forget_rejects`].
    pub fn rejects_mark(&mut self) -> Result<u64> {
        use std::io::Seek;
        let Some(w) = self.rejects.as_deref_mut() else {
            return Ok(0);
        };
        w.flush().map_err(|e| Error::io("rejects file", e))?;
        let mut f: &File = w.get_ref();
        f.stream_position()
            .map_err(|e| Error::io("rejects file", e))
    }

    /// Forgets the rows of file `file` rejected so far (it is set aside whole): uncounted, and
    /// cut from the rejects file back to `mark`, taken before the file was read.
    pub fn forget_rejects(&mut self, file: usize, mark: u64) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let report = &mut self.files[file].report;
        self.rejected -= report.rejected;
        report.rejected = 0;
        let Some(w) = self.rejects.as_deref_mut() else {
            return Ok(());
        };
        let cut = |e| Error::io("rejects file", e);
        w.flush().map_err(cut)?;
        let mut f: &File = w.get_ref();
        f.set_len(mark).map_err(cut)?;
        f.seek(SeekFrom::Start(mark)).map_err(cut)?;
        Ok(())
    }

    /// Ends a run that succeeds, once every row is queued: a file that queued nothing leaves
    /// no trace; every other gets its counts and an `ingest` event.
    fn finish(mut self, tally: Tally) -> Result<Report> {
        // After a bulk load, the dropped index is rebuilt by sorting.
        for sql in &tally.rebuild {
            self.w.restore_index(sql)?;
        }
        let mut report = Report::default();
        for f in &mut self.files {
            if f.report.ingested == 0 {
                self.w.discard_ingest(f.ingest_id)?;
            } else {
                ingest_event(self.w, &self.req.actor, f)?;
            }
            report.ingested += f.report.ingested;
            report.duplicates += f.report.duplicates;
            report.superseded += f.report.superseded;
            report.rejected += f.report.rejected;
            report.set_aside += u64::from(f.report.set_aside.is_some());
            if f.report.ingested > 0 {
                let (first, last) = report.ingests.unwrap_or((f.ingest_id, f.ingest_id));
                report.ingests = Some((first.min(f.ingest_id), last.max(f.ingest_id)));
            }
        }
        report.files = self.files.into_iter().map(|f| f.report).collect();
        report.stale = tally.stale;
        report.by_kind = counted(Kind::ALL.iter().map(|k| k.as_str()), tally.by_kind);
        let actions = [Action::Auto, Action::Suggest, Action::Review, Action::Block];
        report.by_decision = counted(actions.iter().map(|a| a.as_str()), tally.by_action);
        Ok(report)
    }
}

/// Records what `f` ingested on its ingest row, and as an event.
fn ingest_event(w: &Writer<'_>, actor: &str, f: &FileRun) -> Result<()> {
    let r = &f.report;
    let counts = IngestCounts {
        rows: r.rows,
        ingested: r.ingested,
        duplicates: r.duplicates,
        superseded: r.superseded,
        rejected: r.rejected,
    };
    w.finish_ingest(f.ingest_id, &r.sha256, &counts)?;
    let seq = w.append_event(NewEvent {
        actor: actor.to_string(),
        actor_kind: "human",
        action: "ingest",
        detail: serde_json::json!({
            "ingest_id": f.ingest_id,
            "file": r.file,
            "format": r.format,
            "sha256": r.sha256,
            "rows": r.rows,
            "ingested": r.ingested,
            "duplicates": r.duplicates,
            "superseded": r.superseded,
            "rejected": r.rejected,
            "proposals": crate::audit::ingest_binding(w.ingest_digest(f.ingest_id)),
        }),
        ..NewEvent::default()
    })?;
    w.set_ingest_event(f.ingest_id, seq)
}

/// The names with a count above zero, in order.
fn counted<'n>(
    names: impl Iterator<Item = &'n str>,
    counts: impl IntoIterator<Item = u64>,
) -> Vec<(String, u64)> {
    names
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| (name.to_string(), n))
        .collect()
}
