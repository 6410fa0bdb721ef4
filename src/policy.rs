//! The policy: a TOML file that says what may apply on its own and what a human must approve
//! (docs/policy.md). Parsing and checking happen once, at the edge, and yield a [`Policy`] whose rules
//! hold checked values; [`decide`] is then a pure function of a proposal's facts, so every
//! decision is deterministic and explained by the rules that produced it.

use std::collections::BTreeMap;

use crate::model::{Kind, Related, Value};

pub use crate::model::Action;

mod parse;

pub use parse::{Fit, parse, parse_in_force};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Autonomy {
    Autonomous,
    Supervised,
    Assistive,
}

impl Autonomy {
    pub fn as_str(self) -> &'static str {
        match self {
            Autonomy::Autonomous => "autonomous",
            Autonomy::Supervised => "supervised",
            Autonomy::Assistive => "assistive",
        }
    }

    fn parse(s: &str) -> Option<Autonomy> {
        [
            Autonomy::Autonomous,
            Autonomy::Supervised,
            Autonomy::Assistive,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for Autonomy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Current {
    Empty,
    Set,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// The policy file's line where the rule starts, for explanations.
    pub line: usize,
    pub kinds: Vec<Kind>,
    pub sources: Vec<String>,
    pub objects: Vec<String>,
    pub fields: Vec<String>,
    pub values: Vec<String>,
    pub current: Option<Current>,
    pub min_confidence: Option<f64>,
    pub max_confidence: Option<f64>,
    pub triggers: Vec<String>,
    pub record_eq: Vec<(String, Value)>,
    pub record_min: Vec<(String, f64)>,
    pub record_max: Vec<(String, f64)>,
    /// Conditions on the records the target references by a foreign key, by table.
    pub related: Vec<RelatedCondition>,
    pub action: Action,
    pub approvers: Vec<String>,
    /// In the policy in force only: the objects and columns (`companies.tier`) it names that
    /// the store no longer has. Its record conditions on them are left out, so it cannot be
    /// evaluated: [`decide`] lets nothing it could match through on its own.
    pub gone: Vec<String>,
}

impl Rule {
    /// Why the rule cannot be evaluated, when it names what the store no longer has.
    pub fn unevaluable(&self) -> Option<String> {
        (!self.gone.is_empty()).then(|| {
            format!(
                "rule \"{}\" names {}, which the store no longer has",
                self.name,
                self.gone.join(", ")
            )
        })
    }
}

/// A rule's conditions on the records the target references in one table (`related`,
/// `related_min`, `related_max`): they hold when one such record meets all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct RelatedCondition {
    pub object: String,
    pub eq: Vec<(String, Value)>,
    pub min: Vec<(String, f64)>,
    pub max: Vec<(String, f64)>,
}

impl RelatedCondition {
    fn holds(&self, related: &[Related]) -> bool {
        related.iter().filter(|r| r.object == self.object).any(|r| {
            let field = |k: &str| r.fields.iter().find(|(c, _)| c == k).map(|(_, v)| v);
            let num = |k: &str| field(k).and_then(number);
            self.eq
                .iter()
                .all(|(k, v)| field(k).is_some_and(|x| loosely_equal(x, v)))
                && self
                    .min
                    .iter()
                    .all(|(k, m)| num(k).is_some_and(|x| x >= *m))
                && self
                    .max
                    .iter()
                    .all(|(k, m)| num(k).is_some_and(|x| x <= *m))
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourcePolicy {
    pub autonomy: Autonomy,
    pub max_auto_per_run: u64,
    pub max_auto_per_day: u64,
    /// The OS users whose files may carry this source; `None`: anyone's.
    pub submitters: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitBreaker {
    pub window: u32,
    pub max_reject_rate: f64,
}

/// `[alerts]`: the command run once per alert, split into its program and arguments when the
/// policy is read (no shell runs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alerts {
    /// The program, then its arguments; never empty.
    pub argv: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub default_autonomy: Autonomy,
    pub auto_min_confidence: f64,
    pub max_auto_per_run: u64,
    pub max_auto_per_day: u64,
    pub sources: BTreeMap<String, SourcePolicy>,
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Where alerts go; `None`: nowhere.
    pub alerts: Option<Alerts>,
    pub rules: Vec<Rule>,
    /// actor -> roles. Empty: single-user mode, every actor may do everything.
    pub roles: BTreeMap<String, Vec<String>>,
}

impl Policy {
    /// The autonomy and limits for `source`, falling back to the defaults.
    pub fn source(&self, source: &str) -> SourcePolicy {
        self.sources.get(source).cloned().unwrap_or(SourcePolicy {
            autonomy: self.default_autonomy,
            max_auto_per_run: self.max_auto_per_run,
            max_auto_per_day: self.max_auto_per_day,
            submitters: None,
        })
    }

    /// Whether the OS user `os_user` may submit proposals from `source`: anyone may, unless
    /// the source lists its `submitters`. `Err` says why not and what goes forward.
    pub fn may_submit(&self, source: &str, os_user: &str) -> Result<(), String> {
        let Some(subs) = self.sources.get(source).and_then(|s| s.submitters.as_ref()) else {
            return Ok(());
        };
        if subs.iter().any(|s| s == os_user) {
            return Ok(());
        }
        let safe = |s: &str| crate::ui::safe(s).into_owned();
        let named: Vec<String> = subs.iter().map(|s| safe(s)).collect();
        Err(format!(
            "source {} takes proposals only from the OS users {} ([sources.{}] submitters), not from {}; submit as one of them, or have an admin add {} there with `crmgate policy set FILE`",
            safe(source),
            if named.is_empty() {
                "(none)".to_string()
            } else {
                named.join(", ")
            },
            safe(source),
            safe(os_user),
            safe(os_user),
        ))
    }

    /// Whether `actor` holds `role`; in single-user mode everyone holds every role.
    pub fn has_role(&self, actor: &str, role: &str) -> bool {
        self.roles.is_empty()
            || self
                .roles
                .get(actor)
                .is_some_and(|r| r.iter().any(|x| x == role))
    }

    /// Whether `actor` may approve a proposal the given rules sent to review: it must hold one
    /// of their approver roles (any actor where no matched rule names approvers).
    pub fn may_approve(&self, actor: &str, approvers: &[String]) -> bool {
        approvers.is_empty() || approvers.iter().any(|r| self.has_role(actor, r))
    }

    /// Whether some rule reads records in `table` through a foreign key.
    pub fn reads_related(&self, table: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.related.iter().any(|c| c.object == table))
    }

    /// Whether some rule's related conditions read `field` of records in `table`.
    pub fn reads_related_field(&self, table: &str, field: &str) -> bool {
        self.rules.iter().flat_map(|r| &r.related).any(|c| {
            c.object == table
                && (c.eq.iter().any(|(k, _)| k == field)
                    || c.min.iter().any(|(k, _)| k == field)
                    || c.max.iter().any(|(k, _)| k == field))
        })
    }

    /// The rules that name what the store no longer has (only in the policy in force).
    pub fn unevaluable(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| !r.gone.is_empty())
    }
}

/// A problem in a policy file, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub line: usize,
    pub message: String,
}

// ---------------------------------------------------------------- deciding

/// What [`decide`] needs to know about a proposal.
pub struct Facts<'a> {
    pub kind: Kind,
    pub source: &'a str,
    pub object: &'a str,
    /// `None` for merges.
    pub field: Option<&'a str>,
    pub value: &'a Value,
    /// The field's value in the record now.
    pub current: &'a Value,
    pub trigger: Option<&'a str>,
    /// crmgate's final confidence.
    pub confidence: f64,
    /// The records involved (for a merge, both), as (column, value) pairs of the columns the
    /// policy's record conditions read.
    pub records: &'a [&'a [(&'a str, &'a Value)]],
    /// The records the target references by a foreign key, in the tables the policy's related
    /// conditions name ([`Policy::reads_related`]); for a merge, those of both records.
    pub related: &'a [Related],
}

