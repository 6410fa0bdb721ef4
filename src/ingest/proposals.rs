//! Proposal rows → validated [`NewProposal`]s → the queue. One transaction for the whole
//! command: by default one bad row anywhere means nothing is ingested; with `skip_invalid` the
//! good rows go in and the bad ones are written to the rejects file.
//!
//! Idempotency without a slow bulk path: each proposal carries an 8-byte key of (source, id), or
//! of its content when it has no id. The index on that key is small enough to stay in the page
//! cache while a million rows stream in; every hit is confirmed on the full values.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Cell, FileSummary, Input, Item, Row, read_rows};
use crate::error::{Error, Problems, Result};
use std::collections::{BTreeSet, HashMap};

use crate::model::{Kind, NewEvent, NewProposal, State, Value, Verdict, key64, source_id_key};
use crate::policy::{self, Action, Facts, Policy, Situation};
use crate::schema::{Column, Object, Schema, suggestion_suffix};
use crate::score::{self, FieldFacts, TrackRecord};
use crate::store::{
    ColumnPlan, IngestCounts, KeyRow, Pause, ReadRecords, Snapshot, Staged, Writer,
};
use crate::validate::FieldType;
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
    /// From this many new rows on (when they are also a quarter of the queue or more), the
    /// proposal indexes are rebuilt after the load instead of updated row by row.
    pub bulk_min_rows: u64,
    /// The policy in force, and its version.
    pub policy: &'a Policy,
    pub policy_version: i64,
}

const INGEST_HINT: &str = "nothing was ingested; fix the rows above, or pass --skip-invalid --rejects FILE to ingest the good rows";

/// The default for [`Options::bulk_min_rows`].
pub const BULK_MIN_ROWS: u64 = 20_000;

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
    /// New proposals by the policy's decision.
    pub by_decision: Vec<(String, u64)>,
}

/// Where an ingest is in its phases, per input file.
struct Files {
    ingest_ids: Vec<i64>,
    reports: Vec<FileReport>,
}

impl Files {
    fn index(&self, ingest_id: i64) -> usize {
        self.ingest_ids
            .iter()
            .position(|&i| i == ingest_id)
            .expect("a staged row's ingest belongs to this run")
    }
}

