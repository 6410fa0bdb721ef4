//! Numbered, forward-only migrations of crmgate's own tables, tracked by `PRAGMA user_version`.
//! Each runs in its own transaction. Never edit a shipped migration: add the next one.

pub const MIGRATIONS: &[&str] = &[
    // 1: the proposal queue, its ingests and the audit log.
    r#"
CREATE TABLE crmgate_ingests (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    file        TEXT NOT NULL,
    sha256      TEXT,
    format      TEXT NOT NULL,
    rows        INTEGER NOT NULL DEFAULT 0,
    ingested    INTEGER NOT NULL DEFAULT 0,
    duplicates  INTEGER NOT NULL DEFAULT 0,
    superseded  INTEGER NOT NULL DEFAULT 0,
    rejected    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE crmgate_proposals (
    id                INTEGER PRIMARY KEY,
    ingest_id         INTEGER NOT NULL REFERENCES crmgate_ingests(id),
    line              INTEGER NOT NULL,
    source            TEXT NOT NULL,
    ext_id            TEXT,
    dedupe_key        INTEGER NOT NULL,
    content_key       INTEGER NOT NULL,
    target_key        INTEGER NOT NULL,
    kind              TEXT NOT NULL,
    object            TEXT NOT NULL,
    record            TEXT NOT NULL,
    field             TEXT,
    value,
    merge_into        TEXT,
    stated_confidence REAL,
    has_expected      INTEGER NOT NULL DEFAULT 0,
    expected,
    trigger           TEXT,
    reason            TEXT,
    baseline,
    baseline_fp       TEXT,
    state             TEXT NOT NULL,
    superseded_by     INTEGER REFERENCES crmgate_proposals(id),
    confidence        REAL,
    signals           TEXT,
    decision          TEXT,
    rules             TEXT,
    policy_version    INTEGER
    -- No per-row timestamps: a proposal was created when its ingest ran
    -- (crmgate_ingests.at), and every later change of state is an event with its own time.
);
-- Idempotent re-ingest rests on an 8-byte key of (source, id), or of the content, rather than on
-- the text itself: the index stays small enough to stay in the page cache while a million rows
-- stream in, and the insert's own uniqueness check is the duplicate lookup.
CREATE UNIQUE INDEX crmgate_proposals_dedupe ON crmgate_proposals(dedupe_key);
-- Only undecided proposals can be superseded, so only they are indexed by target.
CREATE INDEX crmgate_proposals_open_target ON crmgate_proposals(target_key)
    WHERE state IN ('pending', 'suggested');

CREATE TABLE crmgate_events (
    seq            INTEGER PRIMARY KEY,
    at             TEXT NOT NULL,
    actor          TEXT NOT NULL,
    actor_kind     TEXT NOT NULL,
    action         TEXT NOT NULL,
    proposal_id    INTEGER,
    change_id      INTEGER,
    run_id         INTEGER,
    object         TEXT,
    record         TEXT,
    field          TEXT,
    prev_value     TEXT,
    new_value      TEXT,
    source         TEXT,
    confidence     REAL,
    rules          TEXT,
    policy_version INTEGER,
    approver       TEXT,
    detail         TEXT,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX crmgate_events_proposal ON crmgate_events(proposal_id) WHERE proposal_id IS NOT NULL;
CREATE TRIGGER crmgate_events_append_only_update BEFORE UPDATE ON crmgate_events
BEGIN SELECT RAISE(ABORT, 'crmgate_events is append-only'); END;
CREATE TRIGGER crmgate_events_append_only_delete BEFORE DELETE ON crmgate_events
BEGIN SELECT RAISE(ABORT, 'crmgate_events is append-only'); END;
"#,
    // 2: the policy, versioned. Versions are never changed, only added.
    r#"
CREATE TABLE crmgate_policies (
    version INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    sha256  TEXT NOT NULL,
    text    TEXT NOT NULL
);
CREATE TRIGGER crmgate_policies_append_only_update BEFORE UPDATE ON crmgate_policies
BEGIN SELECT RAISE(ABORT, 'crmgate_policies is append-only'); END;
CREATE TRIGGER crmgate_policies_append_only_delete BEFORE DELETE ON crmgate_policies
BEGIN SELECT RAISE(ABORT, 'crmgate_policies is append-only'); END;
"#,
    // 3: the kill switch. One row per paused scope: '' is the whole store, else a source. The
    // history of pauses and resumes is in the audit log.
    r#"
CREATE TABLE crmgate_pauses (
    scope  TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    actor  TEXT NOT NULL,
    at     TEXT NOT NULL
);
"#,
    // 4: runs and changes. A change keeps the value before and after, so it can be reverted;
    // a revert is itself a change (`reverts` names the one it undoes) in a run of its own.
    // Neither is ever updated or deleted.
    r#"
CREATE TABLE crmgate_runs (
    id      INTEGER PRIMARY KEY,
    kind    TEXT NOT NULL,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL
);
CREATE TABLE crmgate_changes (
    id             INTEGER PRIMARY KEY,
    run_id         INTEGER NOT NULL REFERENCES crmgate_runs(id),
    proposal_id    INTEGER REFERENCES crmgate_proposals(id),
    reverts        INTEGER REFERENCES crmgate_changes(id),
    object         TEXT NOT NULL,
    record         TEXT NOT NULL,
    field          TEXT NOT NULL,
    before,
    after,
    approved_by    TEXT,
    policy_version INTEGER,
    at             TEXT NOT NULL
);
CREATE INDEX crmgate_changes_run ON crmgate_changes(run_id);
CREATE INDEX crmgate_changes_reverts ON crmgate_changes(reverts) WHERE reverts IS NOT NULL;
CREATE INDEX crmgate_changes_target ON crmgate_changes(object, record, field);
CREATE TRIGGER crmgate_runs_append_only_update BEFORE UPDATE ON crmgate_runs
BEGIN SELECT RAISE(ABORT, 'crmgate_runs is append-only'); END;
CREATE TRIGGER crmgate_runs_append_only_delete BEFORE DELETE ON crmgate_runs
BEGIN SELECT RAISE(ABORT, 'crmgate_runs is append-only'); END;
CREATE TRIGGER crmgate_changes_append_only_update BEFORE UPDATE ON crmgate_changes
BEGIN SELECT RAISE(ABORT, 'crmgate_changes is append-only'); END;
CREATE TRIGGER crmgate_changes_append_only_delete BEFORE DELETE ON crmgate_changes
BEGIN SELECT RAISE(ABORT, 'crmgate_changes is append-only'); END;
"#,
    // 5: the review. It walks the undecided proposals record by record, so they are indexed by
    // record (only while undecided: the index holds just the queue, and a decided proposal
    // leaves it). A reviewer's edit replaces the value to apply and keeps the proposer's own in
    // `proposed_value`; `edited` tells an edit from a proposed NULL.
    r#"
CREATE INDEX crmgate_proposals_open_record ON crmgate_proposals(object, record)
    WHERE state IN ('pending', 'suggested');
ALTER TABLE crmgate_proposals ADD COLUMN edited INTEGER NOT NULL DEFAULT 0;
ALTER TABLE crmgate_proposals ADD COLUMN proposed_value;
"#,
    // 6: an undecided twin is found through its record (crmgate_proposals_open_record), which
    // a propose walks in order anyway, so the index by target key goes: a bulk load no longer
    // rebuilds it, and a load into a busy queue no longer updates it in random key order.
    // `target_key` stays in the table, but proposals queued since 2026-11-22 hold 0 there:
    // nothing reads it, and a hash per row was the price of writing it.
    r#"
DROP INDEX crmgate_proposals_open_target;
"#,
    // 7: the index of changes by target goes too. Only the check before a revert of a whole run
    // read it, and that check finds a run's last change to each target by grouping the run's
    // changes instead; every apply paid for it with an insert in record order, not id order.
    r#"
DROP INDEX crmgate_changes_target;
"#,
    // 8: texts that many proposals share, kept once. A proposal's signals are either in
    // `signals` (every proposal queued before this, and a set of signals seen once in its run)
    // or, with `signals` NULL, in the row of `crmgate_shared_texts` that `signals_shared` names;
    // its rules likewise, in `rules` or through `rules_shared`. Most proposals of a run share a
    // few hundred sets of signals and a few dozen of rules, and at 80 and 60 bytes of JSON they
    // were over a quarter of the queue. No foreign keys: shared texts are never deleted, and
    // the checks would cost two lookups per proposal queued.
    r#"
CREATE TABLE crmgate_shared_texts (
    id   INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE
);
ALTER TABLE crmgate_proposals ADD COLUMN signals_shared INTEGER;
ALTER TABLE crmgate_proposals ADD COLUMN rules_shared INTEGER;
"#,
    // 9: every proposal keeps its own signals and rules, in `signals` and `rules`, as before 8:
    // the texts kept once go back inline and their table goes, and so do the columns that named
    // them and `target_key`, which nothing has read since 6. One plain row per proposal is what
    // every reader (review, apply, export) can rely on.
    r#"
UPDATE crmgate_proposals
SET signals = (SELECT t.text FROM crmgate_shared_texts t WHERE t.id = signals_shared)
WHERE signals IS NULL AND signals_shared IS NOT NULL;
UPDATE crmgate_proposals
SET rules = (SELECT t.text FROM crmgate_shared_texts t WHERE t.id = rules_shared)
WHERE rules IS NULL AND rules_shared IS NOT NULL;
DROP INDEX IF EXISTS crmgate_proposals_open_target;
ALTER TABLE crmgate_proposals DROP COLUMN signals_shared;
ALTER TABLE crmgate_proposals DROP COLUMN rules_shared;
ALTER TABLE crmgate_proposals DROP COLUMN target_key;
DROP TABLE crmgate_shared_texts;
"#,
    // 10: every event records the OS user who ran the command beside the name it acted as
    // (`--as`). Events written before have none; the hash covers it only where it is set.
    r#"
ALTER TABLE crmgate_events ADD COLUMN os_user TEXT;
"#,
    // 11: a proposal's evidence: what its proposer relied on (a URL, or the text itself).
    r#"
ALTER TABLE crmgate_proposals ADD COLUMN evidence TEXT;
"#,
    // 12: the tables apply and revert act on are bound to the audit log. A proposal keeps the
    // SHA-256 of its content and of the state it was queued in (`digest`, `queued`); its
    // ingest's event holds the XOR of its proposals' digests, and `event_seq` on the ingest
    // names that event. Events are found by the change they record. The chain's head (last
    // event's seq and hash) is kept in `crmgate_chain_head`, written with every event, so an
    // emptied or shortened log is noticed; `bound_from` is the first proposal id queued with a
    // digest (those before were queued before digests were recorded).
    r#"
ALTER TABLE crmgate_proposals ADD COLUMN digest BLOB;
ALTER TABLE crmgate_proposals ADD COLUMN queued TEXT;
ALTER TABLE crmgate_ingests ADD COLUMN event_seq INTEGER;
CREATE INDEX crmgate_events_change ON crmgate_events(change_id) WHERE change_id IS NOT NULL;
CREATE INDEX crmgate_events_policy ON crmgate_events(seq) WHERE action = 'policy';
CREATE TABLE crmgate_chain_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    bound_from INTEGER NOT NULL
);
INSERT INTO crmgate_chain_head (id, seq, hash, bound_from)
SELECT 1, coalesce((SELECT max(seq) FROM crmgate_events), 0),
       coalesce((SELECT hash FROM crmgate_events ORDER BY seq DESC LIMIT 1),
                '0000000000000000000000000000000000000000000000000000000000000000'),
       coalesce((SELECT max(id) FROM crmgate_proposals), 0) + 1;
"#,
];

/// The CRM tables `crmgate init` creates when they do not exist. They belong to the
/// user, not to crmgate, so they are created by `init`, never by a migration.
pub const DEFAULT_CRM_TABLES: &[(&str, &str)] = &[
    (
        "companies",
        "CREATE TABLE companies (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    domain TEXT,
    industry TEXT,
    employees INTEGER,
    annual_revenue INTEGER,
    tier TEXT,
    owner TEXT,
    legal_hold INTEGER NOT NULL DEFAULT 0,
    created_at TEXT,
    updated_at TEXT
)",
    ),
    (
        "contacts",
        "CREATE TABLE contacts (
    id TEXT PRIMARY KEY NOT NULL,
    first_name TEXT,
    last_name TEXT,
    email TEXT,
    email_status TEXT,
    phone TEXT,
    title TEXT,
    company_id TEXT REFERENCES companies(id),
    lifecycle_stage TEXT,
    owner TEXT,
    sensitive INTEGER NOT NULL DEFAULT 0,
    legal_hold INTEGER NOT NULL DEFAULT 0,
    do_not_contact INTEGER NOT NULL DEFAULT 0,
    created_at TEXT,
    updated_at TEXT
)",
    ),
    (
        "deals",
        "CREATE TABLE deals (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT,
    company_id TEXT REFERENCES companies(id),
    contact_id TEXT REFERENCES contacts(id),
    stage TEXT,
    amount INTEGER,
    owner TEXT,
    close_date TEXT,
    created_at TEXT,
    updated_at TEXT
)",
    ),
    (
        "activities",
        "CREATE TABLE activities (
    id TEXT PRIMARY KEY NOT NULL,
    contact_id TEXT REFERENCES contacts(id),
    deal_id TEXT REFERENCES deals(id),
    kind TEXT,
    body TEXT,
    at TEXT
)",
    ),
];

/// Indexes on the default tables' foreign keys, so that a merge finds the rows to re-point
/// without scanning.
pub const DEFAULT_CRM_INDEXES: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS contacts_company_id ON contacts(company_id)",
    "CREATE INDEX IF NOT EXISTS deals_company_id ON deals(company_id)",
    "CREATE INDEX IF NOT EXISTS deals_contact_id ON deals(contact_id)",
    "CREATE INDEX IF NOT EXISTS activities_contact_id ON activities(contact_id)",
    "CREATE INDEX IF NOT EXISTS activities_deal_id ON activities(deal_id)",
];
