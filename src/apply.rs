//! Apply and revert: the only code that changes CRM records. Every write is re-checked against
//! the record as it is now, read back, and recorded as a change with the values before and after,
//! in the same transaction as its audit event; a revert is a change too, so it can be reverted.

use crate::error::Result;
use crate::model::{NewEvent, Proposal, State, Value};
use crate::policy::{self, Action, Facts, Policy, Situation};
use crate::store::{ChangeRow, Writer};

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
    pub items: Vec<Item>,
}

impl Report {
    pub fn count(&self, result: &str) -> usize {
        self.items.iter().filter(|i| i.result == result).count()
    }

    /// Anything approved that was not applied.
    pub fn exceptions(&self) -> usize {
        self.items.len() - self.count("applied")
    }
}

pub struct Options {
    pub source: Option<String>,
    pub limit: Option<usize>,
}

/// Applies approved proposals, oldest first.
pub fn apply(
    w: &Writer<'_>,
    policy: &Policy,
    version: i64,
    actor: &str,
    opts: &Options,
) -> Result<Report> {
    let mut report = Report::default();
    let mut ids = w.approved_ids(opts.source.as_deref())?;
    if let Some(l) = opts.limit {
        ids.truncate(l);
    }
    if ids.is_empty() {
        return Ok(report);
    }
    let run = w.begin_run("apply", actor)?;
    report.run = Some(run);
    let pauses = w.pauses()?;
    let mut auto_in_run: std::collections::HashMap<String, u64> = Default::default();
    for id in ids {
        let Some(p) = w.proposal(id)? else { continue };
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
        if p.merge_into.is_some() {
            report.items.push(item(
                "skipped",
                Some("merges are not applied yet".into()),
                None,
            ));
            continue;
        }
        let paused = pauses
            .iter()
            .find(|x| x.source.is_none() || x.source.as_deref() == Some(p.source.as_str()));
        if let Some(x) = paused {
            report
                .items
                .push(item("paused", Some(format!("paused: {}", x.reason)), None));
            continue;
        }
        let outcome = apply_one(w, policy, version, actor, &p, run, &mut auto_in_run)?;
        report.items.push(match outcome {
            Ok(change) => item("applied", None, Some(change)),
            Err((result, why)) => item(result, Some(why), None),
        });
    }
    Ok(report)
}

