//! One proposal at a time: re-check it against the record as it is now, write, verify, record.

use super::{Ending, Item, Report};
use crate::error::{Holds, Result};
use crate::model::{NewEvent, Proposal, State, Value};
use crate::policy::{self, Action, Decision, Facts, Policy, Situation};
use crate::store::Writer;

/// What a run carries from one chunk (one transaction) to the next.
#[derive(Debug, Default)]
pub struct RunState {
    run: Option<i64>,
    /// Proposals of each source applied on the policy's word alone, for `max_auto_per_run`.
    auto_in_run: std::collections::HashMap<String, u64>,
    /// Which part of the run this is: its field writes come first, then its merges, so that a
    /// merge meets its records as the run's own approved changes left them.
    pub(super) merges: bool,
    /// Ingests whose proposals were checked against their event this run, and what was found.
    ingests: std::collections::HashMap<i64, Holds>,
}

/// The policy every proposal of a run is checked against again, and who runs it.
#[derive(Clone, Copy)]
pub struct Judge<'a> {
    pub policy: &'a Policy,
    pub version: i64,
    pub actor: &'a str,
}

/// Applies these proposals as part of the run in `state` (begun here if it has not been).
/// A large run calls this once per chunk, each in its own transaction: every proposal is
/// applied with its change and events or not at all, and a crash loses at most the chunk in
/// flight. Pauses are read again for every chunk, so a pause stops a long run at the next one.
/// Only the part of the run `state` is in is applied: field writes, or merges.
pub fn apply_ids(
    w: &Writer<'_>,
    judge: Judge<'_>,
    ids: &[i64],
    state: &mut RunState,
    report: &mut Report,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let run = match state.run {
        Some(run) => run,
        None => *state.run.insert(w.begin_run("apply", judge.actor)?),
    };
    report.run = Some(run);
    let pauses = w.pauses()?;
    for &id in ids {
        let Some((p, binding)) = w.proposal_to_apply(id)? else {
            continue;
        };
        // A plan names proposals that may have moved on since, and both parts of the run.
        if p.state != State::Approved || p.merge_into.is_some() != state.merges {
            continue;
        }
        let item = |result: Ending, why: Option<String>, change: Option<i64>| Item {
            proposal: p.id,
            record: p.record_ref(),
            field: p.field.clone(),
            merge_into: p.merge_into.clone(),
            before: p.baseline.clone(),
            after: p.value.clone(),
            result,
            why,
            change,
        };
        let approval = match crate::audit::approval_of(&p, &binding) {
            Ok(a) => match ingest_holds(w, &p, &binding, &mut state.ingests)? {
                Holds::Yes(()) => Ok(a),
                Holds::No(why) => Err(why),
            },
            Err(why) => Err(why),
        };
        let approver = match approval {
            Ok(approver) => approver,
            Err(why) => {
                let why = unbound(why);
                refuse(w, judge, &p, Stop::Fail, why.clone())?;
                report.push(Ending::Failed, || item(Ending::Failed, Some(why), None));
                continue;
            }
        };
        let paused = pauses
            .iter()
            .find(|x| x.source.is_none() || x.source.as_deref() == Some(p.source.as_str()));
        if let Some(x) = paused {
            report.push(Ending::Paused, || {
                item(Ending::Paused, Some(format!("paused: {}", x.reason)), None)
            });
            continue;
        }
        match apply_one(w, judge, &p, approver, run, &mut state.auto_in_run)? {
            Outcome::Applied(change) => report.push(Ending::Applied, || {
                item(Ending::Applied, None, Some(change))
            }),
            Outcome::Refused(stop, why) => {
                let ending = stop.ending();
                report.push(ending, || item(ending, Some(why), None))
            }
        }
    }
    Ok(())
}