/// The state of the world a decision also depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Situation {
    pub store_paused: bool,
    pub source_paused: bool,
    /// Auto decisions already given to this source in this run, and today.
    pub auto_in_run: u64,
    pub auto_today: u64,
}

/// The policy's decision, stored with the proposal as facts (the rules that matched, and why an
/// auto rule's proposal was held back); [`Decision::why`] puts it in words.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    /// Stored in its own column, so left out of the stored JSON.
    #[serde(skip_serializing, default = "review")]
    pub action: Action,
    /// Every rule that matched, in policy order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// The roles that may approve (union over the matched rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Why an auto rule did not let the proposal through on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

fn review() -> Action {
    Action::Review
}

impl Decision {
    /// The decision in plain words, one reason a line, given the policy it was made under.
    pub fn why(&self, policy: &Policy) -> Vec<String> {
        if self.rules.is_empty() {
            let mut why = vec!["no rule matched: review".to_string()];
            why.extend(self.held.iter().map(|h| format!("and {h}")));
            return why;
        }
        let matched: Vec<&Rule> = self
            .rules
            .iter()
            .filter_map(|n| policy.rules.iter().find(|r| &r.name == n))
            .collect();
        let strictest = matched.iter().map(|r| r.action).max();
        let mut why: Vec<String> = matched
            .iter()
            .filter(|r| Some(r.action) == strictest)
            .map(|r| format!("rule \"{}\" (line {}) says {}", r.name, r.line, r.action))
            .collect();
        if let Some(held) = &self.held {
            why.push(format!("not auto: {held}: {}", self.action));
        }
        why
    }
}