/// Ingests every input in the writer's transaction. Returns `Err(Error::Invalid)` (and the
/// caller's transaction rolls back) when any row is bad and `skip_invalid` is off, or when a
/// file is unreadable as a whole.
///
/// The phases, each in the order that suits SQLite rather than the file's:
/// 1. stream every file, check each row on its own (schema, values), stage what passes;
/// 2. find duplicates by the dedupe key: within the run (sorting the keys kept while staging,
///    16 bytes a row), then against the queue;
/// 3. read the staged rows back sorted by (object, record); a second thread looks each record up
///    over a snapshot (in index order, so pages are read once), scores and decides, while this
///    one queues the judged rows, in the same order;
/// 4. supersede undecided twins.
///
/// A run that is large next to the queue drops the proposal index by dedupe key (a hash) before
/// phase 3 and rebuilds it after, by sorting, instead of updating it a row at a time in random
/// key order.
pub fn ingest(w: &mut Writer<'_>, inputs: &[Input], opts: &mut Options<'_>) -> Result<Report> {
    let mut problems = Problems::default();
    let mut files = Files {
        ingest_ids: Vec::new(),
        reports: Vec::new(),
    };
    let required: Vec<&str> = if opts.source.is_some() {
        vec!["kind", "object", "record"]
    } else {
        vec!["source", "kind", "object", "record"]
    };

    // Phase 1: stream, check each row alone, stage.
    w.stage_create()?;
    let mut staged = 0u64;
    // (dedupe key, staged row) of every staged row: sorted after staging, it shows the twins.
    let mut keys: Vec<(i64, i64)> = Vec::new();
    for input in inputs {
        let name = input.display_name();
        let ingest_id = w.begin_ingest(&opts.actor, &name, input.format.as_str())?;
        let mut fr = FileReport {
            file: name.clone(),
            format: input.format.as_str(),
            ..FileReport::default()
        };
        let bytes = Arc::new(AtomicU64::new(0));
        let schema = w.schema().clone();
        let source = opts.source.as_deref();
        let required = &required;
        // Reading and checking rows (CSV or JSON parsing, validation, hashing) runs on a
        // second core while this thread stages what passes: neither waits for the other.
        let summary = std::thread::scope(|scope| -> Result<FileSummary> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Checked>>(4);
            let reader_bytes = bytes.clone();
            let reader = scope.spawn(move || {
                let mut batch = Vec::with_capacity(CHECK_BATCH);
                let summary = read_rows(input, &COLUMNS, required, reader_bytes, &mut |item| {
                    batch.push(Checked::of(&schema, item, source));
                    if batch.len() == CHECK_BATCH && tx.send(std::mem::take(&mut batch)).is_err() {
                        // The staging side stopped on an error of its own, which it reports.
                        return Err(Error::Store("ingest stopped".into()));
                    }
                    Ok(())
                });
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
                summary
            });
            for batch in rx {
                for checked in batch {
                    fr.rows += 1;
                    if fr.rows.is_multiple_of(8192) {
                        (opts.progress)(input, bytes.load(Ordering::Relaxed));
                    }
                    let (line, message, cells) = match checked {
                        Checked::Good(p) => {
                            keys.push((p.dedupe_key, w.stage(&p, ingest_id)?));
                            staged += 1;
                            continue;
                        }
                        Checked::Bad {
                            line,
                            message,
                            cells,
                        } => (line, message, cells),
                    };
                    fr.rejected += 1;
                    if let Some(rej) = opts.rejects.as_deref_mut() {
                        write_reject(rej, &name, line, &message, cells)?;
                    }
                    problems.push(&name, line, message);
                }
            }
            reader.join().expect("the reading thread does not panic")
        })?;
        (opts.progress)(input, summary.bytes);
        fr.sha256 = summary.sha256;
        if summary.fatal.is_some() {
            // A file that cannot be read to the end is never partly ingested.
            return Err(problems.into_error(summary.fatal, INGEST_HINT));
        }
        files.ingest_ids.push(ingest_id);
        files.reports.push(fr);
    }

    // Phase 2: duplicates. A row is skipped when its key was taken before it, in this run or
    // in the queue: the same proposal again, or (an error) an id reused for other content.
    let mut skip = BitSet::default();
    // Skips `row`, whose key `earlier` took: counted as a duplicate, or rejected with why.
    // A row already skipped as a twin within the run is not counted again.
    let mut skip_row = |row: &KeyRow, earlier: &KeyRow, what: &str, at: i64| -> Result<()> {
        if !skip.insert(row.id) {
            return Ok(());
        }
        let i = files.index(row.ingest_id);
        let Some(message) = duplicate_of(row, earlier, what, at) else {
            files.reports[i].duplicates += 1;
            return Ok(());
        };
        files.reports[i].rejected += 1;
        let name = files.reports[i].file.clone();
        if let Some(rej) = opts.rejects.as_deref_mut() {
            write_reject(rej, &name, row.line as u64, &message, None)?;
        }
        problems.push(&name, row.line as u64, message);
        Ok(())
    };
    keys.sort_unstable();
    for twins in keys.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
        let earlier = w.staged_key_row(twins[0].1)?;
        for &(_, sid) in &twins[1..] {
            skip_row(&w.staged_key_row(sid)?, &earlier, "line", earlier.line)?;
        }
    }
    drop(keys);
    w.staged_known(|row, stored| skip_row(&row, &stored, "proposal", stored.id))?;

    // Phase 3: look records up in (object, record) order, score, decide and queue.
    let queued_before = w.max_proposal_id()?;
    let bulk = staged >= opts.bulk_min_rows && staged.saturating_mul(4) >= queued_before as u64;
    let mut rebuild = Vec::new();
    if bulk {
        rebuild.push(w.drop_dedupe_index()?);
    }
    // The records with undecided proposals from before this run. A twin from this run is always
    // in the same record's group (rows come sorted by record), so the filter needs no new keys.
    let mut open_records = RecordFilter::new();
    w.for_each_open_record(|object, record| open_records.insert(object, record))?;
    let total_rejected = |files: &Files| files.reports.iter().map(|f| f.rejected).sum::<u64>();
    let mut failing = !opts.skip_invalid && total_rejected(&files) > 0;
    let mut by_kind = [0u64; 5];
    let mut by_action = [0u64; 4];
    let mut stale = 0u64;
    let judge = Judge::new(opts.policy, opts.policy_version, w.now(), w.pauses()?);
    // Proposal ids are given here, in queueing order, while the write lock keeps them ours: a
    // record's proposals are written once their group is complete, each twin already marked as
    // superseded by the newest.
    let mut next_id = queued_before + 1;
    // Rows arrive sorted by record, so all of a record's new proposals are queued together and
    // their twins are settled when the record changes.
    let mut group: Vec<QueuedRow> = Vec::new();
    let mut superseded_in: Vec<i64> = Vec::new();
    let mut settle = |group: &mut Vec<QueuedRow>, open_records: &RecordFilter| -> Result<()> {
        superseded_in.extend(settle_group(w, group, open_records, &opts.actor)?);
        group.clear();
        Ok(())
    };
    // Queues one judged row, in the sorted order.
    let mut queue = |judged: Judged| -> Result<()> {
        let (s, verdict) = match judged {
            Judged::Rejected(s, msg) => (s, Err(msg)),
            Judged::Decided(s, verdict) => (s, Ok(verdict)),
        };
        if group
            .first()
            .is_some_and(|g| g.p.object != s.p.object || g.p.record != s.p.record)
        {
            settle(&mut group, &open_records)?;
        }
        let i = files.index(s.ingest_id);
        let verdict = match verdict {
            Ok(v) => v,
            Err(msg) => {
                let name = files.reports[i].file.clone();
                files.reports[i].rejected += 1;
                if let Some(rej) = opts.rejects.as_deref_mut() {
                    write_reject(rej, &name, s.p.line, &msg, Some(proposal_cells(&s.p)))?;
                }
                problems.push(&name, s.p.line, msg);
                failing = !opts.skip_invalid;
                return Ok(());
            }
        };
        // Once the command is bound to fail, keep checking rows for the report but write nothing.
        if failing {
            return Ok(());
        }
        let id = next_id;
        next_id += 1;
        let fr = &mut files.reports[i];
        fr.ingested += 1;
        if s.p
            .expected
            .as_ref()
            .is_some_and(|e| !crate::validate::loosely_equal(e, &s.p.baseline))
        {
            stale += 1;
        }
        by_kind[Kind::ALL.iter().position(|k| *k == s.p.kind).expect("kind")] += 1;
        by_action[verdict.action as usize] += 1;
        group.push(QueuedRow {
            id,
            ingest_id: s.ingest_id,
            p: s.p,
            verdict,
            superseded_by: None,
        });
        Ok(())
    };
    // Judging (reading records, scoring, deciding) runs on a second core, over a snapshot of
    // the store, while this thread reads the sorted rows and queues what comes back, in order.
    let snapshot = w.snapshot()?;
    // The queue grows at its right edge, in order, so the writer needs few pages cached while
    // it writes; the memory goes to the snapshot and the rows in flight instead.
    let cache = w.cache_size()?;
    w.set_cache_size(-QUEUE_CACHE_KIB)?;
    let queued = std::thread::scope(|scope| -> Result<()> {
        let (rows_tx, rows_rx) = std::sync::mpsc::sync_channel::<Vec<Staged>>(4);
        let (judged_tx, judged_rx) = std::sync::mpsc::channel::<Vec<Judged>>();
        let judging = scope.spawn(move || judge.run(&snapshot, rows_rx, judged_tx));
        let mut batch = Vec::with_capacity(JUDGE_BATCH);
        let read = w.for_each_staged(|s| {
            if skip.contains(s.sid) {
                return Ok(());
            }
            batch.push(s);
            if batch.len() == JUDGE_BATCH {
                if rows_tx.send(std::mem::take(&mut batch)).is_err() {
                    // The judging side stopped on an error of its own, reported below.
                    return Err(Error::Store("judging stopped".into()));
                }
                batch.reserve(JUDGE_BATCH);
                // Queue what is judged so far: the judged rows waiting stay few.
                while let Ok(judged) = judged_rx.try_recv() {
                    judged.into_iter().try_for_each(&mut queue)?;
                }
            }
            Ok(())
        });
        if read.is_ok() && !batch.is_empty() {
            let _ = rows_tx.send(batch);
        }
        drop(rows_tx);
        let queued = read.and_then(|()| {
            for judged in &judged_rx {
                judged.into_iter().try_for_each(&mut queue)?;
            }
            Ok(())
        });
        drop(judged_rx);
        let judged = judging.join().expect("the judging thread does not panic");
        // The judging side's own error explains a stop on this side.
        judged.and(queued)
    });
    w.set_cache_size(cache)?;
    queued?;
    settle(&mut group, &open_records)?;
    // The staged rows are queued: their space is freed at commit, for the checkpoint to reuse.
    w.stage_drop()?;
    for ingest_id in superseded_in {
        if let Some(i) = files.ingest_ids.iter().position(|&x| x == ingest_id) {
            files.reports[i].superseded += 1;
        }
    }
    if failing || (total_rejected(&files) > 0 && !opts.skip_invalid) {
        problems.sort_by_position(
            &files
                .reports
                .iter()
                .map(|f| f.file.clone())
                .collect::<Vec<_>>(),
        );
        return Err(problems.into_error(None, INGEST_HINT));
    }
    // After a bulk load, the dropped indexes are rebuilt by sorting.
    for sql in rebuild {
        w.restore_index(&sql)?;
    }

    let mut report = Report::default();
    for (fr, ingest_id) in files.reports.iter_mut().zip(&files.ingest_ids) {
        let counts = IngestCounts {
            rows: fr.rows,
            ingested: fr.ingested,
            duplicates: fr.duplicates,
            superseded: fr.superseded,
            rejected: fr.rejected,
        };
        if fr.ingested == 0 {
            w.discard_ingest(*ingest_id)?;
        } else {
            w.finish_ingest(*ingest_id, &fr.sha256, &counts)?;
            w.append_event(NewEvent {
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
                }),
                ..NewEvent::default()
            })?;
        }
        report.ingested += fr.ingested;
        report.duplicates += fr.duplicates;
        report.superseded += fr.superseded;
        report.rejected += fr.rejected;
    }
    report.stale = stale;
    report.by_decision = [Action::Auto, Action::Suggest, Action::Review, Action::Block]
        .iter()
        .zip(by_action)
        .filter(|(_, n)| *n > 0)
        .map(|(a, n)| (a.as_str().to_string(), n))
        .collect();
    report.files = files.reports;
    report.by_kind = Kind::ALL
        .iter()
        .zip(by_kind)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.as_str().to_string(), n))
        .collect();
    Ok(report)
}

