//! The interactive review: walks the undecided proposals record by record, shows each one with
//! everything a person needs to judge it, and records their decisions through [`crate::human`].
//!
//! A screen is built in two steps: [`View::load`] reads what it shows from the store, and
//! [`View::render`] turns that into text, so what a reviewer sees can be checked without a
//! terminal. Each decision is its own short write transaction: a cron `apply` or another
//! reviewer works on the same store meanwhile, and the review re-reads every proposal just
//! before showing it.

use std::collections::VecDeque;
use std::fmt::Write as _;

use similar::{ChangeTag, TextDiff};

use crate::error::{Error, Result};
use crate::human::{self, Edit, Ruling, Verb};
use crate::model::{Action, Proposal, State, Value};
use crate::policy::{Decision, Policy};
use crate::prompt::{Answer, Prompt};
use crate::schema::Object;
use crate::score::Signal;
use crate::store::{GroupWalk, ListFilter, Store};
use crate::ui::{Ui, safe};
use crate::validate::FieldType;

/// A proposal's decision and signals, put in words.
pub struct Explained {
    pub decision: Option<Decision>,
    pub why: Vec<String>,
    pub signals: Vec<Signal>,
}

impl Explained {
    /// One line per signal, with its effect on the confidence.
    pub fn signal_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .signals
            .iter()
            .map(|g| match g.effect() {
                0.0 => format!("· {}", g.detail()),
                e => format!("· {} ({e:+.2})", g.detail()),
            })
            .collect();
        // The track record is stored only once there is one.
        if !self.signals.is_empty()
            && !self
                .signals
                .iter()
                .any(|g| matches!(g, Signal::Track { .. }))
        {
            lines.insert(
                1,
                "· no human decisions on this source's proposals of this kind and field yet".into(),
            );
        }
        lines
    }
}

/// What waits for review: how many proposals a filter leaves open, and the first `n` of them,
/// record by record in the order a review walks them.
pub fn waiting(store: &Store, filter: &ListFilter, n: usize) -> Result<(i64, Vec<Proposal>)> {
    let total = store.open_count(filter)?;
    let mut rows = Vec::new();
    let mut walk = GroupWalk::default();
    while rows.len() < n {
        let group = store.next_open_group(filter, &mut walk)?;
        if group.is_empty() {
            break;
        }
        rows.extend(group);
    }
    rows.truncate(n);
    Ok((total, rows))
}

/// Reads back the stored decision and signals, and words the decision with the policy version
/// it was made under (or, if that no longer parses against the store, names the rules).
pub fn explain(store: &Store, p: &Proposal) -> Result<Explained> {
    let decision: Option<Decision> = p
        .rules
        .clone()
        .and_then(|v| serde_json::from_value::<Decision>(v).ok())
        .map(|mut d| {
            // The action is stored in its own column.
            if let Some(a) = p.decision {
                d.action = a;
            }
            d
        });
    let signals: Vec<Signal> = p
        .signals
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let why = match (&decision, p.policy_version) {
        (Some(d), Some(v)) => {
            let policy = store
                .policy_version(v)?
                .and_then(|pv| crate::policy::parse_in_force(&pv.text, store.schema()).ok());
            match policy {
                Some(policy) => d.why(&policy),
                None => d
                    .rules
                    .iter()
                    .map(|r| format!("rule \"{r}\" matched"))
                    .chain(d.held.iter().map(|h| format!("not auto: {h}")))
                    .collect(),
            }
        }
        _ => Vec::new(),
    };
    Ok(Explained {
        decision,
        why,
        signals,
    })
}

/// Where a screen stands in the review.
#[derive(Debug, Clone, Copy, Default)]
pub struct Position {
    /// 1-based number of this screen among those shown so far.
    pub n: u64,
    /// How many the review will show at most (the queue when it began, or `--limit`).
    pub of: u64,
    /// Undecided proposals left in the queue.
    pub left: i64,
    /// This proposal's place among its record's undecided proposals.
    pub in_group: (usize, usize),
}

/// Everything one review screen shows, read from the store.
pub struct View {
    pub p: Proposal,
    /// The record's columns, and its row now (`None`: it no longer exists).
    pub columns: Vec<String>,
    /// Which of them is the primary key.
    pub pk: usize,
    pub field_types: Vec<FieldType>,
    pub record: Option<Vec<Value>>,
    /// For a merge: the record that stays.
    pub survivor: Option<Vec<Value>>,
    /// For a merge: per `table.column`, the rows that would be re-pointed to the survivor.
    pub repointed: Vec<(String, i64)>,
    pub explained: Explained,
    /// Why the record no longer holds what the proposal was made against.
    pub stale: Option<String>,
    /// What to do instead when it is stale (requeue, or reject).
    pub stale_hint: String,
    /// For a merge: what changed in its records since it was proposed.
    pub since: Option<crate::apply::SinceProposed>,
    /// Who may approve: (the roles, the actors holding one, whether the reviewer may).
    pub approvers: (Vec<String>, Vec<String>, bool),
    pub actor: String,
    pub position: Position,
}

