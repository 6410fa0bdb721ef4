//! `crmgate log`: what happened, newest first.

use super::{Ctx, Outcome, print_json, print_out};
use crate::error::{Error, Result};
use crate::store::EventFilter;
use crate::ui::safe;

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Only this record, as OBJECT/ID (e.g. contacts/c-1001).
    #[arg(long, value_name = "OBJECT/ID")]
    pub record: Option<String>,
    /// Only what this source proposed, and what was done with it (e.g. enricher).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Only what this person (or `crmgate`, for the system) did.
    // Its own id: the global `--as` is `actor` too, and clap would merge the two (and with it
    // $CRMGATE_USER would silently filter the log).
    #[arg(long = "actor", id = "log_actor", value_name = "NAME")]
    pub actor: Option<String>,
    /// Only events at or after this time (RFC 3339, or a date).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// At most this many, newest first; 0 for all.
    #[arg(long, default_value_t = 50)]
    pub limit: u64,
}

pub fn run(args: LogArgs, ctx: &Ctx) -> Result<Outcome> {
    let (object, record) = match &args.record {
        Some(r) => match r.split_once('/') {
            Some((o, id)) if !o.is_empty() && !id.is_empty() => {
                (Some(o.to_string()), Some(id.to_string()))
            }
            _ => {
                return Err(Error::refused_with_hint(
                    format!("--record {}: expected OBJECT/ID", safe(r)),
                    "e.g. --record contacts/c-1001",
                ));
            }
        },
        None => (None, None),
    };
    let store = ctx.open()?;
    let filter = EventFilter {
        object,
        record,
        source: args.source,
        actor: args.actor,
        since: args
            .since
            .as_deref()
            .map(crate::admin::audit::since)
            .transpose()?,
        limit: (args.limit > 0).then_some(args.limit),
    };
    let events = store.events(&filter)?;
    if ctx.ui.json {
        print_json(&events)?;
        return Ok(Outcome::Done);
    }
    if events.is_empty() {
        ctx.ui.note("no events match");
        return Ok(Outcome::Done);
    }
    let value = |v: &Option<String>| -> String {
        match v.as_deref().map(serde_json::from_str::<serde_json::Value>) {
            Some(Ok(serde_json::Value::String(s))) => s,
            Some(Ok(serde_json::Value::Null)) => "(empty)".into(),
            Some(Ok(other)) => other.to_string(),
            _ => String::new(),
        }
    };
    let mut t = ctx.ui.table();
    t.set_header([
        "seq", "at", "actor", "action", "proposal", "record", "change", "detail",
    ]);
    for e in &events {
        let record = match (&e.object, &e.record) {
            (Some(o), Some(r)) => format!("{o}/{r}"),
            _ => String::new(),
        };
        let change = match (&e.field, &e.new_value) {
            (Some(f), Some(_)) => {
                format!("{f}: {} → {}", value(&e.prev_value), value(&e.new_value))
            }
            (Some(f), None) => f.clone(),
            _ => String::new(),
        };
        t.add_row([
            e.seq.to_string(),
            e.at.clone(),
            safe(&e.actor).into_owned(),
            e.action.clone(),
            e.proposal_id.map(|p| p.to_string()).unwrap_or_default(),
            safe(&record).into_owned(),
            safe(&crate::validate::short(&change)).into_owned(),
            safe(&crate::validate::short(&written_by(e))).into_owned(),
        ]);
    }
    print_out(t)?;
    Ok(Outcome::Done)
}

/// An event's detail, after the run and change it wrote, if it wrote one.
fn written_by(e: &crate::audit::EventRow) -> String {
    let wrote = match (e.run_id, e.change_id) {
        (Some(run), Some(change)) => Some(format!("run {run}, change {change}")),
        _ => None,
    };
    match (wrote, e.detail.as_deref()) {
        (Some(w), Some(d)) => format!("{w}: {d}"),
        (Some(w), None) => w,
        (None, d) => d.unwrap_or_default().to_string(),
    }
}
