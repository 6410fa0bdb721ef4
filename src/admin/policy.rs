//! The policy where it meets the store: the version in force, installing a new one (an admin's
//! act, recorded as an event), and replaying the queue through a candidate to show what it would
//! change. Deciding itself stays pure, in [`crate::policy`].

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Problems, Result};
use crate::model::{Action, NewEvent, Proposal, Value};
use crate::policy::{self, Decision, Facts, Fit, Policy, Situation};
use crate::schema::{Object, Schema};
use crate::store::{
    Pause, PolicyVersion, ReadRecords, Redecision, Replay, Replaying, Store, Writer,
};

/// Parses a new policy's `text` (named `name` in messages) against the store's schema.
pub fn parse(name: &str, text: &str, schema: &Schema) -> Result<Policy> {
    parse_as(name, text, schema, Fit::Strict)
}

fn parse_as(name: &str, text: &str, schema: &Schema, fit: Fit) -> Result<Policy> {
    let parsed = match fit {
        Fit::Strict => policy::parse(text, schema),
        Fit::InForce => policy::parse_in_force(text, schema),
    };
    parsed.map_err(|found| {
        let mut problems = Problems::default();
        for p in found {
            problems.push(name, p.line as u64, p.message);
        }
        problems.into_error(None, "the policy was not changed; fix the lines above")
    })
}

fn no_policy() -> Error {
    Error::refused_with_hint(
        "this store has no policy",
        "install one with `crmgate policy set FILE`",
    )
}

/// The policy in force and its version. It is read even when it names columns the store no
/// longer has: those rules send what they could match to review (see [`Fit::InForce`]).
pub fn load(store: &Store) -> Result<(i64, Policy)> {
    let v = store.current_policy()?.ok_or_else(no_policy)?;
    let installed = store.latest_policy_event()?;
    if let Err(why) = crate::audit::check_policy(&v, installed.as_ref()) {
        return Err(Error::refused_with_hint(
            format!(
                "the policy in force (version {}) does not match the audit log: {why}; nothing was done under it",
                v.version
            ),
            "`crmgate audit verify` names what was changed; restore the store from a copy",
        ));
    }
    let name = format!("policy version {}", v.version);
    let policy = parse_as(&name, &v.text, store.schema(), Fit::InForce)?;
    Ok((v.version, policy))
}

/// What in the policy in force the store can no longer evaluate, one line per rule, each naming
/// the command that fixes it.
pub fn warnings(policy: &Policy) -> Vec<String> {
    policy
        .unevaluable()
        .filter_map(|r| r.unevaluable())
        .map(|why| {
            format!(
                "{why}: what it could match goes to review; fix the policy and install it with `crmgate policy set FIXED.toml`"
            )
        })
        .collect()
}

/// The text of policy version `number`, or of the one in force.
pub fn version(store: &Store, number: Option<i64>) -> Result<PolicyVersion> {
    match number {
        Some(n) => store.policy_version(n)?.ok_or_else(|| Error::NotFound {
            what: "policy version",
            id: n.to_string(),
        }),
        None => store.current_policy()?.ok_or_else(no_policy),
    }
}

/// What installing a policy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The text became this new version, now in force.
    New(i64),
    /// The text is the version in force already; nothing was written.
    AlreadyInForce(i64),
}

impl Installed {
    pub fn version(self) -> i64 {
        match self {
            Installed::New(v) | Installed::AlreadyInForce(v) => v,
        }
    }
}

/// Adds `text` as a new policy version, with a `policy` event, unless it is the one in force.
pub fn install(w: &Writer<'_>, name: &str, text: &str, actor: &str) -> Result<Installed> {
    parse(name, text, w.schema())?;
    let sha = crate::audit::sha256_hex(text.as_bytes());
    let current = w.current_policy_version()?;
    if let Some((version, current_sha)) = &current
        && *current_sha == sha
    {
        return Ok(Installed::AlreadyInForce(*version));
    }
    let version = w.add_policy(actor, &sha, text)?;
    w.append_event(NewEvent {
        actor: actor.to_string(),
        actor_kind: "human",
        action: "policy",
        detail: serde_json::json!({
            "version": version,
            "previous_version": current.map(|c| c.0),
            "sha256": sha,
            "file": name,
        }),
        ..NewEvent::default()
    })?;
    Ok(Installed::New(version))
}