/// Columns that identify a record at a glance, in the order they are shown.
const KEY_COLUMNS: &[&str] = &[
    "name",
    "first_name",
    "last_name",
    "email",
    "domain",
    "title",
    "company_id",
    "contact_id",
    "lifecycle_stage",
    "stage",
    "amount",
    "tier",
    "owner",
];
const MAX_KEY_COLUMNS: usize = 7;

impl View {
    pub fn load(
        store: &Store,
        policy: &Policy,
        actor: &str,
        p: Proposal,
        position: Position,
    ) -> Result<View> {
        let obj: Option<&Object> = store.schema().object(&p.object);
        let (columns, field_types, record, survivor, repointed) = match obj {
            Some(o) => {
                let record = store.record_row(o, &p.record)?;
                let survivor = match &p.merge_into {
                    Some(into) => store.record_row(o, into)?,
                    None => None,
                };
                let mut repointed = Vec::new();
                if p.merge_into.is_some() {
                    for (table, column) in store.schema().referencing(&o.name) {
                        let n = store.count_referencing(table, column, &p.record)?;
                        repointed.push((format!("{}.{}", table.name, column.name), n));
                    }
                }
                (
                    o.column_names().map(str::to_string).collect(),
                    o.columns.iter().map(FieldType::of).collect(),
                    record,
                    survivor,
                    repointed,
                )
            }
            None => (Vec::new(), Vec::new(), None, None, Vec::new()),
        };
        let pk = obj
            .and_then(|o| o.columns.iter().position(|c| c.primary_key))
            .unwrap_or(0);
        let explained = explain(store, &p)?;
        let roles = crate::admin::access::approvers_now(store, policy, &p)?;
        let holders: Vec<String> = policy
            .roles
            .iter()
            .filter(|(_, rs)| rs.iter().any(|r| roles.contains(r)))
            .map(|(who, _)| who.clone())
            .collect();
        let may = policy.may_approve(actor, &roles);
        let stale = human::staleness(store, &p)?;
        let stale_hint = human::stale_hint(store, &p)?;
        let since = crate::apply::merge_changes_since_proposed(store, &p)?;
        Ok(View {
            p,
            columns,
            pk,
            field_types,
            record,
            survivor,
            repointed,
            explained,
            stale,
            stale_hint,
            since,
            approvers: (roles, holders, may),
            actor: actor.to_string(),
            position,
        })
    }

