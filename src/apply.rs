//! Apply and revert: the only code that changes CRM records. Every write is re-checked against
//! the record as it is now, read back, and recorded as a change with the values before and after,
//! in the same transaction as its audit event; a revert is a change too, so it can be reverted.

use crate::error::Result;
use crate::model::{NewEvent, Proposal, State, Value};
use crate::policy::{self, Action, Facts, Policy, Situation};
use crate::store::Writer;

mod read_ahead;
pub use read_ahead::{Ahead, ReadAhead, Written};

/// What happened to one proposal in an apply run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    pub proposal: i64,
    pub record: String,
    pub field: Option<String>,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    /// applied, conflict, blocked, held, failed, paused or skipped.
    pub result: &'static str,
    pub why: Option<String>,
    pub change: Option<i64>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub run: Option<i64>,
    /// The first items (every one when a plan is being saved): a million-change run must not
    /// hold a million items.
    pub items: Vec<Item>,
    /// How many proposals ended each way.
    pub counts: std::collections::BTreeMap<&'static str, usize>,
    #[serde(skip)]
    keep_all: bool,
}

/// Items kept for the report when not saving a plan.
const KEEP_ITEMS: usize = 1000;

impl Report {
    /// Counts one proposal's outcome; `item` is built only when the report keeps it.
    fn push(&mut self, result: &'static str, item: impl FnOnce() -> Item) {
        *self.counts.entry(result).or_default() += 1;
        if self.keep_all || self.items.len() < KEEP_ITEMS {
            self.items.push(item());
        }
    }

    /// Adds what a later chunk of the same run did.
    pub fn absorb(&mut self, chunk: Report) {
        for (result, n) in chunk.counts {
            *self.counts.entry(result).or_default() += n;
        }
        let room = if self.keep_all {
            usize::MAX
        } else {
            KEEP_ITEMS.saturating_sub(self.items.len())
        };
        self.items.extend(chunk.items.into_iter().take(room));
        self.run = chunk.run.or(self.run);
    }

