//! Reading a policy file into a checked [`Policy`]. The TOML is read into spanned values and
//! checked key by key, rather than deserialized into structs, so that one pass reports every
//! problem with its line: a typo in one rule does not hide a bad value in the next. Only a TOML
//! syntax error stops the reading early.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    Alerts, Autonomy, CircuitBreaker, Current, Policy, PolicyProblem, RelatedCondition, Rule,
    SourcePolicy,
};
use crate::model::{Action, Kind, Value};
use crate::schema::{Object, Schema, suggestion_suffix};

type Val<'i> = Spanned<DeValue<'i>>;

/// How a policy's object and column names must meet the store's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// A new policy (check, set, test): every name must exist, or the policy is refused.
    Strict,
    /// The policy in force: the store may have dropped a column since it was set. A rule naming
    /// what is gone is kept, marked [`Rule::gone`], and [`super::decide`] lets nothing it could
    /// match through on its own, so the gate stays usable until an admin sets a fixed policy.
    InForce,
}

/// Parses and checks a new policy: names of objects and fields are checked against `schema`, so
/// a policy cannot name what the store does not have. Every problem found is returned, by line.
pub fn parse(text: &str, schema: &Schema) -> Result<Policy, Vec<PolicyProblem>> {
    read(text, schema, Fit::Strict)
}

/// Parses the policy in force, which may name columns the store no longer has (see [`Fit`]).
pub fn parse_in_force(text: &str, schema: &Schema) -> Result<Policy, Vec<PolicyProblem>> {
    read(text, schema, Fit::InForce)
}

const SECTIONS: &[&str] = &[
    "defaults",
    "sources",
    "circuit_breaker",
    "alerts",
    "rule",
    "roles",
];
const DEFAULTS: &[&str] = &[
    "autonomy",
    "auto_min_confidence",
    "max_auto_per_run",
    "max_auto_per_day",
];
const SOURCE: &[&str] = &[
    "autonomy",
    "max_auto_per_run",
    "max_auto_per_day",
    "submitters",
];
const BREAKER: &[&str] = &["window", "max_reject_rate"];
const ALERTS: &[&str] = &["command"];
const RULE: &[&str] = &[
    "name",
    "kind",
    "source",
    "object",
    "field",
    "value",
    "current",
    "min_confidence",
    "max_confidence",
    "trigger",
    "record",
    "record_min",
    "record_max",
    "related",
    "related_min",
    "related_max",
    "action",
    "approvers",
];

/// A rule's keys for conditions on the records its target references, by table.
const RELATED: [&str; 3] = ["related", "related_min", "related_max"];

fn read(text: &str, schema: &Schema, fit: Fit) -> Result<Policy, Vec<PolicyProblem>> {
    let doc = DeTable::parse(text).map_err(|e| {
        vec![PolicyProblem {
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            message: e.message().trim().to_string(),
        }]
    })?;
    let root = doc.get_ref();
    let mut c = Checker {
        text,
        schema,
        fit,
        problems: Vec::new(),
    };
    c.known_keys(root, "the policy", SECTIONS);
    let mut p = Policy {
        default_autonomy: Autonomy::Supervised,
        auto_min_confidence: 0.90,
        max_auto_per_run: 1000,
        max_auto_per_day: 10_000,
        sources: BTreeMap::new(),
        circuit_breaker: None,
        alerts: None,
        rules: Vec::new(),
        roles: BTreeMap::new(),
    };
    if let Some(v) = root.get("roles") {
        p.roles = c.roles(v);
    }
    if let Some(v) = root.get("defaults") {
        c.defaults(v, &mut p);
    }
    if let Some(v) = root.get("sources") {
        p.sources = c.sources(v, &p);
    }
    if let Some(v) = root.get("circuit_breaker") {
        p.circuit_breaker = c.breaker(v);
    }
    if let Some(v) = root.get("alerts") {
        p.alerts = c.alerts(v);
    }
    if let Some(v) = root.get("rule") {
        p.rules = c.rules(v, &p.roles);
    }
    let mut problems = c.problems;
    if problems.is_empty() {
        return Ok(p);
    }
    problems.sort_by_key(|p| p.line);
    Err(problems)
}

