//! `crmgate status`, `crmgate list`, `crmgate show`.

use super::{Ctx, Outcome, print_json, print_out};
use crate::error::{Error, Result};
use crate::model::{Kind, Proposal, State, Value};
use crate::store::{ListFilter, Store};
use crate::ui::safe;

/// The narrowing the queue commands share: one source, kind or object.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Narrow {
    /// Only this source's proposals.
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Only proposals of this kind.
    #[arg(long, value_parser = Kind::ALL.map(Kind::as_str))]
    pub kind: Option<String>,
    /// Only proposals for records of this object (table).
    #[arg(long, value_name = "OBJECT")]
    pub object: Option<String>,
}

impl Narrow {
    pub fn is_set(&self) -> bool {
        self.source.is_some() || self.kind.is_some() || self.object.is_some()
    }

    /// As a store filter.
    pub fn filter(self, state: Option<State>, limit: Option<u64>) -> ListFilter {
        ListFilter {
            state,
            source: self.source,
            kind: self.kind,
            object: self.object,
            limit,
        }
    }

    /// As a store filter, with an object that does not exist refused by name.
    pub fn checked(
        self,
        store: &Store,
        state: Option<State>,
        limit: Option<u64>,
    ) -> Result<ListFilter> {
        if let Some(o) = &self.object {
            crate::records::object(store.schema(), o)?;
        }
        Ok(self.filter(state, limit))
    }
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only proposals in this state (default: every state).
    #[arg(long, value_parser = State::ALL.map(State::as_str))]
    pub state: Option<String>,
    #[command(flatten)]
    pub narrow: Narrow,
    /// At most this many, newest first; 0 for all.
    #[arg(long, default_value_t = 50)]
    pub limit: u64,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// A proposal: crmgate's id (e.g. 42) or the proposer's SOURCE:ID (e.g. clearbit:p-17);
    /// or a change, as `log`, `apply` and `revert` number them: change:N.
    pub id: String,
}

pub fn status(ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.open()?;
    let by_state = store.count_proposals_by("state")?;
    let by_kind = store.count_proposals_by("kind")?;
    let by_source = store.count_proposals_by("source")?;
    let ingests = store.recent_ingests(5)?;
    let pauses = store.pauses()?;
    if ctx.ui.json {
        print_json(&serde_json::json!({
            "store": store.path(),
            "paused": pauses,
            "by_state": by_state,
            "by_kind": by_kind,
            "by_source": by_source,
            "recent_ingests": ingests,
        }))?;
        return Ok(Outcome::Done);
    }
    let total: i64 = by_state.iter().map(|c| c.count).sum();
    for p in &pauses {
        print_out(format!(
            "{} {} since {} by {}: {}",
            ctx.ui.heading("PAUSED:"),
            p.source
                .as_deref()
                .map(|s| format!("source {}", safe(s)))
                .unwrap_or_else(|| "the whole store".into()),
            p.at,
            safe(&p.actor),
            safe(&p.reason)
        ))?;
    }
    print_out(format!(
        "{} {} proposals in {}",
        ctx.ui.heading("Queue:"),
        total,
        safe(&store.path().display().to_string())
    ))?;
    if total == 0 {
        ctx.ui
            .note("nothing queued yet; ingest proposals with `crmgate propose FILE`");
        return Ok(Outcome::Done);
    }
    let mut t = ctx.ui.table();
    t.set_header(["by state", "", "by kind", "", "by source", ""]);
    let rows = by_state.len().max(by_kind.len()).max(by_source.len());
    let cell = |v: &[crate::store::CountRow], i: usize| -> [String; 2] {
        v.get(i)
            .map(|c| [safe(&c.key).into_owned(), c.count.to_string()])
            .unwrap_or_default()
    };
    for i in 0..rows {
        let [a, b] = cell(&by_state, i);
        let [c, d] = cell(&by_kind, i);
        let [e, f] = cell(&by_source, i);
        t.add_row([a, b, c, d, e, f]);
    }
    print_out(t)?;
    if !ingests.is_empty() {
        print_out(ctx.ui.heading("Recent ingests:"))?;
        let mut t = ctx.ui.table();
        t.set_header(["at", "by", "file", "rows", "new", "superseded"]);
        for i in &ingests {
            t.add_row([
                i.at.clone(),
                safe(&i.actor).into_owned(),
                safe(&i.file).into_owned(),
                i.rows.to_string(),
                i.ingested.to_string(),
                i.superseded.to_string(),
            ]);
        }
        print_out(t)?;
    }
    Ok(Outcome::Done)
}