    /// The screen as text, `width` columns wide.
    pub fn render(&self, ui: &Ui, width: u16) -> String {
        let p = &self.p;
        let mut out = String::new();
        let pos = self.position;
        let _ = writeln!(
            out,
            "{}",
            ui.heading(&format!(
                "crmgate review · {} of {} · {} left in the queue",
                pos.n, pos.of, pos.left
            ))
        );
        let group = if pos.in_group.1 > 1 {
            format!(
                " · proposal {} of {} for this record",
                pos.in_group.0, pos.in_group.1
            )
        } else {
            String::new()
        };
        let title = match p.source_ref() {
            Some(r) => format!("#{} ({})", p.id, safe(&r)),
            None => format!("#{}", p.id),
        };
        let _ = writeln!(
            out,
            "{} {} · {} · {} from {}{group}",
            safe(&p.record_ref()),
            title,
            p.kind,
            p.state,
            safe(&p.source)
        );
        out.push('\n');
        if p.merge_into.is_some() {
            self.render_merge(ui, width, &mut out);
        } else if p.kind == crate::model::Kind::Create {
            self.render_create(ui, width, &mut out);
        } else {
            self.render_field(ui, width, &mut out);
        }

        let mut conf = format!(
            "Confidence {}",
            p.confidence
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(|| "not scored".into())
        );
        if let Some(s) = p.stated_confidence {
            let _ = write!(conf, " (the source said {s:.2})");
        }
        let _ = writeln!(out, "\n{}", ui.heading(&conf));
        for line in self.explained.signal_lines() {
            let _ = writeln!(out, "  {}", safe(&line));
        }
        let decision = p.decision.map_or("undecided", Action::as_str);
        let _ = writeln!(
            out,
            "{}",
            ui.heading(&format!(
                "Policy: {decision} (version {})",
                p.policy_version.unwrap_or_default()
            ))
        );
        for line in &self.explained.why {
            let _ = writeln!(out, "  · {}", safe(line));
        }
        if let Some(reason) = p.reason.as_deref().filter(|r| !r.is_empty()) {
            let _ = writeln!(out, "{} {}", ui.heading("Reason given:"), safe(reason));
        }
        if let Some(t) = p.trigger.as_deref().filter(|t| !t.is_empty()) {
            let _ = writeln!(out, "{} {}", ui.heading("Trigger:"), safe(t));
        }
        if let Some(e) = p.evidence.as_deref() {
            let _ = writeln!(
                out,
                "{} {}",
                ui.heading("Evidence:"),
                evidence_excerpt(e, p.id)
            );
        }
        let (roles, holders, may) = &self.approvers;
        if !roles.is_empty() {
            let who = if holders.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    holders
                        .iter()
                        .map(|h| safe(h).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(out, "Approval takes the role {}{who}.", roles.join(" or "));
        }
        if !may {
            let _ = writeln!(
                out,
                "{}",
                warn(
                    ui,
                    &format!(
                        "You ({}) may not approve or reject this one: ask someone with the role {}.",
                        safe(&self.actor),
                        roles.join(" or ")
                    )
                )
            );
        }
        if let Some(stale) = &self.stale {
            let _ = writeln!(
                out,
                "{}",
                warn(
                    ui,
                    &format!(
                        "STALE: {}. Approving is refused; quit and {}.",
                        safe(stale.strip_prefix("stale: ").unwrap_or(stale)),
                        self.stale_hint
                    )
                )
            );
        }
        out
    }

    fn render_field(&self, ui: &Ui, width: u16, out: &mut String) {
        let p = &self.p;
        let field = p.field.clone().unwrap_or_default();
        let at = self.columns.iter().position(|c| *c == field);
        // The record now, by its key fields and the one this proposal writes.
        match &self.record {
            Some(row) => {
                let mut shown: Vec<usize> = vec![self.pk];
                for name in KEY_COLUMNS {
                    if shown.len() >= MAX_KEY_COLUMNS {
                        break;
                    }
                    if let Some(i) = self.columns.iter().position(|c| c == name)
                        && !shown.contains(&i)
                        && Some(i) != at
                    {
                        shown.push(i);
                    }
                }
                if let Some(i) = at
                    && !shown.contains(&i)
                {
                    shown.push(i);
                }
                let mut t = ui.table();
                t.set_width(width);
                for &i in &shown {
                    let name = if Some(i) == at {
                        format!("{} ◀", self.columns[i])
                    } else {
                        self.columns[i].clone()
                    };
                    t.add_row([name, safe(&row[i].display()).into_owned()]);
                }
                let _ = writeln!(out, "{}", ui.heading("The record now:"));
                let _ = writeln!(out, "{t}");
            }
            None => {
                let _ = writeln!(out, "The record no longer exists.");
            }
        }
        let _ = writeln!(
            out,
            "\n{}",
            ui.heading(&format!("Change to {}:", safe(&field)))
        );
        let before = json_text(&p.baseline);
        let after = json_text(&p.value);
        let _ = writeln!(out, "  before  {}", shown_value(&p.baseline));
        let _ = writeln!(out, "  after   {}", shown_value(&p.value));
        if let (Some(b), Some(a)) = (&before, &after)
            && !b.is_empty()
        {
            let _ = writeln!(out, "  diff    {}", word_diff(b, a, ui.color));
        }
        if let Some(orig) = &p.proposed_value {
            let _ = writeln!(out, "  (edited; the source proposed {})", shown_value(orig));
        }
        if let Some(e) = &p.expected {
            let _ = writeln!(out, "  the source expected {}", shown_value(e));
        }
        // The new value, and the record's own addresses: a look-alike in either is a trap.
        let mut warnings: Vec<String> = Vec::new();
        if let (Some(i), Some(a)) = (at, &after) {
            warnings.extend(lookalikes(self.field_types[i], a));
        }
        if let Some(row) = &self.record {
            for (i, v) in row.iter().enumerate() {
                if let Value::Text(t) = v {
                    for w in lookalikes(self.field_types[i], t) {
                        warnings.push(format!("{} now: {w}", self.columns[i]));
                    }
                }
            }
        }
        for w in warnings {
            let _ = writeln!(out, "{}", warn(ui, &w));
        }
    }

    /// A create: the new record as a table of the fields it gives, in the table's column order.
    fn render_create(&self, ui: &Ui, width: u16, out: &mut String) {
        let p = &self.p;
        let heading = format!("New record {}:", safe(&p.record_ref()));
        let _ = writeln!(out, "{}", ui.heading(&heading));
        let mut t = created_table(ui, p, &self.columns);
        t.set_width(width);
        let _ = writeln!(out, "{t}");
    }

    fn render_merge(&self, ui: &Ui, width: u16, out: &mut String) {
        let p = &self.p;
        let into = p.merge_into.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "{}",
            ui.heading(&format!(
                "Merge {} into {} ({} goes away):",
                safe(&p.record),
                safe(&into),
                safe(&p.record)
            ))
        );
        let mut t = ui.table();
        t.set_width(width);
        t.set_header([
            "field".to_string(),
            format!("{} (goes away)", safe(&p.record)),
            format!("{} (stays)", safe(&into)),
            "merged".to_string(),
        ]);
        let mut warnings = Vec::new();
        for (i, name) in self.columns.iter().enumerate() {
            let get = |r: &Option<Vec<Value>>| r.as_ref().map(|r| r[i].clone());
            let (dup, stay) = (get(&self.record), get(&self.survivor));
            let show = |v: &Option<Value>| match v {
                Some(v) => safe(&v.display()).into_owned(),
                None => "(gone)".into(),
            };
            // The merge fills the survivor's empty fields from the duplicate, and nothing else.
            let merged = match (&dup, &stay) {
                (_, _) if i == self.pk => show(&stay),
                (Some(d), Some(s)) if s.is_empty() && !d.is_empty() => {
                    format!("{} ← filled", safe(&d.display()))
                }
                _ => show(&stay),
            };
            for v in [&dup, &stay].into_iter().flatten() {
                if let Value::Text(s) = v {
                    warnings.extend(
                        lookalikes(self.field_types[i], s)
                            .into_iter()
                            .map(|w| format!("{name}: {w}")),
                    );
                }
            }
            // The fields where the two records disagree are the ones to look at.
            let differs = matches!((&dup, &stay), (Some(d), Some(s))
                if !d.is_empty() && !s.is_empty() && !crate::store::same(d, s));
            let mut label = if differs && i != self.pk {
                format!("{name} ≠")
            } else {
                name.clone()
            };
            if self.changed_since_proposed(name) {
                label.push_str(" *");
            }
            t.add_row([label, show(&dup), show(&stay), merged]);
        }
        let _ = writeln!(out, "{t}");
        let moved: Vec<String> = self
            .repointed
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(at, n)| format!("{n} {at}"))
            .collect();
        if moved.is_empty() {
            let _ = writeln!(out, "No related rows point at {}.", safe(&p.record));
        } else {
            let total: i64 = self.repointed.iter().map(|(_, n)| n).sum();
            let _ = writeln!(
                out,
                "{total} related row{} re-pointed to {}: {}",
                if total == 1 { "" } else { "s" },
                safe(&into),
                moved.join(", ")
            );
        }
        if let Some(s) = &self.since {
            for line in crate::ui::since_proposed_lines(s) {
                let _ = writeln!(out, "{}", warn(ui, &line));
            }
        }
        for w in warnings {
            let _ = writeln!(out, "{}", warn(ui, &w));
        }
    }

    /// Whether either of a merge's records changed `field` since the merge was proposed.
    fn changed_since_proposed(&self, field: &str) -> bool {
        self.since
            .as_ref()
            .is_some_and(|s| s.fields.iter().any(|f| f.field == field))
    }
}

