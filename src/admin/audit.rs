//! The audit log as a whole: verifying its hash chain (to a checkpoint kept elsewhere, if one is
//! given), its head as a checkpoint, and exporting every event. The chain's rules live in
//! [`crate::audit`]; this module walks the store with them.

use std::io::Write;

use crate::audit::{Break, Checkpoint, EventRow, Verifier};
use crate::error::{Error, Result};
use crate::ingest::Format;
use crate::store::Store;

/// `t` (RFC 3339, or a date meaning its midnight UTC) in the events' own time format, so that
/// times compare as text.
pub fn since(t: &str) -> Result<String> {
    let ts = t
        .parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| {
            t.parse::<jiff::civil::Date>()
                .ok()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp())
        })
        .ok_or_else(|| {
            Error::refused(format!(
                "--since {}: not an RFC 3339 time (2026-11-21T09:00:00Z) or a date (2026-11-21)",
                crate::ui::safe(t)
            ))
        })?;
    Ok(ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// What verifying the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Every event holds (and the chain reaches the checkpoint, when one was given), and every
    /// row apply and revert act on matches the event that binds it. `warnings` name what holds
    /// but deserves a look (times that go backwards, rows older than their bindings).
    Intact { events: u64, warnings: Vec<String> },
    /// The first place the chain does not hold.
    Broken(Break),
    /// The chain holds, but this row of the store does not match it.
    Unbound {
        events: u64,
        row: String,
        what: String,
    },
}

/// What the walk of the chain gathers for checking the tables against it.
#[derive(Default)]
struct Gathered {
    /// Policy version -> the event that installed it.
    policies: std::collections::BTreeMap<i64, EventRow>,
    /// Ingest id -> (event seq, the XOR of its proposals' digests, as hex).
    ingests: std::collections::BTreeMap<i64, (i64, String)>,
    /// The first event stamped before the one it follows, and how many are.
    backwards: Option<(i64, String, String)>,
    backwards_count: u64,
    /// Each paused scope ("" for the whole store) as its pause event left it, until a resume
    /// event lifted it: (reason, actor, at, event seq).
    pauses: std::collections::BTreeMap<String, (String, String, String, i64)>,
    /// Events written under the test clock.
    test_clock: u64,
    last_at: Option<String>,
}

impl Gathered {
    fn see(&mut self, e: &EventRow) {
        if let Some(prev) = &self.last_at
            && e.at < *prev
        {
            self.backwards_count += 1;
            if self.backwards.is_none() {
                self.backwards = Some((e.seq, e.at.clone(), prev.clone()));
            }
        }
        self.last_at = Some(e.at.clone());
        let detail = || -> serde_json::Value {
            e.detail
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or_default()
        };
        match e.action.as_str() {
            "policy" => {
                if let Some(v) = detail().get("version").and_then(|v| v.as_i64()) {
                    self.policies.insert(v, e.clone());
                }
            }
            "pause" => {
                let reason = detail()
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .unwrap_or_default()
                    .to_string();
                let scope = e.source.clone().unwrap_or_default();
                let pause = (reason, e.actor.clone(), e.at.clone(), e.seq);
                self.pauses.insert(scope, pause);
            }
            "resume" => {
                self.pauses.remove(e.source.as_deref().unwrap_or_default());
            }
            "ingest" | "requeue" => {
                let d = detail();
                let id = d.get("ingest_id").and_then(|v| v.as_i64());
                let xor = d.pointer("/proposals/sha256_xor").and_then(|v| v.as_str());
                if let (Some(id), Some(xor)) = (id, xor) {
                    self.ingests.insert(id, (e.seq, xor.to_string()));
                }
            }
            _ => {}
        }
        if detail().get("test_clock").is_some() {
            self.test_clock += 1;
        }
    }
}

