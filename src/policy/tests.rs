use super::*;
use crate::model::Related;
use crate::schema::{Affinity, Column, ForeignKey, Object, Schema};

const DEMO: &str = include_str!("../../fixtures/policy/demo.toml");
const DEFAULT: &str = include_str!("../../fixtures/policy/default.toml");

fn schema() -> Schema {
    let obj = |name: &str, cols: &[(&str, &str)]| Object {
        name: name.into(),
        pk: 0,
        reach: crate::schema::Reach::Named,
        columns: cols
            .iter()
            .map(|(n, t)| Column {
                name: n.to_string(),
                decl_type: t.to_string(),
                affinity: Affinity::from_decl(t),
                not_null: false,
                has_default: false,
                primary_key: *n == "id",
                foreign_key: (*n == "company_id").then(|| ForeignKey {
                    table: "companies".into(),
                    column: "id".into(),
                }),
            })
            .collect(),
    };
    let mut s = Schema::default();
    for o in [
        obj(
            "contacts",
            &[
                ("id", "TEXT"),
                ("email", "TEXT"),
                ("email_status", "TEXT"),
                ("lifecycle_stage", "TEXT"),
                ("owner", "TEXT"),
                ("sensitive", "INTEGER"),
                ("legal_hold", "INTEGER"),
                ("title", "TEXT"),
                ("company_id", "TEXT"),
            ],
        ),
        obj(
            "companies",
            &[
                ("id", "TEXT"),
                ("name", "TEXT"),
                ("tier", "TEXT"),
                ("owner", "TEXT"),
                ("legal_hold", "INTEGER"),
                ("industry", "TEXT"),
            ],
        ),
        obj(
            "deals",
            &[
                ("id", "TEXT"),
                ("amount", "INTEGER"),
                ("stage", "TEXT"),
                ("owner", "TEXT"),
                ("company_id", "TEXT"),
            ],
        ),
        obj(
            "activities",
            &[("id", "TEXT"), ("kind", "TEXT"), ("body", "TEXT")],
        ),
    ] {
        s.objects.insert(o.name.clone(), o);
    }
    s
}

fn policy(text: &str) -> Policy {
    parse(text, &schema()).unwrap_or_else(|p| panic!("policy does not parse: {p:?}"))
}

fn problems(text: &str) -> Vec<PolicyProblem> {
    parse(text, &schema()).expect_err("the policy should be refused")
}

/// A proposal's facts, with the fields a test changes.
struct F {
    kind: Kind,
    source: &'static str,
    object: &'static str,
    field: Option<&'static str>,
    value: Value,
    current: Value,
    trigger: Option<&'static str>,
    confidence: f64,
    record: Vec<(String, Value)>,
    other: Vec<(String, Value)>,
    related: Vec<Related>,
}

impl Default for F {
    fn default() -> Self {
        F {
            kind: Kind::Update,
            source: "clearbit",
            object: "contacts",
            field: Some("title"),
            value: Value::Text("CTO".into()),
            current: Value::Null,
            trigger: None,
            confidence: 0.95,
            record: vec![
                ("sensitive".into(), Value::Integer(0)),
                ("legal_hold".into(), Value::Integer(0)),
            ],
            other: vec![],
            related: vec![],
        }
    }
}