/// Why `row` may not be queued given the `earlier` row or proposal with its dedupe key, or
/// `None` when it is the same proposal again (a duplicate, skipped in silence).
fn duplicate_of(row: &KeyRow, earlier: &KeyRow, what: &str, at: i64) -> Option<String> {
    let same_id = row.source == earlier.source && row.ext_id == earlier.ext_id;
    if same_id && row.content_key == earlier.content_key {
        return None;
    }
    let earlier = match what {
        "line" => format!("on line {at} of this run"),
        _ => format!("as proposal {at}"),
    };
    Some(match (&row.ext_id, same_id) {
        (Some(id), true) => format!(
            "{}:{id} was already ingested {earlier} with different content; give the new proposal a new id",
            row.source
        ),
        _ => format!(
            "this proposal's key collides with the one ingested {earlier}; give it an id (or a different one)"
        ),
    })
}

/// A proposal queued by this run, its id given, kept until its record's group is complete.
struct QueuedRow {
    id: i64,
    ingest_id: i64,
    p: NewProposal,
    verdict: Verdict,
    /// The newer twin from this run that supersedes it, once the group is settled.
    superseded_by: Option<i64>,
}

impl QueuedRow {
    /// Still undecided (pending or suggested): only such proposals are superseded.
    fn open(&self) -> bool {
        matches!(self.verdict.state, State::Pending | State::Suggested)
    }