/// 1-based line of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Collects the problems of one reading, and turns spanned TOML values into checked ones.
struct Checker<'a> {
    text: &'a str,
    schema: &'a Schema,
    fit: Fit,
    problems: Vec<PolicyProblem>,
}

impl Checker<'_> {
    fn bad(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push(PolicyProblem {
            line: line_of(self.text, span.start),
            message: message.into(),
        });
    }

    fn line(&self, span: Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    /// A problem for every key of `t` not in `known`, with a "did you mean".
    fn known_keys(&mut self, t: &DeTable<'_>, what: &str, known: &[&str]) {
        for (k, _) in t.iter() {
            let key: &str = k.get_ref();
            if !known.contains(&key) {
                self.bad(
                    k.span(),
                    format!(
                        "{what}: unknown field `{key}`{}; expected one of {}",
                        suggestion_suffix(key, known.iter().copied()),
                        known.join(", ")
                    ),
                );
            }
        }
    }

    fn wrong_type(&mut self, v: &Val<'_>, what: &str, expected: &str) {
        self.bad(
            v.span(),
            format!(
                "{what} must be {expected}, not a {}",
                v.get_ref().type_str()
            ),
        );
    }

    fn table<'v, 'i>(&mut self, v: &'v Val<'i>, what: &str) -> Option<&'v DeTable<'i>> {
        let t = v.get_ref().as_table();
        if t.is_none() {
            self.wrong_type(v, what, "a table");
        }
        t
    }

    fn string(&mut self, v: &Val<'_>, what: &str) -> Option<String> {
        let s = v.get_ref().as_str().map(str::to_string);
        if s.is_none() {
            self.wrong_type(v, what, "a string");
        }
        s
    }

    /// A list of strings; a bad element is a problem of its own and is left out.
    fn strings(&mut self, v: &Val<'_>, what: &str) -> Vec<String> {
        let Some(items) = v.get_ref().as_array() else {
            self.wrong_type(v, what, "a list of strings, like [\"a\", \"b\"]");
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|i| self.string(i, &format!("each of {what}")))
            .collect()
    }

    fn number(&mut self, v: &Val<'_>, what: &str) -> Option<f64> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|i| i as f64),
            DeValue::Float(f) => f.as_str().parse().ok(),
            _ => None,
        };
        if n.is_none() {
            self.wrong_type(v, what, "a number");
        }
        n
    }

    fn count(&mut self, v: &Val<'_>, what: &str) -> Option<u64> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        if n.is_none() {
            self.wrong_type(v, what, "a whole number, 0 or more");
        }
        n
    }

    fn confidence(&mut self, v: &Val<'_>, what: &str) -> Option<f64> {
        let c = self.number(v, what)?;
        if !(0.0..=1.0).contains(&c) {
            self.bad(v.span(), format!("{what} {c} is outside 0..1"));
            return None;
        }
        Some(c)
    }

    fn autonomy(&mut self, v: &Val<'_>, what: &str) -> Option<Autonomy> {
        let s = self.string(v, what)?;
        let a = Autonomy::parse(&s);
        if a.is_none() {
            self.bad(
                v.span(),
                format!("{what} \"{s}\" is not one of autonomous, supervised, assistive"),
            );
        }
        a
    }
}

// ---------------------------------------------------------------- sections