/// Whether `p`'s ingest still has the digests its event recorded (checked once per ingest per
/// run); a proposal queued before digests were recorded has none to check.
fn ingest_holds(
    w: &Writer<'_>,
    p: &Proposal,
    b: &crate::audit::ProposalBinding,
    checked: &mut std::collections::HashMap<i64, Holds>,
) -> Result<Holds> {
    if b.bound_from.is_some_and(|from| p.id < from) {
        return Ok(Holds::Yes(()));
    }
    if let Some(found) = checked.get(&p.ingest_id) {
        return Ok(found.clone());
    }
    let e = w.ingest_event_of(p.ingest_id)?;
    let found = crate::audit::check_ingest(p.ingest_id, e.as_ref(), |first, last| {
        w.digests_xor(p.ingest_id, first, last)
    })?;
    checked.insert(p.ingest_id, found.clone());
    Ok(found)
}

/// A refusal of a proposal whose row does not match the audit log, with the command that says
/// what changed.
fn unbound(why: String) -> String {
    format!(
        "its row does not match the audit log: {why}; `crmgate audit verify` names what was changed"
    )
}

/// What became of one approved proposal. Either way its state has moved and an event says so.
pub(super) enum Outcome {
    /// Written, with this change (a merge: its last).
    Applied(i64),
    /// Not written, and why.
    Refused(Stop, String),
}

/// Why an approved proposal was not applied, and what that makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The record moved on since the proposal: never applied as is.
    Conflict,
    /// A stop rule holds now.
    Block,
    /// Approved by the policy alone, which would no longer let it through: back to review.
    Hold,
    /// Approved by a person the policy in force no longer lets approve it: back to review.
    Unapprove,
    /// The write did not hold (read back wrong, or refused by the store).
    Fail,
}

impl Stop {
    fn state(self) -> State {
        match self {
            Stop::Conflict => State::Conflict,
            Stop::Block => State::Blocked,
            Stop::Hold | Stop::Unapprove => State::Pending,
            Stop::Fail => State::Failed,
        }
    }

    /// The event's action.
    fn action(self) -> &'static str {
        match self {
            Stop::Conflict => "conflict",
            Stop::Block => "block",
            Stop::Hold => "hold",
            Stop::Unapprove => "unapprove",
            Stop::Fail => "failed",
        }
    }

    fn ending(self) -> Ending {
        match self {
            Stop::Conflict => Ending::Conflict,
            Stop::Block => Ending::Blocked,
            Stop::Hold | Stop::Unapprove => Ending::Held,
            Stop::Fail => Ending::Failed,
        }
    }
}

/// Moves an approved proposal to what `stop` makes of it, with an event saying why.
pub(super) fn refuse(
    w: &Writer<'_>,
    judge: Judge<'_>,
    p: &Proposal,
    stop: Stop,
    why: String,
) -> Result<Outcome> {
    let detail = serde_json::json!({ "why": why, "merge_into": p.merge_into });
    stop_with(w, judge, p, stop, "system", detail)?;
    Ok(Outcome::Refused(stop, why))
}

/// Sends back to review a proposal whose person's approval the policy in force no longer
/// permits: the policy takes the approval back, and the event names whose it was.
pub(super) fn unapprove(
    w: &Writer<'_>,
    judge: Judge<'_>,
    p: &Proposal,
    approver: &str,
    why: String,
) -> Result<Outcome> {
    let detail =
        serde_json::json!({ "why": why, "approver": approver, "merge_into": p.merge_into });
    stop_with(w, judge, p, Stop::Unapprove, "policy", detail)?;
    Ok(Outcome::Refused(Stop::Unapprove, why))
}

/// The state change and event of a proposal not applied.
fn stop_with(
    w: &Writer<'_>,
    judge: Judge<'_>,
    p: &Proposal,
    stop: Stop,
    actor_kind: &'static str,
    detail: serde_json::Value,
) -> Result<()> {
    w.set_state(p.id, &[State::Approved], stop.state())?;
    w.append_event(NewEvent {
        actor: judge.actor.to_string(),
        actor_kind,
        action: stop.action(),
        proposal_id: Some(p.id),
        object: Some(p.object.clone()),
        record: Some(p.record.clone()),
        field: p.field.clone(),
        source: Some(p.source.clone()),
        policy_version: Some(judge.version),
        detail,
        ..NewEvent::default()
    })?;
    Ok(())
}

