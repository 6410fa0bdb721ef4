//! The audit log's hash chain. Each event's hash is the SHA-256 of a canonical form that covers
//! every column of the event and the previous event's hash, so removing, altering, inserting or
//! reordering any event breaks the chain from that point on.
//!
//! Canonical form (documented in the README so an auditor can recompute it with standard tools):
//! the compact JSON array
//! `[seq, at, actor, actor_kind, action, proposal_id, change_id, run_id, object, record, field,
//!   prev_value, new_value, source, confidence, rules, policy_version, approver, detail, prev_hash]`
//! where text columns are JSON strings (or `null`), integer columns JSON numbers (or `null`),
//! `prev_value`, `new_value` and `detail` are the JSON text exactly as stored, and the hash is the
//! lowercase hex SHA-256 of that array's UTF-8 bytes. The first event's `prev_hash` is 64 zeros.
//! An event that records the OS user who ran the command (`os_user`, every event written since
//! the column was added) has it as a 21st element, a JSON string after `prev_hash`; an event
//! without one (written before) keeps the 20-element array, so the older chain still verifies.

use sha2::{Digest, Sha256};

use crate::error::Holds;

/// Whether this process's clock was set by the test switch: see [`set_test_clock`].
static TEST_CLOCK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks every event this process writes from now on as written under a clock the caller set
/// (`CRMGATE_NOW` with `CRMGATE_TEST_CLOCK=1`): `detail.test_clock` is `true` in each.
pub fn set_test_clock(on: bool) {
    TEST_CLOCK.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether events are written under the test clock.
pub fn test_clock() -> bool {
    TEST_CLOCK.load(std::sync::atomic::Ordering::Relaxed)
}

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Every column of a stored event, in canonical order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub actor_kind: String,
    pub action: String,
    pub proposal_id: Option<i64>,
    pub change_id: Option<i64>,
    pub run_id: Option<i64>,
    pub object: Option<String>,
    pub record: Option<String>,
    pub field: Option<String>,
    pub prev_value: Option<String>,
    pub new_value: Option<String>,
    pub source: Option<String>,
    pub confidence: Option<f64>,
    pub rules: Option<String>,
    pub policy_version: Option<i64>,
    pub approver: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
    /// The OS user who ran the command that wrote it, beside `actor`, the name it acted as.
    /// `None` only in events written before it was recorded.
    pub os_user: Option<String>,
}

impl EventRow {
    pub fn canonical(&self) -> String {
        serde_json::to_string(&Canonical(self)).expect("an event serializes")
    }

    pub fn compute_hash(&self) -> String {
        sha256_hex(self.canonical().as_bytes())
    }
}

/// The canonical array, serialized straight from the row: an apply hashes one event per
/// change, and building a `serde_json::Value` tree for each cost more than the hash.
struct Canonical<'a>(&'a EventRow);

