//! Pure validation of one value for one field: what a field holds is judged by its name and its
//! declared type, so the same rules serve the default CRM tables and any existing SQLite CRM.
//! A whole record's cells are checked here too ([`check_cells`], [`missing_required`],
//! [`dangling`] with a lookup its caller gives), the same for an imported row, a create
//! proposal and a create at apply.

use crate::error::Result;
use crate::model::{Cell, Value};
use crate::schema::{Affinity, Column, Object};

pub const LIFECYCLE_STAGES: [&str; 8] = [
    "subscriber",
    "lead",
    "mql",
    "sql",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];
pub const EMAIL_STATUSES: [&str; 4] = ["valid", "risky", "invalid", "unknown"];

/// Longest value accepted for any field; keeps a hostile file from filling memory or the store.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Email,
    Phone,
    Domain,
    Url,
    LifecycleStage,
    EmailStatus,
    Flag,
    Integer,
    Real,
    Numeric,
    Timestamp,
    Date,
    Text,
}

impl FieldType {
    pub fn of(column: &Column) -> FieldType {
        let n = column.name.to_ascii_lowercase();
        match n.as_str() {
            "lifecycle_stage" => return FieldType::LifecycleStage,
            "email_status" => return FieldType::EmailStatus,
            "domain" | "website_domain" => return FieldType::Domain,
            "website" | "url" => return FieldType::Url,
            _ => {}
        }
        if let Some(t) = FieldType::declared(&column.decl_type) {
            return t;
        }
        if column.affinity == Affinity::Integer {
            let flag = matches!(n.as_str(), "sensitive" | "legal_hold" | "do_not_contact")
                || n.starts_with("is_")
                || n.starts_with("has_");
            return if flag {
                FieldType::Flag
            } else {
                FieldType::Integer
            };
        }
        if column.affinity == Affinity::Real {
            return FieldType::Real;
        }
        if n == "email" || n.ends_with("_email") {
            FieldType::Email
        } else if n.contains("phone") || n == "mobile" {
            FieldType::Phone
        } else if n.ends_with("_domain") {
            FieldType::Domain
        } else if n.ends_with("_url") {
            FieldType::Url
        } else if n == "at" || n.ends_with("_at") {
            FieldType::Timestamp
        } else if n == "date" || n.ends_with("_date") {
            FieldType::Date
        } else if column.affinity == Affinity::Numeric {
            FieldType::Numeric
        } else {
            FieldType::Text
        }
    }
}

impl FieldType {
    /// What a declared type says as users write it, where its affinity says less: SQLite gives
    /// `DATE`, `DATETIME` and `BOOLEAN` NUMERIC affinity, yet they hold a date, a timestamp
    /// and a flag.
    fn declared(decl: &str) -> Option<FieldType> {
        let word = decl.split(['(', ' ']).next().unwrap_or("");
        match word.to_ascii_uppercase().as_str() {
            "DATE" => Some(FieldType::Date),
            "DATETIME" | "TIMESTAMP" | "TIMESTAMPTZ" => Some(FieldType::Timestamp),
            "BOOLEAN" | "BOOL" => Some(FieldType::Flag),
            _ => None,
        }
    }
}