    pub fn count(&self, result: &str) -> usize {
        self.counts.get(result).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// Anything approved that was not applied.
    pub fn exceptions(&self) -> usize {
        self.total() - self.count("applied")
    }
}

pub struct Options {
    pub source: Option<String>,
    pub limit: Option<usize>,
    /// Apply only these proposals (a saved plan).
    pub only: Option<Vec<i64>>,
    /// Keep every item in the report (to save a plan of the run).
    pub keep_all: bool,
}

/// Approved proposals to apply, oldest first, as `opts` narrows them.
pub fn queue(w: &Writer<'_>, opts: &Options) -> Result<Vec<i64>> {
    let mut ids = w.approved_ids(opts.source.as_deref())?;
    if let Some(only) = &opts.only {
        ids.retain(|id| only.contains(id));
    }
    if let Some(l) = opts.limit {
        ids.truncate(l);
    }
    Ok(ids)
}

/// What a run carries from one chunk (one transaction) to the next.
#[derive(Debug, Default)]
pub struct RunState {
    run: Option<i64>,
    /// Proposals of each source applied on the policy's word alone, for `max_auto_per_run`.
    auto_in_run: std::collections::HashMap<String, u64>,
}

/// Applies approved proposals, oldest first, in the caller's one transaction.
pub fn apply(
    w: &Writer<'_>,
    policy: &Policy,
    version: i64,
    actor: &str,
    opts: &Options,
) -> Result<Report> {
    let mut report = Report {
        keep_all: opts.keep_all,
        ..Report::default()
    };
    let ids = queue(w, opts)?;
    apply_ids(
        w,
        policy,
        version,
        actor,
        &ids,
        Ahead::none(),
        &mut RunState::default(),
        &mut report,
    )?;
    Ok(report)
}

/// What apply reads for one proposal: the proposal with the human who approved it (none if the
/// policy did), `None` if there is no such proposal; and, when read ahead, the record it targets
/// as the chunk found it (`Some(None)`: no such record).
pub struct ToApply {
    pub found: Option<(Proposal, Option<String>)>,
    pub record: Option<Option<Vec<Value>>>,
}

impl ToApply {
    /// How a [`ReadAhead`] reads a proposal: the record too, for one it will write.
    pub fn read_ahead(s: &crate::store::Snapshot, id: i64) -> Result<ToApply> {
        use crate::store::ReadRecords as _;
        let found = s.proposal_to_apply(id)?;
        let record = match &found {
            Some((p, _)) if p.state == State::Approved.as_str() && p.merge_into.is_none() => {
                match s.schema().object(&p.object) {
                    Some(obj) => Some(s.record_row(obj, &p.record)?),
                    None => None,
                }
            }
            _ => None,
        };
        Ok(ToApply { found, record })
    }
}

/// What revert reads for one change: the change with the change that already reverted it, if
/// one did, `None` if there is no such change; and, when read ahead, what its field holds as the
/// chunk found it (`Some(None)`: no such record).
pub struct ToRevert {
    pub found: Option<(crate::store::ChangeRow, Option<i64>)>,
    pub current: Option<Option<Value>>,
}

impl ToRevert {
    /// How a [`ReadAhead`] reads a change: its field's value too, for a change of one field.
    pub fn read_ahead(s: &crate::store::Snapshot, id: i64) -> Result<ToRevert> {
        use crate::store::ReadRecords as _;
        let found = s.change_to_revert(id)?;
        let current = match &found {
            Some((c, None)) => match s.schema().object(&c.object) {
                Some(obj) => match obj.columns.iter().position(|col| col.name == c.field) {
                    Some(at) => Some(
                        s.record_row(obj, &c.record)?
                            .map(|mut row| row.swap_remove(at)),
                    ),
                    None => None,
                },
                None => None,
            },
            _ => None,
        };
        Ok(ToRevert { found, current })
    }
}

/// Applies these proposals as part of the run in `state` (begun here if it has not been).
/// A large run calls this once per chunk, each in its own transaction: every proposal is
/// applied with its change and events or not at all, and a crash loses at most the chunk in
/// flight. Pauses are read again for every chunk, so a pause stops a long run at the next one.
/// `proposals` yields the chunk's proposals as a [`ReadAhead`] read them, or none at all.
#[allow(clippy::too_many_arguments)]
pub fn apply_ids(
    w: &Writer<'_>,
    policy: &Policy,
    version: i64,
    actor: &str,
    ids: &[i64],
    mut proposals: Ahead<ToApply>,
    state: &mut RunState,
    report: &mut Report,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let run = match state.run {
        Some(run) => run,
        None => {
            let run = w.begin_run("apply", actor)?;
            state.run = Some(run);
            run
        }
    };
    report.run = Some(run);
    let pauses = w.pauses()?;
    let mut written = Written::default();
    for &id in ids {
        let ToApply { found, record } = proposals.next(|| {
            Ok(ToApply {
                found: w.proposal_to_apply(id)?,
                record: None,
            })
        })?;
        let Some((p, approver)) = found else {
            continue;
        };
        // Listed before this chunk's transaction: someone may have moved it on since.
        if p.state != State::Approved.as_str() {
            continue;
        }
        let item = |result: &'static str, why: Option<String>, change: Option<i64>| Item {
            proposal: p.id,
            record: p.record_ref(),
            field: p.field.clone(),
            before: p.baseline.clone(),
            after: p.value.clone(),
            result,
            why,
            change,
        };
        let paused = pauses
            .iter()
            .find(|x| x.source.is_none() || x.source.as_deref() == Some(p.source.as_str()));
        if let Some(x) = paused {
            report.push("paused", || {
                item("paused", Some(format!("paused: {}", x.reason)), None)
            });
            continue;
        }
        let record = written.take(&p.object, &p.record, record);
        let outcome = apply_one(
            w,
            policy,
            version,
            actor,
            &p,
            approver,
            record,
            run,
            &mut state.auto_in_run,
        )?;
        if p.merge_into.is_some() {
            written.beyond(); // deletes the duplicate, re-points the rows that named it
        }
        match outcome {
            Ok(change) => report.push("applied", || item("applied", None, Some(change))),
            Err((result, why)) => report.push(result, || item(result, Some(why), None)),
        }
    }
    Ok(())
}

