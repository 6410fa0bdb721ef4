//! Human decisions on queued proposals: approve and reject, with the checks every path to a
//! decision shares (state, approver role, staleness); a rejection runs the source's circuit
//! breaker (`admin::pauses`). The interactive review and the `approve`/`reject` commands both
//! come through here.

use crate::error::{Error, Result};
use crate::model::{NewEvent, Proposal, State, Value};
use crate::policy::{Decision, Policy};
use crate::store::{ListFilter, ReadRecords, Store, Writer};

/// Whether the record still holds what the proposal was made against: apply owns the check.
pub use crate::apply::staleness;

/// How one decision on one proposal went: made, or refused for a reason the caller shows (and
/// then goes on with the rest). A failure of the store is an `Err` around it.
#[derive(Debug, Clone)]
pub enum Ruling {
    Done(Box<Proposal>),
    Refused(String),
}

/// A reviewer's replacement value, checked: the value to write, or what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    Valid(Value),
    Invalid(String),
}

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
    /// A rejection; refused without a reason, which the source's track record keeps.
    pub fn reject(reason: String) -> Result<Verb> {
        if reason.trim().is_empty() {
            return Err(Error::refused("a rejection needs a --reason"));
        }
        Ok(Verb::Reject { reason })
    }

    /// The verb and its past tense, as messages say them.
    pub fn words(&self) -> (&'static str, &'static str) {
        match self {
            Verb::Approve { .. } | Verb::Edit { .. } => ("approve", "approved"),
            Verb::Reject { .. } => ("reject", "rejected"),
        }
    }

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
/// clears the field.
pub fn check_edit(w: &Writer<'_>, p: &Proposal, raw: Option<&str>) -> Result<Edit> {
    let column = match (&p.field, w.schema().object(&p.object)) {
        (Some(field), Some(obj)) => obj.column(field),
        _ => None,
    };
    let Some(column) = column else {
        return Ok(Edit::Invalid(
            "only a proposal that writes a field can be edited".into(),
        ));
    };
    let value = match crate::validate::value_for(column, raw) {
        Ok(v) => v,
        Err(e) => return Ok(Edit::Invalid(format!("{}: {e}", column.name))),
    };
    if let Some(parent) = w.missing_parent(column, &value)? {
        return Ok(Edit::Invalid(format!(
            "{}: \"{}\" does not exist in {}",
            column.name,
            crate::validate::short(&value.display()),
            parent.name
        )));
    }
    Ok(Edit::Valid(value))
}

/// The way forward from a stale proposal: one whose records and field are still there is
/// proposed again against the record as it is now; one whose record (or field) is gone can only
/// be rejected.
pub fn stale_hint(r: &impl ReadRecords, p: &Proposal) -> Result<String> {
    let requeueable = match r.schema().object(&p.object) {
        Some(o) => {
            let there = |id: &str| r.record_row(o, id).map(|row| row.is_some());
            let field = match (&p.merge_into, &p.field) {
                (Some(into), _) => there(into)?,
                (None, Some(f)) => o.columns.iter().any(|c| c.name == *f),
                (None, None) => false,
            };
            field && there(&p.record)?
        }
        None => false,
    };
    Ok(if requeueable {
        format!(
            "propose it again against the record as it is now with `crmgate requeue {}`",
            p.id
        )
    } else {
        format!("reject it with `crmgate reject {} --reason TEXT`", p.id)
    })
}

