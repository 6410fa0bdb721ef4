//! A whole apply or revert command: which transactions it takes, and what it reports.
//!
//! A plain apply, and the revert of a large run that can be undone as a whole, go a chunk per
//! transaction: the store is locked one chunk at a time, so a reviewer's decisions get in
//! between, the write-ahead log never holds the whole run, and a crash loses at most the chunk
//! in flight. Ids are read a chunk at a time (by id, after the last one taken), so memory does
//! not grow with the queue or the run. A dry run, and an apply that makes or follows a plan,
//! are one transaction: the plan describes, and is checked against, one moment of the store.
//! Either way a run applies its field writes first, then its merges: a merge is judged by the
//! records its approver saw, with its own run's changes to them allowed for.

use super::one::{Judge, RunState, apply_ids};
use super::revert::{RevertSummary, Reverting, Undoing, revert_chunk};
use super::{Item, Options, Plan, Report};
use crate::error::{Error, Result};
use crate::policy::Policy;
use crate::store::{Store, Writer};

/// How many proposals or changes one transaction of a run takes by default:
/// `CRMGATE_APPLY_CHUNK`, else ten thousand.
pub fn chunk_size() -> usize {
    std::env::var("CRMGATE_APPLY_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10_000)
}

/// How many ids are read at a time within one transaction.
const IDS_AT_ONCE: usize = 10_000;

/// Where a run reports how far it got. Told only of what has committed.
pub trait Progress {
    /// Whether anyone is watching: the total costs a pass over the queue, made only then.
    fn shown(&self) -> bool {
        false
    }
    /// Whether [`Progress::items`] is to be told of every item, not only of the first ones a
    /// report keeps: a run of one transaction (a dry run) then keeps them all until it ends.
    fn wants_items(&self) -> bool {
        false
    }
    fn start(&mut self, _total: u64) {}
    fn advance(&mut self, _done: u64) {}
    /// What became of each proposal of a chunk, once the chunk committed (a run of one
    /// transaction: once it ended). The caller streams them; the report keeps only the first.
    fn items(&mut self, _items: &[Item]) {}
    /// What one transaction of a revert undid and found undone already, once it committed:
    /// every item when [`Progress::wants_items`], else the first.
    fn reverted(&mut self, _part: &RevertSummary) {}
    /// Called once, however the run ended, before its outcome is returned.
    fn finish(&mut self) {}
}

/// Nobody is watching.
pub struct NoProgress;

impl Progress for NoProgress {}

/// An apply command.
pub struct ApplyRequest<'a> {
    pub policy: &'a Policy,
    pub version: i64,
    pub actor: &'a str,
    pub opts: Options,
    /// Apply exactly this saved plan, refused whole if anything in it changed since.
    pub follow: Option<Plan>,
    /// Keep every item, and return the plan of what was (or would be) applied.
    pub make_plan: bool,
    /// Go through every check and write, then roll it all back.
    pub dry_run: bool,
    /// The time each transaction records.
    pub clock: fn() -> String,
    /// How many proposals one transaction takes: see [`chunk_size`].
    pub chunk: usize,
}

/// What an apply did.
pub struct Applied {
    pub report: Report,
    /// The plan of the run, when asked for.
    pub plan: Option<Plan>,
    /// What stopped a chunked run after some chunks committed: those stay, each proposal whole.
    pub stopped: Option<Error>,
}

impl Applied {
    /// A run that wrote nothing: none was needed, or `stopped` stopped it before it began.
    pub fn nothing(stopped: Option<Error>) -> Applied {
        Applied {
            report: Report::new(false),
            plan: None,
            stopped,
        }
    }
}

/// Runs an apply command. An error before anything committed is returned as it is: nothing
/// changed. What committed with conflicts, failures or blocks is then alerted, an alert of
/// each kind for the run.
pub fn run(
    store: &mut Store,
    req: &ApplyRequest<'_>,
    progress: &mut dyn Progress,
) -> Result<Applied> {
    let applied = run_apply(store, req, progress)?;
    if !req.dry_run {
        alert_exceptions(store, req, &applied.report);
    }
    Ok(applied)
}

/// The items of an apply's report that alerts name, at most.
const ALERT_IDS: usize = 100;