    fn twin_of(&self, other: &QueuedRow) -> bool {
        self.p.source == other.p.source && self.p.field == other.p.field
    }
}

/// Settles the twins among one record's new proposals and writes them: for each target (source
/// and field), the newest supersedes every older one still undecided, and so does it every
/// undecided twin from an earlier run (looked up by record, only where the filter says one may
/// exist). A twin from this run is written already superseded; the newest is written before
/// the twins that point at it. Returns the ingest of each superseding proposal.
fn settle_group(
    w: &Writer<'_>,
    group: &mut [QueuedRow],
    open_records: &RecordFilter,
    actor: &str,
) -> Result<Vec<i64>> {
    let mut by = Vec::new();
    // The newest of each target, in group order, each with the older undecided twins it
    // supersedes.
    let newest: Vec<(usize, Vec<usize>)> = (0..group.len())
        .filter(|&i| !group[i + 1..].iter().any(|n| n.twin_of(&group[i])))
        .map(|i| {
            let older = (0..i)
                .filter(|&o| group[o].twin_of(&group[i]) && group[o].open())
                .collect();
            (i, older)
        })
        .collect();
    for (i, older) in &newest {
        for &o in older {
            group[o].superseded_by = Some(group[*i].id);
            group[o].verdict.state = State::Superseded;
        }
    }
    for q in group.iter().rev() {
        w.insert_proposal(q.id, &q.p, q.ingest_id, &q.verdict, q.superseded_by)?;
    }
    let earlier = match group.first() {
        Some(g) if open_records.may_contain(&g.p.object, &g.p.record) => {
            Some(w.open_for_record(&g.p.object, &g.p.record)?)
        }
        _ => None,
    };
    for (i, older) in &newest {
        let newest = &group[*i];
        for &o in older {
            supersede_event(w, actor, (&group[o]).into(), newest.id)?;
            by.push(newest.ingest_id);
        }
        if let Some(earlier) = &earlier {
            let first_new = group[0].id;
            for old in earlier {
                let earlier_twin = old.id < first_new
                    && old.source == newest.p.source
                    && old.object == newest.p.object
                    && old.record == newest.p.record
                    && old.field == newest.p.field;
                if earlier_twin {
                    w.supersede(old.id, newest.id)?;
                    supersede_event(w, actor, old.into(), newest.id)?;
                    by.push(newest.ingest_id);
                }
            }
        }
    }
    Ok(by)
}