/// Checks `raw` (as read from input; `None` clears the field) for `column` and returns the value
/// to store, typed as SQLite should hold it. The error reads as the end of a sentence about the
/// field, e.g. `"not-an-email" is not a valid email address`.
pub fn value_for(column: &Column, raw: Option<&str>) -> Result<Value, String> {
    let Some(raw) = raw else {
        if column.not_null {
            return Err(format!(
                "{} is required (NOT NULL) and cannot be cleared",
                column.name
            ));
        }
        return Ok(Value::Null);
    };
    if raw.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "value is {} bytes; the limit is {MAX_VALUE_BYTES}",
            raw.len()
        ));
    }
    if raw.contains('\0') {
        return Err("value contains a NUL byte".into());
    }
    let ty = FieldType::of(column);
    let shown = short(raw);
    let text = || Ok(Value::Text(raw.to_string()));
    match ty {
        FieldType::Email => {
            if is_email(raw) {
                text()
            } else {
                Err(format!("\"{shown}\" is not a valid email address"))
            }
        }
        FieldType::Phone => {
            if is_phone(raw) {
                text()
            } else {
                Err(format!(
                    "\"{shown}\" is not a valid phone number (7 to 15 digits; digits, spaces, + - . ( ) only)"
                ))
            }
        }
        FieldType::Domain => match domain_problem(raw) {
            None => text(),
            Some(why) => Err(format!("\"{shown}\" is not a valid domain: {why}")),
        },
        FieldType::Url => {
            let host = raw
                .strip_prefix("https://")
                .or_else(|| raw.strip_prefix("http://"))
                .unwrap_or(raw);
            let host = host.split(['/', '?', '#']).next().unwrap_or("");
            match domain_problem(host) {
                None if !raw.chars().any(char::is_whitespace) => text(),
                None => Err(format!(
                    "\"{shown}\" is not a valid URL: it contains spaces"
                )),
                Some(why) => Err(format!("\"{shown}\" is not a valid URL: {why}")),
            }
        }
        FieldType::LifecycleStage => one_of(raw, &LIFECYCLE_STAGES, "lifecycle stage"),
        FieldType::EmailStatus => one_of(raw, &EMAIL_STATUSES, "email status"),
        FieldType::Flag => match raw {
            "0" | "false" => Ok(Value::Integer(0)),
            "1" | "true" => Ok(Value::Integer(1)),
            _ => Err(format!("\"{shown}\" is not a flag (0 or 1)")),
        },
        FieldType::Integer => parse_integer(raw)
            .map(Value::Integer)
            .ok_or_else(|| format!("\"{shown}\" is not a whole number")),
        FieldType::Real => parse_real(raw)
            .map(Value::Real)
            .ok_or_else(|| format!("\"{shown}\" is not a number")),
        FieldType::Numeric => parse_integer(raw)
            .map(Value::Integer)
            .or_else(|| parse_real(raw).map(Value::Real))
            .ok_or_else(|| format!("\"{shown}\" is not a number")),
        FieldType::Timestamp => {
            if raw.parse::<jiff::Timestamp>().is_ok() || raw.parse::<jiff::civil::Date>().is_ok() {
                text()
            } else {
                Err(format!(
                    "\"{shown}\" is not an RFC 3339 timestamp (e.g. 2026-03-14T09:26:53Z) or a date"
                ))
            }
        }
        FieldType::Date => {
            if raw.len() == 10 && raw.parse::<jiff::civil::Date>().is_ok() {
                text()
            } else {
                Err(format!("\"{shown}\" is not a date (YYYY-MM-DD)"))
            }
        }
        FieldType::Text => text(),
    }
}

fn one_of(raw: &str, allowed: &[&str], what: &str) -> Result<Value, String> {
    if allowed.contains(&raw) {
        Ok(Value::Text(raw.to_string()))
    } else {
        Err(format!(
            "\"{}\" is not a {what} (one of: {})",
            short(raw),
            allowed.join(", ")
        ))
    }
}

/// Whole numbers only: "1,000", "1e3" and "5.0" are refused rather than guessed at.
fn parse_integer(raw: &str) -> Option<i64> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

fn parse_real(raw: &str) -> Option<f64> {
    let ok_chars = raw
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if !ok_chars {
        return None;
    }
    raw.parse::<f64>().ok().filter(|f| f.is_finite())
}

pub fn is_email(raw: &str) -> bool {
    let options = email_address::Options {
        minimum_sub_domains: 2,
        allow_domain_literal: false,
        allow_display_text: false,
    };
    if email_address::EmailAddress::parse_with_options(raw, options).is_err() {
        return false;
    }
    // The address standard allows quoted local parts and bare hosts; a CRM email field
    // should hold an address a mail server on the internet accepts.
    match raw.rsplit_once('@') {
        Some((local, domain)) => !local.starts_with('"') && domain_problem(domain).is_none(),
        None => false,
    }
}

pub fn is_phone(raw: &str) -> bool {
    let body = raw.strip_prefix('+').unwrap_or(raw);
    let allowed = body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'));
    let digits = body.chars().filter(char::is_ascii_digit).count();
    allowed && (7..=15).contains(&digits)
}

/// Why `raw` is not an internet host name, or `None` if it is one.
pub fn domain_problem(raw: &str) -> Option<&'static str> {
    if raw.is_empty() {
        return Some("it is empty");
    }
    if !raw.is_ascii() {
        return Some("it has non-ASCII characters (use the xn-- form)");
    }
    if raw.len() > 253 {
        return Some("it is longer than 253 characters");
    }
    let labels: Vec<&str> = raw.split('.').collect();
    if labels.len() < 2 {
        return Some("it has no top-level domain");
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Some("a label is empty or longer than 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("a label starts or ends with '-'");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Some("only letters, digits, '-' and '.' are allowed");
        }
    }
    let tld = labels[labels.len() - 1];
    if !(tld.bytes().all(|b| b.is_ascii_alphabetic()) || tld.starts_with("xn--")) || tld.len() < 2 {
        return Some("the top-level domain is not alphabetic");
    }
    None
}

