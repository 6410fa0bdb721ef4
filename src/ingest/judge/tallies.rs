//! How common values are in the tables a propose run merges records of, learnt from the run's
//! [`Snapshot`] as the merges need them.
//!
//! The snapshot's view cannot change during the run (the run holds the write lock, and writes
//! only the queue), so what is learnt here stays true until the run ends, and ends with it:
//! nothing outlives the run, and the next run reads the table again.
//!
//! What is read, per table and per compared column, once per run: the row count, and the
//! column's values in at most [`SAMPLE`] records. A table that small is read whole and its
//! counts are exact. A larger one is sampled by rowid at an even stride (one indexed lookup per
//! sampled record: tens of milliseconds a column, whatever the table's size), and a value's
//! count is estimated from its share of the sample. A value the sample does not hold is rarer
//! than one in the sample's stride: it is counted as half a stride (at least the pair), so a
//! rare shared value earns nearly the bonus of a unique one, never more. Memory is bounded by
//! the sample: at most [`SAMPLE`] distinct values per compared column, however large the table.
//! The same sample confirms the column's kind ([`Profile`]).
//!
//! Measured at 1M contacts with 50k merges among a million proposals (the propose benchmark):
//! counting each shared value with SQLite instead (an indexed `count(*)`, or a `GROUP BY` pass
//! over an unindexed column) cost about six seconds a run; the sample costs a fraction of one.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::model::Value;
use crate::schema::Object;
use crate::similarity::{Frequencies, Profile};
use crate::store::Snapshot;

/// Records read per compared column: all of a table this small, else an even sample.
const SAMPLE: usize = 10_000;

/// What the run has learnt of one table.
#[derive(Default)]
pub(super) struct Tally {
    rows: Option<u64>,
    columns: HashMap<usize, Column>,
}

/// One column, as its sample found it.
struct Column {
    profile: Profile,
    /// How many sampled records hold each value (by its display text).
    counts: HashMap<String, u64>,
    /// Records sampled.
    sampled: u64,
    /// Whether the sample is the whole table (then counts are exact).
    whole: bool,
}

/// [`Frequencies`] for one merge: the run's tally of a table and the snapshot to ask. The first
/// store error stops further questions and is handed back by [`Asked::finish`].
pub(super) struct Asked<'a> {
    pub snapshot: &'a Snapshot,
    pub obj: &'a Object,
    pub tally: &'a mut Tally,
    pub error: Option<Error>,
}

impl Asked<'_> {
    fn ask<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Option<T> {
        if self.error.is_some() {
            return None;
        }
        f(self).map_err(|e| self.error = Some(e)).ok()
    }

    pub fn finish(self) -> Result<()> {
        self.error.map_or(Ok(()), Err)
    }

    /// Column `col` as its sample found it, read on first use.
    fn column(&mut self, col: usize) -> Result<&Column> {
        if !self.tally.columns.contains_key(&col) {
            let rows = self.rows_now()?;
            let (values, whole) = self.snapshot.column_sample(self.obj, col, (SAMPLE, rows))?;
            let mut counts: HashMap<String, u64> = HashMap::new();
            for v in values.iter().filter(|v| !v.is_empty()) {
                *counts.entry(v.display()).or_default() += 1;
            }
            let column = Column {
                profile: Profile::of(&values),
                counts,
                sampled: values.len() as u64,
                whole,
            };
            self.tally.columns.insert(col, column);
        }
        Ok(&self.tally.columns[&col])
    }

    fn rows_now(&mut self) -> Result<u64> {
        if let Some(n) = self.tally.rows {
            return Ok(n);
        }
        let n = self.snapshot.row_count(self.obj)?;
        self.tally.rows = Some(n);
        Ok(n)
    }

    fn count_now(&mut self, col: usize, value: &Value) -> Result<u64> {
        let rows = self.rows_now()?;
        let c = self.column(col)?;
        let seen = c.counts.get(&value.display()).copied().unwrap_or(0);
        if c.whole {
            return Ok(seen);
        }
        let stride = rows as f64 / c.sampled.max(1) as f64;
        let estimate = if seen == 0 {
            stride / 2.0
        } else {
            seen as f64 * stride
        };
        Ok((estimate.round() as u64).clamp(2, rows.max(2)))
    }
}

impl Frequencies for Asked<'_> {
    fn rows(&mut self) -> Option<u64> {
        self.ask(|a| a.rows_now())
    }

    fn count(&mut self, col: usize, value: &Value) -> Option<u64> {
        self.ask(|a| a.count_now(col, value))
    }

    fn profile(&mut self, col: usize) -> Option<Profile> {
        self.ask(|a| a.column(col).map(|c| c.profile))
    }
}
