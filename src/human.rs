//! Human decisions on queued proposals: approve and reject, with the checks every path to a
//! decision shares (state, approver role, staleness), and the circuit breaker that pauses a
//! source humans keep rejecting. The interactive review and the `approve`/`reject` commands both
//! come through here.

use crate::error::Result;
use crate::model::{NewEvent, Proposal, State, merge_fingerprint};
use crate::policy::{Decision, Policy};
use crate::store::Writer;

#[derive(Debug, Clone)]
pub enum Verb {
    Approve { note: Option<String> },
    Reject { reason: String },
}

impl Verb {
    fn action(&self) -> &'static str {
        match self {
            Verb::Approve { .. } => "approve",
            Verb::Reject { .. } => "reject",
        }
    }
}

/// Whether the record still holds what the proposal was made against; `Some(why)` if not.
pub fn staleness(w: &Writer<'_>, p: &Proposal) -> Result<Option<String>> {
    let Some(obj) = w.schema().object(&p.object) else {
        return Ok(Some(format!("the object {} no longer exists", p.object)));
    };
    let Some(row) = w.record_row(obj, &p.record)? else {
        return Ok(Some(format!(
            "the record {}/{} no longer exists",
            p.object, p.record
        )));
    };
    if let Some(into) = &p.merge_into {
        let Some(survivor) = w.record_row(obj, into)? else {
            return Ok(Some(format!(
                "the record {}/{into} no longer exists",
                p.object
            )));
        };
        let now = merge_fingerprint(&row, &survivor);
        return Ok((p.baseline_fp.as_deref() != Some(now.as_str()))
            .then(|| "one of the two records changed since the merge was proposed".to_string()));
    }
    let field = p.field.as_deref().unwrap_or_default();
    let Some(at) = obj.columns.iter().position(|c| c.name == field) else {
        return Ok(Some(format!("the field {field} no longer exists")));
    };
    let now = row[at].to_json();
    Ok((now != p.baseline).then(|| {
        format!(
            "stale: {field} is now {} but was {} when proposed",
            shown(&now),
            shown(&p.baseline)
        )
    }))
}

fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "empty".into(),
        serde_json::Value::String(s) => format!("\"{}\"", crate::validate::short(s)),
        other => other.to_string(),
    }
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
    if let Verb::Approve { .. } = verb
        && let Some(why) = staleness(w, &p)?
    {
        return Ok(Err(why));
    }
    let to = match verb {
        Verb::Approve { .. } => State::Approved,
        Verb::Reject { .. } => State::Rejected,
    };
    if !w.set_state(id, &[State::Pending, State::Suggested], to)? {
        return Ok(Err("it was decided by someone else meanwhile".into()));
    }
    let rules = p
        .rules
        .as_ref()
        .and_then(|r| r.get("rules"))
        .map(|r| r.to_string());
    w.append_event(&NewEvent {
        actor: actor.to_string(),
        actor_kind: "human",
        action: verb.action(),
        proposal_id: Some(id),
        object: Some(p.object.clone()),
        record: Some(p.record.clone()),
        field: p.field.clone(),
        prev_value: Some(p.baseline.clone()),
        new_value: Some(p.value.clone()),
        source: Some(p.source.clone()),
        confidence: p.confidence,
        policy_version: Some(policy_version),
        rules,
        approver: matches!(verb, Verb::Approve { .. }).then(|| actor.to_string()),
        detail: match verb {
            Verb::Approve { note } => serde_json::json!({ "note": note, "was": p.state }),
            Verb::Reject { reason } => serde_json::json!({ "reason": reason, "was": p.state }),
        },
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
    w.append_event(&NewEvent {
        actor: "crmgate".into(),
        actor_kind: "system",
        action: "pause",
        source: Some(source.to_string()),
        detail: serde_json::json!({ "reason": reason, "rejected": rejected, "window": b.window }),
        ..NewEvent::default()
    })?;
    Ok(Some(reason))
}
