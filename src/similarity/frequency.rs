//! How common a value is in its column, and what a column's values say it holds: the data's
//! side of a merge's evidence.
//!
//! An exact agreement is evidence in proportion to how unlikely it is by chance. Two strangers
//! share the street number `1` or the surname `Smith` often; they share a social security
//! number or the surname `Quennell` almost never. The chance that another record holds the value
//! the pair shares (Fellegi–Sunter's u-probability, per value rather than per column) is read
//! from the table itself, through [`Frequencies`]:
//!
//! `u = (count − 2 + k) / (rows − 2 + k / typical)`
//!
//! where `count` is how many records hold the value (the pair among them, so `count − 2` is
//! how many others do), `rows` the table's
//! size and `typical` the chance agreement the kind's fixed agreement weight assumes (a surname
//! about 1 in 500, an identifier 1 in 100,000). The `k = 3` pseudo-occurrences at the typical
//! rate keep a small table, where every shared value is "common", from moving the weight: the
//! adjustment needs the table to have seen the value far more (or less) often than typical. The
//! agreement weight then moves by `ln(typical / u)`: down to nothing for a value everybody holds,
//! up by at most [`MAX_BONUS`] for a rare one.
//!
//! A column's kind, first judged by its name, is confirmed by a sample of its values
//! ([`Profile`]): a column named like an identifier whose values repeat is not one, and a
//! column named like a phone whose values are small numbers is not one either. Both are then
//! compared as plain text.
//!
//! Where the counts come from is the caller's business: during a propose run they are asked of
//! the store (see `ingest::judge`); [`Counted`] counts rows held in memory, for tests and
//! evaluations.

use std::collections::HashMap;

use super::FieldKind;
use crate::model::Value;

/// What the table knows about its own values. Every answer may be `None` (unknown), which
/// leaves the evidence as the column's name and type alone would have it.
pub trait Frequencies {
    /// How many records the table holds.
    fn rows(&mut self) -> Option<u64>;
    /// How many records hold `value` in column `col` (an index into the table's columns).
    fn count(&mut self, col: usize, value: &Value) -> Option<u64>;
    /// What a sample of column `col`'s values looks like.
    fn profile(&mut self, col: usize) -> Option<Profile>;
}

/// No knowledge of the table: the evidence of names and types alone.
pub struct Unknown;

impl Frequencies for Unknown {
    fn rows(&mut self) -> Option<u64> {
        None
    }
    fn count(&mut self, _: usize, _: &Value) -> Option<u64> {
        None
    }
    fn profile(&mut self, _: usize) -> Option<Profile> {
        None
    }
}

/// A sample of a column's non-empty values, summarised: how many there were, how many distinct,
/// and how many look like a phone number, an email address or a date.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Profile {
    pub sampled: u32,
    pub distinct: u32,
    pub phone_like: u32,
    pub email_like: u32,
    pub date_like: u32,
}

/// Fewer sampled values than this confirm nothing.
const MIN_SAMPLE: u32 = 20;

impl Profile {
    /// The profile of a sample of values (empty ones are skipped).
    pub fn of<'a>(values: impl IntoIterator<Item = &'a Value>) -> Profile {
        let mut seen = std::collections::HashSet::new();
        let mut p = Profile::default();
        for v in values.into_iter().filter(|v| !v.is_empty()) {
            let s = v.display();
            let s = s.trim();
            p.sampled += 1;
            p.phone_like += u32::from(super::phone_digits(s).len() >= 7);
            p.email_like += u32::from(s.contains('@'));
            p.date_like += u32::from(!super::date_readings(s).is_empty());
            if seen.insert(s.to_lowercase()) {
                p.distinct += 1;
            }
        }
        p
    }

    fn share(&self, n: u32) -> f64 {
        f64::from(n) / f64::from(self.sampled.max(1))
    }

    /// The kind a column holds, given the kind its name suggests: an identifier, phone, email or
    /// birth date that its values do not bear out is plain text.
    pub fn confirm(&self, kind: FieldKind) -> FieldKind {
        if self.sampled < MIN_SAMPLE {
            return kind;
        }
        let holds = match kind {
            // Identifiers are (nearly) unique: one that repeats is an attribute, like a street
            // number.
            FieldKind::Identifier => self.share(self.distinct) >= 0.9,
            FieldKind::Phone => self.share(self.phone_like) >= 0.8,
            FieldKind::Email => self.share(self.email_like) >= 0.8,
            FieldKind::BirthDate => self.share(self.date_like) >= 0.8,
            _ => true,
        };
        if holds { kind } else { FieldKind::Text }
    }
}