/// A `conflict`, `failed` and `blocked` alert for the run, each with its count, when it has any.
fn alert_exceptions(store: &mut Store, req: &ApplyRequest<'_>, report: &Report) {
    use super::Ending;
    use crate::alerts::{Alert, AlertKind};
    let now = (req.clock)();
    let kinds = [
        (Ending::Conflict, AlertKind::Conflict),
        (Ending::Failed, AlertKind::Failed),
        (Ending::Blocked, AlertKind::Blocked),
    ];
    let alerts: Vec<Alert> = kinds
        .into_iter()
        .filter(|(ending, _)| report.count(*ending) > 0)
        .map(|(ending, kind)| {
            let ids: Vec<i64> = (report.items.iter())
                .filter(|i| i.result == ending)
                .map(|i| i.proposal)
                .take(ALERT_IDS)
                .collect();
            let detail = serde_json::json!({
                "count": report.count(ending),
                "at": "apply",
                "run": report.run,
                "proposals": ids,
            });
            Alert::new(kind, &now, detail).about_source(req.opts.source.as_deref())
        })
        .collect();
    if !alerts.is_empty() {
        crate::alerts::send(store, req.policy, &alerts);
    }
}

/// [`run`], before its alerts.
fn run_apply(
    store: &mut Store,
    req: &ApplyRequest<'_>,
    progress: &mut dyn Progress,
) -> Result<Applied> {
    let judge = Judge {
        policy: req.policy,
        version: req.version,
        actor: req.actor,
    };
    if req.dry_run || req.follow.is_some() || req.make_plan {
        let keep_all = req.make_plan || progress.wants_items();
        let whole = |w: &mut Writer<'_>| apply_whole(w, judge, req, keep_all);
        let (report, plan) = if req.dry_run {
            store.write_and_roll_back(&(req.clock)(), whole)?
        } else {
            store.write(&(req.clock)(), whole)?
        };
        let plan = req.make_plan.then_some(plan);
        progress.items(&report.items);
        return Ok(Applied {
            report,
            plan,
            stopped: None,
        });
    }
    if progress.shown() {
        let queued = store.count_approved(req.opts.source.as_deref())?;
        progress.start(req.opts.limit.map_or(queued, |l| queued.min(l as u64)));
    }
    let applied = apply_in_chunks(store, judge, req, progress);
    progress.finish();
    applied
}

/// The apply run in one transaction, and its plan; `keep_all` keeps every item in the report.
fn apply_whole(
    w: &Writer<'_>,
    judge: Judge<'_>,
    req: &ApplyRequest<'_>,
    keep_all: bool,
) -> Result<(Report, Plan)> {
    if let Some(plan) = &req.follow {
        if let Some(why) = plan.mismatch(w)? {
            return Err(Error::Refused {
                message: format!(
                    "the plan was not applied: {}; it was edited, or made on another store",
                    crate::ui::safe(&why)
                ),
                hint: Some(
                    "make the plan again with `crmgate apply --dry-run --plan-out FILE`, review it, then `crmgate apply --plan FILE`".into(),
                ),
            });
        }
        let changed = plan.changes_since(w)?;
        if !changed.is_empty() {
            let lines: Vec<String> = changed
                .iter()
                .map(|c| crate::ui::safe(c).into_owned())
                .collect();
            return Err(Error::Refused {
                message: format!(
                    "the plan was not applied; it changed since it was made:\n{}",
                    lines.join("\n")
                ),
                hint: Some("make a new plan with `crmgate apply --dry-run --plan-out FILE`".into()),
            });
        }
    }
    let mut report = Report::new(keep_all);
    let mut state = RunState::default();
    let mut left = req.opts.limit.unwrap_or(usize::MAX);
    for merges in [false, true] {
        state.merges = merges;
        if let Some(only) = &req.opts.only {
            let mut ids = only.clone();
            ids.sort_unstable();
            ids.dedup();
            apply_ids(w, judge, &ids, &mut state, &mut report)?;
            continue;
        }
        let mut after = 0;
        while left > 0 {
            let of = (req.opts.source.as_deref(), req.opts.ingests);
            let ids = w.approved_ids_after(of, merges, after, left.min(IDS_AT_ONCE))?;
            let Some(&last) = ids.last() else { break };
            apply_ids(w, judge, &ids, &mut state, &mut report)?;
            (after, left) = (last, left - ids.len());
        }
    }
    let plan = Plan::of(&report, w)?;
    Ok((report, plan))
}

