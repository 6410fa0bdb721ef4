//! A store left by any earlier crmgate opens, upgrades to the current schema, and answers as a
//! store made at the current schema with the same data does: the same proposals, changes,
//! events and pauses, and an audit log that still verifies.
//!
//! A store at version `k` is built here as crmgate `k` left it: the first `k` migrations'
//! SQL, then rows written with SQL valid at that version (at 8, most signals and rules kept
//! once in `crmgate_shared_texts`). The reference gets the same rows through the current schema.

use std::path::{Path, PathBuf};

use crmgate::audit::{EventRow, GENESIS, sha256_hex};
use crmgate::store::{ListFilter, OpenMode, SCHEMA_VERSION, Store, migrations};
use rusqlite::{Connection, params};

mod common;

const AT: &str = "2026-11-20T10:00:00.000Z";

/// Signals and rules as propose writes them: the texts version 8 kept once.
const SIGNALS: &str = r#"[{"name":"fills an empty field","weight":0.1}]"#;
const RULES: &str = r#"{"action":"review","rules":["supervised"]}"#;
const POLICY: &str = "[[rule]]\nname = \"everything\"\naction = \"review\"\n";
const OTHER_RULES: &str = r#"{"action":"auto","rules":["trusted"]}"#;

/// What a store at a given version can hold, and how its rows are written.
#[derive(Clone, Copy)]
struct Layout {
    /// The data: only what crmgate `features` could have written.
    features: usize,
    /// The schema the rows are written into.
    schema: usize,
}

impl Layout {
    fn has(self, version: usize) -> bool {
        self.features >= version
    }

    /// Before 9, every proposal row had a `target_key` (not null, and unread since 6).
    fn target_key(self) -> bool {
        self.schema < 9
    }

    /// At 8 exactly, a text a proposal shares is kept once and named by id.
    fn shared(self) -> bool {
        self.schema == 8
    }
}

fn build(path: &Path, layout: Layout) {
    let conn = Connection::open(path).unwrap();
    for sql in &migrations()[..layout.schema] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", layout.schema as i64)
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE contacts (id TEXT PRIMARY KEY NOT NULL, first_name TEXT, title TEXT);
         INSERT INTO contacts VALUES ('c-1', 'Ada', NULL), ('c-2', 'Bo', 'CTO'),
                                     ('c-3', 'Cy', 'Analyst'), ('c-4', 'Di', NULL);
         INSERT INTO crmgate_ingests (id, at, actor, file, sha256, format, rows, ingested)
         VALUES (1, '2026-11-20T10:00:00.000Z', 'ops', 'p.csv', 'abc', 'csv', 5, 5);",
    )
    .unwrap();
    insert_proposals(&conn, layout);
    insert_history(&conn, layout);
}

/// One row per proposal state this layout can hold: (id, record, value, state, rules).
fn proposal_rows(
    layout: Layout,
) -> Vec<(i64, &'static str, &'static str, &'static str, &'static str)> {
    let mut rows = vec![
        (1, "c-1", "Head of Data", "pending", RULES),
        (2, "c-2", "CEO", "approved", OTHER_RULES),
        (3, "c-3", "Intern", "rejected", RULES),
        // The newer twin first: the older names it.
        (5, "c-4", "VP Marketing", "pending", RULES),
        (4, "c-4", "VP Sales", "superseded", RULES),
    ];
    if layout.has(4) {
        rows[1].3 = "applied";
    }
    rows
}