/// Walks the whole log in order and checks every link, then that it reaches `checkpoint`;
/// then checks the store's own record of the chain's head, and every policy version, change
/// and proposal against the events that bind them.
pub fn verify(store: &Store, checkpoint: Option<&Checkpoint>) -> Result<Verified> {
    let mut v = Verifier::default();
    let mut at_checkpoint: Option<String> = None;
    let mut broken = None;
    let mut g = Gathered::default();
    let mut last: Option<(i64, String)> = None;
    store.for_each_event(None, |e| {
        if broken.is_none() {
            if let Err(b) = v.check(e) {
                broken = Some(b);
            } else if checkpoint.is_some_and(|c| c.seq == e.seq) {
                at_checkpoint = Some(e.hash.clone());
            }
            g.see(e);
            last = Some((e.seq, e.hash.clone()));
        }
        Ok(())
    })?;
    let result = match broken {
        Some(b) => Err(b),
        None => v.finish(checkpoint, at_checkpoint.as_deref()),
    };
    if let Err(b) = result {
        return Ok(Verified::Broken(b));
    }
    let events = v.checked;
    let unbound = |(row, what): (String, String)| Verified::Unbound { events, row, what };
    if let Some(found) = check_head(store, last.as_ref())? {
        return Ok(unbound(found));
    }
    if let Some(found) = check_policies(store, &g)? {
        return Ok(unbound(found));
    }
    if let Some(found) = check_changes(store)? {
        return Ok(unbound(found));
    }
    if let Some(found) = check_pauses(store, &g)? {
        return Ok(unbound(found));
    }
    let mut warnings = Vec::new();
    if let Some(found) = check_proposals(store, &g, &mut warnings)? {
        return Ok(unbound(found));
    }
    if let Some((seq, at, prev)) = &g.backwards {
        warnings.push(format!(
            "{} stamped before the event it follows; the first is event {seq} at {at}, after {prev}",
            crate::ui::count(g.backwards_count, "event is", "events are")
        ));
    }
    if g.test_clock > 0 {
        warnings.push(format!(
            "{} written with the clock set by the test switch (CRMGATE_TEST_CLOCK): their times were the caller's",
            crate::ui::count(g.test_clock, "event was", "events were")
        ));
    }
    Ok(Verified::Intact { events, warnings })
}

/// A row that does not match the log: the row's name and what is wrong.
type Found = Option<(String, String)>;

/// The store's record of the chain's head must be the last event; a store with proposals,
/// changes or a policy must have events.
fn check_head(store: &Store, last: Option<&(i64, String)>) -> Result<Found> {
    let (proposals, changes, policies) = store.bound_row_counts()?;
    if last.is_none() && proposals + changes + policies > 0 {
        return Ok(Some((
            "crmgate_events".into(),
            format!(
                "the audit log is empty, but the store holds {proposals} proposals, {changes} changes and {policies} policy versions (the log was deleted)"
            ),
        )));
    }
    let recorded = store.recorded_chain_head()?;
    let at_end = last
        .cloned()
        .unwrap_or((0, crate::audit::GENESIS.to_string()));
    match recorded {
        None if last.is_some() => Ok(Some((
            "crmgate_chain_head".into(),
            "the store's record of the chain's head is missing".into(),
        ))),
        Some(head) if head != at_end => Ok(Some((
            "crmgate_chain_head".into(),
            format!(
                "the store recorded the chain's head at event {}, but the log ends at event {} (events were removed or added outside crmgate)",
                head.0, at_end.0
            ),
        ))),
        _ => Ok(None),
    }
}

/// Every policy version must be the text its `policy` event installed.
fn check_policies(store: &Store, g: &Gathered) -> Result<Found> {
    let rows = store.all_policies()?;
    for v in &rows {
        if let Err(why) = crate::audit::check_policy(v, g.policies.get(&v.version)) {
            return Ok(Some((format!("policy version {}", v.version), why)));
        }
    }
    for (version, e) in &g.policies {
        if !rows.iter().any(|v| v.version == *version) {
            return Ok(Some((
                format!("policy version {version}"),
                format!(
                    "event {} installed it, but the store no longer holds it",
                    e.seq
                ),
            )));
        }
    }
    Ok(None)
}

/// The paused scopes must be those the pause and resume events leave paused, each as its
/// pause event says: a pause deleted with SQL would let a paused source through unseen.
fn check_pauses(store: &Store, g: &Gathered) -> Result<Found> {
    let name = |scope: &str| match scope {
        "" => "the pause of the store".to_string(),
        s => format!("the pause of source {s}"),
    };
    let rows = store.pauses()?;
    for p in &rows {
        let scope = p.source.as_deref().unwrap_or_default();
        let found = match g.pauses.get(scope) {
            None => "no pause event leaves it paused".to_string(),
            Some((reason, actor, at, seq))
                if (reason, actor, at) != (&p.reason, &p.actor, &p.at) =>
            {
                format!("its reason, actor or time differ from event {seq}, which paused it")
            }
            Some(_) => continue,
        };
        return Ok(Some((name(scope), found)));
    }
    for (scope, (_, _, _, seq)) in &g.pauses {
        if !rows
            .iter()
            .any(|p| p.source.as_deref().unwrap_or_default() == scope)
        {
            return Ok(Some((
                name(scope),
                format!(
                    "event {seq} paused it and no resume event lifted it, but the store no longer holds it"
                ),
            )));
        }
    }
    Ok(None)
}