type Refusal = (&'static str, String);

/// Why an approved proposal was not applied, and what that makes of it.
#[derive(Clone, Copy)]
enum Stop {
    /// The record moved on since the proposal: never applied as is.
    Conflict,
    /// A stop rule holds now.
    Block,
    /// Approved by the policy alone, which would no longer let it through: back to review.
    Hold,
    /// The write did not hold (read back wrong, or refused by the store).
    Fail,
}

impl Stop {
    fn state(self) -> State {
        match self {
            Stop::Conflict => State::Conflict,
            Stop::Block => State::Blocked,
            Stop::Hold => State::Pending,
            Stop::Fail => State::Failed,
        }
    }

    /// The event's action.
    fn action(self) -> &'static str {
        match self {
            Stop::Conflict => "conflict",
            Stop::Block => "block",
            Stop::Hold => "hold",
            Stop::Fail => "failed",
        }
    }

    /// The word in the apply report.
    fn result(self) -> &'static str {
        match self {
            Stop::Conflict => "conflict",
            Stop::Block => "blocked",
            Stop::Hold => "held",
            Stop::Fail => "failed",
        }
    }
}

/// Moves an approved proposal to what `stop` makes of it, with an event saying why.
fn refuse(
    w: &Writer<'_>,
    actor: &str,
    version: i64,
    p: &Proposal,
    stop: Stop,
    why: String,
) -> Result<std::result::Result<i64, Refusal>> {
    w.set_state(p.id, &[State::Approved], stop.state())?;
    w.append_event(NewEvent {
        actor: actor.to_string(),
        actor_kind: "system",
        action: stop.action(),
        proposal_id: Some(p.id),
        object: Some(p.object.clone()),
        record: Some(p.record.clone()),
        field: p.field.clone(),
        source: Some(p.source.clone()),
        policy_version: Some(version),
        detail: serde_json::json!({ "why": why, "merge_into": p.merge_into }),
        ..NewEvent::default()
    })?;
    Ok(Err((stop.result(), why)))
}

