//! Human decisions on queued proposals: approve and reject, with the checks every path to a
//! decision shares (state, approver role, staleness), and the circuit breaker that pauses a
//! source humans keep rejecting. The interactive review and the `approve`/`reject` commands both
//! come through here.

use crate::error::Result;
use crate::model::{NewEvent, Proposal, State, Value};
use crate::policy::{Decision, Policy};
use crate::store::Writer;

/// Whether the record still holds what the proposal was made against: apply owns the check.
pub use crate::apply::staleness;

#[derive(Debug, Clone)]
pub enum Verb {
    Approve {
        note: Option<String>,
    },
    Reject {
        reason: String,
    },
    /// Approve with the value a reviewer put in place of the proposed one (checked with
    /// [`check_edit`] first).
    Edit {
        value: Value,
    },
}

impl Verb {
    fn action(&self) -> &'static str {
        match self {
            Verb::Approve { .. } => "approve",
            Verb::Reject { .. } => "reject",
            Verb::Edit { .. } => "edit",
        }
    }
}

/// Checks a reviewer's replacement value for a field proposal exactly as an ingested value is
/// checked (type, size, NOT NULL, and that a foreign key names an existing record); `raw` `None`
/// clears the field. `Ok(Err(why))` names what is wrong with the value.
pub fn check_edit(
    w: &Writer<'_>,
    p: &Proposal,
    raw: Option<&str>,
) -> Result<std::result::Result<Value, String>> {
    let column = match (&p.field, w.schema().object(&p.object)) {
        (Some(field), Some(obj)) => obj.column(field),
        _ => None,
    };
    let Some(column) = column else {
        return Ok(Err(
            "only a proposal that writes a field can be edited".into()
        ));
    };
    let value = match crate::validate::value_for(column, raw) {
        Ok(v) => v,
        Err(e) => return Ok(Err(format!("{}: {e}", column.name))),
    };
    if let Some(parent) = w.missing_parent(column, &value)? {
        return Ok(Err(format!(
            "{}: \"{}\" does not exist in {}",
            column.name,
            crate::validate::short(&value.display()),
            parent.name
        )));
    }
    Ok(Ok(value))
}

/// Decides one proposal for `actor`. `Ok(Err(why))` is a refusal of this item (the caller goes
/// on with the rest); `Err` is a failure of the store.
pub fn decide(
    w: &Writer<'_>,
    policy: &Policy,
    policy_version: i64,
    actor: &str,
    id: i64,
    verb: &Verb,
) -> Result<Result<Proposal, String>> {
    let Some(p) = w.proposal(id)? else {
        return Ok(Err(format!("proposal {id} does not exist")));
    };
    if p.state != State::Pending.as_str() && p.state != State::Suggested.as_str() {
        return Ok(Err(format!("already {}", p.state)));
    }
    let decision: Option<Decision> = p.rules.clone().and_then(|v| serde_json::from_value(v).ok());
    let approvers = decision.map(|d| d.approvers).unwrap_or_default();
    if !policy.may_approve(actor, &approvers) {
        return Ok(Err(format!(
            "{actor} may not {} it: that takes the role {}",
            verb.action(),
            approvers.join(" or ")
        )));
    }
    if let Verb::Edit { .. } = verb
        && p.merge_into.is_some()
    {
        return Ok(Err("a merge cannot be edited; approve or reject it".into()));
    }
    if !matches!(verb, Verb::Reject { .. })
        && let Some(why) = staleness(w, &p)?
    {
        return Ok(Err(why));
    }
    let to = match verb {
        Verb::Approve { .. } | Verb::Edit { .. } => State::Approved,
        Verb::Reject { .. } => State::Rejected,
    };
    if !w.set_state(id, &[State::Pending, State::Suggested], to)? {
        return Ok(Err("it was decided by someone else meanwhile".into()));
    }
    if let Verb::Edit { value } = verb {
        w.set_edited_value(id, value)?;
    }
    let rules = p
        .rules
        .as_ref()
        .and_then(|r| r.get("rules"))
        .map(|r| r.to_string());
    w.append_event(NewEvent {
        actor: actor.to_string(),
        actor_kind: "human",
        action: verb.action(),
        proposal_id: Some(id),
        object: Some(p.object.clone()),
        record: Some(p.record.clone()),
        field: p.field.clone(),
        prev_value: Some(p.baseline.clone()),
        new_value: Some(match verb {
            Verb::Edit { value } => value.to_json(),
            _ => p.value.clone(),
        }),
        source: Some(p.source.clone()),
        confidence: p.confidence,
        policy_version: Some(policy_version),
        rules,
        approver: (!matches!(verb, Verb::Reject { .. })).then(|| actor.to_string()),
        // The log keeps the proposer's value beside the reviewer's.
        detail: match verb {
            Verb::Approve { note } => serde_json::json!({ "note": note, "was": p.state }),
            Verb::Reject { reason } => serde_json::json!({ "reason": reason, "was": p.state }),
            Verb::Edit { value } => serde_json::json!({
                "proposed": p.value,
                "edited": value.to_json(),
                "was": p.state,
            }),
        },
        ..NewEvent::default()
    })?;
    Ok(Ok(p))
}