/// What a superseded proposal was about, for its event.
struct Twin<'a> {
    id: i64,
    source: &'a str,
    object: &'a str,
    record: &'a str,
    field: &'a Option<String>,
}

impl<'a> From<&'a QueuedRow> for Twin<'a> {
    fn from(q: &'a QueuedRow) -> Self {
        Twin {
            id: q.id,
            source: &q.p.source,
            object: &q.p.object,
            record: &q.p.record,
            field: &q.p.field,
        }
    }
}

impl<'a> From<&'a crate::store::OpenTarget> for Twin<'a> {
    fn from(o: &'a crate::store::OpenTarget) -> Self {
        Twin {
            id: o.id,
            source: &o.source,
            object: &o.object,
            record: &o.record,
            field: &o.field,
        }
    }
}

/// The event of a proposal superseded by a newer twin.
fn supersede_event(w: &Writer<'_>, actor: &str, old: Twin<'_>, by: i64) -> Result<()> {
    w.append_event(NewEvent {
        actor: actor.to_string(),
        actor_kind: "system",
        action: "supersede",
        proposal_id: Some(old.id),
        object: Some(old.object.to_string()),
        record: Some(old.record.to_string()),
        field: old.field.clone(),
        source: Some(old.source.to_string()),
        detail: serde_json::json!({ "superseded_by": by }),
        ..NewEvent::default()
    })?;
    Ok(())
}

/// One bit per staged row.
#[derive(Default)]
struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    /// Whether `i` was not in the set before.
    fn insert(&mut self, i: i64) -> bool {
        let (w, b) = (i as usize / 64, i as usize % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        let new = self.words[w] & (1 << b) == 0;
        self.words[w] |= 1 << b;
        new
    }

    fn contains(&self, i: i64) -> bool {
        let (w, b) = (i as usize / 64, i as usize % 64);
        self.words.get(w).is_some_and(|x| x & (1 << b) != 0)
    }
}

/// A set of records with no false negatives: only a record it may hold is looked up in the
/// store, so the supersede check costs a lookup only where an undecided twin can exist.
struct RecordFilter {
    bits: Vec<u64>,
}

impl RecordFilter {
    /// 2^24 bits (2 MiB): about one false positive in eight with two million records.
    const BITS: u64 = 1 << 24;

    fn new() -> Self {
        RecordFilter {
            bits: vec![0; (Self::BITS / 64) as usize],
        }
    }

    fn slot(object: &str, record: &str) -> (usize, u64) {
        use std::hash::{Hash, Hasher};
        // A fixed hasher: the filter lives for one run, and only its false positives depend on it.
        let mut h = std::hash::DefaultHasher::new();
        (object, record).hash(&mut h);
        let b = h.finish() % Self::BITS;
        ((b / 64) as usize, 1 << (b % 64))
    }