/// A warning line, in colour when colour is on.
fn warn(ui: &Ui, text: &str) -> String {
    if ui.color {
        format!("\x1b[1;33m! {text}\x1b[0m")
    } else {
        format!("! {text}")
    }
}

fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => Some(String::new()),
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn shown_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "(empty)".into(),
        serde_json::Value::String(s) => format!("\"{}\"", safe(s)),
        other => other.to_string(),
    }
}

/// A word-level diff of `old` → `new`, `git diff --word-diff` style: `[-removed-]{+added+}`,
/// red and green when colour is on. Both sides are neutralised.
pub fn word_diff(old: &str, new: &str, color: bool) -> String {
    let diff = TextDiff::from_words(old, new);
    let tokens: Vec<(ChangeTag, &str)> = diff
        .iter_all_changes()
        .map(|c| (c.tag(), c.value()))
        .collect();
    let (del, ins, end) = if color {
        ("\x1b[31m", "\x1b[32m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let is_change = |i: usize| tokens.get(i).is_some_and(|t| t.0 != ChangeTag::Equal);
    let mut out = String::new();
    let mut i = 0;
    while i < tokens.len() {
        if !is_change(i) {
            out.push_str(&safe(tokens[i].1));
            i += 1;
            continue;
        }
        // One block for a run of changed words, and the spaces between them: "[-General
        // Counsel-]{+Chief Legal Officer+}" reads better than word by word.
        let (mut gone, mut came) = (String::new(), String::new());
        while i < tokens.len() {
            let (tag, text) = tokens[i];
            match tag {
                ChangeTag::Delete => gone.push_str(text),
                ChangeTag::Insert => came.push_str(text),
                ChangeTag::Equal if text.trim().is_empty() && is_change(i + 1) => {
                    gone.push_str(text);
                    came.push_str(text);
                }
                ChangeTag::Equal => break,
            }
            i += 1;
        }
        if !gone.trim().is_empty() {
            let _ = write!(out, "{del}[-{}-]{end}", safe(&gone));
        }
        if !came.trim().is_empty() {
            let _ = write!(out, "{ins}{{+{}+}}{end}", safe(&came));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_diff_marks_runs_of_changed_words() {
        assert_eq!(
            word_diff("General Counsel", "Chief Legal Officer", false),
            "[-General Counsel-]{+Chief Legal Officer+}"
        );
        assert_eq!(
            word_diff("VP Sales", "VP of Sales", false),
            "VP {+of +}Sales"
        );
        assert_eq!(
            word_diff("Head of Sales", "Head of Marketing", false),
            "Head of [-Sales-]{+Marketing+}"
        );
        assert_eq!(word_diff("a\x1b[2Jb", "c", false), "[-a\\u{1b}[2Jb-]{+c+}");
    }

    #[test]
    fn look_alikes_are_named_by_code_point() {
        let w = lookalikes(FieldType::Email, "max@swift-d\u{435}vices.net");
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("U+0435"), "{w:?}");
        assert!(lookalikes(FieldType::Email, "max@swift-devices.net").is_empty());
        assert!(lookalikes(FieldType::Text, "Zoë").is_empty());
    }
}

/// Characters in an email, domain or URL that could pass for others (a Cyrillic `а` for a
/// Latin `a`): everything outside ASCII, named by code point.
pub fn lookalikes(ty: FieldType, value: &str) -> Vec<String> {
    if !matches!(ty, FieldType::Email | FieldType::Domain | FieldType::Url) {
        return Vec::new();
    }
    let odd: Vec<String> = value
        .chars()
        .filter(|c| !c.is_ascii())
        .map(|c| {
            let shown = safe(&c.to_string()).into_owned();
            format!("'{shown}' U+{:04X}", c as u32)
        })
        .collect();
    if odd.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "look-alike characters in \"{}\": {} (not plain ASCII; check it is the address you think)",
        safe(value),
        odd.join(", ")
    )]
}

pub const HELP: &str = "  y  approve this proposal
  n  reject it (asks a reason)
  e  edit the value, then approve it (checked like an ingested one; a lone - clears the field)
  s  skip it for now (it stays in the queue)
  a  approve it and the rest of this record's proposals
  d  reject it and the rest of this record's proposals (asks one reason)
  u  undo your last decision in this review
  q  quit
  ?  this help";

const KEYS: &str = "[y,n,e,s,a,d,u,q,?]";

/// What a review did, for the summary at the end.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Tally {
    pub approved: u64,
    pub rejected: u64,
    pub edited: u64,
    pub skipped: u64,
    pub undone: u64,
    pub shown: u64,
}

