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
    /// Every event holds (and the chain reaches the checkpoint, when one was given).
    Intact { events: u64 },
    /// The first place it does not.
    Broken(Break),
}

/// Walks the whole log in order and checks every link, then that it reaches `checkpoint`.
pub fn verify(store: &Store, checkpoint: Option<&Checkpoint>) -> Result<Verified> {
    let mut v = Verifier::default();
    let mut at_checkpoint: Option<String> = None;
    let mut broken = None;
    store.for_each_event(None, |e| {
        if broken.is_none() {
            if let Err(b) = v.check(e) {
                broken = Some(b);
            } else if checkpoint.is_some_and(|c| c.seq == e.seq) {
                at_checkpoint = Some(e.hash.clone());
            }
        }
        Ok(())
    })?;
    let result = match broken {
        Some(b) => Err(b),
        None => v.finish(checkpoint, at_checkpoint.as_deref()),
    };
    Ok(match result {
        Ok(()) => Verified::Intact { events: v.checked },
        Err(b) => Verified::Broken(b),
    })
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