fn insert_proposals(conn: &Connection, layout: Layout) {
    let shared = |text: &str| -> i64 {
        conn.query_row(
            "INSERT INTO crmgate_shared_texts (text) VALUES (?1)
             ON CONFLICT (text) DO UPDATE SET text = excluded.text RETURNING id",
            [text],
            |r| r.get(0),
        )
        .unwrap()
    };
    for (id, record, value, state, rules) in proposal_rows(layout) {
        let superseded_by = (state == "superseded").then_some(5);
        // Before 9, every row had a `target_key`: a hash of the target, and 0 from 6 on.
        let (key_column, key) = match (layout.target_key(), layout.has(6)) {
            (false, _) => ("", String::new()),
            (true, true) => (", target_key", ", 0".to_string()),
            (true, false) => (", target_key", format!(", {}", id * 31)),
        };
        let sql = format!(
            "INSERT INTO crmgate_proposals (id, ingest_id, line, source, ext_id, dedupe_key,
                 content_key, kind, object, record, field, value, stated_confidence, has_expected,
                 baseline, state, superseded_by, confidence, signals, decision, rules,
                 policy_version{key_column})
             VALUES (?1, 1, ?1 + 1, 'clearbit', 'p-' || ?1, ?1 * 1000, ?1 * 7, 'update',
                 'contacts', ?2, 'title', ?3, 0.9, 0, NULL, ?4, ?5, 0.8, ?6, ?7, ?8, 1{key})"
        );
        let decision = if rules == OTHER_RULES {
            "auto"
        } else {
            "review"
        };
        conn.execute(
            &sql,
            params![
                id,
                record,
                value,
                state,
                superseded_by,
                SIGNALS,
                decision,
                rules
            ],
        )
        .unwrap();
        // Version 8 kept a text inline the first time a run used it, then shared it.
        if layout.shared() && id != 1 {
            let (s, r) = (shared(SIGNALS), shared(rules));
            conn.execute(
                "UPDATE crmgate_proposals SET signals = NULL, signals_shared = ?2, rules = NULL,
                 rules_shared = ?3 WHERE id = ?1",
                params![id, s, r],
            )
            .unwrap();
        }
    }
    if layout.has(5) {
        conn.execute_batch(
            "UPDATE crmgate_proposals SET proposed_value = value, value = 'Head of AI', edited = 1,
             state = 'approved' WHERE id = 1",
        )
        .unwrap();
    }
}