/// Decides one proposal for `actor`.
pub fn decide(
    w: &Writer<'_>,
    policy: &Policy,
    policy_version: i64,
    actor: &str,
    id: i64,
    verb: &Verb,
) -> Result<Ruling> {
    let Some(p) = w.proposal(id)? else {
        return Ok(Ruling::Refused(format!("proposal {id} does not exist")));
    };
    if p.state != State::Pending && p.state != State::Suggested {
        return Ok(Ruling::Refused(match p.state {
            State::Conflict | State::Failed => format!(
                "already {}; hint: propose it again against the record as it is now with `crmgate requeue {id}`",
                p.state
            ),
            _ => format!("already {}", p.state),
        }));
    }
    let approvers = crate::admin::access::approvers_now(w, policy, &p)?;
    if !policy.may_approve(actor, &approvers) {
        return Ok(Ruling::Refused(format!(
            "{actor} may not {} it: that takes the role {}",
            verb.action(),
            approvers.join(" or ")
        )));
    }
    if let Verb::Edit { .. } = verb
        && p.merge_into.is_some()
    {
        return Ok(Ruling::Refused(
            "a merge cannot be edited; approve or reject it".into(),
        ));
    }
    if !matches!(verb, Verb::Reject { .. })
        && let Some(why) = staleness(w, &p)?
    {
        return Ok(Ruling::Refused(format!(
            "{why}; hint: {}",
            stale_hint(w, &p)?
        )));
    }
    let to = match verb {
        Verb::Approve { .. } | Verb::Edit { .. } => State::Approved,
        Verb::Reject { .. } => State::Rejected,
    };
    if !w.set_state(id, &[State::Pending, State::Suggested], to)? {
        return Ok(Ruling::Refused(
            "it was decided by someone else meanwhile".into(),
        ));
    }
    if let Verb::Edit { value } = verb {
        w.set_edited_value(id, value)?;
    }
    // Approving a merge pins both records as the approver sees them: apply judges it by them.
    let pinned = match verb {
        Verb::Approve { .. } if p.merge_into.is_some() => Some(crate::apply::pin_merge(w, &p)?),
        _ => None,
    };
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
        // The log keeps the proposer's value beside the reviewer's, and its evidence.
        detail: p.with_evidence(match verb {
            Verb::Approve { note } => match pinned {
                Some(pin) => serde_json::json!({ "note": note, "was": p.state, "pinned": pin }),
                None => serde_json::json!({ "note": note, "was": p.state }),
            },
            Verb::Reject { reason } => serde_json::json!({ "reason": reason, "was": p.state }),
            Verb::Edit { value } => serde_json::json!({
                "proposed": p.value,
                "edited": value.to_json(),
                "was": p.state,
            }),
        }),
        ..NewEvent::default()
    })?;
    Ok(Ruling::Done(Box::new(p)))
}