impl serde::Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let e = self.0;
        let mut t = s.serialize_tuple(20 + usize::from(e.os_user.is_some()))?;
        t.serialize_element(&e.seq)?;
        t.serialize_element(&e.at)?;
        t.serialize_element(&e.actor)?;
        t.serialize_element(&e.actor_kind)?;
        t.serialize_element(&e.action)?;
        t.serialize_element(&e.proposal_id)?;
        t.serialize_element(&e.change_id)?;
        t.serialize_element(&e.run_id)?;
        t.serialize_element(&e.object)?;
        t.serialize_element(&e.record)?;
        t.serialize_element(&e.field)?;
        t.serialize_element(&e.prev_value)?;
        t.serialize_element(&e.new_value)?;
        t.serialize_element(&e.source)?;
        t.serialize_element(&e.confidence)?;
        t.serialize_element(&e.rules)?;
        t.serialize_element(&e.policy_version)?;
        t.serialize_element(&e.approver)?;
        t.serialize_element(&e.detail)?;
        t.serialize_element(&e.prev_hash)?;
        // Only in events that have it: older events keep the form they were hashed in.
        if let Some(os_user) = &e.os_user {
            t.serialize_element(os_user)?;
        }
        t.end()
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> EventRow {
        EventRow {
            seq: 1,
            at: "2026-01-01T00:00:00.000Z".into(),
            actor: "alice".into(),
            actor_kind: "human".into(),
            action: "ingest".into(),
            proposal_id: None,
            change_id: None,
            run_id: None,
            object: None,
            record: None,
            field: None,
            prev_value: None,
            new_value: None,
            source: Some("clearbit".into()),
            confidence: None,
            rules: None,
            policy_version: None,
            approver: None,
            detail: Some("{\"file\":\"a.csv\"}".into()),
            prev_hash: GENESIS.into(),
            hash: String::new(),
            os_user: None,
        }
    }

    #[test]
    fn canonical_form_is_stable() {
        assert_eq!(
            event().canonical(),
            r#"[1,"2026-01-01T00:00:00.000Z","alice","human","ingest",null,null,null,null,null,null,null,null,"clearbit",null,null,null,null,"{\"file\":\"a.csv\"}","0000000000000000000000000000000000000000000000000000000000000000"]"#
        );
    }

    /// The form every stored hash was computed over: `serde_json::json!` of the columns. The
    /// direct serialization must give the same bytes, or existing chains would stop verifying.
    fn canonical_as_first_written(e: &EventRow) -> String {
        serde_json::json!([
            e.seq,
            e.at,
            e.actor,
            e.actor_kind,
            e.action,
            e.proposal_id,
            e.change_id,
            e.run_id,
            e.object,
            e.record,
            e.field,
            e.prev_value,
            e.new_value,
            e.source,
            e.confidence,
            e.rules,
            e.policy_version,
            e.approver,
            e.detail,
            e.prev_hash,
        ])
        .to_string()
    }

    #[test]
    fn canonical_form_matches_the_first_written_form_for_every_kind_of_value() {
        let mut e = event();
        assert_eq!(e.canonical(), canonical_as_first_written(&e));
        e.proposal_id = Some(-7);
        e.change_id = Some(i64::MAX);
        e.run_id = Some(0);
        e.object = Some("contacts".into());
        e.record = Some("c-\"1\"\\\u{7}\u{2028}é😀".into());
        e.field = Some("title".into());
        e.prev_value = Some("\"VP\"".into());
        e.new_value = Some("null".into());
        e.rules = Some("[\"a\",\"b\"]".into());
        e.policy_version = Some(3);
        e.approver = Some("bob".into());
        for c in [
            0.1,
            0.0,
            -0.0,
            1.0,
            0.999_999_999_999_9,
            1e-300,
            f64::NAN,
            f64::INFINITY,
        ] {
            e.confidence = Some(c);
            assert_eq!(
                e.canonical(),
                canonical_as_first_written(&e),
                "confidence {c}"
            );
        }
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn any_column_changes_the_hash() {
        let base = event().compute_hash();
        let mut e = event();
        e.actor = "mallory".into();
        assert_ne!(e.compute_hash(), base);
        let mut e = event();
        e.prev_hash = "1".repeat(64);
        assert_ne!(e.compute_hash(), base);
        let mut e = event();
        e.os_user = Some("alice".into());
        assert_ne!(e.compute_hash(), base);
        assert!(
            e.canonical()
                .ends_with(&format!("\"{GENESIS}\",\"alice\"]"))
        );
    }
}

/// Where the chain first goes wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The event at which the chain stops holding.
    pub seq: i64,
    pub what: String,
}

/// A chain head kept somewhere the store's writers cannot reach (`audit checkpoint`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
}

/// Walks events in `seq` order and reports the first one that was altered, removed, inserted
/// or reordered. Each event must carry the next sequence number, its own hash must be the
/// hash of its canonical form, and its `prev_hash` must be the hash before it.
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    pub checked: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS.to_string(),
            checked: 0,
        }
    }
}