/// The chance agreement a kind's fixed agreement weight assumes: the share of records that
/// hold a typical value of the column.
pub(super) fn typical(kind: FieldKind, foreign_key: bool) -> Option<f64> {
    use FieldKind::*;
    Some(match kind {
        FirstName => 0.01,
        LastName => 0.002,
        FullName => 1e-4,
        Email | Phone => 1e-5,
        Domain => 1e-4,
        // A shared parent company holds many records; a company name fewer.
        Company if foreign_key => 0.01,
        Company => 0.002,
        Postcode => 0.005,
        BirthDate => 5e-5,
        Date => 0.01,
        Identifier if foreign_key => 0.01,
        Identifier => 1e-5,
        Text => 0.05,
        Ignored => return None,
    })
}

/// Pseudo-occurrences at the typical rate: see the module doc.
const PSEUDO: f64 = 3.0;
/// The most a rare value adds to a kind's agreement weight, in log-odds.
pub const MAX_BONUS: f64 = 1.0;

/// The agreement weight of a value `count` records hold in a table of `rows`, for a kind whose
/// fixed weight `agree` assumes the chance agreement `typical`; and the value's share of the
/// table.
pub(super) fn adjusted(agree: f64, typical: f64, count: u64, rows: u64) -> (f64, f64) {
    let (c, n) = (count.max(2) as f64, rows.max(count).max(2) as f64);
    let u = (c - 2.0 + PSEUDO) / (n - 2.0 + PSEUDO / typical);
    let w = (agree + (typical / u).ln()).clamp(0.0, agree + MAX_BONUS);
    (w, c / n)
}

/// Counts over rows held in memory: every column's values counted once, exactly as stored.
pub struct Counted {
    rows: u64,
    counts: Vec<HashMap<String, u64>>,
    profiles: Vec<Profile>,
}

impl Counted {
    /// Counts the values of `rows` (each in the order of the table's columns).
    pub fn new(rows: &[Vec<Value>]) -> Counted {
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut counts = vec![HashMap::new(); width];
        for r in rows {
            for (i, v) in r.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
                *counts[i].entry(key(v)).or_insert(0) += 1;
            }
        }
        let profiles = (0..width)
            .map(|i| Profile::of(rows.iter().take(1000).filter_map(|r| r.get(i))))
            .collect();
        Counted {
            rows: rows.len() as u64,
            counts,
            profiles,
        }
    }
}

fn key(v: &Value) -> String {
    v.display()
}

impl Frequencies for Counted {
    fn rows(&mut self) -> Option<u64> {
        Some(self.rows)
    }
    fn count(&mut self, col: usize, value: &Value) -> Option<u64> {
        Some(self.counts.get(col)?.get(&key(value)).copied().unwrap_or(0))
    }
    fn profile(&mut self, col: usize) -> Option<Profile> {
        self.profiles.get(col).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_common_value_adds_nothing_and_a_rare_one_a_little_more() {
        let (common, share) = adjusted(7.0, 1e-5, 50_000, 1_000_000);
        assert_eq!(common, 0.0);
        assert!((share - 0.05).abs() < 1e-9);
        let (rare, _) = adjusted(7.0, 1e-5, 2, 1_000_000);
        assert!(rare > 7.0 && rare <= 7.0 + MAX_BONUS, "{rare}");
        let (smith, _) = adjusted(4.0, 0.002, 10_000, 1_000_000);
        assert!(smith < 3.0, "{smith}");
    }

    #[test]
    fn a_small_table_leaves_the_weight_nearly_as_it_was() {
        let (w, _) = adjusted(4.0, 0.002, 2, 10);
        assert!((w - 4.0).abs() < 0.5, "{w}");
        let (w, _) = adjusted(7.0, 1e-5, 2, 10);
        assert!((w - 7.0).abs() < 0.5, "{w}");
    }

    #[test]
    fn values_confirm_or_overrule_a_columns_name() {
        let small: Vec<Value> = (0..100).map(|i| Value::Integer(i % 12 + 1)).collect();
        let p = Profile::of(&small);
        assert_eq!(p.confirm(FieldKind::Identifier), FieldKind::Text);
        assert_eq!(p.confirm(FieldKind::Phone), FieldKind::Text);
        let ids: Vec<Value> = (0..100)
            .map(|i| Value::Text(format!("{}", 1_000_000 + i * 7919)))
            .collect();
        assert_eq!(
            Profile::of(&ids).confirm(FieldKind::Identifier),
            FieldKind::Identifier
        );
        let few = Profile::of(&small[..5]);
        assert_eq!(few.confirm(FieldKind::Identifier), FieldKind::Identifier);
    }
}