/// One proposal: re-check, write, verify, record. `Ok(Err(..))` is a proposal not applied (its
/// state already moved to say why); `Err` a failure of the store.
#[allow(clippy::too_many_arguments)]
fn apply_one(
    w: &Writer<'_>,
    policy: &Policy,
    version: i64,
    actor: &str,
    p: &Proposal,
    approver: Option<String>,
    read_ahead: Option<Option<Vec<Value>>>,
    run: i64,
    auto_in_run: &mut std::collections::HashMap<String, u64>,
) -> Result<std::result::Result<i64, Refusal>> {
    if p.merge_into.is_some() {
        return merge_one(w, policy, version, actor, p, approver, run);
    }
    let schema = w.schema();
    let field = p.field.clone().unwrap_or_default();

    let Some(obj) = schema.object(&p.object) else {
        return refuse(
            w,
            actor,
            version,
            p,
            Stop::Conflict,
            format!("the object {} no longer exists", p.object),
        );
    };
    let Some(at) = obj.columns.iter().position(|c| c.name == field) else {
        return refuse(
            w,
            actor,
            version,
            p,
            Stop::Conflict,
            format!("the field {field} no longer exists"),
        );
    };
    let row = match read_ahead {
        Some(row) => row,
        None => w.record_row(obj, &p.record)?,
    };
    let Some(row) = row else {
        return refuse(
            w,
            actor,
            version,
            p,
            Stop::Conflict,
            format!("{} no longer exists", p.record_ref()),
        );
    };
    let current = row[at].clone();
    // Stop rules and record conditions, against the record as it is now (SPEC §5.4).
    let pairs: Vec<(&str, &Value)> = obj
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .zip(&row)
        .collect();
    let records: Vec<&[(&str, &Value)]> = vec![&pairs];
    let related = crate::related::related(w, policy, obj, &[&row])?;
    let value = json_to_value(&p.value);
    let by_policy = p.decision.as_deref() == Some("auto") && approver.is_none();
    let used = auto_in_run.get(&p.source).copied().unwrap_or(0);
    let now = policy::decide(
        policy,
        &Facts {
            kind: crate::model::Kind::parse(&p.kind).unwrap_or(crate::model::Kind::Update),
            source: &p.source,
            object: &p.object,
            field: p.field.as_deref(),
            value: &value,
            current: &current,
            trigger: p.trigger.as_deref(),
            confidence: p.confidence.unwrap_or(0.0),
            records: &records,
            related: &related,
        },
        &Situation {
            auto_in_run: used,
            auto_today: used,
            ..Situation::default()
        },
    );
    if now.action == Action::Block {
        return refuse(
            w,
            actor,
            version,
            p,
            Stop::Block,
            format!("blocked now: {}", now.why(policy).join("; ")),
        );
    }
    // Approved by the policy alone: it must still be let through on its own now.
    if by_policy && now.action != Action::Auto {
        return refuse(
            w,
            actor,
            version,
            p,
            Stop::Hold,
            format!("sent to review now: {}", now.why(policy).join("; ")),
        );
    }
    // Staleness: the record must still hold what it held when proposed, and what the proposer saw.
    if current.to_json() != p.baseline {
        return refuse(
            w,
            actor,
            version,
            p,
            Stop::Conflict,
            format!(
                "{field} is now {} but was {} when proposed",
                show(&current.to_json()),
                show(&p.baseline)
            ),
        );
    }
    if let Some(expected) = &p.expected
        && !crate::ingest::proposals::loosely_equal(&json_to_value(expected), &current)
    {
        return refuse(
            w,
            actor,
            version,
            p,
            Stop::Conflict,
            format!(
                "the proposer expected {} but the record holds {}",
                show(expected),
                show(&current.to_json())
            ),
        );
    }
    // Write and verify. A write that does not read back as written is undone alone: by writing
    // the value it replaced, or, where triggers fire on the table and may have done more, by a
    // savepoint (which costs a copy of every page it touches, so it is not the default).
    let guarded = obj.has_triggers;
    if guarded {
        w.savepoint("crmgate_apply_one")?;
    }
    let mut wrote = false;
    let verified = match w.write_and_read_back(obj, &p.record, &field, &value) {
        Ok(back) => {
            wrote = back.is_some();
            match back {
                Some(v) if crate::store::same(&v, &value) => Ok(()),
                Some(v) => Err(format!(
                    "read back {} instead of {}",
                    show(&v.to_json()),
                    show(&p.value)
                )),
                None => Err("the record vanished during the write".into()),
            }
        }
        // A statement that fails is rolled back by SQLite on its own.
        Err(e) => Err(format!("the store refused the write: {e}")),
    };
    if let Err(why) = verified {
        if guarded {
            w.rollback_to("crmgate_apply_one")?;
        } else if wrote {
            w.write_field(obj, &p.record, &field, &current)?;
        }
        return refuse(w, actor, version, p, Stop::Fail, why);
    }
    let approved_by = approver.unwrap_or_else(|| "policy".into());
    let change = w.add_change(
        run,
        Some(p.id),
        None,
        &p.object,
        &p.record,
        &field,
        &current,
        &value,
        Some(&approved_by),
        p.policy_version,
    )?;
    w.set_state(p.id, &[State::Approved], State::Applied)?;
    w.append_event(NewEvent {
        actor: actor.to_string(),
        actor_kind: if by_policy { "policy" } else { "human" },
        action: "apply",
        proposal_id: Some(p.id),
        object: Some(p.object.clone()),
        record: Some(p.record.clone()),
        field: p.field.clone(),
        prev_value: Some(current.to_json()),
        new_value: Some(p.value.clone()),
        source: Some(p.source.clone()),
        confidence: p.confidence,
        policy_version: Some(version),
        // The rules that let it through (or sent it to the human who approved it).
        rules: p
            .rules
            .as_ref()
            .and_then(|r| r.get("rules"))
            .map(|r| serde_json::to_string(r).expect("JSON serializes")),
        approver: Some(approved_by),
        change_id: Some(change),
        run_id: Some(run),
        ..NewEvent::default()
    })?;
    if guarded {
        w.release("crmgate_apply_one")?;
    }
    if by_policy {
        *auto_in_run.entry(p.source.clone()).or_default() += 1;
    }
    Ok(Ok(change))
}

fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "empty".into(),
        serde_json::Value::String(s) => format!("\"{}\"", crate::validate::short(s)),
        other => other.to_string(),
    }
}

/// A stored proposal's JSON value, back as the SQLite value it was validated to.
pub fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Integer(i64::from(*b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

/// A revert run: how many changes it undid, and the first of them.
#[derive(Debug, Default, serde::Serialize)]
pub struct RevertSummary {
    pub count: usize,
    pub first: Vec<Reverted>,
}

impl RevertSummary {
    /// Adds what a later chunk of the same run undid.
    pub fn absorb(&mut self, chunk: RevertSummary) {
        self.count += chunk.count;
        let room = KEEP_ITEMS.saturating_sub(self.first.len());
        self.first.extend(chunk.first.into_iter().take(room));
    }
}

/// What happened to one change in a revert.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reverted {
    pub change: i64,
    pub by: i64,
    pub record: String,
    pub field: String,
}

/// Reverts `changes` (newest first) as one new run of changes. Each change is checked just
/// before it is undone, against the record as the newer ones left it: a merge's deletion is
/// undone before the edits of the record it deleted. When any change cannot be undone (the
/// record moved on since, unless `force`; or it was already reverted) the whole revert is
/// refused: the error rolls the transaction back and names every such change.
pub fn revert(
    w: &Writer<'_>,
    actor: &str,
    ids: &[i64],
    force: bool,
) -> Result<(i64, RevertSummary)> {
    revert_chunk(w, actor, ids, force, None, Ahead::none())
}

/// Reverts `ids` (newest first) in the caller's transaction as part of revert run `run`, or of
/// a new one; returns the run and what this chunk undid. Refused whole, as [`revert`] is.
pub fn revert_chunk(
    w: &Writer<'_>,
    actor: &str,
    ids: &[i64],
    force: bool,
    run: Option<i64>,
    mut changes: Ahead<ToRevert>,
) -> Result<(i64, RevertSummary)> {
    let first_chunk = run.is_none();
    let run = match run {
        Some(run) => run,
        None => w.begin_run("revert", actor)?,
    };
    let mut refusals = Vec::new();
    let mut done = RevertSummary::default();
    let mut written = Written::default();
    for &id in ids {
        // One change at a time: a run of a million changes is never all in memory.
        let ToRevert { found, current } = changes.next(|| {
            Ok(ToRevert {
                found: w.change_to_revert(id)?,
                current: None,
            })
        })?;
        let Some((change, reverted_by)) = found else {
            refusals.push(format!("change {id} does not exist"));
            continue;
        };
        let c = &change;
        if let Some(by) = reverted_by {
            refusals.push(format!(
                "change {} was already reverted by change {by}",
                c.id
            ));
            continue;
        }
        let Some(obj) = w.schema().object(&c.object) else {
            refusals.push(format!(
                "change {}: the object {} no longer exists",
                c.id, c.object
            ));
            continue;
        };
        let read_ahead = written.take(&c.object, &c.record, current);
        if c.field == WHOLE_RECORD {
            written.beyond(); // a deletion may go further, under a foreign key's ON DELETE
        }
        let current = match current_of(w, obj, &c.record, &c.field, read_ahead)? {
            Ok(v) => v,
            Err(why) => {
                refusals.push(format!("change {}: {why}", c.id));
                continue;
            }
        };
        let moved_on = !crate::store::same(&current, &c.after);
        if moved_on && !force {
            refusals.push(format!(
                "change {}: {}/{} {} is now {}, not {} as the change left it (another change came after; --force overrides)",
                c.id,
                c.object,
                c.record,
                c.field,
                show(&current.to_json()),
                show(&c.after.to_json())
            ));
            continue;
        }
        if let Err(why) = put(w, obj, &c.record, &c.field, &c.before)? {
            refusals.push(format!("change {}: {why}", c.id));
            continue;
        }
        let id = w.add_change(
            run,
            c.proposal_id,
            Some(c.id),
            &c.object,
            &c.record,
            &c.field,
            &current,
            &c.before,
            None,
            None,
        )?;
        if let Some(p) = c.proposal_id {
            // Undoing an apply reverts the proposal; undoing a revert applies it again.
            let (from, to) = if c.reverts.is_none() {
                (State::Applied, State::Reverted)
            } else {
                (State::Reverted, State::Applied)
            };
            w.set_state(p, &[from], to)?;
        }
        w.append_event(NewEvent {
            actor: actor.to_string(),
            actor_kind: "human",
            action: "revert",
            proposal_id: c.proposal_id,
            object: Some(c.object.clone()),
            record: Some(c.record.clone()),
            field: Some(c.field.clone()),
            prev_value: Some(current.to_json()),
            new_value: Some(c.before.to_json()),
            change_id: Some(id),
            run_id: Some(run),
            detail: serde_json::json!({ "reverts": c.id, "forced": moved_on }),
            ..NewEvent::default()
        })?;
        done.count += 1;
        if done.first.len() < KEEP_ITEMS {
            done.first.push(Reverted {
                change: c.id,
                by: id,
                record: format!("{}/{}", c.object, c.record),
                field: c.field.clone(),
            });
        }
    }
    if !refusals.is_empty() {
        return Err(crate::error::Error::Refused {
            message: format!(
                "{}:\n{}",
                if first_chunk {
                    "nothing was reverted".to_string()
                } else {
                    format!("none of the next {} changes were reverted", ids.len())
                },
                refusals
                    .iter()
                    .map(|r| crate::ui::safe(r).into_owned())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            hint: Some(
                "revert the later changes first, or pass --force (admin) to overwrite them".into(),
            ),
        });
    }
    Ok((run, done))
}

/// The field name a change uses for a whole record: a merge's deletion of the duplicate.
pub const WHOLE_RECORD: &str = "*";

/// A record as one value: its columns as a JSON object.
fn snapshot(obj: &crate::schema::Object, row: &[Value]) -> Value {
    let m: serde_json::Map<String, serde_json::Value> = obj
        .columns
        .iter()
        .zip(row)
        .map(|(c, v)| (c.name.clone(), v.to_json()))
        .collect();
    Value::Text(serde_json::Value::Object(m).to_string())
}

/// The record a snapshot holds, column by column in schema order.
fn from_snapshot(
    obj: &crate::schema::Object,
    text: &str,
) -> std::result::Result<Vec<Value>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("unreadable snapshot: {e}"))?;
    obj.columns
        .iter()
        .map(|c| {
            let x = v.get(&c.name).cloned().unwrap_or(serde_json::Value::Null);
            match x.get("blob_hex").and_then(|h| h.as_str()) {
                Some(hex) => (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
                    .collect::<std::result::Result<Vec<u8>, _>>()
                    .map(Value::Blob)
                    .map_err(|e| format!("unreadable blob in snapshot: {e}")),
                None => Ok(json_to_value(&x)),
            }
        })
        .collect()
}

/// What a change's target holds now: a field's value, or for [`WHOLE_RECORD`] the record's
/// snapshot (`Null` when it does not exist).
fn current_of(
    w: &Writer<'_>,
    obj: &crate::schema::Object,
    record: &str,
    field: &str,
    read_ahead: Option<Option<Value>>,
) -> Result<std::result::Result<Value, String>> {
    if field == WHOLE_RECORD {
        let row = w.record_row(obj, record)?;
        return Ok(Ok(row.map(|r| snapshot(obj, &r)).unwrap_or(Value::Null)));
    }
    if obj.column(field).is_none() {
        return Ok(Err(format!("the field {field} no longer exists")));
    }
    let value = match read_ahead {
        Some(value) => value,
        None => w.read_field(obj, record, field)?,
    };
    Ok(match value {
        Some(v) => Ok(v),
        None => Err(format!("{}/{record} no longer exists", obj.name)),
    })
}

/// Makes a change's target hold `value`: writes the field, or for [`WHOLE_RECORD`] deletes the
/// record (`Null`) or re-creates it exactly from its snapshot.
fn put(
    w: &Writer<'_>,
    obj: &crate::schema::Object,
    record: &str,
    field: &str,
    value: &Value,
) -> Result<std::result::Result<(), String>> {
    if field != WHOLE_RECORD {
        return Ok(if w.write_field(obj, record, field, value)? {
            Ok(())
        } else {
            Err(format!("{}/{record} no longer exists", obj.name))
        });
    }
    match value {
        Value::Null if w.delete_record(obj, record)? => Ok(Ok(())),
        Value::Null => Ok(Err(format!("{}/{record} was already gone", obj.name))),
        Value::Text(json) => match from_snapshot(obj, json) {
            Ok(values) => {
                w.insert_record(obj, &values)?;
                Ok(Ok(()))
            }
            Err(why) => Ok(Err(why)),
        },
        _ => Ok(Err("a record snapshot must be text".into())),
    }
}

/// A merge: re-point every row that referenced the duplicate to the survivor, delete the
/// duplicate (its full snapshot kept in the change), then fill the survivor's empty fields from
/// it (never overwriting a set one). Each step is a change of its own, so a revert undoes them
/// newest first: the filled fields, then the duplicate re-created exactly, then the rows
/// pointed back.
fn merge_one(
    w: &Writer<'_>,
    policy: &Policy,
    version: i64,
    actor: &str,
    p: &Proposal,
    approver: Option<String>,
    run: i64,
) -> Result<std::result::Result<i64, Refusal>> {
    let into = p.merge_into.clone().unwrap_or_default();

    let Some(obj) = w.schema().object(&p.object) else {
        return refuse(
            w,
            actor,
            version,
            p,
            Stop::Conflict,
            format!("the object {} no longer exists", p.object),
        );
    };
    let (Some(dup), Some(survivor)) = (w.record_row(obj, &p.record)?, w.record_row(obj, &into)?)
    else {
        return refuse(
            w,
            actor,
            version,
            p,
            Stop::Conflict,
            "one of the two records no longer exists".into(),
        );
    };
    // Stop rules hold for either record: a legal hold on the survivor stops the merge too.
    let names = || obj.columns.iter().map(|c| c.name.as_str());
    let a: Vec<(&str, &Value)> = names().zip(dup.iter()).collect();
    let b: Vec<(&str, &Value)> = names().zip(survivor.iter()).collect();
    let records: Vec<&[(&str, &Value)]> = vec![&a, &b];
    let related = crate::related::related(w, policy, obj, &[&dup, &survivor])?;
    let now = policy::decide(
        policy,
        &Facts {
            kind: crate::model::Kind::Merge,
            source: &p.source,
            object: &p.object,
            field: None,
            value: &Value::Null,
            current: &Value::Null,
            trigger: None,
            confidence: p.confidence.unwrap_or(0.0),
            records: &records,
            related: &related,
        },
        &Situation::default(),
    );
    if now.action == Action::Block {
        return refuse(
            w,
            actor,
            version,
            p,
            Stop::Block,
            format!("blocked now: {}", now.why(policy).join("; ")),
        );
    }
    // A stop rule outranks staleness: a hold set since the proposal is reported as a block.
    let fingerprint = crate::model::merge_fingerprint(&dup, &survivor);
    if p.baseline_fp.as_deref() != Some(fingerprint.as_str()) {
        return refuse(
            w,
            actor,
            version,
            p,
            Stop::Conflict,
            "one of the two records changed since the merge was proposed".into(),
        );
    }
    let approved_by = approver.unwrap_or_else(|| "policy".into());
    // Each step is a change and an event of its own, so the log alone can replay the merge.
    let change =
        |object: &str, record: &str, field: &str, before: &Value, after: &Value| -> Result<i64> {
            let id = w.add_change(
                run,
                Some(p.id),
                None,
                object,
                record,
                field,
                before,
                after,
                Some(&approved_by),
                p.policy_version,
            )?;
            w.append_event(NewEvent {
                actor: actor.to_string(),
                actor_kind: "human",
                action: "apply",
                proposal_id: Some(p.id),
                object: Some(object.to_string()),
                record: Some(record.to_string()),
                field: Some(field.to_string()),
                prev_value: Some(before.to_json()),
                new_value: Some(after.to_json()),
                source: Some(p.source.clone()),
                confidence: p.confidence,
                policy_version: Some(version),
                approver: Some(approved_by.clone()),
                change_id: Some(id),
                run_id: Some(run),
                detail: serde_json::json!({ "merge": { "duplicate": p.record, "into": into } }),
                ..NewEvent::default()
            })?;
            Ok(id)
        };
    w.savepoint("crmgate_merge_one")?;
    let mut changes = Vec::new();
    let mut steps = || -> Result<std::result::Result<(), String>> {
        let from = Value::Text(p.record.clone());
        let to = Value::Text(into.clone());
        for (table, column) in w.schema().referencing(&obj.name) {
            for id in w.referencing_ids(table, &column.name, &p.record)? {
                if let Err(why) = put(w, table, &id, &column.name, &to)? {
                    return Ok(Err(why));
                }
                changes.push(change(&table.name, &id, &column.name, &from, &to)?);
            }
        }
        if let Err(why) = put(w, obj, &p.record, WHOLE_RECORD, &Value::Null)? {
            return Ok(Err(why));
        }
        changes.push(change(
            &obj.name,
            &p.record,
            WHOLE_RECORD,
            &snapshot(obj, &dup),
            &Value::Null,
        )?);
        for (i, c) in obj.columns.iter().enumerate() {
            if c.primary_key || !survivor[i].is_empty() || dup[i].is_empty() {
                continue;
            }
            if let Err(why) = put(w, obj, &into, &c.name, &dup[i])? {
                return Ok(Err(why));
            }
            changes.push(change(&obj.name, &into, &c.name, &survivor[i], &dup[i])?);
        }
        Ok(Ok(()))
    };
    let outcome = match steps() {
        Ok(done) => done,
        Err(e) => Err(format!("the store refused the merge: {e}")),
    };
    if let Err(why) = outcome {
        w.rollback_to("crmgate_merge_one")?;
        return refuse(w, actor, version, p, Stop::Fail, why);
    }
    w.set_state(p.id, &[State::Approved], State::Applied)?;
    w.release("crmgate_merge_one")?;
    Ok(Ok(changes.last().copied().unwrap_or_default()))
}

/// A saved plan: exactly what an apply would do, to be applied later only if nothing in it
/// changed (`apply --plan-out`, `apply --plan`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub items: Vec<PlanItem>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlanItem {
    pub proposal: i64,
    pub record: String,
    pub field: Option<String>,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    /// For merges: both records' fingerprint.
    pub fingerprint: Option<String>,
}