impl Verifier {
    pub fn check(&mut self, e: &EventRow) -> Result<(), Break> {
        let broken = |what: String| Err(Break { seq: e.seq, what });
        if e.seq != self.expected_seq {
            return broken(if e.seq > self.expected_seq {
                format!(
                    "events {}..{} are missing (removed)",
                    self.expected_seq,
                    e.seq - 1
                )
            } else {
                format!("sequence number {} appears out of order", e.seq)
            });
        }
        if e.compute_hash() != e.hash {
            return broken("its content does not match its hash (altered)".into());
        }
        if e.prev_hash != self.prev_hash {
            return broken(
                "it does not follow the event before it (an event was inserted, removed or reordered)"
                    .into(),
            );
        }
        self.expected_seq += 1;
        self.prev_hash = e.hash.clone();
        self.checked += 1;
        Ok(())
    }

    /// After the last event: the chain must reach the checkpoint, with its hash.
    pub fn finish(
        &self,
        checkpoint: Option<&Checkpoint>,
        hash_at: Option<&str>,
    ) -> Result<(), Break> {
        let Some(cp) = checkpoint else { return Ok(()) };
        let last = self.expected_seq - 1;
        if last < cp.seq {
            return Err(Break {
                seq: last + 1,
                what: format!(
                    "the log ends at event {last} but the checkpoint is at event {} (the tail was cut off)",
                    cp.seq
                ),
            });
        }
        if hash_at != Some(cp.hash.as_str()) {
            return Err(Break {
                seq: cp.seq,
                what: "its hash is not the checkpoint's (the log was rewritten up to here)".into(),
            });
        }
        Ok(())
    }
}

/// What a proposal's digest covers: everything its proposer sent and ingest recorded about it,
/// and the state it was queued in. One function ([`ProposalContent::digest`]) computes it, at
/// queueing and at every check; a new content field is one more element here.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProposalContent<'a> {
    pub id: i64,
    pub ingest_id: i64,
    pub line: i64,
    pub source: &'a str,
    pub ext_id: Option<&'a str>,
    pub kind: &'a str,
    pub object: &'a str,
    pub record: &'a str,
    pub field: Option<&'a str>,
    /// The proposer's value (before any reviewer's edit).
    pub value: serde_json::Value,
    pub merge_into: Option<&'a str>,
    pub stated_confidence: Option<f64>,
    pub expected: Option<serde_json::Value>,
    pub trigger: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub baseline: serde_json::Value,
    pub baseline_fp: Option<&'a str>,
    pub queued: &'a str,
    /// What the proposer relied on; absent from the digested JSON when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<&'a str>,
}

impl<'a> ProposalContent<'a> {
    /// A proposal about to be queued as `id` in ingest `ingest_id`, in state `queued`.
    pub fn of_new(
        id: i64,
        ingest_id: i64,
        p: &'a crate::model::NewProposal,
        queued: crate::model::State,
    ) -> Self {
        ProposalContent {
            id,
            ingest_id,
            line: p.line as i64,
            source: &p.source,
            ext_id: p.ext_id.as_deref(),
            kind: p.kind.as_str(),
            object: &p.object,
            record: &p.record,
            field: p.field.as_deref(),
            value: match (p.kind, p.value.to_json()) {
                // As the store reads a create's fields back: the object its JSON text holds.
                (crate::model::Kind::Create, serde_json::Value::String(json)) => {
                    serde_json::from_str(&json).unwrap_or(serde_json::Value::String(json))
                }
                (_, value) => value,
            },
            merge_into: p.merge_into.as_deref(),
            stated_confidence: p.stated_confidence,
            expected: p.expected.as_ref().map(|v| v.to_json()),
            trigger: p.trigger.as_deref(),
            reason: p.reason.as_deref(),
            baseline: p.baseline.to_json(),
            baseline_fp: p.baseline_fp.as_deref(),
            queued: queued.as_str(),
            evidence: p.evidence.as_deref(),
        }
    }

