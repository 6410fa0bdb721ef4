//! The queue as people look at it: a proposal's address on the command line, the counts at a
//! glance, a filtered list, and everything known about one proposal or one change. Read-only;
//! each view is gathered here in full so that commands only print it.

use std::path::PathBuf;

use crate::audit::EventRow;
use crate::error::{Error, Result};
use crate::model::{Proposal, Value};
use crate::review::Explained;
use crate::store::{ChangeRow, CountRow, IngestRow, ListFilter, Pause, Store};
use crate::ui::safe;

/// A proposal by its address: crmgate's id (`42`, or `#42`) or the proposer's `SOURCE:ID`.
/// An address that finds nothing says what it may have meant (`w4`: `zoominfo:w4`).
pub fn find(store: &Store, id: &str) -> Result<Proposal> {
    let found = if let Ok(n) = id.trim_start_matches('#').parse::<i64>() {
        store.proposal(n)?
    } else if let Some((source, ext)) = id.split_once(':') {
        store.proposal_by_source_id(source, ext)?
    } else {
        None
    };
    if let Some(p) = found {
        return Ok(p);
    }
    let ext = id.split_once(':').map(|(_, e)| e).unwrap_or(id);
    let meant = store.source_ids_for(ext)?;
    if !meant.is_empty() {
        let meant: Vec<String> = meant.iter().map(|m| safe(m).into_owned()).collect();
        return Err(Error::refused_with_hint(
            format!(
                "no proposal is \"{}\" (did you mean {}?)",
                safe(id),
                meant.join(" or ")
            ),
            "a proposer's id goes with its source: SOURCE:ID, e.g. clearbit:p-17",
        ));
    }
    if id.parse::<i64>().is_err() && !id.contains(':') {
        return Err(Error::refused_with_hint(
            format!("\"{}\" is not a proposal id", safe(id)),
            "give crmgate's number (e.g. 42) or the proposer's SOURCE:ID (e.g. clearbit:p-17); `crmgate list` shows both",
        ));
    }
    Err(Error::NotFound {
        what: "proposal",
        id: safe(id).into_owned(),
    })
}

/// The queue at a glance.
#[derive(Debug, Clone)]
pub struct Status {
    pub store: PathBuf,
    pub paused: Vec<Pause>,
    pub by_state: Vec<CountRow>,
    pub by_kind: Vec<CountRow>,
    pub by_source: Vec<CountRow>,
    /// The five latest.
    pub recent_ingests: Vec<IngestRow>,
    /// What is wrong with the policy in force, each with the command that fixes it.
    pub policy_warnings: Vec<String>,
    /// When a maximum age was given: the undecided proposals older than it, if any.
    pub overdue: Option<Overdue>,
}

impl Status {
    pub fn total(&self) -> i64 {
        self.by_state.iter().map(|c| c.count).sum()
    }
}

/// The queue at a glance; with `max_age`, also whether an undecided proposal has waited
/// longer than that at `now` (see [`overdue`], which alerts).
pub fn status_watching(
    store: &mut Store,
    max_age: Option<jiff::SignedDuration>,
    now: &str,
) -> Result<Status> {
    let mut s = status(store)?;
    if let Some(d) = max_age {
        s.overdue = overdue(store, d, now)?;
    }
    Ok(s)
}

pub fn status(store: &Store) -> Result<Status> {
    Ok(Status {
        store: store.path().to_path_buf(),
        paused: store.pauses()?,
        by_state: store.count_proposals_by("state")?,
        by_kind: store.count_proposals_by("kind")?,
        by_source: store.count_proposals_by("source")?,
        recent_ingests: store.recent_ingests(5)?,
        policy_warnings: policy_warnings(store),
        overdue: None,
    })
}

/// The policy in force's rules the store can no longer evaluate, or why there is no policy.
fn policy_warnings(store: &Store) -> Vec<String> {
    match crate::admin::policy::load(store) {
        Ok((_, policy)) => crate::admin::policy::warnings(&policy),
        Err(e) => vec![match e.hint() {
            Some(h) => format!("{e}; {h}"),
            None => e.to_string(),
        }],
    }
}