    fn insert(&mut self, object: &str, record: &str) {
        let (i, m) = Self::slot(object, record);
        self.bits[i] |= m;
    }

    fn may_contain(&self, object: &str, record: &str) -> bool {
        let (i, m) = Self::slot(object, record);
        self.bits[i] & m != 0
    }
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

/// Every check of SPEC §3 on one row that needs no lookup: against the live schema, and of each
/// value for its field. The record lookups follow in [`resolve`].
fn check_row(
    schema: &Schema,
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
    };
    if kind == Kind::Merge {
        check_merge(obj, row, &mut p)?;
    } else {
        check_field_write(obj, row, &mut p)?;
    }
    // Straight into a buffer (`to_string` would go through `Display`): every row is keyed.
    let json = |v: &Value| serde_json::to_string(&v.to_json()).expect("JSON serializes");
    let json_or_empty = |v: &Option<Value>| v.as_ref().map(json).unwrap_or_default();
    p.content_key = key64(&[
        &p.source,
        p.ext_id.as_deref().unwrap_or(""),
        kind.as_str(),
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
    ]);
    p.dedupe_key = match &p.ext_id {
        Some(id) => source_id_key(&p.source, id),
        None => p.content_key,
    };
    Ok(p)
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

impl Judge<'_> {
    /// The checks that need the store: the records exist, a foreign-key value names a real
    /// parent. Fills in the value the record holds now (the baseline staleness is judged against
    /// later) and returns the records involved as they are now (for a merge, both, whole; for a
    /// field write, the columns the decision reads).
    fn resolve(&mut self, w: &Snapshot, p: &mut NewProposal) -> Result<Vec<Vec<Value>>, String> {
        let obj = w
            .schema()
            .object(&p.object)
            .expect("staged objects were checked");
        let missing = |id: &str| format!("record {}/{} does not exist", obj.name, short(id));
        if let Some(into) = &p.merge_into {
            let row = |id: &str| -> Result<Vec<Value>, String> {
                w.record_row(obj, id)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| missing(id))
            };
            let dup = row(&p.record)?;
            let survivor = row(into)?;
            p.baseline_fp = Some(crate::model::merge_fingerprint(&dup, &survivor));
            return Ok(vec![dup, survivor]);
        }
        let field = p.field.as_deref().expect("a field write names its field");
        let at = obj
            .columns
            .iter()
            .position(|c| c.name == field)
            .expect("staged fields were checked");
        let plan = self.field_plan(obj, at);
        let record = w
            .read_columns(plan, &p.record)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| missing(&p.record))?;
        p.baseline = record[at].clone();
        if let Some(parent) = w
            .missing_parent(&obj.columns[at], &p.value)
            .map_err(|e| e.to_string())?
        {
            return Err(format!(
                "{field}: \"{}\" does not exist in {}",
                short(&p.value.display()),
                parent.name
            ));
        }
        Ok(vec![record])
    }

    /// The columns a write of `obj.columns[at]` needs read: the field, the columns the policy's
    /// record conditions test, and for an email the foreign keys that lead to a company domain.
    fn field_plan(&mut self, obj: &Object, at: usize) -> &ColumnPlan {
        let found = self
            .plans
            .iter()
            .position(|(o, f, _)| *o == obj.name && *f == at);
        let i = match found {
            Some(i) => i,
            None => {
                let mut cols = vec![at];
                for (i, c) in obj.columns.iter().enumerate() {
                    let wanted = self.columns.contains(&c.name)
                        || (FieldType::of(&obj.columns[at]) == FieldType::Email
                            && c.foreign_key.is_some());
                    if wanted && !cols.contains(&i) {
                        cols.push(i);
                    }
                }
                let plan = ColumnPlan::new(obj, &cols);
                self.plans.push((obj.name.clone(), at, plan));
                self.plans.len() - 1
            }
        };
        &self.plans[i].2
    }

    /// The domain of the company a record belongs to: the `domain` of the parent its foreign
    /// key points at, for the email consistency signal.
    fn company_domain(
        &mut self,
        w: &Snapshot,
        obj: &Object,
        row: &[Value],
    ) -> Result<Option<String>> {
        for (i, c) in obj.columns.iter().enumerate() {
            let Some(fk) = &c.foreign_key else { continue };
            if row[i].is_empty() {
                continue;
            }
            let Some(parent) = w.schema().object(&fk.table) else {
                continue;
            };
            let Some(at) = parent.columns.iter().position(|x| x.name == "domain") else {
                continue;
            };
            let found = self
                .plans
                .iter()
                .position(|(o, f, _)| *o == parent.name && *f == at);
            let plan = match found {
                Some(j) => &self.plans[j].2,
                None => {
                    let plan = ColumnPlan::new(parent, &[at]);
                    self.plans.push((parent.name.clone(), at, plan));
                    &self.plans[self.plans.len() - 1].2
                }
            };
            if let Some(prow) = w.read_columns(plan, &row[i].display())?
                && let Value::Text(d) = &prow[at]
            {
                return Ok(Some(d.clone()));
            }
        }
        Ok(None)
    }
}