/// Installs `text` (from the file `name`) for `actor`, who must be an admin under the policy in
/// force, if there is one, and decides the queue again under it (see [`set_and_redecide`]).
pub fn set(store: &mut Store, name: &str, text: &str, actor: &str, now: &str) -> Result<Installed> {
    Ok(set_and_redecide(store, name, text, actor, now, 0)?.installed)
}

/// What `policy set` did: the version it installed, and the queue decided again under it, in
/// the words of [`replay`] (the first `keep` changes in full).
#[derive(Debug, Clone)]
pub struct SetReport {
    pub installed: Installed,
    pub redecided: Replayed,
}

/// Installs `text` and, in the same transaction, decides again every proposal no person has
/// decided yet (pending, suggested, blocked, approved by the policy and not applied) under it:
/// the very replay `policy test` shows, now written, with a `redecide` event for each proposal
/// whose decision changed. A person's decision never changes.
pub fn set_and_redecide(
    store: &mut Store,
    name: &str,
    text: &str,
    actor: &str,
    now: &str,
    keep: usize,
) -> Result<SetReport> {
    if store.current_policy()?.is_some() {
        let (_, policy) = load(store)?;
        if !policy.has_role(actor, "admin") {
            return Err(Error::refused_with_hint(
                format!("{actor} may not change the policy: it takes the admin role"),
                format!(
                    "ask an admin ({}) to run `crmgate --as ADMIN policy set {name}`",
                    admins(&policy).join(", ")
                ),
            ));
        }
    }
    let candidate = parse(name, text, store.schema())?;
    let report = store.write(now, |w| {
        let installed = install(w, name, text, actor)?;
        let version = installed.version();
        // Each new decision is written as the replay meets it: it reads the queue a batch at a
        // time, so what it holds does not grow with the queue.
        let redecided = replay_with(w, &candidate, keep, &mut |r, from, d| {
            write_redecision(w, &candidate, version, actor, r, from, d)
        })?;
        Ok(SetReport {
            installed,
            redecided,
        })
    })?;
    alert_blocked(store, &candidate, now, &report);
    Ok(report)
}

/// One `blocked` alert when the new policy blocks proposals it found otherwise decided.
fn alert_blocked(store: &mut Store, policy: &Policy, now: &str, report: &SetReport) {
    let count: u64 = report
        .redecided
        .moves
        .iter()
        .filter(|m| m.to == Action::Block)
        .map(|m| m.count)
        .sum();
    if count == 0 {
        return;
    }
    let detail = serde_json::json!({
        "count": count,
        "at": "policy",
        "version": report.installed.version(),
    });
    let alert = crate::alerts::Alert::new(crate::alerts::AlertKind::Blocked, now, detail);
    crate::alerts::send(store, policy, &[alert]);
}

/// Writes one proposal's new decision and the event that records the move.
fn write_redecision(
    w: &Writer<'_>,
    policy: &Policy,
    version: i64,
    actor: &str,
    r: &Replay,
    from: Option<Action>,
    d: &Decision,
) -> Result<()> {
    let json = serde_json::to_string(d).expect("decisions serialize");
    let written = w.redecide(&Redecision {
        id: r.id,
        state: d.action.state(),
        action: d.action.as_str(),
        decision: &json,
        policy_version: version,
    })?;
    if !written {
        return Ok(());
    }
    w.append_event(NewEvent {
        actor: actor.to_string(),
        actor_kind: "policy",
        action: "redecide",
        proposal_id: Some(r.id),
        object: Some(r.object.clone()),
        record: Some(r.record.clone()),
        field: r.field.clone(),
        source: Some(r.source.clone()),
        confidence: Some(r.confidence),
        policy_version: Some(version),
        rules: Some(serde_json::to_string(&d.rules).expect("names serialize")),
        detail: serde_json::json!({
            "from": decision_label(from),
            "to": d.action,
            "why": d.why(policy),
        }),
        ..NewEvent::default()
    })?;
    Ok(())
}