/// One proposal: re-check, write, verify, record. `Err` is a failure of the store.
fn apply_one(
    w: &Writer<'_>,
    judge: Judge<'_>,
    p: &Proposal,
    approver: Option<String>,
    run: i64,
    auto_in_run: &mut std::collections::HashMap<String, u64>,
) -> Result<Outcome> {
    if p.merge_into.is_some() {
        return super::merge::merge_one(w, judge, p, approver, run);
    }
    if p.kind == crate::model::Kind::Create {
        return super::create::apply_create(w, judge, p, approver, (run, auto_in_run));
    }
    let field = p.field.as_deref().unwrap_or_default();
    let Some(obj) = w.schema().object(&p.object) else {
        let why = format!("the object {} no longer exists", p.object);
        return refuse(w, judge, p, Stop::Conflict, why);
    };
    let Some(at) = obj.columns.iter().position(|c| c.name == field) else {
        let why = format!("the field {field} no longer exists");
        return refuse(w, judge, p, Stop::Conflict, why);
    };
    // Read now, at its turn: what earlier writes of the run did to it, named or not, is seen.
    let Some(row) = w.record_row(obj, &p.record)? else {
        let why = format!("{} no longer exists", p.record_ref());
        return refuse(w, judge, p, Stop::Conflict, why);
    };
    let by_policy = p.decision == Some(Action::Auto) && approver.is_none();
    let used = auto_in_run.get(&p.source).copied().unwrap_or(0);
    let related = crate::related::related(judge.policy, w.schema(), obj, &[&row], |o, k| {
        w.record_row(o, k)
    })?;
    let by_policy_with = by_policy.then_some(used);
    let now = decide_now(
        judge.policy,
        obj,
        p,
        &row[..],
        (&row[at], &related),
        by_policy_with,
    );
    if let Some((stop, why)) = judge_now(judge.policy, p, &now, &row[at], by_policy_with) {
        return refuse(w, judge, p, stop, why);
    }
    if let Some(by) = approver.as_deref()
        && let Err(why) = crate::admin::access::approval_holds(judge.policy, &now, by)
    {
        return unapprove(w, judge, p, by, why);
    }
    let (current, value) = (&row[at], json_to_value(&p.value));
    if let Some(why) = write_verified(w, obj, p, field, current, &value)? {
        return refuse(w, judge, p, Stop::Fail, why);
    }
    let approved_by = approver.unwrap_or_else(|| "policy".into());
    let change = w.add_change(
        run,
        Some(p.id),
        None,
        &p.object,
        &p.record,
        field,
        current,
        &value,
        Some(&approved_by),
        p.policy_version,
    )?;
    w.set_state(p.id, &[State::Approved], State::Applied)?;
    w.append_event(applied_event(
        judge,
        p,
        by_policy,
        current,
        approved_by,
        change,
        run,
    ))?;
    if obj.reach.beyond() {
        w.release(GUARD)?;
    }
    if by_policy {
        *auto_in_run.entry(p.source.clone()).or_default() += 1;
    }
    Ok(Outcome::Applied(change))
}

/// The policy's decision on a field write against the record as it is now (`row`; the field's
/// value and the related records in `(current, related)`), counting `by_policy` proposals of its
/// source this run already applied on the policy's word alone.
pub(super) fn decide_now(
    policy: &Policy,
    obj: &crate::schema::Object,
    p: &Proposal,
    row: &[Value],
    (current, related): (&Value, &[crate::model::Related]),
    by_policy: Option<u64>,
) -> Decision {
    let auto_in_run = by_policy.unwrap_or(0);
    let pairs: Vec<(&str, &Value)> = obj.column_names().zip(row).collect();
    let records: Vec<&[(&str, &Value)]> = vec![&pairs];
    let value = json_to_value(&p.value);
    policy::decide(
        policy,
        &Facts {
            kind: p.kind,
            source: &p.source,
            object: &p.object,
            field: p.field.as_deref(),
            value: &value,
            current,
            trigger: p.trigger.as_deref(),
            confidence: p.confidence.unwrap_or(0.0),
            records: &records,
            related,
        },
        &Situation {
            auto_in_run,
            auto_today: auto_in_run,
            ..Situation::default()
        },
    )
}

