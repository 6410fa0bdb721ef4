//! The types that flow through the pipeline: a proposal as read, as validated, and as stored.

use std::fmt;

/// A SQLite value, held without loss so that a value read from a record can be written back
/// byte for byte (revert depends on this).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Text(s) => s.trim().is_empty(),
            _ => false,
        }
    }

    /// The value as JSON, for `--json` output, events and content hashing.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Integer(i) => serde_json::Value::from(*i),
            Value::Real(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Text(s) => serde_json::Value::String(s.clone()),
            Value::Blob(b) => serde_json::json!({ "blob_hex": hex(b) }),
        }
    }

    /// The value as a CSV cell or table cell: NULL is the empty string.
    pub fn display(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) => f.to_string(),
            Value::Text(s) => s.clone(),
            Value::Blob(b) => format!("x'{}'", hex(b)),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What a proposal asks for. `verify`, `lifecycle` and `owner` are updates of one implied field;
/// `create` inserts a new record, its fields a JSON object in `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Update,
    Verify,
    Lifecycle,
    Owner,
    Merge,
    Create,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Update,
        Kind::Verify,
        Kind::Lifecycle,
        Kind::Owner,
        Kind::Merge,
        Kind::Create,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Update => "update",
            Kind::Verify => "verify",
            Kind::Lifecycle => "lifecycle",
            Kind::Owner => "owner",
            Kind::Merge => "merge",
            Kind::Create => "create",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The field a kind writes when the proposal does not name one.
    pub fn implied_field(self) -> Option<&'static str> {
        match self {
            Kind::Verify => Some("email_status"),
            Kind::Lifecycle => Some("lifecycle_stage"),
            Kind::Owner => Some("owner"),
            Kind::Update | Kind::Merge | Kind::Create => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Proposal states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Suggested,
    Approved,
    Rejected,
    Blocked,
    Applied,
    Conflict,
    Failed,
    Reverted,
    Superseded,
}

impl State {
    pub const ALL: [State; 10] = [
        State::Pending,
        State::Suggested,
        State::Approved,
        State::Rejected,
        State::Blocked,
        State::Applied,
        State::Conflict,
        State::Failed,
        State::Reverted,
        State::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Suggested => "suggested",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Blocked => "blocked",
            State::Applied => "applied",
            State::Conflict => "conflict",
            State::Failed => "failed",
            State::Reverted => "reverted",
            State::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the policy lets happen to a proposal, from least to most restrictive.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Auto,
    Suggest,
    Review,
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Auto => "auto",
            Action::Suggest => "suggest",
            Action::Review => "review",
            Action::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        [Action::Auto, Action::Suggest, Action::Review, Action::Block]
            .into_iter()
            .find(|a| a.as_str() == s)
    }

    /// The state a proposal waits in under this decision.
    pub fn state(self) -> State {
        match self {
            Action::Auto => State::Approved,
            Action::Suggest => State::Suggested,
            Action::Review => State::Pending,
            Action::Block => State::Blocked,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One source's numbers: volume, the policy's decisions, and how humans judged its proposals.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SourceStats {
    pub source: String,
    pub proposals: u64,
    pub auto: u64,
    pub review: u64,
    pub suggest: u64,
    pub block: u64,
    pub applied: u64,
    /// Its proposals applied and then reverted (still reverted now), and those whose apply met
    /// a record that had moved on: outcomes a person or the store turned down.
    pub reverted: u64,
    pub conflicts: u64,
    /// Human decisions on its proposals.
    pub approved: u64,
    pub rejected: u64,
    pub edited: u64,
    /// Mean squared gap between its stated confidence and the human outcome (1 approved, 0
    /// rejected), over decisions where it stated one: 0 is perfect, 0.25 is a coin toss.
    pub brier: Option<f64>,
}

impl SourceStats {
    /// Human decisions, a revert counting as a rejection.
    pub fn decided(&self) -> u64 {
        self.approved + self.rejected + self.reverted
    }

    /// Share of human decisions that approved; edits count as approvals of a corrected value,
    /// and a revert of what was applied as a rejection.
    pub fn acceptance(&self) -> Option<f64> {
        (self.decided() > 0).then(|| self.approved as f64 / self.decided() as f64)
    }
}

/// A record that a proposal's target references by a foreign key (its company, say), with its
/// fields by name, for the policy's `related` conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Related {
    /// The table it is in.
    pub object: String,
    pub fields: Vec<(String, Value)>,
}

/// A proposal that passed every check at the edge and is ready to be queued.
#[derive(Debug, Clone)]
pub struct NewProposal {
    pub line: u64,
    pub source: String,
    pub ext_id: Option<String>,
    pub kind: Kind,
    pub object: String,
    pub record: String,
    /// `None` only for merges.
    pub field: Option<String>,
    /// Typed as it would be written; `Null` clears the field.
    pub value: Value,
    pub merge_into: Option<String>,
    pub stated_confidence: Option<f64>,
    /// `Some(Null)` means the proposer saw the field empty; `None` that it said nothing.
    pub expected: Option<Value>,
    pub trigger: Option<String>,
    pub reason: Option<String>,
    /// What the proposer relied on: a URL, or the text itself (at most
    /// [`MAX_EVIDENCE_BYTES`](crate::ingest::proposals::MAX_EVIDENCE_BYTES)).
    pub evidence: Option<String>,
    /// The record's value of the field at ingest; staleness is judged against it later.
    pub baseline: Value,
    /// For merges: SHA-256 of both records as they were at ingest.
    pub baseline_fp: Option<String>,
    /// SHA-256 prefix over the normalised content: same content, same key.
    pub content_key: i64,
    /// Key for idempotent re-ingest: (source, id), or the content when there is no id.
    pub dedupe_key: i64,
}

/// A proposal as stored in the queue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Proposal {
    pub id: i64,
    pub source: String,
    pub ext_id: Option<String>,
    pub kind: Kind,
    pub object: String,
    pub record: String,
    pub field: Option<String>,
    pub value: serde_json::Value,
    pub merge_into: Option<String>,
    pub stated_confidence: Option<f64>,
    pub expected: Option<serde_json::Value>,
    pub trigger: Option<String>,
    pub reason: Option<String>,
    /// What the proposer relied on: a URL, or the text itself.
    pub evidence: Option<String>,
    /// The field's value when the proposal was ingested.
    pub baseline: serde_json::Value,
    pub state: State,
    pub confidence: Option<f64>,
    pub superseded_by: Option<i64>,
    pub ingest_id: i64,
    pub file: String,
    pub line: i64,
    /// When its ingest ran.
    pub created_at: String,
    /// The policy's decision.
    pub decision: Option<Action>,
    /// The decision in full: the rules that matched, who may approve, and why.
    pub rules: Option<serde_json::Value>,
    /// The signals behind crmgate's confidence.
    pub signals: Option<serde_json::Value>,
    pub policy_version: Option<i64>,
    /// For merges: the fingerprint of both records when proposed.
    pub baseline_fp: Option<String>,
    /// When a reviewer edited the value: the value the proposer sent (`value` is the edit).
    pub proposed_value: Option<serde_json::Value>,
}

impl Proposal {
    /// `SOURCE:ID`, the proposer's own address for it, when it gave an id.
    pub fn source_ref(&self) -> Option<String> {
        self.ext_id
            .as_ref()
            .map(|id| format!("{}:{}", self.source, id))
    }