/// Untrusted text cut to a readable length for an error message, with control and invisible
/// characters shown as escapes: a value can never pose as a line break (a second `FILE:LINE`
/// problem) or act on the terminal.
pub fn short(raw: &str) -> String {
    const MAX: usize = 60;
    if raw.chars().count() <= MAX {
        crate::ui::safe(raw).into_owned()
    } else {
        let cut: String = raw.chars().take(MAX).collect();
        format!("{}…", crate::ui::safe(&cut))
    }
}

/// Whether an expected value matches the record's: compared as typed when both parse the same
/// way, else as text (a proposer writes "5" for the integer 5).
pub fn loosely_equal(a: &Value, b: &Value) -> bool {
    a == b || (!matches!(a, Value::Null) && !matches!(b, Value::Null) && a.display() == b.display())
}

/// What is wrong with `raw` as a record's id: none given, or spaces around it. Proposals name
/// records trimmed, so an id with spaces around it could be imported but never changed.
fn id_problem(column: &Column, raw: Option<&str>) -> Option<String> {
    let name = &column.name;
    match raw {
        None => Some(format!("missing \"{name}\" (the record's id)")),
        Some(id) if id.trim().is_empty() => Some(format!("missing \"{name}\" (the record's id)")),
        Some(id) if id.trim() != id => Some(format!(
            "{name}: \"{}\" has spaces around it; a record's id must not, as proposals name records without them",
            short(id)
        )),
        Some(_) => None,
    }
}

/// The foreign-key values among `values` (of the columns `cols`) that name no record of their
/// parent, each as a problem; `missing_parent` looks one up. What [`check_cells`] leaves to
/// the store.
pub fn dangling<'s>(
    obj: &Object,
    cols: &[usize],
    values: &[Value],
    missing_parent: &mut dyn FnMut(&Column, &Value) -> Result<Option<&'s Object>>,
) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    for (&i, v) in cols.iter().zip(values) {
        let column = &obj.columns[i];
        if let Some(parent) = missing_parent(column, v)? {
            bad.push(format!(
                "{}: \"{}\" does not exist in {}",
                column.name,
                short(&v.display()),
                parent.name
            ));
        }
    }
    Ok(bad)
}

/// Checks one record's cells (indexed like `obj.columns`) as an import checks a row, without
/// the store: each value for its column, the id given. Fills `cols` and `values` with what it
/// gives; returns what is wrong, nothing when it is good. Foreign keys are for [`dangling`].
pub fn check_cells(
    obj: &Object,
    cells: &[Cell],
    cols: &mut Vec<usize>,
    values: &mut Vec<Value>,
) -> Vec<String> {
    cols.clear();
    values.clear();
    let mut bad = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        let column = &obj.columns[i];
        let raw = match cell {
            Cell::Absent => continue,
            Cell::Null => None,
            // JSON's "" is the empty string; a CSV cell cannot say it (empty is null there).
            Cell::Text(s) => Some(s.as_str()),
            Cell::Object(_) => {
                bad.push(format!(
                    "{}: must be a single value, not an object",
                    column.name
                ));
                continue;
            }
        };
        if column.primary_key
            && let Some(why) = id_problem(column, raw)
        {
            bad.push(why);
            continue;
        }
        // A left-out column keeps its default; an empty one under NOT NULL does too.
        if raw.is_none() && column.not_null && column.has_default {
            continue;
        }
        match value_for(column, raw) {
            Ok(v) => {
                cols.push(i);
                values.push(v);
            }
            Err(e) => bad.push(format!("{}: {e}", column.name)),
        }
    }
    if !cols.contains(&obj.pk) && bad.is_empty() {
        bad.push(format!(
            "missing \"{}\" (the record's id)",
            obj.pk_column().name
        ));
    }
    bad
}