fn admins(policy: &Policy) -> Vec<&str> {
    policy
        .roles
        .iter()
        .filter(|(_, r)| r.iter().any(|x| x == "admin"))
        .map(|(a, _)| a.as_str())
        .collect()
}

/// A decision that a replay found would change.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WouldChange {
    pub id: i64,
    /// `SOURCE:ID`, or crmgate's id when the proposer gave none.
    pub proposal: String,
    /// `OBJECT/ID`.
    pub record: String,
    pub field: Option<String>,
    /// The decision now; `None` for a proposal never decided.
    #[serde(serialize_with = "serialize_decision")]
    pub from: Option<Action>,
    pub to: Action,
    pub why: Vec<String>,
}

/// How many decisions would move from one action to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub from: Option<Action>,
    pub to: Action,
    pub count: u64,
}

/// What a replay found: how many proposals it replayed, how many decisions would change, the
/// moves by (from, to), and the first changes in full.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    pub replayed: u64,
    pub changed: u64,
    /// In order of the actions' names, as `policy test` lists them.
    pub moves: Vec<Move>,
    pub changes: Vec<WouldChange>,
    /// Approvals by a person, not applied yet, that the policy would no longer permit; apply
    /// sends each back to review.
    pub unpermitted: Vec<Unpermitted>,
}

/// A decision as `policy test` names it: its action, or `none`.
pub fn decision_label(a: Option<Action>) -> &'static str {
    a.map(Action::as_str).unwrap_or("none")
}

fn serialize_decision<S: serde::Serializer>(
    a: &Option<Action>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(decision_label(*a))
}

/// Replays every proposal no person has decided yet through `candidate`, against the records
/// as they are now and with the confidence crmgate gave it, as one run (the per-run and per-day
/// limits count across the replay). Keeps the first `limit` changes in full; changes nothing.
pub fn replay(from: &impl Replaying, candidate: &Policy, limit: usize) -> Result<Replayed> {
    replay_with(from, candidate, limit, &mut |_, _, _| Ok(()))
}

/// What a replay does with a proposal whose decision changes: its row, the decision it had, the
/// new one.
type OnChange<'a> = dyn FnMut(&Replay, Option<Action>, &Decision) -> Result<()> + 'a;

/// [`replay`], calling `changed` with each proposal whose decision would change.
fn replay_with(
    from: &impl Replaying,
    candidate: &Policy,
    limit: usize,
    changed: &mut OnChange<'_>,
) -> Result<Replayed> {
    let pauses = from.pauses()?;
    let mut autos: HashMap<String, u64> = HashMap::new();
    let mut moves: BTreeMap<(&str, &str), Move> = BTreeMap::new();
    let mut out = Replayed::default();
    from.for_each_undecided(&mut |r| {
        let used = autos.get(&r.source).copied().unwrap_or(0);
        let now = situation(&pauses, &r.source, used);
        let Some(d) = redecide(from, candidate, &r, &now)? else {
            return Ok(());
        };
        if d.action == Action::Auto {
            *autos.entry(r.source.clone()).or_default() += 1;
        }
        out.replayed += 1;
        let was = r.decision;
        if was == Some(d.action) {
            return Ok(());
        }
        out.changed += 1;
        moves
            .entry((decision_label(was), d.action.as_str()))
            .or_insert(Move {
                from: was,
                to: d.action,
                count: 0,
            })
            .count += 1;
        if out.changes.len() < limit {
            out.changes.push(would_change(&r, was, &d, candidate));
        }
        changed(&r, was, &d)
    })?;
    out.moves = moves.into_values().collect();
    out.unpermitted = unpermitted(from, candidate)?;
    Ok(out)
}

/// The pauses and limits a replayed decision meets, `used` auto decisions into the replay.
fn situation(pauses: &[Pause], source: &str, used: u64) -> Situation {
    Situation {
        store_paused: pauses.iter().any(|p| p.source.is_none()),
        source_paused: pauses.iter().any(|p| p.source.as_deref() == Some(source)),
        auto_in_run: used,
        auto_today: used,
    }
}