impl Plan {
    /// The plan of an apply run: its applied items.
    pub fn of(report: &Report, w: &Writer<'_>) -> Result<Plan> {
        let mut items = Vec::new();
        for i in report.items.iter().filter(|i| i.result == "applied") {
            let fingerprint = w.proposal(i.proposal)?.and_then(|p| p.baseline_fp);
            items.push(PlanItem {
                proposal: i.proposal,
                record: i.record.clone(),
                field: i.field.clone(),
                before: i.before.clone(),
                after: i.after.clone(),
                fingerprint,
            });
        }
        Ok(Plan { items })
    }

    /// Why each item can no longer be applied as planned: not approved any more, a different
    /// proposal, or a record that moved on.
    pub fn changes_since(&self, w: &Writer<'_>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for item in &self.items {
            let Some(p) = w.proposal(item.proposal)? else {
                out.push(format!("proposal {} no longer exists", item.proposal));
                continue;
            };
            if p.state != State::Approved.as_str() {
                out.push(format!("proposal {} is now {}", p.id, p.state));
                continue;
            }
            if p.value != item.after
                || p.baseline != item.before
                || p.baseline_fp != item.fingerprint
            {
                out.push(format!("proposal {} is not the one planned", p.id));
                continue;
            }
            if let Some(why) = crate::human::staleness(w, &p)? {
                out.push(format!("proposal {} ({}): {why}", p.id, p.record_ref()));
            }
        }
        Ok(out)
    }
}