/// Why the proposal may not be applied to the record as it is now (the field holds `current`),
/// given the policy's decision `now`, if it may not: a stop rule, a policy that would no
/// longer let it through on its own, or a record that moved on since it was proposed.
pub(super) fn judge_now(
    policy: &Policy,
    p: &Proposal,
    now: &Decision,
    current: &Value,
    // Approved by the policy alone: how many of its source's proposals this run has applied so.
    by_policy: Option<u64>,
) -> Option<(Stop, String)> {
    if now.action == Action::Block {
        let why = format!("blocked now: {}", now.why(policy).join("; "));
        return Some((Stop::Block, why));
    }
    // Approved by the policy alone: it must still be let through on its own now.
    if by_policy.is_some() && now.action != Action::Auto {
        let why = format!("sent to review now: {}", now.why(policy).join("; "));
        return Some((Stop::Hold, why));
    }
    super::plan::field_moved_on(p, current).map(|why| (Stop::Conflict, requeue(p.id, why)))
}

/// A conflict's reason with the way forward: a new proposal against the record as it is now.
pub(super) fn requeue(id: i64, why: String) -> String {
    format!("{why}; `crmgate requeue {id}` proposes it again against the record as it is now")
}

/// The savepoint that guards a write whose effects reach further than its field.
const GUARD: &str = "crmgate_apply_one";

/// Writes the field and checks that it holds `value`; `Some(why)` if not, with the write
/// undone alone: by writing the value it replaced, or, where the write may have reached other
/// records (a trigger, a foreign key's action), by a savepoint (which costs a copy of every
/// page it touches, so it is not the default). A guarded write that holds leaves its savepoint
/// open, for the caller to release once the change is recorded.
fn write_verified(
    w: &Writer<'_>,
    obj: &crate::schema::Object,
    p: &Proposal,
    field: &str,
    current: &Value,
    value: &Value,
) -> Result<Option<String>> {
    let guarded = obj.reach.beyond();
    if guarded {
        w.savepoint(GUARD)?;
    }
    let mut wrote = false;
    let why = match w.write_and_read_back(obj, &p.record, field, value) {
        Ok(Some(v)) if crate::store::same(&v, value) => return Ok(None),
        Ok(Some(v)) => {
            wrote = true;
            let (back, want) = (show(&v.to_json()), show(&p.value));
            format!("read back {back} instead of {want}")
        }
        Ok(None) => "the record vanished during the write".into(),
        // A statement that fails is rolled back by SQLite on its own.
        Err(e) => format!("the store refused the write: {e}"),
    };
    if guarded {
        w.rollback_to(GUARD)?;
    } else if wrote {
        w.write_field(obj, &p.record, field, current)?;
    }
    Ok(Some(why))
}

/// The event of an applied field write.
pub(super) fn applied_event(
    judge: Judge<'_>,
    p: &Proposal,
    by_policy: bool,
    current: &Value,
    approved_by: String,
    change: i64,
    run: i64,
) -> NewEvent {
    NewEvent {
        actor: judge.actor.to_string(),
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
        policy_version: Some(judge.version),
        // The rules that let it through (or sent it to the human who approved it).
        rules: p
            .rules
            .as_ref()
            .and_then(|r| r.get("rules"))
            .map(|r| serde_json::to_string(r).expect("JSON serializes")),
        approver: Some(approved_by),
        change_id: Some(change),
        run_id: Some(run),
        detail: p.with_evidence(serde_json::Value::Null),
    }
}

pub(super) fn show(v: &serde_json::Value) -> String {
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