/// `r` decided afresh by `policy`; `None` when its object or record is gone (apply says so).
fn redecide(
    store: &impl ReadRecords,
    policy: &Policy,
    r: &Replay,
    now: &Situation,
) -> Result<Option<Decision>> {
    let (Some(obj), kind) = (store.schema().object(&r.object), r.kind) else {
        return Ok(None);
    };
    let Some(row) = store.record_row(obj, &r.record)? else {
        return Ok(None);
    };
    let second_row = match &r.merge_into {
        Some(m) => store.record_row(obj, m)?,
        None => None,
    };
    let first = pairs(obj, &row);
    let second = second_row.as_deref().map(|r| pairs(obj, r));
    let mut records: Vec<&[(&str, &Value)]> = vec![&first];
    if let Some(s) = &second {
        records.push(s);
    }
    let current = r
        .field
        .as_ref()
        .and_then(|f| obj.columns.iter().position(|c| &c.name == f))
        .map(|i| row[i].clone())
        .unwrap_or(Value::Null);
    let mut rows: Vec<&[Value]> = vec![&row];
    rows.extend(second_row.as_deref());
    let related = crate::related::related(policy, store.schema(), obj, &rows, |o, k| {
        store.record_row(o, k)
    })?;
    let facts = Facts {
        kind,
        source: &r.source,
        object: &r.object,
        field: r.field.as_deref(),
        value: &r.value,
        current: &current,
        trigger: r.trigger.as_deref(),
        confidence: r.confidence,
        records: &records,
        related: &related,
    };
    Ok(Some(policy::decide(policy, &facts, now)))
}

/// `p` decided again under `policy`, against its records as they are now, with no pause or
/// limit counted: what the policy in force says of it, and so who may approve it now. `None`
/// when its object or record is gone.
pub fn decide_again(
    store: &impl ReadRecords,
    policy: &Policy,
    p: &Proposal,
) -> Result<Option<Decision>> {
    let r = Replay {
        id: p.id,
        source: p.source.clone(),
        ext_id: p.ext_id.clone(),
        kind: p.kind,
        object: p.object.clone(),
        record: p.record.clone(),
        field: p.field.clone(),
        value: crate::apply::json_to_value(&p.value),
        merge_into: p.merge_into.clone(),
        confidence: p.confidence.or(p.stated_confidence).unwrap_or(0.5),
        trigger: p.trigger.clone(),
        decision: p.decision,
    };
    redecide(store, policy, &r, &Situation::default())
}

/// A person's approval, not applied yet, that a policy no longer permits: its approver holds
/// none of the roles the policy's rules now ask for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unpermitted {
    pub id: i64,
    /// `SOURCE:ID`, or crmgate's id.
    pub proposal: String,
    pub record: String,
    pub field: Option<String>,
    pub approver: String,
    /// The roles that may approve it under the policy.
    pub roles: Vec<String>,
}

/// The approvals by a person, not applied yet, that `policy` would no longer permit.
fn unpermitted(from: &impl Replaying, policy: &Policy) -> Result<Vec<Unpermitted>> {
    let mut out = Vec::new();
    for (r, approver) in from.human_approvals()? {
        let Some(d) = redecide(from, policy, &r, &Situation::default())? else {
            continue;
        };
        if policy.may_approve(&approver, &d.approvers) {
            continue;
        }
        let w = would_change(&r, None, &d, policy);
        out.push(Unpermitted {
            id: r.id,
            proposal: w.proposal,
            record: w.record,
            field: w.field,
            approver,
            roles: d.approvers,
        });
    }
    Ok(out)
}

/// A record's fields by name, as the policy's record conditions read them.
fn pairs<'a>(obj: &'a Object, row: &'a [Value]) -> Vec<(&'a str, &'a Value)> {
    obj.columns
        .iter()
        .map(|c| c.name.as_str())
        .zip(row)
        .collect()
}

fn would_change(r: &Replay, from: Option<Action>, d: &Decision, policy: &Policy) -> WouldChange {
    WouldChange {
        id: r.id,
        proposal: r
            .ext_id
            .as_ref()
            .map(|e| format!("{}:{e}", r.source))
            .unwrap_or_else(|| r.id.to_string()),
        record: format!("{}/{}", r.object, r.record),
        field: r.field.clone(),
        from,
        to: d.action,
        why: d.why(policy),
    }
}
