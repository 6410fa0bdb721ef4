//! crmgate: the approval-first gate between the programs that propose CRM changes and the CRM.
//!
//! The pipeline, in the order of the modules below:
//!
//! ```text
//!  proposal files ──ingest──▶ NewProposal ──store──▶ queue (pending)
//!  (CSV, JSON, JSONL)   │ validate against the live schema and records
//!                       └ idempotent by (source, id) or content; supersedes undecided twins
//! ```
//!
//! Scoring, the policy decision, review, apply and revert follow the same shape: each stage a
//! function from one type to the next, with only ingest, apply and revert writing to the store.

pub mod audit;
pub mod cli;
pub mod error;
pub mod fixtures;
pub mod human;
pub mod ingest;
pub mod model;
pub mod policy;
pub mod records;
pub mod schema;
pub mod score;
pub mod sources;
pub mod store;
pub mod ui;
pub mod validate;