fn loosely_equal(a: &Value, b: &Value) -> bool {
    a == b || (!a.is_empty() && !b.is_empty() && a.display() == b.display())
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Real(f) => Some(*f),
        Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Whether every condition of `rule` holds for `facts`.
pub fn matches(rule: &Rule, f: &Facts<'_>) -> bool {
    let any = |list: &[String], v: Option<&str>| {
        list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
    };
    let field_of = |rec: &[(&str, &Value)], k: &str| -> Option<Value> {
        rec.iter().find(|(c, _)| *c == k).map(|(_, v)| (*v).clone())
    };
    (rule.kinds.is_empty() || rule.kinds.contains(&f.kind))
        && any(&rule.sources, Some(f.source))
        && any(&rule.objects, Some(f.object))
        && any(&rule.fields, f.field)
        && (rule.values.is_empty() || rule.values.iter().any(|v| v == &f.value.display()))
        && match rule.current {
            None => true,
            Some(Current::Empty) => f.current.is_empty(),
            Some(Current::Set) => !f.current.is_empty(),
        }
        && rule.min_confidence.is_none_or(|m| f.confidence >= m)
        && rule.max_confidence.is_none_or(|m| f.confidence <= m)
        && any(&rule.triggers, f.trigger)
        // Record conditions hold when any record involved meets all of them: a legal hold on
        // either side of a merge stops it.
        && (rule.record_eq.is_empty() && rule.record_min.is_empty() && rule.record_max.is_empty()
            || f.records.iter().any(|rec| {
                rule.record_eq.iter().all(|(k, v)| field_of(rec, k).is_some_and(|x| loosely_equal(&x, v)))
                    && rule.record_min.iter().all(|(k, m)| field_of(rec, k).and_then(|x| number(&x)).is_some_and(|x| x >= *m))
                    && rule.record_max.iter().all(|(k, m)| field_of(rec, k).and_then(|x| number(&x)).is_some_and(|x| x <= *m))
            }))
        && rule.related.iter().all(|c| c.holds(f.related))
}

/// The policy's decision on one proposal (docs/policy.md, "How a decision is made").
pub fn decide(policy: &Policy, f: &Facts<'_>, now: &Situation) -> Decision {
    // A rule that cannot be evaluated "could match" when all it can still check holds.
    let (matched, could): (Vec<&Rule>, Vec<&Rule>) = policy
        .rules
        .iter()
        .filter(|r| matches(r, f))
        .partition(|r| r.gone.is_empty());
    let mut approvers: Vec<String> = Vec::new();
    for r in &matched {
        for a in &r.approvers {
            if !approvers.contains(a) {
                approvers.push(a.clone());
            }
        }
    }
    let rules: Vec<String> = matched.iter().map(|r| r.name.clone()).collect();
    let decision = |action, held| Decision {
        action,
        rules: rules.clone(),
        approvers: approvers.clone(),
        held,
    };
    // 1. The most restrictive matching action; no rule means review: the gate never guesses.
    let Some(strictest) = matched.iter().map(|r| r.action).max() else {
        return decision(Action::Review, could.first().and_then(|r| r.unevaluable()));
    };
    if strictest != Action::Auto {
        return decision(strictest, None);
    }
    // A rule that could match but cannot be evaluated: nothing it could match is auto, and its
    // approvers are the ones who may let it through.
    if let Some(first) = could.first() {
        let mut d = decision(Action::Review, first.unevaluable());
        for a in could.iter().flat_map(|r| &r.approvers) {
            if !d.approvers.contains(a) {
                d.approvers.push(a.clone());
            }
        }
        return d;
    }
    // 2. Auto needs everything below; the first that fails sends the proposal on, and says why.
    let source = policy.source(f.source);
    // Every matched auto rule's threshold must be met: its own, or the default.
    let threshold = matched
        .iter()
        .map(|r| r.min_confidence.unwrap_or(policy.auto_min_confidence))
        .fold(0.0, f64::max);
    let fallback = match source.autonomy {
        Autonomy::Assistive => Action::Suggest,
        _ => Action::Review,
    };
    let refusal = if f.kind == Kind::Merge {
        Some("merges are never auto".to_string())
    } else if f.kind == Kind::Owner {
        Some("owner changes are never auto".to_string())
    } else if source.autonomy != Autonomy::Autonomous {
        Some(format!(
            "source {} is {}",
            f.source,
            source.autonomy.as_str()
        ))
    } else if f.confidence < threshold {
        Some(format!(
            "confidence {:.2} is below the auto threshold {threshold:.2}",
            f.confidence
        ))
    } else if now.store_paused {
        Some("the store is paused".to_string())
    } else if now.source_paused {
        Some(format!("source {} is paused", f.source))
    } else if now.auto_in_run >= source.max_auto_per_run {
        Some(format!(
            "source {} used its limit of {} auto changes per run (max_auto_per_run)",
            f.source, source.max_auto_per_run
        ))
    } else if now.auto_today >= source.max_auto_per_day {
        Some(format!(
            "source {} used its limit of {} auto changes per day (max_auto_per_day)",
            f.source, source.max_auto_per_day
        ))
    } else {
        None
    };
    match refusal {
        Some(reason) => decision(fallback, Some(reason)),
        None => decision(Action::Auto, None),
    }
}

#[cfg(test)]
mod tests;