/// The queue a chunk per transaction, each chunk's ids read in its own transaction. Pauses
/// are read again in every chunk; a proposal left approved (paused) is not taken twice.
fn apply_in_chunks(
    store: &mut Store,
    judge: Judge<'_>,
    req: &ApplyRequest<'_>,
    progress: &mut dyn Progress,
) -> Result<Applied> {
    let of = (req.opts.source.as_deref(), req.opts.ingests);
    let mut report = Report::new(false);
    let mut state = RunState::default();
    let (mut after, mut left) = (0, req.opts.limit.unwrap_or(usize::MAX));
    let mut committed = false;
    let mut stopped = None;
    while left > 0 {
        let chunk = |w: &mut Writer<'_>| {
            let n = left.min(req.chunk.max(1));
            let ids = w.approved_ids_after(of, state.merges, after, n)?;
            // A chunk's report keeps all its items, for the caller: at most a chunk of them.
            let mut part = Report::new(true);
            apply_ids(w, judge, &ids, &mut state, &mut part)?;
            Ok((ids.len(), ids.last().copied(), part))
        };
        match store.write(&(req.clock)(), chunk) {
            // The field writes are done: the merges follow, from the start of the queue.
            Ok((_, None, _)) if !state.merges => (state.merges, after) = (true, 0),
            Ok((_, None, _)) => break,
            Ok((n, Some(last), part)) => {
                (after, left, committed) = (last, left - n, true);
                progress.items(&part.items);
                report.absorb(part);
                progress.advance(n as u64);
            }
            Err(e) if !committed => return Err(e),
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    Ok(Applied {
        report,
        plan: None,
        stopped,
    })
}

/// What a revert undoes.
#[derive(Debug, Clone, Copy)]
pub enum RevertTarget {
    Change(i64),
    /// Every change of the run, newest first.
    Run(i64),
}

/// A revert command.
pub struct RevertRequest<'a> {
    pub target: RevertTarget,
    /// The policy in force: with `[roles]` set, it says who may undo what.
    pub policy: &'a Policy,
    /// Undo even where the record moved on since.
    pub force: bool,
    pub actor: &'a str,
    /// The time each transaction records.
    pub clock: fn() -> String,
    /// How many changes one transaction takes, when the run can go in chunks.
    pub chunk: usize,
}

/// What a revert did.
pub struct RevertedRun {
    /// The revert run, which can itself be reverted; `None` when nothing was left to undo.
    pub run: Option<i64>,
    /// What was undone, and what was found undone already.
    pub done: RevertSummary,
    /// How many changes there were to undo.
    pub total: usize,
    /// What stopped a chunked revert after some chunks committed: what was undone stays.
    pub stopped: Option<Error>,
    /// The sources the revert paused, each with the circuit breaker's reason.
    pub paused: Vec<(String, String)>,
}

impl RevertRequest<'_> {
    /// How the changes are undone, and the command to name in a refusal.
    fn undoing(&self) -> Undoing<'_> {
        let (skip_undone, command) = match self.target {
            RevertTarget::Change(c) => (false, format!("crmgate revert {c}")),
            RevertTarget::Run(r) => (true, format!("crmgate revert --run {r}")),
        };
        Undoing {
            actor: self.actor,
            force: self.force,
            skip_undone,
            command,
        }
    }
}

/// Runs a revert command. A change or a run is undone in one transaction, refused whole if
/// any change cannot be undone; a run larger than a chunk that can be undone as a whole (the
/// check comes first, in the first chunk's transaction) goes a chunk per transaction. A run's
/// changes already undone are skipped and reported: after a crash, the same command finishes.
pub fn run_revert(
    store: &mut Store,
    req: &RevertRequest<'_>,
    progress: &mut dyn Progress,
) -> Result<RevertedRun> {
    let mut reverted = revert_target(store, req, progress)?;
    if let Some(run) = reverted.run {
        match breakers_after(store, req, run) {
            Ok(paused) => reverted.paused = paused,
            Err(e) => reverted.stopped = reverted.stopped.or(Some(e)),
        }
        let now = (req.clock)();
        crate::admin::pauses::alert_breakers(store, req.policy, &now, &reverted.paused);
    }
    Ok(reverted)
}

/// Runs the circuit breaker, in a transaction of its own once the revert committed, for every
/// source whose changes revert run `run` undid: a revert counts as a rejection of what its
/// source proposed, so a source it pushes over the limit is paused at once.
fn breakers_after(
    store: &mut Store,
    req: &RevertRequest<'_>,
    run: i64,
) -> Result<Vec<(String, String)>> {
    store.write(&(req.clock)(), |w| {
        let mut paused = Vec::new();
        for source in w.run_sources(run)? {
            if let Some(reason) = crate::admin::pauses::circuit_breaker(w, req.policy, &source)? {
                paused.push((source, reason));
            }
        }
        Ok(paused)
    })
}

