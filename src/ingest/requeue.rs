//! Requeue: a proposal that could not go forward as it was (it conflicted with a record that
//! moved, its write failed, or, undecided, its record moved since it was proposed) proposed
//! again, against the record as it is now. The new proposal is judged by the same [`Judge`] as
//! an ingested one, under the policy in force; the old one is superseded by it, and both get an
//! event.
//!
//! The new proposal keeps its source's id (`SOURCE:ID` names the latest proposal with it), but
//! not the key of (source, id): that stays with the proposal first ingested, so ingesting the
//! same file again is still a no-op. The new one's dedupe key is one of its own, made from the
//! id of the proposal it replaces. It drops `expected`: what the proposer saw is what the
//! record no longer holds, and the new baseline is what staleness is judged against from now.

use super::judge::{Judge, Judged};
use crate::alerts::{Alert, AlertKind};
use crate::error::{Error, Result};
use crate::human::{Refusal, staleness};
use crate::model::{NewEvent, NewProposal, Proposal, State, Verdict, key64};
use crate::policy::Policy;
use crate::store::{ListFilter, Staged, Store, Writer};

/// The states a filter-wide requeue takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeueable {
    Conflict,
    Failed,
}

impl Requeueable {
    pub fn state(self) -> State {
        match self {
            Requeueable::Conflict => State::Conflict,
            Requeueable::Failed => State::Failed,
        }
    }
}

/// Which proposals to requeue.
#[derive(Debug, Clone)]
pub enum Targets {
    /// By address, as given: crmgate ids or `SOURCE:ID`.
    Ids(Vec<String>),
    /// Every proposal in a state, narrowed by source and object.
    Matching {
        state: Requeueable,
        source: Option<String>,
        object: Option<String>,
        /// The caller has seen how many match and goes ahead; without it nothing is requeued.
        confirmed: bool,
    },
}

/// What a requeue is asked to do.
pub struct Request {
    pub targets: Targets,
    pub actor: String,
    pub now: String,
}

/// One proposal requeued: the old id, the new one, and the new one's state.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Requeued {
    pub old: i64,
    pub new: i64,
    #[serde(serialize_with = "state_name")]
    pub state: State,
}

fn state_name<S: serde::Serializer>(state: &State, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

/// What a requeue did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub requeued: Vec<Requeued>,
    pub refused: Vec<Refusal>,
}

/// Requeues `req.targets` for `req.actor` under the policy in force, in one transaction. A
/// proposal that cannot be requeued is refused, with why and what to do instead, and the
/// others go on. A filter that matches some needs `confirmed`; one that matches none is
/// nothing to do.
pub fn requeue(store: &mut Store, req: &Request) -> Result<Report> {
    let (version, policy) = crate::admin::policy::load(store)?;
    // What to requeue is resolved before the write lock is taken.
    let targets = resolve(store, &req.targets)?;
    if targets.is_empty() {
        return Ok(Report::default());
    }
    let report = store.write(&req.now, |w| {
        let mut judge = Judge::new(&policy, version, &req.now, w.pauses()?);
        let snapshot = w.snapshot()?;
        let mut report = Report::default();
        for (shown, id) in targets {
            let one = match id {
                Some(id) => requeue_one(w, &mut judge, &snapshot, &req.actor, id)?,
                None => One::Refused("no such proposal".to_string()),
            };
            match one {
                One::Requeued(r) => report.requeued.push(r),
                One::Refused(error) => report.refused.push(Refusal { id: shown, error }),
            }
        }
        Ok(report)
    })?;
    alert_blocked(store, &policy, req, &report);
    Ok(report)
}

/// One `blocked` alert when the policy blocked proposals as they were requeued: a cron line
/// that retries conflicts hears of it as one that proposes does.
fn alert_blocked(store: &mut Store, policy: &Policy, req: &Request, report: &Report) {
    let blocked: Vec<i64> = report
        .requeued
        .iter()
        .filter(|r| r.state == State::Blocked)
        .map(|r| r.new)
        .collect();
    if blocked.is_empty() {
        return;
    }
    let source = match &req.targets {
        Targets::Matching { source, .. } => source.as_deref(),
        Targets::Ids(_) => None,
    };
    let detail = serde_json::json!({
        "count": blocked.len(),
        "at": "requeue",
        "proposals": blocked.iter().take(100).collect::<Vec<_>>(),
    });
    let alert = Alert::new(AlertKind::Blocked, &req.now, detail).about_source(source);
    crate::alerts::send(store, policy, &[alert]);
}

/// Each target as shown, with its id when it names a proposal that exists.
fn resolve(store: &Store, targets: &Targets) -> Result<Vec<(String, Option<i64>)>> {
    let (state, source, object, confirmed) = match targets {
        Targets::Ids(ids) => {
            return Ok(ids
                .iter()
                .map(|id| (id.clone(), crate::queue::find(store, id).ok().map(|p| p.id)))
                .collect());
        }
        Targets::Matching {
            state,
            source,
            object,
            confirmed,
        } => (state.state(), source, object, *confirmed),
    };
    let filter = crate::queue::checked(
        store,
        ListFilter {
            source: source.clone(),
            object: object.clone(),
            ..ListFilter::default()
        },
    )?;
    let ids = store.proposal_ids(&filter, &[state])?;
    if !ids.is_empty() && !confirmed {
        return Err(Error::refused_with_hint(
            format!(
                "{} {} {}; nothing was requeued",
                ids.len(),
                state.as_str(),
                if ids.len() == 1 {
                    "proposal matches"
                } else {
                    "proposals match"
                }
            ),
            "check the filter, then add --yes to requeue exactly these",
        ));
    }
    Ok(ids
        .into_iter()
        .map(|id| (id.to_string(), Some(id)))
        .collect())
}