/// What a reviewer did with one proposal, as the tally counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Approved,
    Rejected,
    Edited,
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Done::Approved => "approved",
            Done::Rejected => "rejected",
            Done::Edited => "edited",
        })
    }
}

/// A decision made in this review that `u` can take back.
struct Made {
    id: i64,
    record: String,
    verb: Done,
    /// It was decided on its own screen (not as the rest of its record's group), so that
    /// screen was counted.
    on_screen: bool,
}

/// At most this many proposals the reviewer may not decide are held back to show after the
/// rest; beyond it they are shown in place.
const HELD_BACK_MAX: usize = 10_000;

pub struct Review<'a> {
    pub store: &'a mut Store,
    pub policy: &'a Policy,
    pub version: i64,
    pub actor: &'a str,
    pub filter: ListFilter,
    pub limit: Option<u64>,
    pub ui: Ui,
    /// The time for each decision's events.
    pub clock: fn() -> String,
}

/// Reviews what `filter` leaves open on `prompt`, as `actor` under the policy in force, up to
/// `limit` proposals; each decision is its own transaction, timed by `clock`.
pub fn review(
    store: &mut Store,
    filter: ListFilter,
    limit: Option<u64>,
    actor: &str,
    ui: Ui,
    clock: fn() -> String,
    prompt: &Prompt,
) -> Result<Tally> {
    let (version, policy) = crate::admin::policy::load(store)?;
    let review = Review {
        store,
        policy: &policy,
        version,
        actor,
        filter,
        limit,
        ui,
        clock,
    };
    review.run(prompt)
}

/// Where a review is: what it has done, what is left to show, and the note for the next screen.
struct Session {
    tally: Tally,
    /// Decisions made in this review, newest last: what `u` takes back.
    made: Vec<Made>,
    /// (id, object/record) of what is left to show of the current record, and anything undone.
    todo: VecDeque<(i64, String)>,
    /// Undecided proposals left in the queue.
    left: i64,
    /// How many the review shows at most.
    of: u64,
    group_len: usize,
    walk: GroupWalk,
    /// Proposals the reviewer may not decide, shown once the walk is over: a review starts
    /// with what its reviewer can act on.
    held_back: VecDeque<(i64, String)>,
    /// The walk is over; what was held back is being shown.
    walked: bool,
    /// The reviewer was told why the rest is shown.
    walked_note_given: bool,
    note: Option<String>,
}