/// The revert itself: a change, or a run.
fn revert_target(
    store: &mut Store,
    req: &RevertRequest<'_>,
    progress: &mut dyn Progress,
) -> Result<RevertedRun> {
    let of = match req.target {
        RevertTarget::Change(c) => {
            store.change(c)?.ok_or_else(|| Error::NotFound {
                what: "change",
                id: c.to_string(),
            })?;
            let (run, done) = store.write(&(req.clock)(), |w| {
                super::may::may_revert(w, req.policy, req.actor, req.target)?;
                revert_chunk(w, req.undoing(), &[c], None)
            })?;
            progress.reverted(&done);
            return Ok(RevertedRun {
                run,
                done,
                total: 1,
                stopped: None,
                paused: Vec::new(),
            });
        }
        RevertTarget::Run(of) => of,
    };
    let total = store.run_change_count(of)?;
    if total == 0 {
        return Err(Error::NotFound {
            what: "run with changes",
            id: of.to_string(),
        });
    }
    if progress.shown() {
        progress.start(total as u64);
    }
    let reverted = revert_run(store, req, of, total, progress);
    progress.finish();
    reverted
}

/// Reverts run `of`: in chunks if it passes the check, else whole, in the first transaction.
fn revert_run(
    store: &mut Store,
    req: &RevertRequest<'_>,
    of: i64,
    total: usize,
    progress: &mut dyn Progress,
) -> Result<RevertedRun> {
    let chunk = req.chunk.max(1);
    let first = |w: &mut Writer<'_>| {
        super::may::may_revert(w, req.policy, req.actor, req.target)?;
        let chunked = total > chunk && w.run_revertible_in_chunks(of, req.force)?;
        let mut reverting = Reverting::begin(req.undoing(), None, progress.wants_items());
        let limit = if chunked { chunk } else { usize::MAX };
        let last = undo_before(w, &mut reverting, of, None, limit)?;
        let (run, part) = reverting.finish(true)?;
        Ok((chunked, run, part, last))
    };
    let (chunked, mut run, part, before) = store.write(&(req.clock)(), first)?;
    progress.advance((part.count + part.skipped) as u64);
    progress.reverted(&part);
    let mut done = RevertSummary::default();
    done.absorb(part);
    let stopped = match before {
        Some(before) if chunked => {
            revert_rest(store, req, (of, &mut run), before, &mut done, progress)
        }
        _ => None,
    };
    Ok(RevertedRun {
        run,
        done,
        total,
        stopped,
        paused: Vec::new(),
    })
}

/// The chunks of run `of` after the first, older than change `before`, as part of revert
/// run `run` (begun by the first change undone); what stopped them part way, if anything did.
fn revert_rest(
    store: &mut Store,
    req: &RevertRequest<'_>,
    (of, run): (i64, &mut Option<i64>),
    mut before: i64,
    done: &mut RevertSummary,
    progress: &mut dyn Progress,
) -> Option<Error> {
    let keep_all = progress.wants_items();
    loop {
        let next = |w: &mut Writer<'_>| {
            let mut reverting = Reverting::begin(req.undoing(), *run, keep_all);
            let last = undo_before(w, &mut reverting, of, Some(before), req.chunk.max(1))?;
            let (run, part) = reverting.finish(false)?;
            Ok((run, part, last))
        };
        match store.write(&(req.clock)(), next) {
            Ok((_, _, None)) => return None,
            Ok((now, part, Some(last))) => {
                progress.advance((part.count + part.skipped) as u64);
                progress.reverted(&part);
                done.absorb(part);
                (*run, before) = (now, last);
            }
            Err(e) => return Some(e),
        }
    }
}

/// Undoes up to `limit` changes of run `of` older than `before`, newest first, reading their
/// ids a batch at a time; returns the last (oldest) one taken, `None` if none was left.
fn undo_before(
    w: &Writer<'_>,
    reverting: &mut Reverting<'_>,
    of: i64,
    before: Option<i64>,
    limit: usize,
) -> Result<Option<i64>> {
    let mut before = before.unwrap_or(i64::MAX);
    let (mut taken, mut last) = (0, None);
    while taken < limit {
        let ids = w.run_change_ids_before(of, before, (limit - taken).min(IDS_AT_ONCE))?;
        let Some(&oldest) = ids.last() else { break };
        reverting.undo(w, &ids)?;
        (before, last, taken) = (oldest, Some(oldest), taken + ids.len());
    }
    Ok(last)
}
