//! The last stage of a propose run: the judged rows queued, in (object, record) order, each
//! under an id given here. A record's new proposals are written together once its group is
//! complete, so the twins among them (same source and field) are settled first: the newest
//! supersedes every older one still undecided, from this run or an earlier one.

use std::sync::mpsc::{Receiver, SyncSender};

use super::check::proposal_cells;
use super::judge::{JUDGE_BATCH, Judge, Judged};
use super::proposals::Run;
use crate::error::{Error, Result};
use crate::model::{Kind, NewEvent, NewProposal, State, Verdict};
use crate::store::{Snapshot, Staged, Writer};
use crate::validate::loosely_equal;

/// The writer's page cache while it queues, in KiB. The queue grows at its right edge, in
/// order, so the writer needs few pages cached while it writes; the memory goes to the
/// snapshot and the rows in flight instead.
const QUEUE_CACHE_KIB: i64 = 12 * 1024;

/// Staged rows in flight to the judging thread, in batches.
const BATCHES_IN_FLIGHT: usize = 4;

/// What the report says about the queued rows, and the indexes to rebuild after a bulk load.
#[derive(Default)]
pub(super) struct Tally {
    /// By [`Kind::ALL`] order.
    pub by_kind: [u64; Kind::ALL.len()],
    /// By [`Action`](crate::policy::Action) order: auto, suggest, review, block.
    pub by_action: [u64; 4],
    pub stale: u64,
    pub rebuild: Vec<String>,
}

/// Where queueing stands.
struct Queue {
    /// The id the next queued proposal gets. Ids are given here, in queueing order, while the
    /// write lock keeps them ours.
    next_id: i64,
    /// The current record's new proposals, in staging order.
    group: Vec<QueuedRow>,
    /// The records with undecided proposals from before this run. A twin from this run is
    /// always in the same record's group, so the filter needs no new keys.
    open_records: RecordFilter,
    tally: Tally,
}

impl Run<'_, '_> {
    /// Judges every staged row not skipped and queues it. A run that is large next to the
    /// queue drops the proposal index by dedupe key (a hash) first, to be rebuilt after by
    /// sorting, instead of updating it a row at a time in random key order.
    pub(super) fn judge_and_queue(&mut self) -> Result<Tally> {
        let w = self.w;
        let queued_before = w.max_proposal_id()?;
        let mut q = Queue {
            next_id: queued_before + 1,
            group: Vec::new(),
            open_records: RecordFilter::new(),
            tally: Tally::default(),
        };
        let bulk = self.staged >= self.req.bulk_min_rows
            && self.staged.saturating_mul(4) >= queued_before as u64;
        if bulk {
            q.tally.rebuild.push(w.drop_dedupe_index()?);
        }
        w.for_each_open_record(|object, record| q.open_records.insert(object, record))?;
        let judge = Judge::new(
            self.req.policy,
            self.req.policy_version,
            w.now(),
            w.pauses()?,
        );
        let snapshot = w.snapshot()?;
        let cache = w.cache_size()?;
        w.set_cache_size(-QUEUE_CACHE_KIB)?;
        let queued = self.judge_beside(judge, snapshot, &mut q);
        w.set_cache_size(cache)?;
        queued?;
        self.settle(&mut q)?;
        Ok(q.tally)
    }

    /// Judging (reading records, scoring, deciding) runs on a second thread, over `snapshot`,
    /// while this one reads the sorted staged rows and queues what comes back, in order.
    fn judge_beside(&mut self, judge: Judge<'_>, snapshot: Snapshot, q: &mut Queue) -> Result<()> {
        std::thread::scope(|scope| {
            let (rows_tx, rows_rx) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT);
            let (judged_tx, judged_rx) = std::sync::mpsc::channel();
            let judging = scope.spawn(move || judge.run(&snapshot, rows_rx, judged_tx));
            let queued = self.send_and_queue(q, rows_tx, &judged_rx);
            drop(judged_rx);
            let judged = judging.join().expect("the judging thread does not panic");
            // The judging side's own error explains a stop on this side.
            judged.and(queued)
        })
    }

    /// Sends the staged rows to be judged, a batch at a time, and queues the judged rows as
    /// they come back: after each batch sent, what is judged so far, so the judged rows
    /// waiting stay few; then the rest.
    fn send_and_queue(
        &mut self,
        q: &mut Queue,
        rows: SyncSender<Vec<Staged>>,
        judged: &Receiver<Vec<Judged>>,
    ) -> Result<()> {
        let w = self.w;
        let mut batch = Vec::with_capacity(JUDGE_BATCH);
        w.for_each_staged(|s| {
            batch.push(s);
            if batch.len() < JUDGE_BATCH {
                return Ok(());
            }
            if rows
                .send(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(JUDGE_BATCH),
                ))
                .is_err()
            {
                // The judging side stopped on an error of its own, reported by the caller.
                return Err(Error::Store("judging stopped".into()));
            }
            while let Ok(done) = judged.try_recv() {
                done.into_iter().try_for_each(|j| self.queue(q, j))?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            let _ = rows.send(batch);
        }
        drop(rows);
        for done in judged {
            done.into_iter().try_for_each(|j| self.queue(q, j))?;
        }
        Ok(())
    }

    /// Queues one judged row, in the sorted order: a rejected one is rejected; a decided one
    /// joins its record's group, the previous group settled when the record changes.
    fn queue(&mut self, q: &mut Queue, judged: Judged) -> Result<()> {
        let (s, verdict) = match judged {
            Judged::Rejected(s, message) => {
                let file = self.file(s.ingest_id);
                return self.reject(file, s.p.line, message, Some(proposal_cells(&s.p)));
            }
            Judged::Decided(s, verdict) => (s, verdict),
        };
        if q.group
            .first()
            .is_some_and(|g| g.p.object != s.p.object || g.p.record != s.p.record)
        {
            self.settle(q)?;
        }
        // Once the run is bound to fail, rows are still judged, for the report, but not queued.
        if self.failing() {
            return Ok(());
        }
        let file = self.file(s.ingest_id);
        let report = &mut self.files[file].report;
        report.ingested += 1;
        let t = &mut q.tally;
        if s.p
            .expected
            .as_ref()
            .is_some_and(|e| !loosely_equal(e, &s.p.baseline))
        {
            t.stale += 1;
        }
        t.by_kind[Kind::ALL.iter().position(|k| *k == s.p.kind).expect("kind")] += 1;
        t.by_action[verdict.action as usize] += 1;
        q.group.push(QueuedRow {
            id: q.next_id,
            ingest_id: s.ingest_id,
            p: s.p,
            verdict,
            superseded_by: None,
        });
        q.next_id += 1;
        Ok(())
    }

    /// Writes the current group (see [`settle_group`]) and counts what it superseded.
    fn settle(&mut self, q: &mut Queue) -> Result<()> {
        let by = settle_group(self.w, &mut q.group, &q.open_records, &self.req.actor)?;
        for ingest_id in by {
            let file = self.file(ingest_id);
            self.files[file].report.superseded += 1;
        }
        q.group.clear();
        Ok(())
    }
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