pub fn list(args: ListArgs, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.open()?;
    let filter = args.narrow.checked(
        &store,
        args.state.as_deref().and_then(State::parse),
        (args.limit > 0).then_some(args.limit),
    )?;
    let (rows, total) = store.list_proposals(&filter)?;
    if ctx.ui.json {
        print_json(&rows)?;
        return Ok(Outcome::Done);
    }
    if rows.is_empty() {
        ctx.ui.note("no proposals match");
        return Ok(Outcome::Done);
    }
    print_out(proposal_table(&ctx.ui, &rows))?;
    if (rows.len() as i64) < total {
        ctx.ui.note(format!(
            "showing the newest {} of {total}; use --limit N (0 for all) or filters",
            rows.len()
        ));
    }
    Ok(Outcome::Done)
}

/// Proposals as a table, one row each.
pub fn proposal_table(ui: &crate::ui::Ui, rows: &[Proposal]) -> comfy_table::Table {
    let mut t = ui.table();
    t.set_header([
        "id", "source", "kind", "record", "field", "now", "proposed", "conf", "state",
    ]);
    for p in rows {
        let (field, now, proposed) = if p.kind == "merge" {
            (
                String::new(),
                String::new(),
                format!("→ {}", p.merge_into.as_deref().unwrap_or("")),
            )
        } else {
            (
                p.field.clone().unwrap_or_default(),
                cut(&json_display(&p.baseline)),
                cut(&json_display(&p.value)),
            )
        };
        t.add_row([
            p.id.to_string(),
            safe(&p.source).into_owned(),
            p.kind.clone(),
            safe(&p.record_ref()).into_owned(),
            field,
            safe(&now).into_owned(),
            safe(&proposed).into_owned(),
            p.confidence
                .or(p.stated_confidence)
                .map(|c| format!("{c:.2}"))
                .unwrap_or_default(),
            p.state.clone(),
        ]);
    }
    t
}

/// A proposal's address on the command line: crmgate's id, or `SOURCE:ID`.
pub fn find_proposal(store: &Store, id: &str) -> Result<Proposal> {
    let found = if let Ok(n) = id.trim_start_matches('#').parse::<i64>() {
        store.proposal(n)?
    } else if let Some((source, ext)) = id.split_once(':') {
        store.proposal_by_source_id(source, ext)?
    } else {
        return Err(Error::refused_with_hint(
            format!("\"{}\" is not a proposal id", safe(id)),
            "give crmgate's number (e.g. 42) or the proposer's SOURCE:ID (e.g. clearbit:p-17)",
        ));
    };
    found.ok_or_else(|| Error::NotFound {
        what: "proposal",
        id: safe(id).into_owned(),
    })
}