type Refusal = (&'static str, String);

/// One proposal: re-check, write, verify, record. `Ok(Err(..))` is a proposal not applied (its
/// state already moved to say why); `Err` a failure of the store.
fn apply_one(
    w: &Writer<'_>,
    policy: &Policy,
    version: i64,
    actor: &str,
    p: &Proposal,
    run: i64,
    auto_in_run: &mut std::collections::HashMap<String, u64>,
) -> Result<std::result::Result<i64, Refusal>> {
    let schema = w.schema();
    let field = p.field.clone().unwrap_or_default();
    let refuse = |state: State,
                  action: &'static str,
                  result: &'static str,
                  why: String|
     -> Result<std::result::Result<i64, Refusal>> {
        w.set_state(p.id, &[State::Approved], state)?;
        w.append_event(&NewEvent {
            actor: actor.to_string(),
            actor_kind: "system",
            action,
            proposal_id: Some(p.id),
            object: Some(p.object.clone()),
            record: Some(p.record.clone()),
            field: p.field.clone(),
            source: Some(p.source.clone()),
            policy_version: Some(version),
            detail: serde_json::json!({ "why": why }),
            ..NewEvent::default()
        })?;
        Ok(Err((result, why)))
    };
    let Some(obj) = schema.object(&p.object) else {
        return refuse(
            State::Conflict,
            "conflict",
            "conflict",
            format!("the object {} no longer exists", p.object),
        );
    };
    let Some(at) = obj.columns.iter().position(|c| c.name == field) else {
        return refuse(
            State::Conflict,
            "conflict",
            "conflict",
            format!("the field {field} no longer exists"),
        );
    };
    let Some(row) = w.record_row(obj, &p.record)? else {
        return refuse(
            State::Conflict,
            "conflict",
            "conflict",
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
    let value = json_to_value(&p.value);
    let by_policy = p.decision.as_deref() == Some("auto") && w.approver_of(p.id)?.is_none();
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
        },
        &Situation {
            auto_in_run: used,
            auto_today: used,
            ..Situation::default()
        },
    );
    if now.action == Action::Block {
        return refuse(
            State::Blocked,
            "block",
            "blocked",
            format!("blocked now: {}", now.why(policy).join("; ")),
        );
    }
    // Approved by the policy alone: it must still be let through on its own now.
    if by_policy && now.action != Action::Auto {
        return refuse(
            State::Pending,
            "hold",
            "held",
            format!("sent to review now: {}", now.why(policy).join("; ")),
        );
    }
    // Staleness: the record must still hold what it held when proposed, and what the proposer saw.
    if current.to_json() != p.baseline {
        return refuse(
            State::Conflict,
            "conflict",
            "conflict",
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
            State::Conflict,
            "conflict",
            "conflict",
            format!(
                "the proposer expected {} but the record holds {}",
                show(expected),
                show(&current.to_json())
            ),
        );
    }
    // Write and verify inside a savepoint, so a failed verification undoes just this write.
    w.savepoint("crmgate_apply_one")?;
    let verified = match w.write_field(obj, &p.record, &field, &value) {
        Ok(true) => {
            let back = w.record_row(obj, &p.record)?.map(|r| r[at].clone());
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
        Ok(false) => Err("the record vanished during the write".into()),
        Err(e) => Err(format!("the store refused the write: {e}")),
    };
    if let Err(why) = verified {
        w.rollback_to("crmgate_apply_one")?;
        return refuse(State::Failed, "failed", "failed", why);
    }
    let approved_by = w.approver_of(p.id)?.unwrap_or_else(|| "policy".into());
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
    w.append_event(&NewEvent {
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
        approver: Some(approved_by),
        detail: serde_json::json!({ "run": run, "change": change }),
        ..NewEvent::default()
    })?;
    w.release("crmgate_apply_one")?;
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

/// What happened to one change in a revert.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reverted {
    pub change: i64,
    pub by: i64,
    pub record: String,
    pub field: String,
}

/// How a revert went: done as a new run, or refused whole with the reasons.
pub enum RevertOutcome {
    Done { run: i64, reverted: Vec<Reverted> },
    Refused(Vec<String>),
}

/// Reverts `changes` (newest first) as one new run. Refused whole, naming every record, when
/// any of them moved on since (its value is no longer the change's `after`) unless `force`, or
/// when one was already reverted.
pub fn revert(
    w: &Writer<'_>,
    actor: &str,
    changes: &[ChangeRow],
    force: bool,
) -> Result<RevertOutcome> {
    let mut refusals = Vec::new();
    let mut plan = Vec::new();
    for c in changes {
        if let Some(by) = w.reverted_by(c.id)? {
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
        let Some(at) = obj.columns.iter().position(|x| x.name == c.field) else {
            refusals.push(format!(
                "change {}: the field {} no longer exists",
                c.id, c.field
            ));
            continue;
        };
        let Some(row) = w.record_row(obj, &c.record)? else {
            refusals.push(format!(
                "change {}: {}/{} no longer exists",
                c.id, c.object, c.record
            ));
            continue;
        };
        let current = row[at].clone();
        if !crate::store::same(&current, &c.after) && !force {
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
        plan.push((c, obj, at, current));
    }
    if !refusals.is_empty() {
        return Ok(RevertOutcome::Refused(refusals));
    }
    let run = w.begin_run("revert", actor)?;
    let mut done = Vec::new();
    for (c, obj, at, current) in plan {
        if !w.write_field(obj, &c.record, &c.field, &c.before)? {
            return Err(crate::error::Error::Store(format!(
                "{}/{} vanished during the revert",
                c.object, c.record
            )));
        }
        let back = w.record_row(obj, &c.record)?.map(|r| r[at].clone());
        if !back
            .as_ref()
            .is_some_and(|v| crate::store::same(v, &c.before))
        {
            return Err(crate::error::Error::Store(format!(
                "{}/{} did not read back as reverted",
                c.object, c.record
            )));
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
        w.append_event(&NewEvent {
            actor: actor.to_string(),
            actor_kind: "human",
            action: "revert",
            proposal_id: c.proposal_id,
            object: Some(c.object.clone()),
            record: Some(c.record.clone()),
            field: Some(c.field.clone()),
            prev_value: Some(current.to_json()),
            new_value: Some(c.before.to_json()),
            detail: serde_json::json!({ "run": run, "change": id, "reverts": c.id, "forced": force && !crate::store::same(&current, &c.after) }),
            ..NewEvent::default()
        })?;
        done.push(Reverted {
            change: c.id,
            by: id,
            record: format!("{}/{}", c.object, c.record),
            field: c.field.clone(),
        });
    }
    Ok(RevertOutcome::Done {
        run,
        reverted: done,
    })
}