impl Checker<'_> {
    fn roles(&mut self, v: &Val<'_>) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        if let Some(t) = self.table(v, "[roles]") {
            for (actor, roles) in t.iter() {
                let what = format!("[roles] {}", actor.get_ref());
                out.insert(actor.get_ref().to_string(), self.strings(roles, &what));
            }
        }
        out
    }

    fn defaults(&mut self, v: &Val<'_>, p: &mut Policy) {
        let Some(t) = self.table(v, "[defaults]") else {
            return;
        };
        self.known_keys(t, "[defaults]", DEFAULTS);
        if let Some(a) = t.get("autonomy") {
            p.default_autonomy = self.autonomy(a, "autonomy").unwrap_or(p.default_autonomy);
        }
        if let Some(c) = t.get("auto_min_confidence") {
            p.auto_min_confidence = self
                .confidence(c, "auto_min_confidence")
                .unwrap_or(p.auto_min_confidence);
        }
        if let Some(n) = t.get("max_auto_per_run") {
            p.max_auto_per_run = self
                .count(n, "max_auto_per_run")
                .unwrap_or(p.max_auto_per_run);
        }
        if let Some(n) = t.get("max_auto_per_day") {
            p.max_auto_per_day = self
                .count(n, "max_auto_per_day")
                .unwrap_or(p.max_auto_per_day);
        }
    }

    fn sources(&mut self, v: &Val<'_>, p: &Policy) -> BTreeMap<String, SourcePolicy> {
        let mut out = BTreeMap::new();
        let Some(t) = self.table(v, "[sources]") else {
            return out;
        };
        for (name, s) in t.iter() {
            let what = format!("[sources.{}]", name.get_ref());
            let Some(st) = self.table(s, &what) else {
                continue;
            };
            self.known_keys(st, &what, SOURCE);
            let autonomy = match st.get("autonomy") {
                Some(a) => self.autonomy(a, "autonomy"),
                None => {
                    self.bad(
                        s.span(),
                        format!("{what} has no autonomy; add autonomy = \"supervised\""),
                    );
                    None
                }
            };
            let mut limit = |key: &str, default: u64| match st.get(key) {
                Some(n) => self.count(n, &format!("{what} {key}")).unwrap_or(default),
                None => default,
            };
            let max_auto_per_run = limit("max_auto_per_run", p.max_auto_per_run);
            let max_auto_per_day = limit("max_auto_per_day", p.max_auto_per_day);
            let submitters = st
                .get("submitters")
                .map(|v| self.strings(v, &format!("{what} submitters")));
            let sp = SourcePolicy {
                autonomy: autonomy.unwrap_or(Autonomy::Supervised),
                max_auto_per_run,
                max_auto_per_day,
                submitters,
            };
            out.insert(name.get_ref().to_string(), sp);
        }
        out
    }

    fn breaker(&mut self, v: &Val<'_>) -> Option<CircuitBreaker> {
        let t = self.table(v, "[circuit_breaker]")?;
        self.known_keys(t, "[circuit_breaker]", BREAKER);
        let window = match t.get("window") {
            Some(w) => self.count(w, "circuit_breaker.window").and_then(|n| {
                let ok = (1..=u64::from(u32::MAX)).contains(&n);
                if !ok {
                    self.bad(w.span(), "circuit_breaker.window must be at least 1");
                }
                ok.then_some(n as u32)
            }),
            None => {
                self.bad(v.span(), "[circuit_breaker] has no window; add window = 50");
                None
            }
        };
        let rate = match t.get("max_reject_rate") {
            Some(r) => self.confidence(r, "circuit_breaker.max_reject_rate"),
            None => {
                self.bad(
                    v.span(),
                    "[circuit_breaker] has no max_reject_rate; add max_reject_rate = 0.30",
                );
                None
            }
        };
        Some(CircuitBreaker {
            window: window?,
            max_reject_rate: rate?,
        })
    }
}

impl Checker<'_> {
    /// `[alerts] command`: split like a shell would split it (quotes, backslashes), but run
    /// without one, so nothing in it is expanded.
    fn alerts(&mut self, v: &Val<'_>) -> Option<Alerts> {
        let t = self.table(v, "[alerts]")?;
        self.known_keys(t, "[alerts]", ALERTS);
        let Some(c) = t.get("command") else {
            self.bad(
                v.span(),
                "[alerts] has no command; add command = \"/usr/local/bin/page-oncall --team crm\"",
            );
            return None;
        };
        let text = self.string(c, "alerts.command")?;
        match shell_words::split(&text) {
            Ok(argv) if !argv.is_empty() => Some(Alerts { argv }),
            Ok(_) => {
                self.bad(c.span(), "alerts.command is empty; name the program to run");
                None
            }
            Err(e) => {
                self.bad(
                    c.span(),
                    format!("alerts.command cannot be split into words: {e}"),
                );
                None
            }
        }
    }
}

// ---------------------------------------------------------------- rules