/// Every change must be what the event that recorded it says.
fn check_changes(store: &Store) -> Result<Found> {
    let mut found = None;
    store.for_each_change(|c| {
        if found.is_none() {
            let e = store.event_for_change(c.id)?;
            if let Err(why) = crate::audit::check_change(c, e.as_ref()) {
                found = Some((format!("change {}", c.id), why));
            }
        }
        Ok(())
    })?;
    Ok(found)
}

/// Every proposal must hold what was queued, in the state its newest event left it; every
/// ingest's proposals must have the digests its event holds.
fn check_proposals(store: &Store, g: &Gathered, warnings: &mut Vec<String>) -> Result<Found> {
    let mut found = None;
    let mut legacy = 0u64;
    let mut xors: std::collections::BTreeMap<i64, [u8; 32]> = Default::default();
    store.for_each_bound_proposal(|p, b| {
        if found.is_some() {
            return Ok(());
        }
        if b.bound_from.is_some_and(|from| p.id < from) {
            legacy += 1;
        }
        if let Some(d) = b.digest.as_deref() {
            let mut d32 = [0u8; 32];
            if d.len() == 32 {
                d32.copy_from_slice(d);
            }
            crate::audit::xor_into(xors.entry(p.ingest_id).or_insert([0; 32]), &d32);
        }
        if let Err(why) = crate::audit::check_state(p, b) {
            found = Some((format!("proposal {}", p.id), why));
        }
        Ok(())
    })?;
    if found.is_some() {
        return Ok(found);
    }
    for (ingest, (seq, xor)) in &g.ingests {
        let held = xors.get(ingest).map(|x| crate::model::hex(x));
        if held.as_deref() != Some(xor.as_str()) {
            return Ok(Some((
                format!("ingest {ingest}"),
                format!(
                    "its proposals' digests are not the ones event {seq} recorded (a proposal's content and digest were both rewritten, or one was added or removed)"
                ),
            )));
        }
    }
    if legacy > 0 {
        warnings.push(format!(
            "{} queued before content digests were recorded: their content is checked only against their events",
            crate::ui::count(legacy, "proposal was", "proposals were")
        ));
    }
    Ok(None)
}

/// The chain's head, to keep where the store's writers cannot reach.
pub fn checkpoint(store: &Store) -> Result<Checkpoint> {
    let (seq, hash) = store
        .chain_head()?
        .ok_or_else(|| Error::refused("the audit log is empty"))?;
    Ok(Checkpoint { seq, hash })
}

/// The export's columns: the events' own, documented in the README, then the evidence of the
/// proposal an event is about, as its `detail` keeps it.
const COLUMNS: [&str; 23] = [
    "seq",
    "at",
    "actor",
    "actor_kind",
    "action",
    "proposal_id",
    "change_id",
    "run_id",
    "object",
    "record",
    "field",
    "prev_value",
    "new_value",
    "source",
    "confidence",
    "rules",
    "policy_version",
    "approver",
    "detail",
    "prev_hash",
    "hash",
    "os_user",
    "evidence",
];

fn cells(e: &EventRow) -> [String; 23] {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let n = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    [
        e.seq.to_string(),
        e.at.clone(),
        e.actor.clone(),
        e.actor_kind.clone(),
        e.action.clone(),
        n(e.proposal_id),
        n(e.change_id),
        n(e.run_id),
        o(&e.object),
        o(&e.record),
        o(&e.field),
        o(&e.prev_value),
        o(&e.new_value),
        o(&e.source),
        e.confidence.map(|c| c.to_string()).unwrap_or_default(),
        o(&e.rules),
        n(e.policy_version),
        o(&e.approver),
        o(&e.detail),
        e.prev_hash.clone(),
        e.hash.clone(),
        o(&e.os_user),
        evidence(e),
    ]
}

