//! The prepared statements of one write transaction, kept for its length.
//!
//! rusqlite's own statement cache took a few percent of the paths that run once per proposal or
//! change (queueing a million proposals, applying a million changes): every use hashes the
//! whole SQL text twice with SipHash and allocates a copy of it. These are
//! found instead by the address of the caller's SQL text (a `static` or a string kept for the
//! transaction), confirmed by comparing the text, so a hit costs one scan of a short list.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use rusqlite::{Connection, Statement};

/// More distinct statements than one transaction uses; past it, the least recently used goes.
const KEEP: usize = 64;

struct Kept<'c> {
    /// Where the caller's SQL text was last seen: a hint, never trusted without `sql`.
    at: usize,
    sql: Box<str>,
    stmt: Statement<'c>,
}

pub(super) struct Prepared<'c> {
    conn: &'c Connection,
    kept: RefCell<Vec<Kept<'c>>>,
}

impl<'c> Prepared<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Prepared {
            conn,
            kept: RefCell::new(Vec::new()),
        }
    }

    /// The statement for `sql`, prepared on first use. While the returned guard lives the
    /// statement is out of the list, so a second use of the same SQL meanwhile prepares another.
    pub(super) fn get(&self, sql: &str) -> rusqlite::Result<Held<'_, 'c>> {
        let at = sql.as_ptr() as usize;
        let found = {
            let mut kept = self.kept.borrow_mut();
            let i = kept
                .iter()
                .position(|k| k.at == at && *k.sql == *sql)
                .or_else(|| kept.iter().position(|k| *k.sql == *sql));
            i.map(|i| kept.remove(i))
        };
        let kept = match found {
            Some(mut k) => {
                k.at = at;
                k
            }
            None => Kept {
                at,
                sql: sql.into(),
                stmt: self.conn.prepare(sql)?,
            },
        };
        Ok(Held {
            kept: Some(kept),
            home: &self.kept,
        })
    }
}

/// A statement in use; back in the list, its parameters cleared, when dropped.
pub(super) struct Held<'p, 'c> {
    kept: Option<Kept<'c>>,
    home: &'p RefCell<Vec<Kept<'c>>>,
}

impl<'c> Deref for Held<'_, 'c> {
    type Target = Statement<'c>;

    fn deref(&self) -> &Statement<'c> {
        &self.kept.as_ref().expect("held until dropped").stmt
    }
}

impl<'c> DerefMut for Held<'_, 'c> {
    fn deref_mut(&mut self) -> &mut Statement<'c> {
        &mut self.kept.as_mut().expect("held until dropped").stmt
    }
}

impl Drop for Held<'_, '_> {
    fn drop(&mut self) {
        let Some(mut k) = self.kept.take() else {
            return;
        };
        // A value bound for one use must not be read by the next.
        k.stmt.clear_bindings();
        let mut kept = self.home.borrow_mut();
        if kept.len() >= KEEP {
            kept.remove(0);
        }
        kept.push(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a, b)").unwrap();
        conn
    }

    #[test]
    fn a_kept_statement_is_used_again_and_forgets_its_parameters() {
        let conn = conn();
        let prepared = Prepared::new(&conn);
        let insert = "INSERT INTO t (a, b) VALUES (?1, ?2)";
        let mut stmt = prepared.get(insert).unwrap();
        stmt.raw_bind_parameter(1, 1).unwrap();
        stmt.raw_bind_parameter(2, "x").unwrap();
        stmt.raw_execute().unwrap();
        drop(stmt);
        assert_eq!(prepared.kept.borrow().len(), 1);
        let mut stmt = prepared.get(insert).unwrap();
        // Only ?1 bound this time: ?2 must be NULL, not the "x" of the last use.
        stmt.raw_bind_parameter(1, 2).unwrap();
        stmt.raw_execute().unwrap();
        drop(stmt);
        assert_eq!(prepared.kept.borrow().len(), 1);
        let b: Option<String> = conn
            .query_row("SELECT b FROM t WHERE a = 2", [], |r| r.get(0))
            .unwrap();
        assert_eq!(b, None);
    }

    #[test]
    fn the_same_text_at_another_address_finds_the_same_statement_and_other_text_does_not() {
        let conn = conn();
        let prepared = Prepared::new(&conn);
        let a = String::from("SELECT count(*) FROM t");
        let b = a.clone();
        let count = |sql: &str| -> i64 {
            prepared
                .get(sql)
                .unwrap()
                .query_row([], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(&a), 0);
        assert_eq!(count(&b), 0);
        assert_eq!(prepared.kept.borrow().len(), 1);
        // Different text at the address `a` had: never mistaken for it.
        let at = a.as_ptr();
        let mut c = a;
        c.clear();
        c.push_str("SELECT 7");
        assert_eq!(c.as_ptr(), at);
        assert_eq!(count(&c), 7);
        assert_eq!(prepared.kept.borrow().len(), 2);
    }

    #[test]
    fn two_uses_at_once_each_get_a_statement_and_the_list_stays_bounded() {
        let conn = conn();
        let prepared = Prepared::new(&conn);
        let sql = "SELECT a FROM t";
        let one = prepared.get(sql).unwrap();
        let two = prepared.get(sql).unwrap();
        drop(one);
        drop(two);
        assert_eq!(prepared.kept.borrow().len(), 2);
        for i in 0..KEEP + 10 {
            let sql = format!("SELECT {i} FROM t");
            drop(prepared.get(&sql).unwrap());
        }
        assert_eq!(prepared.kept.borrow().len(), KEEP);
    }
}