/// What a new record of `obj` given the columns `cols` lacks: each column that is NOT NULL with
/// no default and not among them, which an insert would refuse.
pub fn missing_required(obj: &Object, cols: &[usize]) -> Vec<String> {
    obj.columns
        .iter()
        .enumerate()
        .filter(|(i, c)| c.not_null && !c.has_default && !cols.contains(i))
        .map(|(_, c)| {
            format!(
                "{}: missing; the column is NOT NULL and has no default",
                c.name
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, decl: &str, not_null: bool) -> Column {
        Column {
            name: name.into(),
            decl_type: decl.into(),
            affinity: Affinity::from_decl(decl),
            not_null,
            has_default: false,
            primary_key: false,
            foreign_key: None,
        }
    }

    /// (field name, declared type, raw input, expected value or `Err(())`)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Result<Value, ()>);

    #[test]
    fn values_by_field_type() {
        let cases: &[Case] = &[
            (
                "email",
                "",
                Some("ana@acme.com"),
                Ok(Value::Text("ana@acme.com".into())),
            ),
            ("email", "", Some("not-an-email"), Err(())),
            ("email", "", Some("ana@localhost"), Err(())),
            ("email", "", Some("Ana <ana@acme.com>"), Err(())),
            ("work_email", "TEXT", Some("a@b"), Err(())),
            (
                "phone",
                "",
                Some("+1 415 555 0134"),
                Ok(Value::Text("+1 415 555 0134".into())),
            ),
            ("phone", "", Some("call me"), Err(())),
            ("phone", "", Some("12345"), Err(())),
            (
                "domain",
                "",
                Some("acme.com"),
                Ok(Value::Text("acme.com".into())),
            ),
            ("domain", "", Some("acme"), Err(())),
            ("domain", "", Some("аcme.com"), Err(())), // Cyrillic а
            ("domain", "", Some("-acme.com"), Err(())),
            (
                "website",
                "",
                Some("https://acme.com/about"),
                Ok(Value::Text("https://acme.com/about".into())),
            ),
            ("website", "", Some("https://acme .com"), Err(())),
            (
                "lifecycle_stage",
                "",
                Some("mql"),
                Ok(Value::Text("mql".into())),
            ),
            ("lifecycle_stage", "", Some("hot-lead"), Err(())),
            (
                "email_status",
                "",
                Some("risky"),
                Ok(Value::Text("risky".into())),
            ),
            ("email_status", "", Some("great"), Err(())),
            (
                "employees",
                "INTEGER",
                Some("1200"),
                Ok(Value::Integer(1200)),
            ),
            ("employees", "INTEGER", Some("-3"), Ok(Value::Integer(-3))),
            ("employees", "INTEGER", Some("lots"), Err(())),
            ("employees", "INTEGER", Some("1,000"), Err(())),
            ("employees", "INTEGER", Some("5.0"), Err(())),
            (
                "employees",
                "INTEGER",
                Some("99999999999999999999"),
                Err(()),
            ),
            ("sensitive", "INTEGER", Some("1"), Ok(Value::Integer(1))),
            ("sensitive", "INTEGER", Some("true"), Ok(Value::Integer(1))),
            ("sensitive", "INTEGER", Some("2"), Err(())),
            ("score", "REAL", Some("0.5"), Ok(Value::Real(0.5))),
            ("score", "REAL", Some("NaN"), Err(())),
            ("score", "REAL", Some("inf"), Err(())),
            ("close_date", "", Some("2026-02-30"), Err(())),
            (
                "close_date",
                "",
                Some("2026-02-28"),
                Ok(Value::Text("2026-02-28".into())),
            ),
            (
                "created_at",
                "",
                Some("2026-03-14T09:26:53Z"),
                Ok(Value::Text("2026-03-14T09:26:53Z".into())),
            ),
            ("created_at", "", Some("yesterday"), Err(())),
            (
                "title",
                "",
                Some("VP \u{1b}[31mSales"),
                Ok(Value::Text("VP \u{1b}[31mSales".into())),
            ),
            ("title", "", Some("a\0b"), Err(())),
            ("title", "", None, Ok(Value::Null)),
        ];
        for (name, decl, raw, want) in cases {
            let got = value_for(&col(name, decl, false), *raw).map_err(|_| ());
            assert_eq!(&got, want, "field {name} ({decl}) value {raw:?}");
        }
    }

    #[test]
    fn not_null_fields_cannot_be_cleared() {
        let err = value_for(&col("name", "TEXT", true), None).unwrap_err();
        assert!(err.contains("cannot be cleared"), "{err}");
    }

    #[test]
    fn oversized_values_are_refused() {
        let big = "x".repeat(MAX_VALUE_BYTES + 1);
        assert!(value_for(&col("title", "TEXT", false), Some(&big)).is_err());
    }
}