/// Undoes `actor`'s latest decision on proposal `id` while nothing has come of it yet: the
/// proposal is undecided again (an edit's value is put back) and the undo is an event. The
/// track record and the circuit breaker then no longer count the decision.
pub fn undo(w: &Writer<'_>, actor: &str, id: i64) -> Result<Result<Proposal, String>> {
    let Some(p) = w.proposal(id)? else {
        return Ok(Err(format!("proposal {id} does not exist")));
    };
    let Some((action, by, was)) = w.last_human_decision(id)? else {
        return Ok(Err("it has no decision to undo".into()));
    };
    if by != actor {
        return Ok(Err(format!(
            "the decision on it is {}'s, not yours",
            crate::ui::safe(&by)
        )));
    }
    let from = if action == "reject" {
        State::Rejected
    } else {
        State::Approved
    };
    let back = State::parse(&was)
        .filter(|s| matches!(s, State::Pending | State::Suggested))
        .unwrap_or(State::Pending);
    if !w.set_state(id, &[from], back)? {
        return Ok(Err(format!(
            "it is {} now; that can no longer be undone",
            p.state
        )));
    }
    if action == "edit" {
        w.clear_edited_value(id)?;
    }
    w.append_event(NewEvent {
        actor: actor.to_string(),
        actor_kind: "human",
        action: "undo",
        proposal_id: Some(id),
        object: Some(p.object.clone()),
        record: Some(p.record.clone()),
        field: p.field.clone(),
        source: Some(p.source.clone()),
        detail: serde_json::json!({ "undid": action, "to": back.as_str() }),
        ..NewEvent::default()
    })?;
    Ok(Ok(p))
}

/// Pauses `source` when more than the policy's `max_reject_rate` of a window of its latest
/// human decisions are rejections, counting the window as full: 20 rejections out of any 50
/// trip a 30% breaker, however few approvals came between. Returns the reason when it paused.
pub fn circuit_breaker(w: &Writer<'_>, policy: &Policy, source: &str) -> Result<Option<String>> {
    let Some(b) = policy.circuit_breaker else {
        return Ok(None);
    };
    let recent = w.recent_human_decisions(source, b.window)?;
    let rejected = recent.iter().filter(|r| **r).count();
    if (rejected as f64) <= b.max_reject_rate * b.window as f64 {
        return Ok(None);
    }
    let reason = format!(
        "circuit breaker: {rejected} of the last {} human decisions on its proposals were rejections (more than {:.0}% of {})",
        recent.len(),
        b.max_reject_rate * 100.0,
        b.window
    );
    if !w.pause(Some(source), &reason, "crmgate")? {
        return Ok(None); // already paused
    }
    w.append_event(NewEvent {
        actor: "crmgate".into(),
        actor_kind: "system",
        action: "pause",
        source: Some(source.to_string()),
        detail: serde_json::json!({ "reason": reason, "rejected": rejected, "window": b.window }),
        ..NewEvent::default()
    })?;
    Ok(Some(reason))
}