pub fn show(args: ShowArgs, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.open()?;
    if let Some(n) = args
        .id
        .strip_prefix("change:")
        .and_then(|n| n.parse::<i64>().ok())
    {
        return show_change(&store, n, ctx);
    }
    let p = find_proposal(&store, &args.id)?;
    let obj = store.schema().object(&p.object);
    let record = match obj {
        Some(o) => store.record_row(o, &p.record)?,
        None => None,
    };
    let survivor = match (obj, &p.merge_into) {
        (Some(o), Some(into)) => store.record_row(o, into)?,
        _ => None,
    };
    let events = store.events_for_proposal(p.id)?;
    let ingest = store.ingest_event(p.ingest_id)?;
    let columns: Vec<String> = obj
        .map(|o| o.column_names().map(str::to_string).collect())
        .unwrap_or_default();
    let as_map = |vals: &Option<Vec<Value>>| -> serde_json::Value {
        match vals {
            Some(v) => serde_json::Value::Object(
                columns
                    .iter()
                    .cloned()
                    .zip(v.iter().map(Value::to_json))
                    .collect(),
            ),
            None => serde_json::Value::Null,
        }
    };
    let explained = crate::review::explain(&store, &p)?;
    if ctx.ui.json {
        print_json(&serde_json::json!({
            "proposal": p,
            "why": explained.why,
            "signals": explained
                .signals
                .iter()
                .map(|g| serde_json::json!({ "detail": g.detail(), "effect": g.effect() }))
                .collect::<Vec<_>>(),
            "record": as_map(&record),
            "merge_into_record": as_map(&survivor),
            "ingest": ingest,
            "events": events,
        }))?;
        return Ok(Outcome::Done);
    }
    let ui = &ctx.ui;
    let title = match p.source_ref() {
        Some(r) => format!("Proposal {} ({})", p.id, safe(&r)),
        None => format!("Proposal {}", p.id),
    };
    print_out(format!("{}  state: {}", ui.heading(&title), p.state))?;
    let mut t = ui.table();
    let mut add = |k: &str, v: String| {
        if !v.is_empty() {
            t.add_row([k.to_string(), v]);
        }
    };
    add("kind", p.kind.clone());
    add("record", safe(&p.record_ref()).into_owned());
    if p.kind == "merge" {
        add(
            "merge into",
            safe(&format!(
                "{}/{}",
                p.object,
                p.merge_into.clone().unwrap_or_default()
            ))
            .into_owned(),
        );
    } else {
        let field = p.field.clone().unwrap_or_default();
        add("field", safe(&field).into_owned());
        add("at ingest", quoted(&p.baseline));
        match &p.proposed_value {
            Some(original) => {
                add("proposed", quoted(original));
                add("edited to", quoted(&p.value));
            }
            None => add("proposed", quoted(&p.value)),
        }
        let now = match (
            &record,
            obj.and_then(|o| o.columns.iter().position(|c| c.name == field)),
        ) {
            (Some(r), Some(i)) => quoted(&r[i].to_json()),
            _ => "(record gone)".into(),
        };
        add("now", now);
        if let Some(e) = &p.expected {
            add("expected", quoted(e));
        }
    }
    add(
        "stated confidence",
        p.stated_confidence
            .map(|c| format!("{c:.2}"))
            .unwrap_or_else(|| "none".into()),
    );
    add(
        "crmgate confidence",
        p.confidence
            .map(|c| format!("{c:.2}"))
            .unwrap_or_else(|| "not scored yet".into()),
    );
    if let Some(d) = &p.decision {
        add(
            "decision",
            format!(
                "{d} (policy version {})",
                p.policy_version.unwrap_or_default()
            ),
        );
    }
    add("why", safe_lines(&explained.why));
    if let Some(d) = &explained.decision
        && !d.approvers.is_empty()
        && p.state == "pending"
    {
        add(
            "who may approve",
            format!("roles: {}", d.approvers.join(", ")),
        );
    }
    let signal_lines = explained.signal_lines();
    add("signals", safe_lines(&signal_lines));
    add(
        "trigger",
        safe(p.trigger.as_deref().unwrap_or("")).into_owned(),
    );
    add(
        "reason",
        safe(p.reason.as_deref().unwrap_or("")).into_owned(),
    );
    add(
        "from",
        format!(
            "{}:{} (ingest {}, {})",
            safe(&p.file),
            p.line,
            p.ingest_id,
            p.created_at
        ),
    );
    if let Some(by) = p.superseded_by {
        add("superseded by", by.to_string());
    }
    print_out(t)?;

    if let Some(o) = obj {
        let mut t = ui.table();
        if p.kind == "merge" {
            print_out(ui.heading("Records (duplicate → survivor):"))?;
            t.set_header([
                "field",
                &format!("{} (goes away)", safe(&p.record)),
                &format!("{} (stays)", safe(p.merge_into.as_deref().unwrap_or(""))),
            ]);
            for (i, c) in o.columns.iter().enumerate() {
                let get = |r: &Option<Vec<Value>>| {
                    r.as_ref()
                        .map(|r| safe(&r[i].display()).into_owned())
                        .unwrap_or_else(|| "(gone)".into())
                };
                t.add_row([c.name.clone(), get(&record), get(&survivor)]);
            }
        } else {
            print_out(ui.heading(&format!("Record {} now:", safe(&p.record_ref()))))?;
            t.set_header(["field", "value"]);
            match &record {
                Some(r) => {
                    for (c, v) in o.columns.iter().zip(r) {
                        let mark = if Some(&c.name) == p.field.as_ref() {
                            " ◀"
                        } else {
                            ""
                        };
                        t.add_row([format!("{}{mark}", c.name), safe(&v.display()).into_owned()]);
                    }
                }
                None => {
                    t.add_row(["(the record no longer exists)".to_string(), String::new()]);
                }
            }
        }
        print_out(t)?;
    }
    print_out(ui.heading("Events:"))?;
    let mut all: Vec<&crate::audit::EventRow> = ingest.iter().chain(events.iter()).collect();
    all.sort_by_key(|e| e.seq);
    print_out(events_table(ui, all))?;
    Ok(Outcome::Done)
}

/// Events as a table, a line each: when, who, what, and a one-line summary.
fn events_table<'e>(
    ui: &crate::ui::Ui,
    events: impl IntoIterator<Item = &'e crate::audit::EventRow>,
) -> comfy_table::Table {
    let mut t = ui.table();
    t.set_header(["seq", "at", "actor", "action", "detail"]);
    for e in events {
        t.add_row([
            e.seq.to_string(),
            e.at.clone(),
            format!("{} ({})", safe(&e.actor), e.actor_kind),
            e.action.clone(),
            safe(&event_summary(e)).into_owned(),
        ]);
    }
    t
}