/// `filter` with its object checked against the live schema: a name that is none is refused.
pub fn checked(store: &Store, filter: ListFilter) -> Result<ListFilter> {
    if let Some(o) = &filter.object {
        crate::records::object(store.schema(), o)?;
    }
    Ok(filter)
}

/// The proposals `filter` matches, newest first, up to its limit; and how many match in all.
pub fn list(store: &Store, filter: ListFilter) -> Result<(Vec<Proposal>, i64)> {
    store.list_proposals(&checked(store, filter)?)
}

/// What `show` shows: a proposal, or a change (`change:N`).
pub enum Shown {
    Proposal(Box<ProposalView>),
    Change(Box<ChangeView>),
}

/// One proposal in full: its record (and a merge's survivor) as they are now, why it was
/// decided as it was, and every event about it from its ingest on.
pub struct ProposalView {
    pub p: Proposal,
    /// The object's columns, in order; empty when the object is gone.
    pub columns: Vec<String>,
    pub record: Option<Vec<Value>>,
    pub survivor: Option<Vec<Value>>,
    /// A merge's records: what changed in them since it was proposed (`None`: not a merge, or a
    /// record is gone).
    pub since: Option<crate::apply::SinceProposed>,
    pub explained: Explained,
    pub ingest: Option<EventRow>,
    pub events: Vec<EventRow>,
}

impl ProposalView {
    /// A record's values by column name, as JSON; `null` for a record that is gone.
    pub fn as_map(&self, values: &Option<Vec<Value>>) -> serde_json::Value {
        match values {
            Some(v) => serde_json::Value::Object(
                self.columns
                    .iter()
                    .cloned()
                    .zip(v.iter().map(Value::to_json))
                    .collect(),
            ),
            None => serde_json::Value::Null,
        }
    }

    /// The ingest event and the proposal's own, in order.
    pub fn story(&self) -> Vec<&EventRow> {
        let mut all: Vec<&EventRow> = self.ingest.iter().chain(self.events.iter()).collect();
        all.sort_by_key(|e| e.seq);
        all
    }
}

/// One change in full: what it wrote, the change that undid it, and its proposal's story.
pub struct ChangeView {
    pub change: ChangeRow,
    pub reverted_by: Option<i64>,
    pub proposal: Option<Proposal>,
    /// The proposal's ingest event and its own, in order.
    pub events: Vec<EventRow>,
    /// A whole-record change (a merge's removal of the duplicate, or its revert), field by
    /// field: empty for a change of one field.
    pub fields: Vec<FieldImage>,
}

/// One field of a whole-record change: its value before and after (`Null`: no record).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldImage {
    pub field: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// The fields of a whole-record change, in the record's column order (a column the store no
/// longer has comes last).
fn field_images(store: &Store, c: &ChangeRow) -> Vec<FieldImage> {
    if c.field != crate::apply::WHOLE_RECORD {
        return Vec::new();
    }
    let object = |v: &Value| match v {
        Value::Text(t) => {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(t).ok()
        }
        _ => None,
    };
    let (before, after) = (object(&c.before), object(&c.after));
    let mut names: Vec<String> = store
        .schema()
        .object(&c.object)
        .map(|o| o.column_names().map(str::to_string).collect())
        .unwrap_or_default();
    for m in [&before, &after].into_iter().flatten() {
        for k in m.keys() {
            // The rowid a merge kept is where the record goes back, not one of its fields.
            if !names.contains(k) && k != crate::apply::ROWID_KEY {
                names.push(k.clone());
            }
        }
    }
    let get = |m: &Option<serde_json::Map<String, serde_json::Value>>, k: &str| {
        m.as_ref()
            .and_then(|m| m.get(k))
            .cloned()
            .unwrap_or_default()
    };
    names
        .into_iter()
        .map(|field| FieldImage {
            before: get(&before, &field),
            after: get(&after, &field),
            field,
        })
        .collect()
}

