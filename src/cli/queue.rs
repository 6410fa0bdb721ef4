//! `crmgate status`, `crmgate list`, `crmgate show`.

use super::{Ctx, Outcome, print_json, print_out};
use crate::error::Result;
use crate::model::{Kind, Proposal, State, Value};
use crate::queue::{self, ChangeView, ProposalView, Shown};
use crate::store::ListFilter;
use crate::ui::{Ui, count, safe};

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

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Exit 3, and send a queue_age alert, when an undecided proposal is older than this
    /// (e.g. 24h, 90m, 2d): for a cron line that watches the queue.
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
}

pub fn status(args: StatusArgs, ctx: &Ctx) -> Result<Outcome> {
    let max_age = args.max_age.as_deref().map(queue::max_age).transpose()?;
    let mut store = ctx.open()?;
    let s = queue::status_watching(&mut store, max_age, &ctx.now)?;
    let overdue = &s.overdue;
    let outcome = if overdue.is_some() {
        Outcome::Partial
    } else {
        Outcome::Done
    };
    if ctx.ui.json {
        print_json(&serde_json::json!({
            "store": s.store,
            "paused": s.paused,
            "by_state": s.by_state,
            "by_kind": s.by_kind,
            "by_source": s.by_source,
            "recent_ingests": s.recent_ingests,
            "policy_warnings": s.policy_warnings,
            "overdue": overdue.as_ref().map(|o| serde_json::json!({
                "count": o.count,
                "oldest": o.oldest.id,
                "since": o.oldest.created_at,
            })),
        }))?;
        return Ok(outcome);
    }
    if let Some(o) = overdue {
        print_out(format!(
            "{} {} waited longer than --max-age {}; the oldest, #{} from {}, since {}: `crmgate review`",
            ctx.ui.heading("OVERDUE:"),
            count(
                o.count as u64,
                "undecided proposal has",
                "undecided proposals have"
            ),
            safe(args.max_age.as_deref().unwrap_or_default()),
            o.oldest.id,
            safe(&o.oldest.source),
            o.oldest.created_at,
        ))?;
    }
    print_status(&s, ctx)?;
    Ok(outcome)
}

/// `status` for people: pauses, the counts, the recent ingests.
fn print_status(s: &queue::Status, ctx: &Ctx) -> Result<()> {
    let total = s.total();
    for w in &s.policy_warnings {
        print_out(format!("{} {}", ctx.ui.heading("POLICY:"), safe(w)))?;
    }
    for p in &s.paused {
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
        "{} {} in {}",
        ctx.ui.heading("Queue:"),
        count(total as u64, "proposal", "proposals"),
        safe(&s.store.display().to_string())
    ))?;
    if total == 0 {
        ctx.ui
            .note("nothing queued yet; ingest proposals with `crmgate propose FILE`");
        return Ok(());
    }
    let mut t = ctx.ui.table();
    t.set_header(["by state", "", "by kind", "", "by source", ""]);
    let (by_state, by_kind, by_source) = (&s.by_state, &s.by_kind, &s.by_source);
    let rows = by_state.len().max(by_kind.len()).max(by_source.len());
    let cell = |v: &[crate::store::CountRow], i: usize| -> [String; 2] {
        v.get(i)
            .map(|c| [safe(&c.key).into_owned(), c.count.to_string()])
            .unwrap_or_default()
    };
    for i in 0..rows {
        let [a, b] = cell(by_state, i);
        let [c, d] = cell(by_kind, i);
        let [e, f] = cell(by_source, i);
        t.add_row([a, b, c, d, e, f]);
    }
    print_out(t)?;
    let ingests = &s.recent_ingests;
    if !ingests.is_empty() {
        print_out(ctx.ui.heading("Recent ingests:"))?;
        let mut t = ctx.ui.table();
        t.set_header(["at", "by", "file", "rows", "new", "superseded"]);
        for i in ingests {
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
    Ok(())
}

pub fn list(args: ListArgs, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.open()?;
    let filter = args.narrow.filter(
        args.state.as_deref().and_then(State::parse),
        (args.limit > 0).then_some(args.limit),
    );
    let (rows, total) = queue::list(&store, filter)?;
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
        let (field, now, proposed) = if p.kind == Kind::Merge {
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
            p.kind.to_string(),
            safe(&p.record_ref()).into_owned(),
            field,
            safe(&now).into_owned(),
            safe(&proposed).into_owned(),
            p.confidence
                .or(p.stated_confidence)
                .map(|c| format!("{c:.2}"))
                .unwrap_or_default(),
            p.state.to_string(),
        ]);
    }
    t
}

pub fn show(args: ShowArgs, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.open()?;
    match queue::show(&store, &args.id)? {
        Shown::Proposal(v) if ctx.ui.json => print_proposal_json(&v)?,
        Shown::Proposal(v) => print_proposal(&v, &ctx.ui)?,
        Shown::Change(c) if ctx.ui.json => print_change_json(&c)?,
        Shown::Change(c) => print_change(&c, &ctx.ui)?,
    }
    Ok(Outcome::Done)
}

