//! The policy: a TOML file that says what may apply on its own and what a human must approve
//! (SPEC §5). Parsing and checking happen once, at the edge, and yield a [`Policy`] whose rules
//! hold checked values; [`decide`] is then a pure function of a proposal's facts, so every
//! decision is deterministic and explained by the rules that produced it.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::model::{Kind, Value};
use crate::schema::{Schema, suggestion_suffix};

pub use crate::model::Action;

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
    pub action: Action,
    pub approvers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourcePolicy {
    pub autonomy: Autonomy,
    pub max_auto_per_run: u64,
    pub max_auto_per_day: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitBreaker {
    pub window: u32,
    pub max_reject_rate: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub default_autonomy: Autonomy,
    pub auto_min_confidence: f64,
    pub max_auto_per_run: u64,
    pub max_auto_per_day: u64,
    pub sources: BTreeMap<String, SourcePolicy>,
    pub circuit_breaker: Option<CircuitBreaker>,
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
        })
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
}

/// A problem in a policy file, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub line: usize,
    pub message: String,
}

// ---------------------------------------------------------------- parsing

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    sources: BTreeMap<String, Spanned<RawSource>>,
    circuit_breaker: Option<Spanned<RawBreaker>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    roles: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    autonomy: Option<Spanned<String>>,
    auto_min_confidence: Option<Spanned<f64>>,
    max_auto_per_run: Option<u64>,
    max_auto_per_day: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    autonomy: Spanned<String>,
    max_auto_per_run: Option<u64>,
    max_auto_per_day: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    window: u32,
    max_reject_rate: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    kind: Option<Spanned<Vec<String>>>,
    source: Option<Vec<String>>,
    object: Option<Spanned<Vec<String>>>,
    field: Option<Spanned<Vec<String>>>,
    value: Option<Vec<String>>,
    current: Option<Spanned<String>>,
    min_confidence: Option<Spanned<f64>>,
    max_confidence: Option<Spanned<f64>>,
    trigger: Option<Vec<String>>,
    record: Option<Spanned<BTreeMap<String, toml::Value>>>,
    record_min: Option<Spanned<BTreeMap<String, f64>>>,
    record_max: Option<Spanned<BTreeMap<String, f64>>>,
    action: Spanned<String>,
    approvers: Option<Spanned<Vec<String>>>,
}