impl Session {
    /// Books a decision made in this review: its count, the queue left, and the undo stack.
    fn book(&mut self, id: i64, record: &str, verb: Done, on_screen: bool) {
        *self.tally.of(verb) += 1;
        self.left -= 1;
        self.made.push(Made {
            id,
            record: record.to_string(),
            verb,
            on_screen,
        });
    }
}

/// What follows a key: the next proposal, the same one again, or the end of the review.
enum After {
    Next,
    Again,
    Quit,
}

/// The proposal on screen.
struct Current {
    p: Proposal,
    record: String,
    /// How many more of its record's proposals are still to show.
    same_record: usize,
}

impl Review<'_> {
    /// Runs the review on `prompt` until the queue is done, the limit is reached or the
    /// reviewer quits.
    pub fn run(mut self, prompt: &Prompt) -> Result<Tally> {
        let queued = self.store.open_count(&self.filter)?;
        let mut s = Session {
            tally: Tally::default(),
            made: Vec::new(),
            todo: VecDeque::new(),
            left: queued,
            of: self.limit.map_or(queued as u64, |l| (queued as u64).min(l)),
            group_len: 0,
            walk: GroupWalk::default(),
            held_back: VecDeque::new(),
            walked: false,
            walked_note_given: false,
            note: None,
        };
        while let Some(current) = self.next(&mut s)? {
            self.show(&mut s, &current, prompt)?;
            if let After::Quit = self.ask(&mut s, &current, prompt)? {
                break;
            }
        }
        Ok(s.tally)
    }

    /// The next proposal to show that is still undecided; `None` when the review is over.
    fn next(&mut self, s: &mut Session) -> Result<Option<Current>> {
        loop {
            if self.limit.is_some_and(|l| s.tally.shown >= l) {
                return Ok(None);
            }
            let Some((id, record)) = s.todo.pop_front() else {
                let group = match s.walked {
                    true => Vec::new(),
                    false => self.store.next_open_group(&self.filter, &mut s.walk)?,
                };
                if group.is_empty() {
                    s.walked = true;
                    match s.held_back.pop_front() {
                        Some(held) => s.todo.push_back(held),
                        None => return Ok(None),
                    }
                    if !s.walked_note_given {
                        s.walked_note_given = true;
                        let said = s.note.take().map(|n| format!("{n}\n")).unwrap_or_default();
                        s.note = Some(format!(
                            "{said}What is left waits for someone else: you may not decide it (s skips, q quits)."
                        ));
                    }
                    continue;
                }
                s.group_len = group.len();
                s.todo.extend(group.iter().map(|p| (p.id, p.record_ref())));
                continue;
            };
            // Re-read: a cron job or another reviewer may have decided it meanwhile.
            let Some(p) = self.store.proposal(id)? else {
                continue;
            };
            if p.state != State::Pending && p.state != State::Suggested {
                continue;
            }
            if !s.walked && s.held_back.len() < HELD_BACK_MAX && !self.may_decide(&p)? {
                s.held_back.push_back((id, record));
                continue;
            }
            s.tally.shown += 1;
            let record = p.record_ref();
            let same_record = s.todo.iter().filter(|(_, r)| *r == record).count();
            return Ok(Some(Current {
                p,
                record,
                same_record,
            }));
        }
    }

    /// Whether the reviewer may approve or reject `p` under the policy in force.
    fn may_decide(&self, p: &Proposal) -> Result<bool> {
        let approvers = crate::admin::access::approvers_now(&*self.store, self.policy, p)?;
        Ok(self.policy.may_approve(self.actor, &approvers))
    }

    /// Draws the proposal's screen, after the note on what the last key did.
    fn show(&mut self, s: &mut Session, c: &Current, prompt: &Prompt) -> Result<()> {
        let position = Position {
            n: s.tally.shown,
            of: s.of.max(s.tally.shown),
            left: s.left,
            in_group: (
                s.group_len.saturating_sub(c.same_record).max(1),
                s.group_len.max(1),
            ),
        };
        let view = View::load(self.store, self.policy, self.actor, c.p.clone(), position)?;
        let mut screen = view.render(&self.ui, prompt.width());
        if let Some(n) = s.note.take() {
            screen = format!("{}\n{screen}", safe(&n));
        }
        prompt.screen(&screen).map_err(term_err)
    }

    /// Asks for keys until one moves on.
    fn ask(&mut self, s: &mut Session, c: &Current, prompt: &Prompt) -> Result<After> {
        loop {
            let answer = prompt
                .key(&format!("\nDecide #{} {KEYS}? ", c.p.id))
                .map_err(term_err)?;
            let key = match answer {
                Answer::Char(c) => c,
                Answer::Quit => return Ok(After::Quit),
                Answer::Other => '\0',
            };
            match self.on_key(s, c, key, prompt)? {
                After::Again => continue,
                after => return Ok(after),
            }
        }
    }

    fn on_key(
        &mut self,
        s: &mut Session,
        c: &Current,
        key: char,
        prompt: &Prompt,
    ) -> Result<After> {
        let id = c.p.id;
        match key {
            'y' => {
                let ruling = self.decide(id, Verb::Approve { note: None })?;
                self.booked(s, c, Some(ruling), Done::Approved, prompt)
            }
            'n' => match reason(prompt, "Reason for rejecting (empty: cancel)")? {
                Some(reason) => {
                    let ruling = self.decide(id, Verb::Reject { reason })?;
                    self.booked(s, c, Some(ruling), Done::Rejected, prompt)
                }
                None => Ok(After::Again),
            },
            'e' if c.p.merge_into.is_some() => {
                say(
                    prompt,
                    "a merge cannot be edited here; approve or reject it",
                )?;
                Ok(After::Again)
            }
            'e' => {
                let ruling = self.edit(prompt, &c.p)?;
                self.booked(s, c, ruling, Done::Edited, prompt)
            }
            's' => {
                s.tally.skipped += 1;
                s.note = Some(format!("→ skipped #{id}"));
                Ok(After::Next)
            }
            'a' => self.decide_rest(s, c, Verb::Approve { note: None }, Done::Approved),
            'd' => {
                let these = match c.same_record + 1 {
                    1 => "this proposal".to_string(),
                    n => format!("these {n} proposals"),
                };
                let ask = format!("Reason for rejecting {these} (empty: cancel)");
                match reason(prompt, &ask)? {
                    Some(reason) => self.decide_rest(s, c, Verb::Reject { reason }, Done::Rejected),
                    None => Ok(After::Again),
                }
            }
            'u' => self.undo_last(s, c, prompt),
            'q' => Ok(After::Quit),
            '?' | 'h' => {
                say(prompt, &format!("\n{HELP}"))?;
                Ok(After::Again)
            }
            _ => {
                say(prompt, "that key does nothing here; ? shows the keys")?;
                Ok(After::Again)
            }
        }
    }

    /// Books a decision on the proposal on screen, or says why it was not made; `None`: an edit
    /// was cancelled.
    fn booked(
        &mut self,
        s: &mut Session,
        c: &Current,
        ruling: Option<Ruling>,
        done: Done,
        prompt: &Prompt,
    ) -> Result<After> {
        let id = c.p.id;
        let not = match done {
            Done::Rejected => "not rejected",
            Done::Approved | Done::Edited => "not approved",
        };
        match ruling {
            Some(Ruling::Done(_)) => {
                s.book(id, &c.record, done, true);
                s.note = Some(match done {
                    Done::Approved => format!("✓ approved #{id}"),
                    Done::Rejected => format!("✗ rejected #{id}"),
                    Done::Edited => format!("✎ edited and approved #{id}"),
                });
                Ok(After::Next)
            }
            Some(Ruling::Refused(why)) => {
                say(prompt, &format!("{not}: {why}"))?;
                Ok(After::Again)
            }
            None => {
                say(prompt, "edit cancelled")?;
                Ok(After::Again)
            }
        }
    }

    /// Decides the proposal on screen and the rest of its record's alike.
    fn decide_rest(
        &mut self,
        s: &mut Session,
        c: &Current,
        verb: Verb,
        done: Done,
    ) -> Result<After> {
        let (group, others): (Vec<_>, Vec<_>) = s.todo.drain(..).partition(|(_, r)| *r == c.record);
        s.todo.extend(others);
        let rest = std::iter::once(c.p.id).chain(group.into_iter().map(|(id, _)| id));
        let mut decided = 0;
        let mut failed = Vec::new();
        for id in rest {
            match self.decide(id, verb.clone())? {
                Ruling::Done(_) => {
                    decided += 1;
                    s.book(id, &c.record, done, id == c.p.id);
                }
                Ruling::Refused(why) => failed.push(format!("#{id}: {why}")),
            }
        }
        let mut msg = format!("{decided} {done} for {}", c.p.record_ref());
        if !failed.is_empty() {
            let _ = write!(msg, "; not {done}: {}", failed.join("; "));
        }
        s.note = Some(msg);
        Ok(After::Next)
    }

    /// Takes back the last decision of this review, and shows that proposal again first.
    fn undo_last(&mut self, s: &mut Session, c: &Current, prompt: &Prompt) -> Result<After> {
        let Some(last) = s.made.pop() else {
            say(prompt, "nothing to undo in this review")?;
            return Ok(After::Again);
        };
        match self.undo(last.id)? {
            Ruling::Done(_) => {
                s.tally.undone += 1;
                *s.tally.of(last.verb) -= 1;
                s.left += 1;
                // Show this one again, then the one undone.
                s.todo.push_front((c.p.id, c.record.clone()));
                s.note = Some(format!("↶ undid: {} #{}", last.verb, last.id));
                s.todo.push_front((last.id, last.record));
                // Both screens come again, and each is counted again when it does: the one
                // undone is back at the number it had.
                let again = 1 + u64::from(last.on_screen);
                s.tally.shown = s.tally.shown.saturating_sub(again);
                Ok(After::Next)
            }
            Ruling::Refused(why) => {
                say(prompt, &format!("cannot undo #{}: {why}", last.id))?;
                Ok(After::Again)
            }
        }
    }

    /// One decision, in its own transaction.
    fn decide(&mut self, id: i64, verb: Verb) -> Result<Ruling> {
        let (policy, version, actor) = (self.policy, self.version, self.actor);
        let now = (self.clock)();
        let (out, trip) = self.store.write(&now, |w| {
            let out = human::decide(w, policy, version, actor, id, &verb)?;
            let mut trip = None;
            if let (Ruling::Done(p), Verb::Reject { .. }) = (&out, &verb) {
                trip = crate::admin::pauses::circuit_breaker(w, policy, &p.source)?
                    .map(|reason| (p.source.clone(), reason));
            }
            Ok((out, trip))
        })?;
        if let Some(trip) = trip {
            crate::admin::pauses::alert_breakers(self.store, policy, &now, &[trip]);
        }
        Ok(out)
    }

    fn undo(&mut self, id: i64) -> Result<Ruling> {
        let actor = self.actor;
        let now = (self.clock)();
        self.store.write(&now, |w| human::undo(w, actor, id))
    }

    /// Asks for a new value until it passes the checks or the reviewer gives up (an empty
    /// answer); then approves the proposal with it. A lone `-` clears the field. `None`:
    /// cancelled.
    fn edit(&mut self, prompt: &Prompt, p: &Proposal) -> Result<Option<Ruling>> {
        say(
            prompt,
            &format!(
                "The source proposed {}. Type the value to apply instead, or - to clear the field.",
                shown_value(&p.value)
            ),
        )?;
        loop {
            let Some(raw) = prompt
                .line(&format!(
                    "New {} (-: clear it; empty: cancel)",
                    safe(p.field.as_deref().unwrap_or("value"))
                ))
                .map_err(term_err)?
            else {
                return Ok(None);
            };
            let now = (self.clock)();
            let checked = self
                .store
                .write(&now, |w| human::check_edit(w, p, cleared(&raw)))?;
            match checked {
                Edit::Valid(value) => return self.decide(p.id, Verb::Edit { value }).map(Some),
                Edit::Invalid(why) => {
                    say(prompt, &format!("not valid: {}; try again", safe(&why)))?
                }
            }
        }
    }
}