fn decide_on(p: &Policy, f: &F, now: Situation) -> Decision {
    fn borrow(r: &[(String, Value)]) -> Vec<(&str, &Value)> {
        r.iter().map(|(c, v)| (c.as_str(), v)).collect()
    }
    let first = borrow(&f.record);
    let other = borrow(&f.other);
    let records: Vec<&[(&str, &Value)]> = if f.other.is_empty() {
        vec![&first]
    } else {
        vec![&first, &other]
    };
    decide(
        p,
        &Facts {
            kind: f.kind,
            source: f.source,
            object: f.object,
            field: f.field,
            value: &f.value,
            current: &f.current,
            trigger: f.trigger,
            confidence: f.confidence,
            records: &records,
            related: &f.related,
        },
        &now,
    )
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn the_spec_policies_parse() {
    let demo = policy(DEMO);
    assert_eq!(demo.rules.len(), 12);
    assert_eq!(demo.source("clearbit").autonomy, Autonomy::Autonomous);
    assert_eq!(demo.source("sdr-agent").autonomy, Autonomy::Assistive);
    assert_eq!(demo.source("unknown").autonomy, Autonomy::Supervised);
    assert_eq!(
        demo.circuit_breaker,
        Some(CircuitBreaker {
            window: 50,
            max_reject_rate: 0.30
        })
    );
    let default = policy(DEFAULT);
    assert!(default.sources.is_empty() && default.roles.is_empty());
    // The demo's rules, but the one for its activity agent: the default names no table a store
    // of its own may lack.
    assert_eq!(
        default.rules.iter().map(|r| &r.name).collect::<Vec<_>>(),
        demo.rules
            .iter()
            .map(|r| &r.name)
            .filter(|n| *n != "log-activities")
            .collect::<Vec<_>>()
    );
}

#[test]
fn each_rule_condition_matches_and_fails() {
    let rule = |cond: &str| format!("[[rule]]\nname = \"r\"\n{cond}\naction = \"review\"\n");
    let base = F::default;
    // (condition, facts that match, facts that do not)
    let cases: Vec<(&str, F, F)> = vec![
        (
            "kind = [\"verify\"]",
            F {
                kind: Kind::Verify,
                ..base()
            },
            base(),
        ),
        (
            "source = [\"zoominfo\"]",
            F {
                source: "zoominfo",
                ..base()
            },
            base(),
        ),
        (
            "object = [\"deals\"]",
            F {
                object: "deals",
                ..base()
            },
            base(),
        ),
        (
            "field = [\"title\", \"email\"]",
            base(),
            F {
                field: Some("owner"),
                ..base()
            },
        ),
        (
            "value = [\"valid\"]",
            F {
                value: text("valid"),
                ..base()
            },
            F {
                value: text("risky"),
                ..base()
            },
        ),
        (
            "current = \"empty\"",
            base(),
            F {
                current: text("CEO"),
                ..base()
            },
        ),
        (
            "current = \"set\"",
            F {
                current: text("CEO"),
                ..base()
            },
            base(),
        ),
        (
            "min_confidence = 0.8",
            F {
                confidence: 0.8,
                ..base()
            },
            F {
                confidence: 0.79,
                ..base()
            },
        ),
        (
            "max_confidence = 0.5",
            F {
                confidence: 0.5,
                ..base()
            },
            F {
                confidence: 0.51,
                ..base()
            },
        ),
        (
            "trigger = [\"form_submitted\"]",
            F {
                trigger: Some("form_submitted"),
                ..base()
            },
            F {
                trigger: Some("ai_score"),
                ..base()
            },
        ),
        (
            "trigger = [\"form_submitted\"]",
            F {
                trigger: Some("form_submitted"),
                ..base()
            },
            F {
                trigger: None,
                ..base()
            },
        ),
        (
            "record = { sensitive = 1 }",
            F {
                record: vec![("sensitive".into(), Value::Integer(1))],
                ..base()
            },
            base(),
        ),
        (
            "record = { sensitive = true }",
            F {
                record: vec![("sensitive".into(), Value::Integer(1))],
                ..base()
            },
            base(),
        ),
        (
            "record = { tier = \"enterprise\" }",
            F {
                record: vec![("tier".into(), text("enterprise"))],
                ..base()
            },
            F {
                record: vec![("tier".into(), text("smb"))],
                ..base()
            },
        ),
        (
            "record_min = { amount = 100000 }",
            F {
                record: vec![("amount".into(), Value::Integer(100_000))],
                ..base()
            },
            F {
                record: vec![("amount".into(), Value::Integer(99_999))],
                ..base()
            },
        ),
        (
            "record_min = { amount = 100000 }",
            F {
                record: vec![("amount".into(), Value::Integer(250_000))],
                ..base()
            },
            F {
                record: vec![("amount".into(), Value::Null)],
                ..base()
            },
        ),
        (
            "record_max = { amount = 10 }",
            F {
                record: vec![("amount".into(), Value::Integer(10))],
                ..base()
            },
            F {
                record: vec![("amount".into(), Value::Integer(11))],
                ..base()
            },
        ),
        // A merge is held by a condition on either record.
        (
            "record = { legal_hold = 1 }",
            F {
                kind: Kind::Merge,
                field: None,
                other: vec![("legal_hold".into(), Value::Integer(1))],
                ..base()
            },
            F {
                kind: Kind::Merge,
                field: None,
                other: vec![("legal_hold".into(), Value::Integer(0))],
                ..base()
            },
        ),
        // All conditions of a rule must hold.
        (
            "kind = [\"update\"]\nsource = [\"zoominfo\"]",
            F {
                source: "zoominfo",
                ..base()
            },
            F {
                kind: Kind::Owner,
                source: "zoominfo",
                ..base()
            },
        ),
    ];
    for (cond, yes, no) in cases {
        let p = policy(&rule(cond));
        assert_eq!(
            decide_on(&p, &yes, Situation::default()).rules,
            vec!["r"],
            "`{cond}` should match"
        );
        assert!(
            decide_on(&p, &no, Situation::default()).rules.is_empty(),
            "`{cond}` should not match"
        );
    }
}

#[test]
fn the_most_restrictive_action_wins_and_no_match_is_review() {
    let p = policy(
        "[[rule]]\nname = \"a\"\nkind = [\"update\"]\naction = \"auto\"\n\
         [[rule]]\nname = \"s\"\nsource = [\"clearbit\"]\naction = \"suggest\"\n\
         [[rule]]\nname = \"r\"\nfield = [\"title\"]\naction = \"review\"\n\
         [[rule]]\nname = \"b\"\nrecord = { legal_hold = 1 }\naction = \"block\"\n",
    );
    let d = decide_on(&p, &F::default(), Situation::default());
    assert_eq!(
        (d.action, d.rules.clone()),
        (Action::Review, vec!["a".into(), "s".into(), "r".into()])
    );
    let held = F {
        record: vec![("legal_hold".into(), Value::Integer(1))],
        ..F::default()
    };
    assert_eq!(
        decide_on(&p, &held, Situation::default()).action,
        Action::Block
    );
    let none = F {
        kind: Kind::Owner,
        source: "zoominfo",
        field: Some("owner"),
        ..F::default()
    };
    let d = decide_on(&p, &none, Situation::default());
    assert_eq!(d.action, Action::Review);
    assert_eq!(d.why(&p), vec!["no rule matched: review"]);
}

#[test]
fn auto_needs_autonomy_confidence_no_pause_and_room_in_the_limits() {
    let p = policy(DEMO);
    let fill = || F {
        kind: Kind::Update,
        current: Value::Null,
        confidence: 0.95,
        ..F::default()
    };
    let ok = Situation::default();
    // (facts, situation, expected action, a word the explanation must contain)
    let cases: Vec<(F, Situation, Action, &str)> = vec![
        (fill(), ok, Action::Auto, "fill-empty-fields"),
        (
            F {
                current: text("CEO"),
                ..fill()
            },
            ok,
            Action::Review,
            "no rule matched",
        ),
        (
            F {
                source: "zoominfo",
                ..fill()
            },
            ok,
            Action::Review,
            "supervised",
        ),
        (
            F {
                source: "sdr-agent",
                ..fill()
            },
            ok,
            Action::Suggest,
            "assistive",
        ),
        (
            F {
                confidence: 0.85,
                ..fill()
            },
            ok,
            Action::Auto,
            "fill-empty-fields",
        ),
        (
            F {
                confidence: 0.79,
                ..fill()
            },
            ok,
            Action::Review,
            "no rule matched",
        ),
        (
            F {
                kind: Kind::Verify,
                field: Some("email_status"),
                value: text("valid"),
                confidence: 0.89,
                ..fill()
            },
            ok,
            Action::Review,
            "below the auto threshold 0.90",
        ),
        (
            F {
                kind: Kind::Verify,
                field: Some("email_status"),
                value: text("valid"),
                ..fill()
            },
            ok,
            Action::Auto,
            "email-verified",
        ),
        (
            F {
                kind: Kind::Verify,
                field: Some("email_status"),
                value: text("risky"),
                ..fill()
            },
            ok,
            Action::Review,
            "no rule matched",
        ),
        (
            fill(),
            Situation {
                store_paused: true,
                ..ok
            },
            Action::Review,
            "the store is paused",
        ),
        (
            fill(),
            Situation {
                source_paused: true,
                ..ok
            },
            Action::Review,
            "source clearbit is paused",
        ),
        (
            fill(),
            Situation {
                auto_in_run: 999,
                ..ok
            },
            Action::Auto,
            "fill-empty-fields",
        ),
        (
            fill(),
            Situation {
                auto_in_run: 1000,
                ..ok
            },
            Action::Review,
            "max_auto_per_run",
        ),
        (
            fill(),
            Situation {
                auto_today: 10_000,
                ..ok
            },
            Action::Review,
            "max_auto_per_day",
        ),
        (
            F {
                kind: Kind::Lifecycle,
                field: Some("lifecycle_stage"),
                value: text("mql"),
                trigger: Some("form_submitted"),
                ..fill()
            },
            ok,
            Action::Auto,
            "lifecycle-on-event",
        ),
        (
            F {
                kind: Kind::Lifecycle,
                field: Some("lifecycle_stage"),
                value: text("mql"),
                trigger: Some("ai_score"),
                ..fill()
            },
            ok,
            Action::Review,
            "no rule matched",
        ),
        (
            F {
                kind: Kind::Owner,
                field: Some("owner"),
                value: text("mia"),
                ..fill()
            },
            ok,
            Action::Review,
            "owner-needs-human",
        ),
        (
            F {
                kind: Kind::Merge,
                field: None,
                value: Value::Null,
                ..fill()
            },
            ok,
            Action::Review,
            "merges-need-human",
        ),
        (
            F {
                record: vec![("sensitive".into(), Value::Integer(1))],
                ..fill()
            },
            ok,
            Action::Review,
            "sensitive-contacts",
        ),
        (
            F {
                record: vec![("legal_hold".into(), Value::Integer(1))],
                ..fill()
            },
            ok,
            Action::Block,
            "legal-hold",
        ),
        (
            F {
                object: "companies",
                field: Some("industry"),
                record: vec![("tier".into(), text("enterprise"))],
                ..fill()
            },
            ok,
            Action::Review,
            "high-value-accounts",
        ),
        (
            F {
                object: "deals",
                field: Some("stage"),
                record: vec![("amount".into(), Value::Integer(150_000))],
                ..fill()
            },
            ok,
            Action::Review,
            "big-deals",
        ),
    ];
    for (i, (f, now, want, word)) in cases.into_iter().enumerate() {
        let d = decide_on(&p, &f, now);
        assert_eq!(d.action, want, "case {i}: {:?}", d.why(&p));
        assert!(
            d.why(&p).iter().any(|w| w.contains(word)),
            "case {i}: `{word}` not in {:?}",
            d.why(&p)
        );
    }
}

/// An auto rule for updates that also names `kind` (which a policy check would refuse), with
/// clearbit autonomous: all an auto decision needs but for the kind.
fn auto_rule_also_for(kind: Kind) -> Policy {
    let mut p = policy("[[rule]]\nname = \"a\"\nkind = [\"update\"]\naction = \"auto\"\n");
    p.rules[0].kinds.push(kind);
    p.sources.insert(
        "clearbit".into(),
        SourcePolicy {
            autonomy: Autonomy::Autonomous,
            max_auto_per_run: 10,
            max_auto_per_day: 10,
            submitters: None,
        },
    );
    p
}

#[test]
fn a_merge_is_never_auto_even_from_a_rule_that_could_match_it() {
    // Decide refuses auto for merges whatever the rules say (policy checks make this moot, but
    // the decision does not rely on them).
    let p2 = auto_rule_also_for(Kind::Merge);
    let merge = F {
        kind: Kind::Merge,
        field: None,
        ..F::default()
    };
    let d = decide_on(&p2, &merge, Situation::default());
    assert_eq!(d.action, Action::Review);
    assert!(
        d.why(&p2)
            .iter()
            .any(|w| w.contains("merges are never auto"))
    );
}

#[test]
fn an_owner_change_is_never_auto_and_a_policy_that_tries_is_refused() {
    for (text, words) in [
        (
            "[[rule]]\nname = \"x\"\nkind = [\"owner\"]\naction = \"auto\"\n",
            "owner changes are never auto",
        ),
        (
            "[[rule]]\nname = \"x\"\nkind = [\"update\", \"owner\"]\naction = \"auto\"\n",
            "owner changes are never auto",
        ),
        (
            "[[rule]]\nname = \"x\"\naction = \"auto\"\n",
            "nor are owner changes",
        ),
    ] {
        let ps = problems(text);
        assert!(
            ps.iter().any(|p| p.line == 3 && p.message.contains(words)),
            "{text}: {ps:?}"
        );
    }
    // Decide refuses auto for owner changes whatever the rules say.
    let p = auto_rule_also_for(Kind::Owner);
    let owner = F {
        kind: Kind::Owner,
        field: Some("owner"),
        ..F::default()
    };
    let d = decide_on(&p, &owner, Situation::default());
    assert_eq!(d.action, Action::Review);
    assert!(
        d.why(&p)
            .iter()
            .any(|w| w.contains("owner changes are never auto"))
    );
}

#[test]
fn a_related_condition_holds_when_a_referenced_record_in_its_table_matches() {
    let p = policy(
        "[[rule]]\nname = \"hold\"\nrelated = { companies = { legal_hold = 1 } }\naction = \"block\"\n\n\
         [[rule]]\nname = \"big\"\nobject = [\"contacts\"]\nrelated_min = { companies = { legal_hold = 2 } }\n\
         related_max = { companies = { legal_hold = 3 } }\naction = \"review\"\n",
    );
    let company = |hold: i64| Related {
        object: "companies".into(),
        fields: vec![
            ("id".into(), text("co-1")),
            ("legal_hold".into(), Value::Integer(hold)),
        ],
    };
    let with = |related: Vec<Related>| {
        decide_on(
            &p,
            &F {
                related,
                ..F::default()
            },
            Situation::default(),
        )
    };
    assert_eq!(with(vec![company(1)]).action, Action::Block);
    assert_eq!(with(vec![company(1)]).rules, ["hold"]);
    assert_eq!(with(vec![company(0)]).rules, Vec::<String>::new());
    assert_eq!(with(vec![]).rules, Vec::<String>::new());
    assert_eq!(with(vec![company(2)]).rules, ["big"]);
    assert_eq!(with(vec![company(4)]).rules, Vec::<String>::new());
    // A record of another table with the same field is not the company.
    let other = Related {
        object: "deals".into(),
        fields: vec![("legal_hold".into(), Value::Integer(1))],
    };
    assert_eq!(with(vec![other]).rules, Vec::<String>::new());
    // The table and fields are checked, and the table must be one the rule's objects reference.
    for (text, words) in [
        (
            "[[rule]]\nname = \"x\"\nrelated = { companys = { tier = \"a\" } }\naction = \"block\"\n",
            "related table \"companys\" does not exist in the store (did you mean \"companies\"?)",
        ),
        (
            "[[rule]]\nname = \"x\"\nrelated = { companies = { teir = \"a\" } }\naction = \"block\"\n",
            "related field \"teir\" is not a field of companies (did you mean \"tier\"?)",
        ),
        (
            "[[rule]]\nname = \"x\"\nobject = [\"companies\"]\nrelated = { companies = { tier = \"a\" } }\naction = \"block\"\n",
            "no object the rule applies to (companies) references companies",
        ),
        (
            "[[rule]]\nname = \"x\"\nrelated_min = { companies = { tier = \"a\" } }\naction = \"block\"\n",
            "related_min.companies.tier must be a number",
        ),
    ] {
        let ps = problems(text);
        assert!(
            ps.iter().any(
                |p| text.lines().nth(p.line - 1).unwrap().starts_with("related")
                    && p.message.contains(words)
            ),
            "{text}: {ps:?}"
        );
    }
}

#[test]
fn approvers_come_from_every_matched_rule_and_single_user_mode_allows_all() {
    let p = policy(DEMO);
    let f = F {
        object: "companies",
        kind: Kind::Owner,
        field: Some("owner"),
        record: vec![("tier".into(), text("enterprise"))],
        ..F::default()
    };
    let d = decide_on(&p, &f, Situation::default());
    assert_eq!(d.approvers, vec!["ops", "manager"]);
    assert!(p.may_approve("alice", &d.approvers), "alice holds ops");
    assert!(p.may_approve("mia", &d.approvers), "mia holds manager");
    assert!(!p.may_approve("bob", &d.approvers), "bob is an sdr");
    assert!(!p.may_approve("stranger", &d.approvers));
    let single = policy(DEFAULT);
    assert!(single.may_approve("anyone", &d.approvers));
    assert!(single.has_role("anyone", "admin"));
    assert!(p.has_role("alice", "admin") && !p.has_role("mia", "admin"));
}

#[test]
fn bad_policies_are_refused_with_the_line() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "[defaults]\nautonomy = \"supervised\"\nbogus = 1\n",
            3,
            "unknown field `bogus`",
        ),
        (
            "[[rule]]\nname = \"x\"\naction = \"approve\"\n",
            3,
            "action \"approve\" is not one of",
        ),
        (
            "[[rule]]\nname = \"x\"\nkind = [\"merge\"]\naction = \"auto\"\n",
            3,
            "merges are never auto",
        ),
        (
            "[[rule]]\nname = \"x\"\naction = \"auto\"\n",
            3,
            "merges are never auto",
        ),
        (
            "[[rule]]\nname = \"x\"\nkind = [\"upsert\"]\naction = \"review\"\n",
            3,
            "kind \"upsert\"",
        ),
        (
            "[[rule]]\nname = \"x\"\nobject = [\"contcts\"]\naction = \"review\"\n",
            3,
            "did you mean \"contacts\"",
        ),
        (
            "[[rule]]\nname = \"x\"\nobject = [\"deals\"]\nfield = [\"emial\"]\naction = \"review\"\n",
            4,
            "\"emial\" is not a field of deals",
        ),
        (
            "[[rule]]\nname = \"x\"\nrecord = { legal_hodl = 1 }\naction = \"block\"\n",
            3,
            "did you mean \"legal_hold\"",
        ),
        (
            "[[rule]]\nname = \"x\"\ncurrent = \"full\"\naction = \"review\"\n",
            3,
            "current \"full\"",
        ),
        (
            "[[rule]]\nname = \"x\"\nmin_confidence = 1.5\naction = \"review\"\n",
            3,
            "outside 0..1",
        ),
        (
            "[[rule]]\nname = \"x\"\naction = \"review\"\n[[rule]]\nname = \"x\"\naction = \"review\"\n",
            5,
            "used twice",
        ),
        (
            "[[rule]]\nname = \"x\"\naction = \"review\"\napprovers = [\"cfo\"]\n[roles]\nalice = [\"ops\"]\n",
            4,
            "approver role \"cfo\"",
        ),
        (
            "[sources.clearbit]\nautonomy = \"yolo\"\n",
            2,
            "autonomy \"yolo\"",
        ),
        (
            "[circuit_breaker]\nwindow = 50\nmax_reject_rate = 3.0\n",
            3,
            "max_reject_rate",
        ),
        ("[[rule]\nname = \"x\"\n", 1, ""),
    ];
    for (text, line, words) in cases {
        let ps = problems(text);
        assert!(
            ps.iter()
                .any(|p| p.line == *line && p.message.contains(words)),
            "expected line {line} `{words}` in {ps:?} for:\n{text}"
        );
    }
}