/// Policy, pauses, runs and changes where the layout has them, and the events of it all,
/// hash-chained.
fn insert_history(conn: &Connection, layout: Layout) {
    let mut events = vec![event("ops", "human", "ingest", None, r#"{"ingest_id":1}"#)];
    if layout.has(2) {
        conn.execute(
            "INSERT INTO crmgate_policies VALUES (1, ?1, 'admin', ?2, ?3)",
            params![AT, sha256_hex(POLICY.as_bytes()), POLICY],
        )
        .unwrap();
        // As crmgate has always written it: the version and the SHA-256 of its text.
        let detail = serde_json::json!({ "version": 1, "sha256": sha256_hex(POLICY.as_bytes()) });
        events.push(event("admin", "human", "policy", None, &detail.to_string()));
    }
    events.push(event(
        "bo",
        "human",
        "approve",
        Some(2),
        r#"{"was":"pending"}"#,
    ));
    events.push(event(
        "bo",
        "human",
        "reject",
        Some(3),
        r#"{"was":"pending"}"#,
    ));
    events.push(event(
        "ops",
        "system",
        "supersede",
        Some(4),
        r#"{"superseded_by":5}"#,
    ));
    if layout.has(5) {
        // A reviewer's edit approves the proposal with the edited value, and says so.
        let mut edit = event("bo", "human", "edit", Some(1), r#"{"was":"pending"}"#);
        edit.new_value = Some("\"Head of AI\"".into());
        events.push(edit);
    }
    if layout.has(3) {
        conn.execute(
            "INSERT INTO crmgate_pauses VALUES ('clearbit', 'bad data', 'admin', ?1)",
            [AT],
        )
        .unwrap();
        // As crmgate has always written it: the source paused, and the reason.
        let mut pause = event("admin", "human", "pause", None, r#"{"reason":"bad data"}"#);
        pause.source = Some("clearbit".into());
        events.push(pause);
    }
    if layout.has(4) {
        conn.execute_batch(
            "INSERT INTO crmgate_runs VALUES (1, 'apply', '2026-11-20T10:00:00.000Z', 'cron');
             INSERT INTO crmgate_changes (id, run_id, proposal_id, object, record, field,
                 before, after, approved_by, policy_version, at)
             VALUES (1, 1, 2, 'contacts', 'c-2', 'title', 'CTO', 'CEO', 'bo', 1,
                 '2026-11-20T10:00:00.000Z');
             UPDATE contacts SET title = 'CEO' WHERE id = 'c-2';",
        )
        .unwrap();
        let mut applied = event("cron", "system", "apply", Some(2), r#"{"run":1}"#);
        (applied.change_id, applied.run_id) = (Some(1), Some(1));
        // What the change holds, as crmgate's apply has always recorded it.
        (applied.record, applied.field) = (Some("c-2".into()), Some("title".into()));
        (applied.prev_value, applied.new_value) = (Some("\"CTO\"".into()), Some("\"CEO\"".into()));
        applied.approver = Some("bo".into());
        events.push(applied);
    }
    chain(conn, events);
}

fn event(actor: &str, kind: &str, action: &str, proposal: Option<i64>, detail: &str) -> EventRow {
    EventRow {
        seq: 0,
        at: AT.into(),
        actor: actor.into(),
        actor_kind: kind.into(),
        action: action.into(),
        proposal_id: proposal,
        change_id: None,
        run_id: None,
        object: proposal.map(|_| "contacts".into()),
        record: None,
        field: None,
        prev_value: None,
        new_value: None,
        source: proposal.map(|_| "clearbit".into()),
        confidence: None,
        rules: None,
        policy_version: None,
        approver: None,
        detail: Some(detail.into()),
        prev_hash: String::new(),
        hash: String::new(),
        os_user: None,
    }
}

/// Numbers and hashes `events` in order, as crmgate appends them, and inserts them.
fn chain(conn: &Connection, events: Vec<EventRow>) {
    let mut prev = GENESIS.to_string();
    for (i, mut e) in events.into_iter().enumerate() {
        e.seq = i as i64 + 1;
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        conn.execute(
            "INSERT INTO crmgate_events (seq, at, actor, actor_kind, action, proposal_id,
                 change_id, run_id, object, source, detail, prev_hash, hash, record, field,
                 prev_value, new_value, approver)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18)",
            params![
                e.seq,
                e.at,
                e.actor,
                e.actor_kind,
                e.action,
                e.proposal_id,
                e.change_id,
                e.run_id,
                e.object,
                e.source,
                e.detail,
                e.prev_hash,
                e.hash,
                e.record,
                e.field,
                e.prev_value,
                e.new_value,
                e.approver
            ],
        )
        .unwrap();
        prev = e.hash;
    }
}

/// Everything a user can read back from a store, as JSON: proposals (with their signals and
/// rules), the events about each, changes, pauses, and whether the audit log verifies.
fn answers(store: &Store) -> serde_json::Value {
    let (proposals, total) = store.list_proposals(&ListFilter::default()).unwrap();
    let shown: Vec<_> = proposals
        .iter()
        .map(|p| {
            let events: Vec<_> = store
                .events_for_proposal(p.id)
                .unwrap()
                .into_iter()
                .map(|e| (e.seq, e.action, e.hash))
                .collect();
            serde_json::json!({ "proposal": store.proposal(p.id).unwrap(), "events": events })
        })
        .collect();
    let change = store
        .change(1)
        .unwrap()
        .map(|c| format!("{} {} {:?} -> {:?}", c.record, c.field, c.before, c.after));
    let pauses: Vec<_> = store
        .pauses()
        .unwrap()
        .into_iter()
        .map(|p| (p.source, p.reason))
        .collect();
    serde_json::json!({
        "total": total,
        "proposals": shown,
        "change": change,
        "pauses": format!("{pauses:?}"),
        "events_checked": common::audit_checked(store),
    })
}

fn columns(path: &Path, table: &str) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .unwrap();
    stmt.query_map([table], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn store_at(dir: &Path, name: &str, layout: Layout) -> PathBuf {
    let path = dir.join(name);
    build(&path, layout);
    path
}

/// A store as crmgate `version` left it, with all it could hold.
fn store_left_by(dir: &Path, version: usize) -> PathBuf {
    let layout = Layout {
        features: version,
        schema: version,
    };
    store_at(dir, &format!("v{version}.db"), layout)
}

#[test]
fn a_store_from_every_earlier_version_upgrades_and_answers_as_a_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let current = SCHEMA_VERSION as usize;
    for version in 1..current {
        let old = store_left_by(dir.path(), version);
        let reference = store_at(
            dir.path(),
            &format!("ref{version}.db"),
            Layout {
                features: version,
                schema: current,
            },
        );
        let upgraded = Store::open(&old, OpenMode::Existing)
            .unwrap_or_else(|e| panic!("version {version} does not open: {e}"));
        let expected = Store::open(&reference, OpenMode::Existing).unwrap();
        assert_eq!(
            answers(&upgraded),
            answers(&expected),
            "a store at version {version}, upgraded"
        );
        // Its rows match the log they were written with; those queued before digests were
        // recorded are named as such, not as tampered with.
        match crmgate::admin::audit::verify(&upgraded, None).unwrap() {
            crmgate::admin::audit::Verified::Intact { warnings, .. } => assert!(
                warnings
                    .iter()
                    .any(|w| w.contains("before content digests")),
                "version {version}: {warnings:?}"
            ),
            other => panic!("version {version} upgraded does not verify: {other:?}"),
        }
        let conn = Connection::open(&old).unwrap();
        let now: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(now, SCHEMA_VERSION, "version {version}");
    }
}

#[test]
fn shared_signals_and_rules_move_back_into_each_proposal_and_their_table_goes() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_left_by(dir.path(), 8);
    let conn = Connection::open(&path).unwrap();
    let shared: i64 = conn
        .query_row(
            "SELECT count(*) FROM crmgate_proposals WHERE signals IS NULL AND rules IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        shared, 4,
        "the store at 8 keeps four proposals' texts shared"
    );
    drop(conn);

    let store = Store::open(&path, OpenMode::Existing).unwrap();
    for p in store.list_proposals(&ListFilter::default()).unwrap().0 {
        let signals = serde_json::to_string(&p.signals).unwrap();
        let rules = serde_json::to_string(&p.rules).unwrap();
        assert_eq!(signals, SIGNALS, "proposal {}", p.id);
        let expected = if p.id == 2 { OTHER_RULES } else { RULES };
        assert_eq!(rules, expected, "proposal {}", p.id);
    }
    drop(store);
    let cols = columns(&path, "crmgate_proposals");
    for gone in ["signals_shared", "rules_shared", "target_key"] {
        assert!(
            !cols.iter().any(|c| c == gone),
            "{gone} is still in {cols:?}"
        );
    }
    assert!(columns(&path, "crmgate_shared_texts").is_empty());
}

#[test]
fn an_upgraded_store_queues_new_proposals() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_left_by(dir.path(), 8);
    let file = dir.path().join("new.csv");
    std::fs::write(
        &file,
        "id,source,kind,object,record,field,value\nn-1,clearbit,update,contacts,c-3,title,Lead\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crmgate"))
        .env_remove("CRMGATE_DB")
        .args(["--db", path.to_str().unwrap(), "--as", "ops", "--quiet"])
        .arg("propose")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(&path, OpenMode::Existing).unwrap();
    let p = store.proposal_by_source_id("clearbit", "n-1").unwrap();
    let p = p.expect("the new proposal is queued");
    assert_eq!(p.record, "c-3");
    assert!(p.signals.is_some() && p.rules.is_some());
    assert!(answers(&store)["events_checked"].as_u64().unwrap() > 4);
}