fn print_proposal_json(v: &ProposalView) -> Result<()> {
    print_json(&serde_json::json!({
        "proposal": v.p,
        "why": v.explained.why,
        "signals": v.explained
            .signals
            .iter()
            .map(|g| serde_json::json!({ "detail": g.detail(), "effect": g.effect() }))
            .collect::<Vec<_>>(),
        "record": v.as_map(&v.record),
        "merge_into_record": v.as_map(&v.survivor),
        "changed_since_proposed": v.since.as_ref().map(|s| &s.fields),
        "changed_since_proposed_complete": v.since.as_ref().map(|s| s.complete),
        "ingest": v.ingest,
        "events": v.events,
    }))
}

fn print_proposal(v: &ProposalView, ui: &Ui) -> Result<()> {
    let p = &v.p;
    let title = match p.source_ref() {
        Some(r) => format!("Proposal {} ({})", p.id, safe(&r)),
        None => format!("Proposal {}", p.id),
    };
    print_out(format!("{}  state: {}", ui.heading(&title), p.state))?;
    print_out(facts_table(v, ui))?;
    if !v.columns.is_empty() {
        print_records(v, ui)?;
    }
    print_out(ui.heading("Events:"))?;
    print_out(events_table(ui, v.story()))
}

/// The proposal's facts, a row each; empty ones left out.
fn facts_table(v: &ProposalView, ui: &Ui) -> comfy_table::Table {
    let p = &v.p;
    let mut t = ui.table();
    let mut add = |k: &str, v: String| {
        if !v.is_empty() {
            t.add_row([k.to_string(), v]);
        }
    };
    add("kind", p.kind.to_string());
    add("record", safe(&p.record_ref()).into_owned());
    if p.kind == Kind::Merge {
        let into = format!("{}/{}", p.object, p.merge_into.clone().unwrap_or_default());
        add("merge into", safe(&into).into_owned());
    } else if p.kind == Kind::Create {
        let n = p.value.as_object().map_or(0, |f| f.len());
        add("creates", format!("a new record of {n} fields (below)"));
        let now = if v.record.is_some() {
            "exists"
        } else {
            "no such record"
        };
        add("now", now.into());
    } else {
        field_facts(v, &mut add);
    }
    let conf =
        |c: Option<f64>, none: &str| c.map(|c| format!("{c:.2}")).unwrap_or_else(|| none.into());
    add("stated confidence", conf(p.stated_confidence, "none"));
    add("crmgate confidence", conf(p.confidence, "not scored yet"));
    if let Some(d) = &p.decision {
        let version = p.policy_version.unwrap_or_default();
        add("decision", format!("{d} (policy version {version})"));
    }
    add("why", safe_each(&v.explained.why));
    if let Some(d) = &v.explained.decision
        && !d.approvers.is_empty()
        && p.state == State::Pending
    {
        add(
            "who may approve",
            format!("roles: {}", d.approvers.join(", ")),
        );
    }
    add("signals", safe_each(&v.explained.signal_lines()));
    add(
        "trigger",
        safe(p.trigger.as_deref().unwrap_or("")).into_owned(),
    );
    add(
        "reason",
        safe(p.reason.as_deref().unwrap_or("")).into_owned(),
    );
    add("evidence", evidence_lines(p.evidence.as_deref()));
    let from = format!(
        "{}:{} (ingest {}, {})",
        safe(&p.file),
        p.line,
        p.ingest_id,
        p.created_at
    );
    add("from", from);
    if let Some(by) = p.superseded_by {
        add("superseded by", by.to_string());
    }
    t
}

/// A field proposal's values: at ingest, proposed (and edited), now, expected.
fn field_facts(v: &ProposalView, add: &mut impl FnMut(&str, String)) {
    let p = &v.p;
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
    let at = v.columns.iter().position(|c| *c == field);
    let now = match (&v.record, at) {
        (Some(r), Some(i)) => quoted(&r[i].to_json()),
        _ => "(record gone)".into(),
    };
    add("now", now);
    if let Some(e) = &p.expected {
        add("expected", quoted(e));
    }
}