    /// A queued proposal as stored, said to have been queued in state `queued`.
    pub fn of_stored(p: &'a crate::model::Proposal, queued: &'a str) -> Self {
        ProposalContent {
            id: p.id,
            ingest_id: p.ingest_id,
            line: p.line,
            source: &p.source,
            ext_id: p.ext_id.as_deref(),
            kind: p.kind.as_str(),
            object: &p.object,
            record: &p.record,
            field: p.field.as_deref(),
            value: p.proposed_value.clone().unwrap_or_else(|| p.value.clone()),
            merge_into: p.merge_into.as_deref(),
            stated_confidence: p.stated_confidence,
            expected: p.expected.clone(),
            trigger: p.trigger.as_deref(),
            reason: p.reason.as_deref(),
            baseline: p.baseline.clone(),
            baseline_fp: p.baseline_fp.as_deref(),
            queued,
            evidence: p.evidence.as_deref(),
        }
    }

    /// SHA-256 of the content's compact JSON (an object of the fields above, in that order).
    pub fn digest(&self) -> [u8; 32] {
        let json = serde_json::to_vec(self).expect("a proposal's content serializes");
        Sha256::digest(&json).into()
    }
}

/// The digest of a set of proposals, whatever their order: the XOR of their digests. It binds
/// an ingest's rows to its event; it is no defence against someone who rewrites the log itself
/// (only a checkpoint kept elsewhere is).
pub fn xor_into(acc: &mut [u8; 32], d: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(d) {
        *a ^= b;
    }
}

/// What an ingest's (or a requeue's) event records of the proposals it queued: their ids' range
/// and the XOR of their digests (see [`ProposalContent`]).
pub fn ingest_binding(d: Option<crate::store::IngestDigest>) -> serde_json::Value {
    match d {
        Some(d) => serde_json::json!({
            "first": d.first,
            "last": d.last,
            "sha256_xor": crate::model::hex(&d.xor),
        }),
        None => serde_json::Value::Null,
    }
}

/// The newest event about a proposal, as far as its state goes.
#[derive(Debug, Clone, Default)]
pub struct LastEvent {
    pub action: String,
    pub actor_kind: String,
    pub actor: String,
    /// JSON text, as stored.
    pub new_value: Option<String>,
    /// `detail.to` (an undo, a redecision).
    pub to: Option<String>,
    /// `detail.decision` (a requeue).
    pub decision: Option<String>,
}

/// What the store holds that binds a proposal's row to the audit log.
#[derive(Debug, Clone, Default)]
pub struct ProposalBinding {
    pub digest: Option<Vec<u8>>,
    pub queued: Option<String>,
    pub last: Option<LastEvent>,
    /// The first proposal id queued with a digest; `None` when the store lost it (every
    /// proposal is then held to having one).
    pub bound_from: Option<i64>,
}

/// Checks that `p`'s content is what was queued (its digest), and, when a reviewer edited it,
/// that its value is the edit the log records; `Err` says what does not hold.
pub fn check_content(
    p: &crate::model::Proposal,
    b: &ProposalBinding,
) -> std::result::Result<(), String> {
    let legacy = b.bound_from.is_some_and(|from| p.id < from);
    if !legacy {
        let (Some(digest), Some(queued)) = (&b.digest, &b.queued) else {
            return Err("it has no content digest, though it was queued with one".into());
        };
        if ProposalContent::of_stored(p, queued).digest()[..] != digest[..] {
            return Err("its content is not what was queued (its digest does not match)".into());
        }
    }
    let edited = b.last.as_ref().filter(|e| e.action == "edit");
    match (edited, &p.proposed_value) {
        (None, None) => Ok(()),
        (Some(e), Some(_)) => {
            let logged: Option<serde_json::Value> = e
                .new_value
                .as_deref()
                .and_then(|v| serde_json::from_str(v).ok());
            if logged.as_ref() == Some(&p.value) {
                Ok(())
            } else {
                Err("its value is not the edit the audit log records".into())
            }
        }
        (None, Some(_)) => Err("it holds an edited value, but no edit is its latest event".into()),
        (Some(_), None) => Err("its latest event is an edit, but it holds no edited value".into()),
    }
}