/// One rule's reading: its name, how messages call it (`rule "x"`, or `rule #2` when it has
/// no name), and the span of its table.
struct RuleAt<'t, 'i> {
    t: &'t DeTable<'i>,
    name: String,
    label: String,
    span: Range<usize>,
}

impl RuleAt<'_, '_> {
    fn what(&self, key: &str) -> String {
        format!("{}: {key}", self.label)
    }
}

impl Checker<'_> {
    fn rules(&mut self, v: &Val<'_>, roles: &BTreeMap<String, Vec<String>>) -> Vec<Rule> {
        let Some(items) = v.get_ref().as_array() else {
            self.wrong_type(v, "rule", "a list of [[rule]] tables");
            return Vec::new();
        };
        let mut rules: Vec<Rule> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(t) = self.table(item, "[[rule]]") else {
                continue;
            };
            let Some(rule) = self.rule(t, item.span(), i + 1, roles) else {
                continue;
            };
            if rules.iter().any(|x| x.name == rule.name) {
                let span = t.get("name").map(|n| n.span()).unwrap_or(item.span());
                self.bad(span, format!("rule name \"{}\" is used twice", rule.name));
            }
            rules.push(rule);
        }
        rules
    }

    fn rule(
        &mut self,
        t: &DeTable<'_>,
        span: Range<usize>,
        nth: usize,
        roles: &BTreeMap<String, Vec<String>>,
    ) -> Option<Rule> {
        let name = match t.get("name") {
            Some(n) => self.string(n, &format!("rule #{nth}: name")),
            None => {
                self.bad(
                    span.clone(),
                    format!("rule #{nth} has no name; add name = \"...\""),
                );
                None
            }
        };
        let r = RuleAt {
            t,
            name: name.clone().unwrap_or_else(|| format!("#{nth}")),
            label: match &name {
                Some(n) => format!("rule \"{n}\""),
                None => format!("rule #{nth}"),
            },
            span,
        };
        self.known_keys(t, &r.label, RULE);
        let action = self.action(&r);
        let kinds = self.kinds(&r);
        self.never_auto(&r, action, &kinds);
        let mut rule = Rule {
            name: r.name.clone(),
            line: self.line(r.span.clone()),
            kinds,
            sources: self.list(&r, "source"),
            objects: self.list(&r, "object"),
            fields: self.list(&r, "field"),
            values: self.list(&r, "value"),
            current: self.current(&r),
            min_confidence: self.rule_confidence(&r, "min_confidence"),
            max_confidence: self.rule_confidence(&r, "max_confidence"),
            triggers: self.list(&r, "trigger"),
            record_eq: self.record_eq(&r),
            record_min: self.threshold(&r, "record_min"),
            record_max: self.threshold(&r, "record_max"),
            related: self.related(&r),
            action: action.unwrap_or(Action::Review),
            approvers: self.approvers(&r, roles),
            gone: Vec::new(),
        };
        self.check_names(&r, &mut rule);
        Some(rule).filter(|_| name.is_some())
    }

    fn list(&mut self, r: &RuleAt<'_, '_>, key: &str) -> Vec<String> {
        match r.t.get(key) {
            Some(v) => self.strings(v, &r.what(key)),
            None => Vec::new(),
        }
    }

    fn action(&mut self, r: &RuleAt<'_, '_>) -> Option<Action> {
        let Some(v) = r.t.get("action") else {
            let msg = format!(
                "{} has no action; add action = \"review\" (auto, suggest, review or block)",
                r.label
            );
            self.bad(r.span.clone(), msg);
            return None;
        };
        let s = self.string(v, &r.what("action"))?;
        let a = Action::parse(&s);
        if a.is_none() {
            let msg = format!(
                "{}: action \"{s}\" is not one of auto, suggest, review, block",
                r.label
            );
            self.bad(v.span(), msg);
        }
        a
    }

    fn kinds(&mut self, r: &RuleAt<'_, '_>) -> Vec<Kind> {
        let Some(v) = r.t.get("kind") else {
            return Vec::new();
        };
        let mut kinds = Vec::new();
        for s in self.strings(v, &r.what("kind")) {
            match Kind::parse(&s) {
                Some(k) => kinds.push(k),
                None => self.bad(
                    v.span(),
                    format!(
                        "{}: kind \"{s}\" is not one of update, verify, lifecycle, owner, merge, create{}",
                        r.label,
                        suggestion_suffix(&s, ["update", "verify", "lifecycle", "owner", "merge", "create"])
                    ),
                ),
            }
        }
        kinds
    }

    /// Merges and owner changes are never auto, and a policy whose auto rule could match one is
    /// refused: a rule without a kind list matches every kind.
    fn never_auto(&mut self, r: &RuleAt<'_, '_>, action: Option<Action>, kinds: &[Kind]) {
        if action != Some(Action::Auto) {
            return;
        }
        let never: Vec<Kind> = [Kind::Merge, Kind::Owner]
            .into_iter()
            .filter(|k| kinds.is_empty() || kinds.contains(k))
            .collect();
        let said = match never.as_slice() {
            [] => return,
            [Kind::Merge] => "merges are never auto; give the rule a kind list without \"merge\"",
            [Kind::Owner] => {
                "owner changes are never auto; give the rule a kind list without \"owner\""
            }
            _ if kinds.is_empty() => {
                "merges are never auto, nor are owner changes; give the rule a kind list, like kind = [\"update\"]"
            }
            _ => {
                "merges are never auto, nor are owner changes; give the rule a kind list without \"merge\" and \"owner\""
            }
        };
        let at = r.t.get("kind").or(r.t.get("action"));
        let span = at.map(|v| v.span()).unwrap_or(r.span.clone());
        self.bad(span, format!("{}: {said}", r.label));
    }

    fn current(&mut self, r: &RuleAt<'_, '_>) -> Option<Current> {
        let v = r.t.get("current")?;
        match self.string(v, &r.what("current"))?.as_str() {
            "empty" => Some(Current::Empty),
            "set" => Some(Current::Set),
            other => {
                let msg = format!("{}: current \"{other}\" is not one of empty, set", r.label);
                self.bad(v.span(), msg);
                None
            }
        }
    }

    fn rule_confidence(&mut self, r: &RuleAt<'_, '_>, key: &str) -> Option<f64> {
        self.confidence(r.t.get(key)?, &r.what(key))
    }

    fn record_eq(&mut self, r: &RuleAt<'_, '_>) -> Vec<(String, Value)> {
        match r
            .t
            .get("record")
            .and_then(|v| self.table(v, &r.what("record")))
        {
            Some(t) => self.equalities(t, &r.what("record")),
            None => Vec::new(),
        }
    }

    /// `{ field = value, ... }`: what each field must equal.
    fn equalities(&mut self, t: &DeTable<'_>, what: &str) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (k, v) in t.iter() {
            let value = match v.get_ref() {
                DeValue::String(s) => Some(Value::Text(s.to_string())),
                DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                    .ok()
                    .map(Value::Integer),
                DeValue::Float(f) => f.as_str().parse().ok().map(Value::Real),
                DeValue::Boolean(b) => Some(Value::Integer(i64::from(*b))),
                _ => None,
            };
            match value {
                Some(value) => out.push((k.get_ref().to_string(), value)),
                None => self.wrong_type(
                    v,
                    &format!("{what}.{}", k.get_ref()),
                    "a string, number or boolean",
                ),
            }
        }
        out
    }

    fn threshold(&mut self, r: &RuleAt<'_, '_>, key: &str) -> Vec<(String, f64)> {
        match r.t.get(key).and_then(|v| self.table(v, &r.what(key))) {
            Some(t) => self.thresholds(t, &r.what(key)),
            None => Vec::new(),
        }
    }

    /// `{ field = number, ... }`: numeric thresholds.
    fn thresholds(&mut self, t: &DeTable<'_>, what: &str) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (k, v) in t.iter() {
            if let Some(n) = self.number(v, &format!("{what}.{}", k.get_ref())) {
                out.push((k.get_ref().to_string(), n));
            }
        }
        out
    }

    /// `related = { TABLE = { field = value } }` and `related_min`/`related_max` of the same
    /// shape, gathered by table.
    fn related(&mut self, r: &RuleAt<'_, '_>) -> Vec<RelatedCondition> {
        let mut out: Vec<RelatedCondition> = Vec::new();
        for key in RELATED {
            let Some(t) = r.t.get(key).and_then(|v| self.table(v, &r.what(key))) else {
                continue;
            };
            for (table, conds) in t.iter() {
                let object = table.get_ref().to_string();
                let what = r.what(&format!("{key}.{object}"));
                let Some(ct) = self.table(conds, &what) else {
                    continue;
                };
                let at = match out.iter().position(|c| c.object == object) {
                    Some(i) => i,
                    None => {
                        out.push(RelatedCondition {
                            object,
                            eq: Vec::new(),
                            min: Vec::new(),
                            max: Vec::new(),
                        });
                        out.len() - 1
                    }
                };
                match key {
                    "related" => out[at].eq = self.equalities(ct, &what),
                    "related_min" => out[at].min = self.thresholds(ct, &what),
                    _ => out[at].max = self.thresholds(ct, &what),
                }
            }
        }
        out
    }

    fn approvers(
        &mut self,
        r: &RuleAt<'_, '_>,
        roles: &BTreeMap<String, Vec<String>>,
    ) -> Vec<String> {
        let Some(v) = r.t.get("approvers") else {
            return Vec::new();
        };
        let approvers = self.strings(v, &r.what("approvers"));
        if !roles.is_empty() {
            for role in &approvers {
                if !roles.values().any(|rs| rs.contains(role)) {
                    let msg = format!(
                        "{}: no one in [roles] holds the approver role \"{role}\"",
                        r.label
                    );
                    self.bad(v.span(), msg);
                }
            }
        }
        approvers
    }
}