/// What became of one proposal a requeue was asked for.
enum One {
    Requeued(Requeued),
    Refused(String),
}

/// Requeues proposal `id`, or says why not.
fn requeue_one(
    w: &Writer<'_>,
    judge: &mut Judge<'_>,
    snapshot: &crate::store::Snapshot,
    actor: &str,
    id: i64,
) -> Result<One> {
    let Some(old) = w.proposal(id)? else {
        return Ok(One::Refused("no such proposal".into()));
    };
    if let Some(why) = refusal(w, &old)? {
        return Ok(One::Refused(why));
    }
    let (_, mut p) = w.proposal_input(id)?.expect("the proposal was just read");
    p.expected = None;
    p.dedupe_key = key64(&["requeue", &id.to_string()]);
    let staged = Staged {
        sid: 0,
        ingest_id: 0,
        p,
    };
    match judge.judge(snapshot, staged)? {
        Judged::Rejected(_, why) => Ok(One::Refused(match old.state {
            State::Pending | State::Suggested => format!(
                "{why}, so there is nothing to propose it against: reject it with `crmgate reject {id} --reason TEXT`"
            ),
            _ => format!(
                "{why}, so there is nothing to propose it against; it stays {}, on the record",
                old.state
            ),
        })),
        Judged::Decided(s, verdict) => queue(w, actor, &old, s.p, verdict).map(One::Requeued),
    }
}

/// Why `p` cannot be requeued, with what to do instead; `None` when it can.
fn refusal(w: &Writer<'_>, p: &Proposal) -> Result<Option<String>> {
    let state = p.state;
    let why = match state {
        State::Conflict | State::Failed => None,
        State::Pending | State::Suggested => match staleness(w, p)? {
            Some(_) => None,
            None => Some(format!(
                "it is {state} and its record has not moved since it was proposed: decide it with `crmgate approve {id}` or `crmgate reject {id} --reason TEXT`",
                state = p.state,
                id = p.id
            )),
        },
        State::Superseded => Some(format!(
            "it is superseded{}",
            p.superseded_by
                .map(|n| format!(" by {n}: see `crmgate show {n}`"))
                .unwrap_or_default()
        )),
        State::Approved => Some(format!(
            "it is approved and waits for `crmgate apply`, which marks it conflict if its record moved; then `crmgate requeue {}`",
            p.id
        )),
        State::Applied | State::Reverted | State::Rejected | State::Blocked => Some(format!(
            "it is {}; only a conflict or failed proposal, or an undecided one whose record moved, can be requeued; propose the change again under a new id",
            p.state
        )),
    };
    if why.is_some() {
        return Ok(why);
    }
    // A newer undecided proposal from the same source for the same target stands: requeuing
    // the older one beside it would leave two.
    let twin = w
        .open_for_record(&p.object, &p.record)?
        .into_iter()
        .find(|o| o.id != p.id && o.source == p.source && o.field == p.field);
    Ok(twin.map(|t| {
        format!(
            "a newer proposal from {} for the same target waits for a decision: see `crmgate show {}`",
            p.source, t.id
        )
    }))
}

/// Queues `p`, judged, as the proposal that replaces `old`, under an ingest of its own (now,
/// from the same file): `old` is superseded by it, and both get an event.
fn queue(
    w: &Writer<'_>,
    actor: &str,
    old: &Proposal,
    p: NewProposal,
    verdict: Verdict,
) -> Result<Requeued> {
    let ingest = w.requeue_ingest(actor, &old.file)?;
    let new = w.max_proposal_id()? + 1;
    w.insert_proposal(new, &p, ingest, &verdict, None)?;
    w.supersede(old.id, new)?;
    let event = |action, id, detail| NewEvent {
        actor: actor.to_string(),
        actor_kind: "human",
        action,
        proposal_id: Some(id),
        object: Some(p.object.clone()),
        record: Some(p.record.clone()),
        field: p.field.clone(),
        source: Some(p.source.clone()),
        detail,
        ..NewEvent::default()
    };
    w.append_event(event(
        "supersede",
        old.id,
        serde_json::json!({ "superseded_by": new, "requeued": true, "was": old.state }),
    ))?;
    let seq = w.append_event(NewEvent {
        prev_value: Some(p.baseline.to_json()),
        new_value: Some(p.value.to_json()),
        confidence: Some(verdict.confidence),
        policy_version: Some(verdict.policy_version),
        ..event(
            "requeue",
            new,
            serde_json::json!({
                "replaces": old.id,
                "was": old.state,
                "decision": verdict.action.as_str(),
                "dropped_expected": old.expected,
                "ingest_id": ingest,
                "proposals": crate::audit::ingest_binding(w.ingest_digest(ingest)),
            }),
        )
    })?;
    w.set_ingest_event(ingest, seq)?;
    Ok(Requeued {
        old: old.id,
        new,
        state: verdict.state,
    })
}