    pub fn record_ref(&self) -> String {
        format!("{}/{}", self.object, self.record)
    }

    /// `detail` (an object, or null for none) with the proposal's evidence added, when it has
    /// some: the events of its decisions and its changes keep what the proposer relied on.
    pub fn with_evidence(&self, detail: serde_json::Value) -> serde_json::Value {
        let Some(evidence) = &self.evidence else {
            return detail;
        };
        let mut detail = match detail {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        detail.insert("evidence".into(), evidence.clone().into());
        serde_json::Value::Object(detail)
    }
}

/// One entry to append to the audit log.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub actor: String,
    /// `human`, `policy` or `system`.
    pub actor_kind: &'static str,
    pub action: &'static str,
    pub proposal_id: Option<i64>,
    /// The change an apply or revert wrote, and its run.
    pub change_id: Option<i64>,
    pub run_id: Option<i64>,
    pub object: Option<String>,
    pub record: Option<String>,
    pub field: Option<String>,
    pub prev_value: Option<serde_json::Value>,
    pub new_value: Option<serde_json::Value>,
    pub source: Option<String>,
    /// crmgate's confidence in the proposal, on decision events.
    pub confidence: Option<f64>,
    /// The policy version a decision answered to.
    pub policy_version: Option<i64>,
    /// The rules a decision answered (JSON array of names).
    pub rules: Option<String>,
    /// Who approved, on a human approval.
    pub approver: Option<String>,
    pub detail: serde_json::Value,
}

/// An 8-byte key from SHA-256 over `parts` (each length-prefixed, so no two part lists collide
/// by concatenation). Keys index lookups; the full values are always compared on a hit.
pub fn key64(parts: &[&str]) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    i64::from_be_bytes(d[..8].try_into().expect("SHA-256 is 32 bytes"))
}

/// The key under which `(source, id)` is looked up for idempotent ingest and `SOURCE:ID`.
pub fn source_id_key(source: &str, ext_id: &str) -> i64 {
    key64(&["id", source, ext_id])
}

/// The policy's verdict on a proposal as it is queued: its state, crmgate's confidence and the
/// signals behind it, and the decision with the rules that produced it.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub state: State,
    pub action: Action,
    pub confidence: f64,
    /// JSON: the score's signals.
    pub signals: String,
    /// JSON: the decision (action, rules, approvers, why).
    pub decision: String,
    pub policy_version: i64,
}

/// A merge's two records, hashed: a merge may only be approved or applied while both records
/// are as they were when it was proposed.
pub fn merge_fingerprint(duplicate: &[Value], survivor: &[Value]) -> String {
    let snapshot = serde_json::json!([
        duplicate.iter().map(Value::to_json).collect::<Vec<_>>(),
        survivor.iter().map(Value::to_json).collect::<Vec<_>>(),
    ]);
    crate::audit::sha256_hex(snapshot.to_string().as_bytes())
}

/// One input cell. CSV has no absent cells inside a row (an empty cell is `Null`); JSON
/// distinguishes a missing key from `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Absent,
    Null,
    Text(String),
    /// A JSON object as written: only a proposal's `value` may be one (a create's fields).
    Object(String),
}

impl Cell {
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }

    /// Text with surrounding whitespace removed; empty text counts as missing.
    pub fn trimmed(&self) -> Option<&str> {
        self.text().map(str::trim).filter(|s| !s.is_empty())
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Cell::Absent)
    }
}