/// A staged row, judged: rejected with why, or scored and decided.
enum Judged {
    Rejected(Staged, String),
    Decided(Staged, Verdict),
}

/// Rows per message between the thread that reads and queues and the one that judges.
const JUDGE_BATCH: usize = 1024;

/// The writer's page cache while it queues, in KiB.
const QUEUE_CACHE_KIB: i64 = 12 * 1024;

impl Judge<'_> {
    /// Judges the rows that come in, in order (the policy's limits count auto decisions as they
    /// are made), and sends each batch back judged. Stops early when the other side hangs up.
    fn run(
        mut self,
        snapshot: &Snapshot,
        rows: std::sync::mpsc::Receiver<Vec<Staged>>,
        judged: std::sync::mpsc::Sender<Vec<Judged>>,
    ) -> Result<()> {
        for batch in rows {
            let mut out = Vec::with_capacity(batch.len());
            for mut s in batch {
                out.push(match self.resolve(snapshot, &mut s.p) {
                    Ok(records) => {
                        let verdict = self.verdict(snapshot, &s.p, &records)?;
                        Judged::Decided(s, verdict)
                    }
                    Err(msg) => Judged::Rejected(s, msg),
                });
            }
            if judged.send(out).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Scores and decides each proposal of a run under the policy in force, keeping count of the
/// auto decisions each source has had in this run and today, for the policy's limits.
struct Judge<'p> {
    policy: &'p Policy,
    version: i64,
    /// The columns the policy's record conditions read.
    columns: BTreeSet<String>,
    auto_in_run: HashMap<String, u64>,
    auto_today: HashMap<String, u64>,
    day_start: String,
    /// Column plans by (object, column): a few per run.
    plans: Vec<(String, usize, ColumnPlan)>,
    /// What is paused: nothing from it is let through on its own.
    pauses: Vec<Pause>,
    /// Track records by (source, kind, field), read once per run.
    tracks: HashMap<(String, Kind, Option<String>), TrackRecord>,
}

impl<'p> Judge<'p> {
    fn new(policy: &'p Policy, version: i64, now: &str, pauses: Vec<Pause>) -> Self {
        let columns = policy
            .rules
            .iter()
            .flat_map(|r| {
                r.record_eq
                    .iter()
                    .map(|(c, _)| c)
                    .chain(r.record_min.iter().map(|(c, _)| c))
                    .chain(r.record_max.iter().map(|(c, _)| c))
            })
            .cloned()
            .collect();
        Judge {
            policy,
            version,
            columns,
            auto_in_run: HashMap::new(),
            auto_today: HashMap::new(),
            day_start: format!("{}T00:00:00.000Z", &now[..10.min(now.len())]),
            plans: Vec::new(),
            pauses,
            tracks: HashMap::new(),
        }
    }

    fn verdict(&mut self, w: &Snapshot, p: &NewProposal, rows: &[Vec<Value>]) -> Result<Verdict> {
        let obj = w.schema().object(&p.object).expect("checked object");
        let key = (p.source.clone(), p.kind, p.field.clone());
        let track = match self.tracks.get(&key) {
            Some(t) => *t,
            None => {
                let (approved, rejected) =
                    w.track_record(&p.source, p.kind.as_str(), p.field.as_deref())?;
                let t = TrackRecord { approved, rejected };
                self.tracks.insert(key, t);
                t
            }
        };
        let score = match &p.field {
            None => score::score_merge(
                p.stated_confidence,
                track,
                &crate::similarity::similarity(&obj.columns, &rows[0], &rows[1]),
            ),
            Some(field) => {
                let column = obj.column(field).expect("checked field");
                let field_type = FieldType::of(column);
                let company_domain = if field_type == FieldType::Email {
                    self.company_domain(w, obj, &rows[0])?
                } else {
                    None
                };
                score::score_field(&FieldFacts {
                    stated: p.stated_confidence,
                    field_type,
                    value: &p.value,
                    current: &p.baseline,
                    company_domain: company_domain.as_deref(),
                    track,
                })
            }
        };
        let records: Vec<Vec<(&str, &Value)>> = rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .filter_map(|c| {
                        obj.columns
                            .iter()
                            .position(|x| &x.name == c)
                            .map(|i| (c.as_str(), &row[i]))
                    })
                    .collect()
            })
            .collect();
        let record_refs: Vec<&[(&str, &Value)]> = records.iter().map(Vec::as_slice).collect();
        if !self.auto_today.contains_key(&p.source) {
            let n = w.auto_decisions_since(&p.source, &self.day_start)?;
            self.auto_today.insert(p.source.clone(), n);
        }
        let situation = Situation {
            store_paused: self.pauses.iter().any(|p| p.source.is_none()),
            source_paused: self
                .pauses
                .iter()
                .any(|x| x.source.as_deref() == Some(p.source.as_str())),
            auto_in_run: self.auto_in_run.get(&p.source).copied().unwrap_or(0),
            auto_today: self.auto_today[&p.source],
        };
        let decision = policy::decide(
            self.policy,
            &Facts {
                kind: p.kind,
                source: &p.source,
                object: &p.object,
                field: p.field.as_deref(),
                value: &p.value,
                current: &p.baseline,
                trigger: p.trigger.as_deref(),
                confidence: score.value,
                records: &record_refs,
            },
            &situation,
        );
        if decision.action == Action::Auto {
            *self.auto_in_run.entry(p.source.clone()).or_default() += 1;
            *self.auto_today.entry(p.source.clone()).or_default() += 1;
        }
        Ok(Verdict {
            state: match decision.action {
                Action::Auto => State::Approved,
                Action::Suggest => State::Suggested,
                Action::Review => State::Pending,
                Action::Block => State::Blocked,
            },
            action: decision.action,
            confidence: score.value,
            signals: serde_json::to_string(&score.signals).expect("signals serialize"),
            decision: serde_json::to_string(&decision).expect("decisions serialize"),
            policy_version: self.version,
        })
    }
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
    p.expected = c[EXPECTED].text().filter(|s| !s.is_empty()).map(|s| {
        validate::value_for(column, Some(s)).unwrap_or_else(|_| Value::Text(s.to_string()))
    });
    p.field = Some(column.name.clone());
    p.value = value;
    Ok(())
}