/// Undoes `actor`'s latest decision on proposal `id` while nothing has come of it yet: the
/// proposal is undecided again (an edit's value is put back) and the undo is an event. The
/// track record and the circuit breaker then no longer count the decision.
pub fn undo(w: &Writer<'_>, actor: &str, id: i64) -> Result<Ruling> {
    let Some(p) = w.proposal(id)? else {
        return Ok(Ruling::Refused(format!("proposal {id} does not exist")));
    };
    let Some((action, by, was)) = w.last_human_decision(id)? else {
        return Ok(Ruling::Refused("it has no decision to undo".into()));
    };
    if by != actor {
        return Ok(Ruling::Refused(format!(
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
        return Ok(Ruling::Refused(format!(
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
    Ok(Ruling::Done(Box::new(p)))
}

/// Which proposals a batch decision covers.
#[derive(Debug, Clone)]
pub enum Targets {
    /// Proposals by address, as given: crmgate ids or `SOURCE:ID`.
    Ids(Vec<String>),
    /// Every pending proposal a selection matches; suggestions are never decided in bulk.
    Matching(Selection),
}

/// The pending proposals a filter-wide decision covers.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub narrow: ListFilter,
    /// Only proposals this policy rule matched.
    pub rule: Option<String>,
    /// Only proposals with crmgate's confidence at most this.
    pub max_confidence: Option<f64>,
    /// The caller has seen how many match and goes ahead; without it nothing is decided.
    pub confirmed: bool,
}

impl Targets {
    /// Ids, or a selection: exactly one of the two.
    pub fn new(verb: &Verb, ids: Vec<String>, selection: Option<Selection>) -> Result<Targets> {
        match (ids.is_empty(), selection) {
            (false, None) => Ok(Targets::Ids(ids)),
            (true, Some(s)) => Ok(Targets::Matching(s)),
            _ => {
                let word = verb.words().0;
                Err(Error::refused_with_hint(
                    format!("{word} takes proposal ids or a filter (one of the two)"),
                    format!(
                        "e.g. `crmgate {word} 42 clearbit:p-17` or `crmgate {word} --source clearbit --yes`"
                    ),
                ))
            }
        }
    }
}

/// A proposal a batch did not decide, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Refusal {
    /// As the caller named it.
    pub id: String,
    pub error: String,
}

/// What a batch decision did: how many it decided, which it did not, and the sources the circuit
/// breaker paused (`SOURCE: reason`).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub done: u64,
    pub refused: Vec<Refusal>,
    pub paused: Vec<String>,
}

/// Decides `targets` for `actor` under the policy in force, in one transaction; a rejection then
/// runs the circuit breaker of each source it touched.
pub fn decide_batch(
    store: &mut Store,
    targets: &Targets,
    verb: &Verb,
    actor: &str,
    now: &str,
) -> Result<Batch> {
    let (version, policy) = crate::admin::policy::load(store)?;
    // What to decide is resolved before the write lock is taken.
    let resolved = resolve(store, targets, verb)?;
    let (batch, trips) = store.write(now, |w| {
        let mut batch = Batch::default();
        let mut trips = Vec::new();
        let mut sources: Vec<String> = Vec::new();
        for (shown, id) in resolved {
            let ruling = match id {
                Ok(id) => decide(w, &policy, version, actor, id, verb)?,
                Err(why) => Ruling::Refused(why),
            };
            match ruling {
                Ruling::Done(p) => {
                    batch.done += 1;
                    if !sources.contains(&p.source) {
                        sources.push(p.source);
                    }
                }
                Ruling::Refused(error) => batch.refused.push(Refusal { id: shown, error }),
            }
        }
        if let Verb::Reject { .. } = verb {
            for s in &sources {
                if let Some(reason) = crate::admin::pauses::circuit_breaker(w, &policy, s)? {
                    batch.paused.push(format!("{s}: {reason}"));
                    trips.push((s.clone(), reason));
                }
            }
        }
        Ok((batch, trips))
    })?;
    crate::admin::pauses::alert_breakers(store, &policy, now, &trips);
    Ok(batch)
}

/// A target's proposal id, or why it names none.
type Found = std::result::Result<i64, String>;

/// Each target as shown, with its id when it names a proposal that exists.
fn resolve(store: &Store, targets: &Targets, verb: &Verb) -> Result<Vec<(String, Found)>> {
    let s = match targets {
        Targets::Ids(ids) => {
            return Ok(ids
                .iter()
                .map(|id| {
                    let found =
                        crate::queue::find(store, id)
                            .map(|p| p.id)
                            .map_err(|e| match e.hint() {
                                Some(h) if matches!(e, Error::Refused { .. }) => {
                                    format!("{e}; {h}")
                                }
                                _ => "no such proposal".to_string(),
                            });
                    (id.clone(), found)
                })
                .collect());
        }
        Targets::Matching(s) => s,
    };
    let mut found = Vec::new();
    for id in store.proposal_ids(&s.narrow, &[State::Pending])? {
        if let Some(p) = store.proposal(id)?
            && selected(s, &p)
        {
            found.push((id.to_string(), Ok(id)));
        }
    }
    if !s.confirmed {
        let (word, done) = verb.words();
        return Err(Error::refused_with_hint(
            match found.len() {
                1 => format!("1 pending proposal matches; nothing was {done}"),
                n => format!("{n} pending proposals match; nothing was {done}"),
            },
            format!("check the filter, then add --yes to {word} exactly these"),
        ));
    }
    Ok(found)
}

/// Whether `p` meets the selection's confidence and rule conditions.
fn selected(s: &Selection, p: &Proposal) -> bool {
    if let Some(max) = s.max_confidence
        && p.confidence.unwrap_or(0.0) > max
    {
        return false;
    }
    let Some(rule) = &s.rule else {
        return true;
    };
    let d: Option<Decision> = p.rules.clone().and_then(|v| serde_json::from_value(v).ok());
    d.is_some_and(|d| d.rules.iter().any(|r| r == rule))
}
