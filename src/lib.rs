//! crmgate: the approval-first gate between the programs that propose CRM changes and the CRM.
//!
//! The pipeline, in the order of the modules below:
//!
//! ```text
//!  proposal files ──ingest──▶ NewProposal ──score──▶ Score ──policy──▶ Decision ──▶ Verdict
//!  (CSV, JSON, JSONL)  checked against the       signals     rules, roles,     queued with
//!                      live schema and records               limits, pauses    its reasons
//!
//!  queue ──human──▶ approved / rejected (approver roles, staleness, circuit breaker)
//!
//!  approved ──apply──▶ Change (before, after) + event     each record re-checked and read at
//!  run / change ──revert──▶ inverse Change, as a new run  its turn, a chunk per transaction
//! ```
//!
//! Around it, `admin` runs the gate: setting a store up, the policy in force, pauses, the audit
//! log's checks. Every step that writes (ingest, a human decision, apply, revert, a policy or a
//! pause) is a library function that opens one transaction and ends it with an audit event;
//! `cli` only parses arguments, calls one of them, and prints what it returns.

// The types that flow through, and the store's shape.
pub mod error;
pub mod model;
pub mod schema;

// 1. Ingest: read files, check each row, queue.
pub mod ingest;
pub mod validate;

// 2. Score: crmgate's own confidence, and how well two records match for a merge.
pub mod score;

pub mod similarity;

// 3. Decide: the policy, and how each source is doing under it.
pub mod policy;
pub mod related;

pub mod sources;

// 4. The queue as people see it, their decisions on what the policy sent to review, and the
// interactive review.
pub mod queue;

pub mod human;
pub mod review;

// 5. Apply what was approved, and revert it.
pub mod apply;

// Around the pipeline: setting the gate up and running it (policy, pauses), import/export of
// CRM records, the audit log, the store, the terminal.
pub mod actor;
pub mod admin;
pub mod alerts;
pub mod audit;
pub mod import;
pub mod prompt;
pub mod records;
pub mod store;
pub mod ui;

// The bundled demo data, and the command line.
pub mod cli;
pub mod fixtures;