/// The proposal or change `id` names.
pub fn show(store: &Store, id: &str) -> Result<Shown> {
    if let Some(n) = id
        .strip_prefix("change:")
        .and_then(|n| n.parse::<i64>().ok())
    {
        return Ok(Shown::Change(Box::new(change(store, n)?)));
    }
    Ok(Shown::Proposal(Box::new(proposal(
        store,
        find(store, id)?,
    )?)))
}

fn proposal(store: &Store, p: Proposal) -> Result<ProposalView> {
    let obj = store.schema().object(&p.object);
    let record = match obj {
        Some(o) => store.record_row(o, &p.record)?,
        None => None,
    };
    let survivor = match (obj, &p.merge_into) {
        (Some(o), Some(into)) => store.record_row(o, into)?,
        _ => None,
    };
    Ok(ProposalView {
        columns: obj
            .map(|o| o.column_names().map(str::to_string).collect())
            .unwrap_or_default(),
        record,
        survivor,
        since: crate::apply::merge_changes_since_proposed(store, &p)?,
        explained: crate::review::explain(store, &p)?,
        ingest: store.ingest_event(p.ingest_id)?,
        events: store.events_for_proposal(p.id)?,
        p,
    })
}

fn change(store: &Store, id: i64) -> Result<ChangeView> {
    let change = store.change(id)?.ok_or_else(|| Error::NotFound {
        what: "change",
        id: id.to_string(),
    })?;
    let proposal = match change.proposal_id {
        Some(p) => store.proposal(p)?,
        None => None,
    };
    let mut events = Vec::new();
    if let Some(p) = &proposal {
        events.extend(store.ingest_event(p.ingest_id)?);
        events.extend(store.events_for_proposal(p.id)?);
    }
    events.sort_by_key(|e| e.seq);
    Ok(ChangeView {
        fields: field_images(store, &change),
        reverted_by: store.reverted_by(change.id)?,
        change,
        proposal,
        events,
    })
}

/// Undecided proposals older than `status --max-age`: how many, and the oldest.
#[derive(Debug, Clone)]
pub struct Overdue {
    pub count: i64,
    pub oldest: Proposal,
}

/// `--max-age`'s duration: jiff's friendly form (`24h`, `90m`, `2d`, `1h 30m`) or ISO 8601
/// (`PT24H`), a day counted as 24 hours.
pub fn max_age(text: &str) -> Result<jiff::SignedDuration> {
    let span: jiff::Span = text.trim().parse().map_err(|e| {
        Error::refused_with_hint(
            format!("--max-age {}: not a duration: {e}", safe(text)),
            "give one like 24h, 90m or 2d",
        )
    })?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()
        .filter(|d| d.is_positive())
        .ok_or_else(|| {
            Error::refused_with_hint(
                format!("--max-age {}: not a positive length of time", safe(text)),
                "give one like 24h, 90m or 2d (weeks, months and years are not fixed lengths)",
            )
        })?;
    Ok(d)
}

/// Whether an undecided proposal has waited longer than `max_age` at `now`; when one has, a
/// `queue_age` alert is sent about the oldest.
fn overdue(store: &mut Store, max_age: jiff::SignedDuration, now: &str) -> Result<Option<Overdue>> {
    let now_ts: jiff::Timestamp = now
        .parse()
        .map_err(|e| Error::refused(format!("the time {now} is not RFC 3339: {e}")))?;
    let cutoff = now_ts
        .checked_sub(max_age)
        .map_err(|e| Error::refused(format!("--max-age reaches before any time: {e}")))?;
    let cutoff = cutoff.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let Some((count, oldest)) = store.undecided_before(&cutoff)? else {
        return Ok(None);
    };
    let detail = serde_json::json!({
        "count": count,
        "max_age": format!("{max_age:#}"),
        "oldest_at": oldest.created_at,
        "state": oldest.state,
    });
    let mut alert = crate::alerts::Alert::new(crate::alerts::AlertKind::QueueAge, now, detail)
        .about_source(Some(&oldest.source));
    alert.object = Some(oldest.object.clone());
    alert.record = Some(oldest.record.clone());
    alert.proposal = Some(oldest.id);
    crate::alerts::send_in_force(store, &[alert]);
    Ok(Some(Overdue { count, oldest }))
}