/// Who approved `p` according to the audit log (`None`: the policy did), or why the log does
/// not leave it approved. The newest event about a proposal says its state: a person's approve
/// or edit, a redecision or requeue to `auto`, or, with no event, the state it was queued in.
pub fn approval_of(
    p: &crate::model::Proposal,
    b: &ProposalBinding,
) -> std::result::Result<Option<String>, String> {
    check_content(p, b)?;
    let Some(e) = &b.last else {
        let legacy = b.bound_from.is_some_and(|from| p.id < from);
        return match b.queued.as_deref() {
            _ if legacy => Ok(None),
            Some("approved") => Ok(None),
            q => Err(format!(
                "it was queued {} and no event since approved it",
                q.unwrap_or("in an unknown state")
            )),
        };
    };
    match e.action.as_str() {
        "approve" | "edit" if e.actor_kind == "human" => Ok(Some(e.actor.clone())),
        "redecide" if e.to.as_deref() == Some("auto") => Ok(None),
        "requeue" if e.decision.as_deref() == Some("auto") => Ok(None),
        other => Err(format!(
            "its latest event in the audit log is `{other}`, which does not leave it approved"
        )),
    }
}

/// Checks a change's row against the event that recorded it (`None`: no event does); `Err`
/// says what does not hold. Values compare as apply writes them.
pub fn check_change(
    c: &crate::store::ChangeRow,
    e: Option<&EventRow>,
) -> std::result::Result<(), String> {
    let Some(e) = e else {
        return Err("no event in the audit log records it".into());
    };
    let norm = |v: &serde_json::Value| crate::apply::json_to_value(v).to_json();
    let logged = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
            .map(|v| norm(&v))
    };
    let mut wrong = Vec::new();
    if e.object.as_deref() != Some(c.object.as_str())
        || e.record.as_deref() != Some(c.record.as_str())
        || e.field.as_deref() != Some(c.field.as_str())
    {
        wrong.push("its target");
    }
    if e.run_id != Some(c.run_id) || e.proposal_id != c.proposal_id {
        wrong.push("its run or proposal");
    }
    if logged(&e.prev_value) != Some(norm(&c.before.to_json())) {
        wrong.push("before");
    }
    if logged(&e.new_value) != Some(norm(&c.after.to_json())) {
        wrong.push("after");
    }
    if e.action == "apply" && e.approver != c.approved_by {
        wrong.push("approved_by");
    }
    let reverts = e
        .detail
        .as_deref()
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .and_then(|d| d.get("reverts").and_then(|r| r.as_i64()));
    if (e.action == "revert") != c.reverts.is_some()
        || (e.action == "revert" && reverts != c.reverts)
    {
        wrong.push("reverts");
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{} differ from event {}", wrong.join(", "), e.seq))
    }
}

/// Checks a policy version's row against the `policy` event that installed it (`None`: no
/// event did): the event's version, and the SHA-256 it holds of the text, which must also be
/// the text's own and the row's.
pub fn check_policy(
    v: &crate::store::PolicyVersion,
    e: Option<&EventRow>,
) -> std::result::Result<(), String> {
    let Some(e) = e else {
        return Err("no `policy` event in the audit log installed it".into());
    };
    let detail: serde_json::Value = e
        .detail
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    if detail.get("version").and_then(|x| x.as_i64()) != Some(v.version) {
        return Err(format!(
            "the latest `policy` event ({}) installed another version",
            e.seq
        ));
    }
    let logged = detail.get("sha256").and_then(|x| x.as_str());
    if logged != Some(sha256_hex(v.text.as_bytes()).as_str()) || logged != Some(v.sha256.as_str()) {
        return Err(format!(
            "its text is not the one event {} installed (the SHA-256 differs)",
            e.seq
        ));
    }
    Ok(())
}