impl Tally {
    /// The count a decision of `verb` goes into.
    fn of(&mut self, verb: Done) -> &mut u64 {
        match verb {
            Done::Approved => &mut self.approved,
            Done::Rejected => &mut self.rejected,
            Done::Edited => &mut self.edited,
        }
    }
}

/// An edited value as typed: a lone `-` clears the field.
fn cleared(raw: &str) -> Option<&str> {
    (raw.trim() != "-").then_some(raw)
}

/// How much of a proposal's evidence the review screen shows, in characters.
const EVIDENCE_SHOWN: usize = 300;

/// The start of a proposal's evidence on one line, made safe to print, and where the rest is.
fn evidence_excerpt(evidence: &str, id: i64) -> String {
    let one_line = evidence.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= EVIDENCE_SHOWN {
        return safe(&one_line).into_owned();
    }
    let cut: String = one_line.chars().take(EVIDENCE_SHOWN).collect();
    format!("{}… (`crmgate show {id}` shows all of it)", safe(&cut))
}

/// A reason asked for; `None` (said so) when the reviewer gives none.
fn reason(prompt: &Prompt, question: &str) -> Result<Option<String>> {
    let answer = prompt.line(question).map_err(term_err)?;
    if answer.is_none() {
        say(prompt, "not rejected: a rejection needs a reason")?;
    }
    Ok(answer)
}

fn say(prompt: &Prompt, text: &str) -> Result<()> {
    prompt.say(text).map_err(term_err)
}

fn term_err(e: std::io::Error) -> Error {
    Error::io("the terminal", e)
}

/// A create's new record as proposed, as a table of the fields it gives in the table's column
/// order (`columns`), each value made safe to print: for `show` and the review screen alike.
pub fn created_table(ui: &crate::ui::Ui, p: &Proposal, columns: &[String]) -> comfy_table::Table {
    let mut t = ui.table();
    t.set_header(["field", "value"]);
    let fields = p.value.as_object();
    for name in columns {
        if let Some(v) = fields.and_then(|f| f.get(name)) {
            let shown = crate::apply::json_to_value(v).display();
            t.add_row([safe(name).into_owned(), safe(&shown).into_owned()]);
        }
    }
    t
}