// ---------------------------------------------------------------- names against the schema

impl Checker<'_> {
    /// Checks the objects and columns a rule names against the store. A new policy naming what
    /// the store lacks is refused; the policy in force keeps the rule, marks what is gone, and
    /// drops the record conditions it can no longer evaluate (see [`Fit::InForce`]).
    fn check_names(&mut self, r: &RuleAt<'_, '_>, rule: &mut Rule) {
        for obj in rule.objects.clone() {
            if self.schema.object(&obj).is_none() {
                let span =
                    r.t.get("object")
                        .map(|v| v.span())
                        .unwrap_or(r.span.clone());
                let hint = suggestion_suffix(&obj, self.schema.objects.keys().map(String::as_str));
                let msg = format!(
                    "{}: object \"{obj}\" does not exist in the store{hint}",
                    r.label
                );
                self.missing(span, msg, rule, obj.clone());
            }
        }
        for f in rule.fields.clone() {
            self.check_column(r, rule, "field", &f);
        }
        let eq: Vec<String> = rule.record_eq.iter().map(|(k, _)| k.clone()).collect();
        let min: Vec<String> = rule.record_min.iter().map(|(k, _)| k.clone()).collect();
        let max: Vec<String> = rule.record_max.iter().map(|(k, _)| k.clone()).collect();
        let keep =
            |c: &mut Self, rule: &mut Rule, key: &str, k: &String| c.check_column(r, rule, key, k);
        let eq: Vec<bool> = eq.iter().map(|k| keep(self, rule, "record", k)).collect();
        let min: Vec<bool> = min
            .iter()
            .map(|k| keep(self, rule, "record_min", k))
            .collect();
        let max: Vec<bool> = max
            .iter()
            .map(|k| keep(self, rule, "record_max", k))
            .collect();
        retain_by(&mut rule.record_eq, &eq);
        retain_by(&mut rule.record_min, &min);
        retain_by(&mut rule.record_max, &max);
        self.check_related(r, rule);
    }

    /// Whether column `f` (named under `key`) exists on some object the rule can apply to.
    fn check_column(&mut self, r: &RuleAt<'_, '_>, rule: &mut Rule, key: &str, f: &str) -> bool {
        let schema = self.schema;
        let named: Vec<&Object> = rule
            .objects
            .iter()
            .filter_map(|o| schema.object(o))
            .collect();
        let candidates: Vec<&Object> = if rule.objects.is_empty() {
            schema.objects.values().collect()
        } else {
            named
        };
        if candidates.is_empty() || candidates.iter().any(|o| o.column(f).is_some()) {
            return true;
        }
        let of = if rule.objects.is_empty() {
            "any object".to_string()
        } else {
            rule.objects.join(", ")
        };
        let hint = suggestion_suffix(f, candidates.iter().flat_map(|o| o.column_names()));
        let what = if key == "field" {
            "field".to_string()
        } else {
            format!("{key} field")
        };
        let msg = format!("{}: {what} \"{f}\" is not a field of {of}{hint}", r.label);
        let span = r.t.get(key).map(|v| v.span()).unwrap_or(r.span.clone());
        let gone = if rule.objects.is_empty() {
            f.to_string()
        } else {
            rule.objects
                .iter()
                .map(|o| format!("{o}.{f}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.missing(span, msg, rule, gone);
        false
    }

    /// A name the store does not have: a problem in a new policy, a mark on the policy in force.
    fn missing(&mut self, span: Range<usize>, message: String, rule: &mut Rule, gone: String) {
        match self.fit {
            Fit::Strict => self.bad(span, message),
            Fit::InForce => {
                if !rule.gone.contains(&gone) {
                    rule.gone.push(gone);
                }
            }
        }
    }
}

impl Checker<'_> {
    /// Checks the tables and fields a rule's related conditions name, and that an object the
    /// rule applies to references each table: otherwise the condition could never hold. In the
    /// policy in force, a table or field that is gone is marked and its conditions left out.
    fn check_related(&mut self, r: &RuleAt<'_, '_>, rule: &mut Rule) {
        let schema = self.schema;
        let mut conds = std::mem::take(&mut rule.related);
        conds.retain_mut(|c| {
            let span = RELATED
                .iter()
                .filter_map(|k| r.t.get(*k))
                .find(|v| {
                    v.get_ref()
                        .as_table()
                        .is_some_and(|t| t.get(&*c.object).is_some())
                })
                .map(|v| v.span())
                .unwrap_or(r.span.clone());
            let Some(table) = schema.object(&c.object) else {
                let hint = suggestion_suffix(&c.object, schema.objects.keys().map(String::as_str));
                let msg = format!(
                    "{}: related table \"{}\" does not exist in the store{hint}",
                    r.label, c.object
                );
                self.missing(span, msg, rule, c.object.clone());
                return false;
            };
            let mut known = |f: &str, rule: &mut Rule| {
                if table.column(f).is_some() {
                    return true;
                }
                let hint = suggestion_suffix(f, table.column_names());
                let msg = format!(
                    "{}: related field \"{f}\" is not a field of {}{hint}",
                    r.label, c.object
                );
                self.missing(span.clone(), msg, rule, format!("{}.{f}", c.object));
                false
            };
            c.eq.retain(|(f, _)| known(f, rule));
            c.min.retain(|(f, _)| known(f, rule));
            c.max.retain(|(f, _)| known(f, rule));
            self.referenced(r, rule, &c.object, span.clone());
            true
        });
        rule.related = conds;
    }

    /// A problem in a new policy when no object the rule applies to has a foreign key to `table`.
    fn referenced(&mut self, r: &RuleAt<'_, '_>, rule: &Rule, table: &str, span: Range<usize>) {
        if self.fit == Fit::InForce {
            return;
        }
        let schema = self.schema;
        let mut objects: Vec<&Object> = rule
            .objects
            .iter()
            .filter_map(|o| schema.object(o))
            .collect();
        if rule.objects.is_empty() {
            objects = schema.objects.values().collect();
        }
        let refers = |o: &&Object| {
            o.columns
                .iter()
                .any(|c| c.foreign_key.as_ref().is_some_and(|fk| fk.table == table))
        };
        if objects.is_empty() || objects.iter().any(refers) {
            return;
        }
        let msg = format!(
            "{}: no object the rule applies to ({}) references {table} by a foreign key, so its related condition could never hold",
            r.label,
            rule.objects.join(", ")
        );
        self.bad(span, msg);
    }
}

/// Keeps the items whose flag is set.
fn retain_by<T>(items: &mut Vec<T>, keep: &[bool]) {
    let mut flags = keep.iter();
    items.retain(|_| *flags.next().unwrap_or(&true));
}