fn write_reject(
    w: &mut csv::Writer<std::fs::File>,
    file: &str,
    line: u64,
    message: &str,
    cells: Option<Vec<String>>,
) -> Result<()> {
    let mut rec: Vec<String> = vec![file.to_string(), line.to_string(), message.to_string()];
    rec.extend(cells.unwrap_or_else(|| vec![String::new(); COLUMNS.len()]));
    w.write_record(&rec)
        .map_err(|e| Error::io("rejects file", std::io::Error::other(e.to_string())))
}

/// Rows are handed from the reading thread to the staging one this many at a time.
const CHECK_BATCH: usize = 1024;

/// A row as the reading thread leaves it: a proposal that passed every check needing no
/// lookup, or why it did not (with its cells, for the rejects file). Nearly every row is the
/// large variant, so boxing it would only add an allocation per row.
#[allow(clippy::large_enum_variant)]
enum Checked {
    Good(NewProposal),
    Bad {
        line: u64,
        message: String,
        cells: Option<Vec<String>>,
    },
}

impl Checked {
    fn of(schema: &Schema, item: Item, source: Option<&str>) -> Checked {
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
        .map(|c| c.text().unwrap_or_default().to_string())
        .collect()
}

/// A staged proposal's cells, in `COLUMNS` order, for the rejects file.
fn proposal_cells(p: &NewProposal) -> Vec<String> {
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
    ]
}

/// The header of a rejects file.
pub fn rejects_header() -> Vec<&'static str> {
    let mut h = vec!["file", "line", "error"];
    h.extend(COLUMNS);
    h
}