/// One change in full: what it wrote, the run, the change it undid or that undid it, and the
/// story of its proposal from ingest to now.
fn show_change(store: &Store, id: i64, ctx: &Ctx) -> Result<Outcome> {
    let c = store.change(id)?.ok_or_else(|| Error::NotFound {
        what: "change",
        id: id.to_string(),
    })?;
    let undone_by = store.reverted_by(c.id)?;
    let proposal = match c.proposal_id {
        Some(p) => store.proposal(p)?,
        None => None,
    };
    let mut events = Vec::new();
    if let Some(p) = &proposal {
        events.extend(store.ingest_event(p.ingest_id)?);
        events.extend(store.events_for_proposal(p.id)?);
    }
    events.sort_by_key(|e| e.seq);
    if ctx.ui.json {
        print_json(&serde_json::json!({
            "change": {
                "id": c.id,
                "run": c.run_id,
                "proposal": c.proposal_id,
                "reverts": c.reverts,
                "reverted_by": undone_by,
                "object": c.object,
                "record": c.record,
                "field": c.field,
                "before": c.before.to_json(),
                "after": c.after.to_json(),
                "approved_by": c.approved_by,
                "at": c.at,
            },
            "proposal": proposal,
            "events": events,
        }))?;
        return Ok(Outcome::Done);
    }
    let ui = &ctx.ui;
    print_out(ui.heading(&format!("Change {} (run {})", c.id, c.run_id)))?;
    let mut t = ui.table();
    let mut add = |k: &str, v: String| {
        if !v.is_empty() {
            t.add_row([k.to_string(), v]);
        }
    };
    add(
        "record",
        safe(&format!("{}/{}", c.object, c.record)).into_owned(),
    );
    add("field", safe(&c.field).into_owned());
    add("before", quoted(&c.before.to_json()));
    add("after", quoted(&c.after.to_json()));
    add("at", c.at.clone());
    add(
        "approved by",
        safe(c.approved_by.as_deref().unwrap_or("")).into_owned(),
    );
    if let Some(r) = c.reverts {
        add("reverts", format!("change {r}"));
    }
    match undone_by {
        Some(r) => add("reverted by", format!("change {r}")),
        None => add("reverted by", "not reverted".into()),
    }
    if let Some(p) = &proposal {
        let title = match p.source_ref() {
            Some(r) => format!("{} ({})", p.id, r),
            None => p.id.to_string(),
        };
        add(
            "proposal",
            safe(&format!(
                "{title}, {} from {}, now {}",
                p.kind, p.source, p.state
            ))
            .into_owned(),
        );
        add(
            "reason",
            safe(p.reason.as_deref().unwrap_or("")).into_owned(),
        );
        add(
            "from",
            format!("{}:{} ({})", safe(&p.file), p.line, p.created_at),
        );
    }
    print_out(t)?;
    print_out(ui.heading("Its story, from ingest:"))?;
    print_out(events_table(ui, &events))?;
    Ok(Outcome::Done)
}

/// Lines of untrusted text, each neutralised on its own, then joined: no value can pose as a
/// line break.
fn safe_lines(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| safe(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The one line about an event a person needs; `--json` has the full detail.
fn event_summary(e: &crate::audit::EventRow) -> String {
    let detail: serde_json::Value = e
        .detail
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(serde_json::Value::Null);
    let s = |k: &str| detail.get(k).map(json_display).unwrap_or_default();
    match e.action.as_str() {
        "ingest" => format!(
            "{} rows from {} (sha256 {}…)",
            s("rows"),
            s("file"),
            s("sha256").chars().take(12).collect::<String>()
        ),
        "supersede" => format!("superseded by proposal {}", s("superseded_by")),
        _ => match (e.run_id, e.change_id) {
            (Some(run), Some(change)) if detail.is_null() => {
                format!("change {change} in run {run}")
            }
            (Some(run), Some(change)) => cut(&format!(
                "change {change} in run {run}: {}",
                json_display(&detail)
            )),
            _ => cut(&json_display(&detail)),
        },
    }
}

fn json_display(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn quoted(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "(empty)".into(),
        serde_json::Value::String(s) => format!("\"{}\"", safe(s)),
        other => other.to_string(),
    }
}

fn cut(s: &str) -> String {
    crate::validate::short(s)
}