/// The evidence an event's `detail` keeps, if any.
fn evidence(e: &EventRow) -> String {
    e.detail
        .as_deref()
        // Most events have none: only those that may are parsed.
        .filter(|d| d.contains("\"evidence\""))
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .and_then(|d| d.get("evidence")?.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Writes every event at or after `since` to `out`, as CSV (cells a spreadsheet would run made
/// inert), one JSON array, or JSON Lines, with the values of the `redact` fields replaced by
/// their SHA-256 (see [`Redact`]); returns how many.
pub fn export(
    store: &Store,
    format: Format,
    since: Option<&str>,
    redact: &Redact,
    out: &mut dyn Write,
) -> Result<u64> {
    let io = |e: std::io::Error| Error::io("<stdout>", e);
    let mut n = 0u64;
    if format == Format::Csv {
        let mut w = crate::ui::csv_writer(&mut *out);
        w.write_record(COLUMNS).map_err(crate::records::csv_err)?;
        store.for_each_event(since, |e| {
            n += 1;
            let row = cells(&redact.event(e));
            w.write_record(row.iter().map(|c| crate::ui::sheet_cell(c).into_owned()))
                .map_err(crate::records::csv_err)
        })?;
        w.flush().map_err(io)?;
        return Ok(n);
    }
    let mut stream = crate::records::JsonStream::begin(out, format == Format::Json)?;
    store.for_each_event(since, |e| stream.item(&redact.event(e)))?;
    stream.end()
}

/// The fields `audit export --redact` hides. An event about one of them (its `field`) has its
/// before and after values, and the proposer's and reviewer's values an edit keeps in its
/// detail, replaced by their SHA-256; a value that is a whole record (a create, a merge) has the
/// field's entry replaced wherever it appears. A text value is hashed as its UTF-8 text, any
/// other as its JSON; `null` stays `null`. The hex digest takes the value's place, as a JSON
/// string, so equal values still match across events without being readable.
#[derive(Debug, Clone, Default)]
pub struct Redact {
    fields: Vec<String>,
}

/// The keys of an edit's detail that hold values of the event's field.
const DETAIL_VALUES: [&str; 2] = ["proposed", "edited"];

impl Redact {
    /// Checks `fields` against the store's columns: a name no object has is refused, since a
    /// typo would leave the data it meant to hide in the export.
    pub fn new(schema: &crate::schema::Schema, fields: Vec<String>) -> Result<Redact> {
        // A proposal's evidence may quote the personal data too.
        let known: Vec<&str> = (schema.objects.values())
            .flat_map(|o| o.column_names())
            .chain(["evidence"])
            .collect();
        if let Some(bad) = fields.iter().find(|f| !known.contains(&f.as_str())) {
            return Err(Error::refused_with_hint(
                format!(
                    "--redact {}: no object has that field{}",
                    crate::ui::safe(bad),
                    crate::schema::suggestion_suffix(bad, known.iter().copied())
                ),
                "name fields as the store's objects call them (or evidence), e.g. --redact email,phone,evidence",
            ));
        }
        Ok(Redact { fields })
    }

    /// `e` as exported: unchanged, or a copy with the redacted values hashed.
    pub fn event<'e>(&self, e: &'e EventRow) -> std::borrow::Cow<'e, EventRow> {
        use std::borrow::Cow;
        if self.fields.is_empty() {
            return Cow::Borrowed(e);
        }
        let whole = e.field.as_ref().is_some_and(|f| self.fields.contains(f));
        let mut out = e.clone();
        out.prev_value = e.prev_value.as_deref().map(|v| self.text(v, whole, &[]));
        out.new_value = e.new_value.as_deref().map(|v| self.text(v, whole, &[]));
        let keys: &[&str] = if whole { &DETAIL_VALUES } else { &[] };
        out.detail = e.detail.as_deref().map(|v| self.text(v, false, keys));
        if out.prev_value == e.prev_value && out.new_value == e.new_value && out.detail == e.detail
        {
            return Cow::Borrowed(e);
        }
        Cow::Owned(out)
    }

    /// Stored JSON text, redacted: hashed whole, or under the redacted keys and `also`.
    fn text(&self, json: &str, whole: bool, also: &[&str]) -> String {
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(json) else {
            return json.to_string();
        };
        if whole {
            v = hashed(&v);
        } else if !self.walk(&mut v, also) {
            return json.to_string();
        }
        v.to_string()
    }

    /// Hashes, in place, every value under a redacted key (or one of `also`, at the top);
    /// whether anything changed.
    fn walk(&self, v: &mut serde_json::Value, also: &[&str]) -> bool {
        let mut changed = false;
        match v {
            serde_json::Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    if self.fields.contains(k) || also.contains(&k.as_str()) {
                        *x = hashed(x);
                        changed = true;
                    } else {
                        changed |= self.walk(x, &[]);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for x in items {
                    changed |= self.walk(x, &[]);
                }
            }
            _ => {}
        }
        changed
    }
}

/// A value's SHA-256, hex, as a JSON string; `null` stays `null`.
fn hashed(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Null => serde_json::Value::Null,
        serde_json::Value::String(s) => crate::audit::sha256_hex(s.as_bytes()).into(),
        other => crate::audit::sha256_hex(other.to_string().as_bytes()).into(),
    }
}