/// The states a proposal may be in after `e`, its newest event; `None` for an event that does
/// not say.
fn states_after(e: &LastEvent) -> Option<Vec<&'static str>> {
    let of_action = |a: Option<&str>| {
        a.and_then(crate::model::Action::parse)
            .map(|a| vec![a.state().as_str()])
    };
    Some(match e.action.as_str() {
        "approve" | "edit" => vec!["approved"],
        "reject" => vec!["rejected"],
        "undo" => vec![
            e.to.as_deref()
                .and_then(crate::model::State::parse)?
                .as_str(),
        ],
        "redecide" => of_action(e.to.as_deref())?,
        "requeue" => of_action(e.decision.as_deref())?,
        "supersede" => vec!["superseded"],
        "apply" => vec!["applied"],
        "conflict" => vec!["conflict"],
        "block" => vec!["blocked"],
        "hold" | "unapprove" => vec!["pending"],
        "failed" => vec!["failed"],
        // A revert of an apply, or of a revert: the proposal is reverted, or applied again.
        "revert" => vec!["reverted", "applied"],
        _ => return None,
    })
}

/// Checks a proposal's content (see [`check_content`]) and its state: the one its newest event
/// left it in, or with no event, the one it was queued in.
pub fn check_state(
    p: &crate::model::Proposal,
    b: &ProposalBinding,
) -> std::result::Result<(), String> {
    check_content(p, b)?;
    let state = p.state.as_str();
    match &b.last {
        None if b.bound_from.is_some_and(|from| p.id < from) => Ok(()),
        None if b.queued.as_deref() == Some(state) => Ok(()),
        None => Err(format!(
            "it is {state}, but it was queued {} and no event since moved it",
            b.queued.as_deref().unwrap_or("in an unknown state")
        )),
        Some(e) => match states_after(e) {
            Some(states) if !states.contains(&state) => Err(format!(
                "it is {state}, but its newest event in the audit log is `{}`, which leaves it {}",
                e.action,
                states.join(" or ")
            )),
            _ => Ok(()),
        },
    }
}

/// Checks that ingest `ingest_id`'s proposals have the digests its event (`e`, the one its row
/// names) recorded: `xor_of(first, last)` gives the XOR of the digests of its proposals in
/// that id range. Catches a proposal whose content and digest were both rewritten.
pub fn check_ingest(
    ingest_id: i64,
    e: Option<&EventRow>,
    xor_of: impl FnOnce(i64, i64) -> crate::error::Result<[u8; 32]>,
) -> crate::error::Result<Holds> {
    let Some(e) = e.filter(|e| e.compute_hash() == e.hash) else {
        return Ok(Holds::No(format!(
            "ingest {ingest_id} names no intact event"
        )));
    };
    let d: serde_json::Value = e
        .detail
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let n = |k: &str| d.pointer(k).and_then(|v| v.as_i64());
    let (Some(id), Some(first), Some(last), Some(xor)) = (
        n("/ingest_id"),
        n("/proposals/first"),
        n("/proposals/last"),
        d.pointer("/proposals/sha256_xor").and_then(|v| v.as_str()),
    ) else {
        return Ok(Holds::No(format!(
            "event {} does not record ingest {ingest_id}'s proposals",
            e.seq
        )));
    };
    if id != ingest_id {
        return Ok(Holds::No(format!(
            "event {} records ingest {id}, not {ingest_id}",
            e.seq
        )));
    }
    if crate::model::hex(&xor_of(first, last)?) != xor {
        return Ok(Holds::No(format!(
            "ingest {ingest_id}'s proposals do not have the digests event {} recorded",
            e.seq
        )));
    }
    Ok(Holds::Yes(()))
}
