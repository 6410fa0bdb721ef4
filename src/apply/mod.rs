//! Apply and revert: the only code that changes CRM records. Every write is re-checked against
//! the record as it is now, read back where it may not hold, and recorded as a change with the
//! values before and after, in the same transaction as its audit event; a revert is a change
//! too, so it can be reverted.
//!
//! Every record is read in the writer's transaction at its turn, never ahead of it: an earlier
//! write of the same run may have reached it through the schema (a foreign key's action, a
//! trigger), and the change log's `before` must be what the record held.
//!
//! [`run`] drives a whole command: a large apply or revert goes a chunk per transaction, ids
//! read a chunk at a time, so memory does not grow with the queue or the run.

mod create;
mod may;
mod merge;
mod one;
mod pin;
mod plan;
mod revert;
mod run;

pub use create::{Importing, create_fields, create_record, row_of, write_imported};
pub use merge::ROWID_KEY;
pub use one::{RunState, apply_ids, json_to_value};
pub use pin::{FieldChanged, SinceProposed, merge_changes_since_proposed, pin_merge, pin_of};
pub use plan::{Plan, PlanItem, staleness};
pub use revert::{RevertSummary, Reverted, Skipped, Undoing, WHOLE_RECORD, revert_chunk};
pub use run::{
    Applied, ApplyRequest, NoProgress, Progress, RevertRequest, RevertTarget, RevertedRun,
    chunk_size, run, run_revert,
};

use std::collections::BTreeMap;

/// How one proposal of an apply run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ending {
    Applied,
    /// The record moved on since the proposal.
    Conflict,
    /// A stop rule holds now.
    Blocked,
    /// Sent back to review: the policy in force would no longer let it through on its own, or
    /// no longer lets the person who approved it approve it.
    Held,
    /// The write did not hold, or the store refused it.
    Failed,
    /// Its source, or the store, is paused: it waits, still approved.
    Paused,
}

impl Ending {
    pub const ALL: [Ending; 6] = [
        Ending::Applied,
        Ending::Conflict,
        Ending::Blocked,
        Ending::Held,
        Ending::Failed,
        Ending::Paused,
    ];

    /// The word in reports, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Applied => "applied",
            Ending::Conflict => "conflict",
            Ending::Blocked => "blocked",
            Ending::Held => "held",
            Ending::Failed => "failed",
            Ending::Paused => "paused",
        }
    }
}

/// What happened to one proposal in an apply run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    pub proposal: i64,
    pub record: String,
    pub field: Option<String>,
    /// For a merge: the survivor's id (`record` is the duplicate).
    pub merge_into: Option<String>,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub result: Ending,
    pub why: Option<String>,
    pub change: Option<i64>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub run: Option<i64>,
    /// The first items (every one when a plan is being saved): a million-change run must not
    /// hold a million items.
    pub items: Vec<Item>,
    /// How many proposals ended each way.
    pub counts: BTreeMap<Ending, usize>,
    #[serde(skip)]
    keep_all: bool,
}

/// Items kept for the report when not saving a plan.
const KEEP_ITEMS: usize = 1000;

impl Report {
    /// An empty report; `keep_all` keeps every item (to save a plan of the run).
    pub fn new(keep_all: bool) -> Report {
        Report {
            keep_all,
            ..Report::default()
        }
    }

    /// Counts one proposal's ending; `item` is built only when the report keeps it.
    fn push(&mut self, ending: Ending, item: impl FnOnce() -> Item) {
        *self.counts.entry(ending).or_default() += 1;
        if self.keep_all || self.items.len() < KEEP_ITEMS {
            self.items.push(item());
        }
    }

    /// Adds what a later chunk of the same run did, once it committed.
    fn absorb(&mut self, chunk: Report) {
        for (ending, n) in chunk.counts {
            *self.counts.entry(ending).or_default() += n;
        }
        let room = if self.keep_all {
            usize::MAX
        } else {
            KEEP_ITEMS.saturating_sub(self.items.len())
        };
        self.items.extend(chunk.items.into_iter().take(room));
        self.run = chunk.run.or(self.run);
    }

    pub fn count(&self, ending: Ending) -> usize {
        self.counts.get(&ending).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// Anything approved that was not applied.
    pub fn exceptions(&self) -> usize {
        self.total() - self.count(Ending::Applied)
    }
}

/// Which approved proposals an apply takes.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub source: Option<String>,
    pub limit: Option<usize>,
    /// Apply only these proposals (a saved plan).
    pub only: Option<Vec<i64>>,
    /// Apply only the proposals of the ingests from the first to the last of these ids (the
    /// files of one propose run, which takes them in one transaction).
    pub ingests: Option<(i64, i64)>,
}