/// The record as it is now (a merge: both records, side by side).
fn print_records(v: &ProposalView, ui: &Ui) -> Result<()> {
    let p = &v.p;
    let mut t = ui.table();
    if p.kind == Kind::Merge {
        print_out(ui.heading("Records (duplicate → survivor):"))?;
        t.set_header([
            "field",
            &format!("{} (goes away)", safe(&p.record)),
            &format!("{} (stays)", safe(p.merge_into.as_deref().unwrap_or(""))),
        ]);
        let changed = |record: &str, field: &str| {
            v.since.as_ref().is_some_and(|s| {
                s.fields
                    .iter()
                    .any(|f| f.record == record && f.field == field)
            })
        };
        let into = p.merge_into.as_deref().unwrap_or("");
        for (i, c) in v.columns.iter().enumerate() {
            let get = |r: &Option<Vec<Value>>, id: &str| {
                let mark = if changed(id, c) { " ◀ changed" } else { "" };
                r.as_ref()
                    .map(|r| format!("{}{mark}", safe(&r[i].display())))
                    .unwrap_or_else(|| "(gone)".into())
            };
            t.add_row([c.clone(), get(&v.record, &p.record), get(&v.survivor, into)]);
        }
        print_out(t)?;
        if let Some(s) = &v.since {
            for line in crate::ui::since_proposed_lines(s) {
                print_out(line)?;
            }
        }
        return Ok(());
    }
    if p.kind == Kind::Create {
        print_created(v, ui)?;
        if v.record.is_none() {
            return Ok(());
        }
    }
    print_out(ui.heading(&format!("Record {} now:", safe(&p.record_ref()))))?;
    t.set_header(["field", "value"]);
    match &v.record {
        Some(r) => {
            for (c, val) in v.columns.iter().zip(r) {
                let mark = if Some(c) == p.field.as_ref() {
                    " ◀"
                } else {
                    ""
                };
                t.add_row([format!("{c}{mark}"), safe(&val.display()).into_owned()]);
            }
        }
        None => {
            t.add_row(["(the record no longer exists)".to_string(), String::new()]);
        }
    }
    print_out(t)
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

fn print_change_json(v: &ChangeView) -> Result<()> {
    let c = &v.change;
    print_json(&serde_json::json!({
        "change": {
            "id": c.id,
            "run": c.run_id,
            "proposal": c.proposal_id,
            "reverts": c.reverts,
            "reverted_by": v.reverted_by,
            "object": c.object,
            "record": c.record,
            "field": c.field,
            "before": c.before.to_json(),
            "after": c.after.to_json(),
            "approved_by": c.approved_by,
            "at": c.at,
        },
        "fields": v.fields,
        "proposal": v.proposal,
        "events": v.events,
    }))
}

/// One change in full: what it wrote, the run, the change it undid or that undid it, and the
/// story of its proposal from ingest to now.
fn print_change(v: &ChangeView, ui: &Ui) -> Result<()> {
    let c = &v.change;
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
    if v.fields.is_empty() {
        add("field", safe(&c.field).into_owned());
        add("before", quoted(&c.before.to_json()));
        add("after", quoted(&c.after.to_json()));
    } else {
        add("field", "the whole record".into());
    }
    add("at", c.at.clone());
    add(
        "approved by",
        safe(c.approved_by.as_deref().unwrap_or("")).into_owned(),
    );
    if let Some(r) = c.reverts {
        add("reverts", format!("change {r}"));
    }
    match v.reverted_by {
        Some(r) => add("reverted by", format!("change {r}")),
        None => add("reverted by", "not reverted".into()),
    }
    if let Some(p) = &v.proposal {
        let title = match p.source_ref() {
            Some(r) => format!("{} ({})", p.id, r),
            None => p.id.to_string(),
        };
        let about = format!("{title}, {} from {}, now {}", p.kind, p.source, p.state);
        add("proposal", safe(&about).into_owned());
        add(
            "reason",
            safe(p.reason.as_deref().unwrap_or("")).into_owned(),
        );
        add("evidence", evidence_lines(p.evidence.as_deref()));
        add(
            "from",
            format!("{}:{} ({})", safe(&p.file), p.line, p.created_at),
        );
    }
    print_out(t)?;
    if !v.fields.is_empty() {
        print_out(ui.heading("The record, field by field:"))?;
        print_out(record_image(v, ui))?;
    }
    print_out(ui.heading("Its story, from ingest:"))?;
    print_out(events_table(ui, &v.events))
}

/// A whole-record change as a table: each field before and after ("(none)": no record).
fn record_image(v: &ChangeView, ui: &Ui) -> comfy_table::Table {
    let mut t = ui.table();
    t.set_header(["field", "before", "after"]);
    let none = |x: &serde_json::Value, whole: &Value| match whole {
        Value::Null => "(none)".to_string(),
        _ => quoted(x),
    };
    for f in &v.fields {
        t.add_row([
            safe(&f.field).into_owned(),
            none(&f.before, &v.change.before),
            none(&f.after, &v.change.after),
        ]);
    }
    t
}

/// A create's new record as proposed: its fields, in the table's column order.
fn print_created(v: &ProposalView, ui: &Ui) -> Result<()> {
    let p = &v.p;
    print_out(ui.heading(&format!("New record {}:", safe(&p.record_ref()))))?;
    print_out(crate::review::created_table(ui, p, &v.columns))
}

/// A proposal's evidence in full, line by line, each made safe to print.
fn evidence_lines(evidence: Option<&str>) -> String {
    crate::ui::safe_lines(evidence.unwrap_or("")).into_owned()
}

/// Lines of untrusted text, each neutralised on its own, then joined: no value can pose as a
/// line break.
fn safe_each(lines: &[String]) -> String {
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
            "{} from {} (sha256 {}…)",
            count(
                detail.get("rows").and_then(|r| r.as_u64()).unwrap_or(0),
                "row",
                "rows"
            ),
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