#[test]
fn every_problem_in_a_policy_is_reported_in_one_pass_each_with_its_line() {
    let text = "\
[defaults]
autonomy = \"supervised\"
auto_min_confidnce = 0.9
max_auto_per_run = -1

[[rule]]
name = \"a\"
kinds = [\"update\"]
action = \"auto\"

[[rule]]
name = \"b\"
min_confidence = \"high\"
action = \"review\"

[[rule]]
object = [\"contacts\"]
action = \"review\"

[[rule]]
name = \"d\"
object = [\"deals\"]
record_min = { amout = 100 }
action = \"aprove\"

[rolse]
";
    let ps = problems(text);
    let expect: &[(usize, &str)] = &[
        (
            3,
            "unknown field `auto_min_confidnce` (did you mean \"auto_min_confidence\"?)",
        ),
        (4, "max_auto_per_run must be a whole number"),
        (8, "unknown field `kinds` (did you mean \"kind\"?)"),
        (9, "merges are never auto"),
        (13, "min_confidence must be a number, not a string"),
        (16, "rule #3 has no name"),
        (
            23,
            "\"amout\" is not a field of deals (did you mean \"amount\"?)",
        ),
        (24, "action \"aprove\" is not one of"),
        (26, "unknown field `rolse`"),
    ];
    for (line, words) in expect {
        assert!(
            ps.iter()
                .any(|p| p.line == *line && p.message.contains(words)),
            "expected line {line} `{words}` in:\n{ps:#?}"
        );
    }
    assert_eq!(ps.len(), expect.len(), "one problem each: {ps:#?}");
}

#[test]
fn a_rule_naming_a_dropped_column_is_kept_in_force_and_lets_nothing_it_could_match_through() {
    let mut dropped = schema();
    dropped
        .objects
        .get_mut("companies")
        .unwrap()
        .columns
        .retain(|c| c.name != "tier");
    // A new policy naming the column is refused, as before.
    assert!(
        parse(DEMO, &dropped)
            .unwrap_err()
            .iter()
            .any(|p| p.message.contains("\"tier\""))
    );
    // The policy in force is read; the rule is marked, and says why.
    let p = parse_in_force(DEMO, &dropped).expect("the policy in force is read");
    let gone: Vec<&str> = p.unevaluable().map(|r| r.name.as_str()).collect();
    assert_eq!(
        gone,
        [
            "high-value-accounts",
            "enterprise-accounts-people-and-deals"
        ]
    );
    let company = F {
        source: "clearbit",
        object: "companies",
        field: Some("industry"),
        record: vec![("legal_hold".into(), Value::Integer(0))],
        ..F::default()
    };
    let d = decide_on(&p, &company, Situation::default());
    assert_eq!(d.action, Action::Review, "{d:?}");
    assert_eq!(d.approvers, ["manager"]);
    assert!(d.why(&p).iter().any(|w| w.contains(
        "rule \"high-value-accounts\" names companies.tier, which the store no longer has"
    )));
    // What the rule could never match (another object) is decided as before.
    let contact = F::default();
    assert_eq!(
        decide_on(&p, &contact, Situation::default()).action,
        Action::Auto
    );
    // A stop rule that still holds still stops.
    let held = F {
        record: vec![("legal_hold".into(), Value::Integer(1))],
        ..company
    };
    assert_eq!(
        decide_on(&p, &held, Situation::default()).action,
        Action::Block
    );
}