/// 1-based line of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses and checks a policy. Names of objects and fields are checked against `schema`, so a
/// policy cannot name what the store does not have. Every problem found is returned, by line.
pub fn parse(text: &str, schema: &Schema) -> Result<Policy, Vec<PolicyProblem>> {
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        vec![PolicyProblem {
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            message: e.message().trim().to_string(),
        }]
    })?;
    let problems = std::cell::RefCell::new(Vec::new());
    let bad = |span: std::ops::Range<usize>, message: String| {
        problems.borrow_mut().push(PolicyProblem {
            line: line_of(text, span.start),
            message,
        })
    };
    let check_confidence = |v: &Spanned<f64>, what: &str| {
        if !(0.0..=1.0).contains(v.get_ref()) {
            bad(v.span(), format!("{what} {} is outside 0..1", v.get_ref()));
        }
    };

    let autonomy = |s: &Spanned<String>| {
        Autonomy::parse(s.get_ref()).unwrap_or_else(|| {
            bad(
                s.span(),
                format!(
                    "autonomy \"{}\" is not one of autonomous, supervised, assistive",
                    s.get_ref()
                ),
            );
            Autonomy::Supervised
        })
    };
    let default_autonomy = raw
        .defaults
        .autonomy
        .as_ref()
        .map(&autonomy)
        .unwrap_or(Autonomy::Supervised);
    if let Some(c) = &raw.defaults.auto_min_confidence {
        check_confidence(c, "auto_min_confidence");
    }
    let max_auto_per_run = raw.defaults.max_auto_per_run.unwrap_or(1000);
    let max_auto_per_day = raw.defaults.max_auto_per_day.unwrap_or(10_000);
    let mut sources = BTreeMap::new();
    for (name, s) in &raw.sources {
        let inner = s.get_ref();
        sources.insert(
            name.clone(),
            SourcePolicy {
                autonomy: autonomy(&inner.autonomy),
                max_auto_per_run: inner.max_auto_per_run.unwrap_or(max_auto_per_run),
                max_auto_per_day: inner.max_auto_per_day.unwrap_or(max_auto_per_day),
            },
        );
    }
    let circuit_breaker = raw.circuit_breaker.as_ref().map(|b| {
        let inner = b.get_ref();
        if inner.window == 0 {
            bad(b.span(), "circuit_breaker.window must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&inner.max_reject_rate) {
            bad(
                b.span(),
                format!(
                    "circuit_breaker.max_reject_rate {} is outside 0..1",
                    inner.max_reject_rate
                ),
            );
        }
        CircuitBreaker {
            window: inner.window,
            max_reject_rate: inner.max_reject_rate,
        }
    });

    let mut rules: Vec<Rule> = Vec::new();
    for spanned in &raw.rule {
        let r = spanned.get_ref();
        let line = line_of(text, spanned.span().start);
        let name = r.name.get_ref().clone();
        if rules.iter().any(|x| x.name == name) {
            bad(r.name.span(), format!("rule name \"{name}\" is used twice"));
        }
        let action = Action::parse(r.action.get_ref()).unwrap_or_else(|| {
            bad(
                r.action.span(),
                format!(
                    "rule \"{name}\": action \"{}\" is not one of auto, suggest, review, block",
                    r.action.get_ref()
                ),
            );
            Action::Review
        });
        let mut kinds = Vec::new();
        if let Some(k) = &r.kind {
            for s in k.get_ref() {
                match Kind::parse(s) {
                    Some(kind) => kinds.push(kind),
                    None => bad(
                        k.span(),
                        format!(
                            "rule \"{name}\": kind \"{s}\" is not one of update, verify, lifecycle, owner, merge"
                        ),
                    ),
                }
            }
        }
        // SPEC §5.3: merge is never auto, and a policy that tries is refused.
        if action == Action::Auto && (kinds.contains(&Kind::Merge) || kinds.is_empty()) {
            let span = r.kind.as_ref().map(|k| k.span()).unwrap_or(r.action.span());
            bad(
                span,
                format!(
                    "rule \"{name}\": merges are never auto; give the rule a kind list without \"merge\""
                ),
            );
        }
        let objects = r
            .object
            .as_ref()
            .map(|o| o.get_ref().clone())
            .unwrap_or_default();
        if let Some(o) = &r.object {
            for obj in o.get_ref() {
                if schema.object(obj).is_none() {
                    bad(
                        o.span(),
                        format!(
                            "rule \"{name}\": object \"{obj}\" does not exist in the store{}",
                            suggestion_suffix(obj, schema.objects.keys().map(String::as_str))
                        ),
                    );
                }
            }
        }
        // A field (or record condition) must exist on some object the rule can apply to.
        let candidates: Vec<&crate::schema::Object> = if objects.is_empty() {
            schema.objects.values().collect()
        } else {
            objects.iter().filter_map(|o| schema.object(o)).collect()
        };
        let check_field = |f: &str, span: std::ops::Range<usize>, what: &str| {
            if !candidates.is_empty() && !candidates.iter().any(|o| o.column(f).is_some()) {
                let all = candidates.iter().flat_map(|o| o.column_names());
                bad(
                    span,
                    format!(
                        "rule \"{name}\": {what} \"{f}\" is not a field of {}{}",
                        if objects.is_empty() {
                            "any object".to_string()
                        } else {
                            objects.join(", ")
                        },
                        suggestion_suffix(f, all)
                    ),
                );
            }
        };
        let fields = r
            .field
            .as_ref()
            .map(|f| f.get_ref().clone())
            .unwrap_or_default();
        if let Some(f) = &r.field {
            for field in f.get_ref() {
                check_field(field, f.span(), "field");
            }
        }
        let mut record_eq = Vec::new();
        if let Some(rec) = &r.record {
            for (k, v) in rec.get_ref() {
                check_field(k, rec.span(), "record field");
                let value = match v {
                    toml::Value::String(s) => Value::Text(s.clone()),
                    toml::Value::Integer(i) => Value::Integer(*i),
                    toml::Value::Float(f) => Value::Real(*f),
                    toml::Value::Boolean(b) => Value::Integer(i64::from(*b)),
                    _ => {
                        bad(
                            rec.span(),
                            format!(
                                "rule \"{name}\": record.{k} must be a string, number or boolean"
                            ),
                        );
                        Value::Null
                    }
                };
                record_eq.push((k.clone(), value));
            }
        }
        let thresholds = |m: &Option<Spanned<BTreeMap<String, f64>>>, what: &str| {
            let mut out = Vec::new();
            if let Some(m) = m {
                for (k, v) in m.get_ref() {
                    check_field(k, m.span(), what);
                    out.push((k.clone(), *v));
                }
            }
            out
        };
        let record_min = thresholds(&r.record_min, "record_min field");
        let record_max = thresholds(&r.record_max, "record_max field");
        let current = r.current.as_ref().map(|c| match c.get_ref().as_str() {
            "empty" => Current::Empty,
            "set" => Current::Set,
            other => {
                bad(
                    c.span(),
                    format!("rule \"{name}\": current \"{other}\" is not one of empty, set"),
                );
                Current::Empty
            }
        });
        for (c, what) in [
            (&r.min_confidence, "min_confidence"),
            (&r.max_confidence, "max_confidence"),
        ] {
            if let Some(c) = c {
                check_confidence(c, &format!("rule \"{name}\": {what}"));
            }
        }
        let approvers = r
            .approvers
            .as_ref()
            .map(|a| a.get_ref().clone())
            .unwrap_or_default();
        if let Some(a) = &r.approvers
            && !raw.roles.is_empty()
        {
            for role in a.get_ref() {
                if !raw.roles.values().any(|rs| rs.contains(role)) {
                    bad(
                        a.span(),
                        format!(
                            "rule \"{name}\": no one in [roles] holds the approver role \"{role}\""
                        ),
                    );
                }
            }
        }
        rules.push(Rule {
            name,
            line,
            kinds,
            sources: r.source.clone().unwrap_or_default(),
            objects,
            fields,
            values: r.value.clone().unwrap_or_default(),
            current,
            min_confidence: r.min_confidence.as_ref().map(|c| *c.get_ref()),
            max_confidence: r.max_confidence.as_ref().map(|c| *c.get_ref()),
            triggers: r.trigger.clone().unwrap_or_default(),
            record_eq,
            record_min,
            record_max,
            action,
            approvers,
        });
    }
    let mut problems = problems.into_inner();
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.line);
        return Err(problems);
    }
    Ok(Policy {
        default_autonomy,
        auto_min_confidence: raw
            .defaults
            .auto_min_confidence
            .map(|c| *c.get_ref())
            .unwrap_or(0.90),
        max_auto_per_run,
        max_auto_per_day,
        sources,
        circuit_breaker,
        rules,
        roles: raw.roles,
    })
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
            return vec!["no rule matched: review".into()];
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
}

/// The policy's decision on one proposal (SPEC §5, decision semantics).
pub fn decide(policy: &Policy, f: &Facts<'_>, now: &Situation) -> Decision {
    let matched: Vec<&Rule> = policy.rules.iter().filter(|r| matches(r, f)).collect();
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
        return decision(Action::Review, None);
    };
    if strictest != Action::Auto {
        return decision(strictest, None);
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
