//! Field-by-field similarity of two records of one table, for merge proposals: is B the same
//! real-world entity as A? Works on any table: columns are classified by name and declared type
//! ([`classify`]), and each kind has its own comparison.
//!
//! Each compared column contributes a log-likelihood ratio (Fellegi–Sunter style): positive when
//! the values agree, negative when they disagree, zero when either side is empty (a missing value
//! is no evidence), and the score is the logistic of a sceptical prior plus their sum, so that
//! every point of it can be traced to a column ([`FieldMatch::weight`]). Agreement weights follow
//! how rare a chance agreement is (an email or phone number is nearly unique, a surname or
//! postcode is not) and disagreement weights how rarely one entity's value changes (a birth date
//! never, a title or company often), so that one shared attribute cannot outweigh the prior and
//! the other fields' disagreements. Evidence that only repeats other evidence is not counted
//! twice: an email local part that is just the person's name (`jane.doe@`) says nothing the name
//! columns have not said. Bookkeeping (the key, timestamps, owner, stage, flags, counts, amounts)
//! is [`FieldKind::Ignored`]: it describes how the CRM handles a record, not who it is.
//!
//! The table itself refines both ([`similarity_in`], [`frequency`]): an exact agreement weighs
//! by how common the shared value is in its column (a street number `1` or the surname `Smith`
//! proves little, a social security number much), and a column's kind is confirmed by a sample
//! of its values (a column named `street_number` whose values repeat is not an identifier).
//! Strong disagreement outweighs weak agreement: a different birth date, identifier or verified
//! email marks two people however well their names and town agree.

pub mod frequency;
mod nicknames;

pub use frequency::{Counted, Frequencies, Profile, Unknown};

use serde::{Deserialize, Serialize};

use crate::model::Value;
use crate::schema::{Affinity, Column};

/// How one column compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldMatch {
    pub column: String,
    pub kind: FieldKind,
    /// How alike the two values are, 0..1; `None` when either side is empty or the column is
    /// ignored.
    pub similarity: Option<f64>,
    /// The column's evidence in log-odds (natural log): positive for "same entity", negative
    /// against, 0 for no evidence. The score is `logistic(PRIOR_LOG_ODDS + Σ weight)`.
    pub weight: f64,
    /// For an exact agreement weighed by how common the shared value is: the share of the
    /// table's records that hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
}

/// What a column holds, as far as identity is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    FirstName,
    LastName,
    FullName,
    Email,
    Phone,
    Domain,
    /// A foreign key to a company-like table, or a company name.
    Company,
    Postcode,
    BirthDate,
    Date,
    /// An external identifier (exact match), or a foreign key to a table that is not company-like
    /// (a shared parent: weaker evidence).
    Identifier,
    Text,
    Ignored,
}

/// The similarity of two records: `score` in 0..1 and the evidence of every column, in column
/// order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Similarity {
    pub score: f64,
    pub fields: Vec<FieldMatch>,
}

/// The log-odds before any evidence: two records with nothing to compare score about 0.08.
pub const PRIOR_LOG_ODDS: f64 = -2.5;

// Agreement (`_AGREE`) and disagreement (`_DISAGREE`) weights, in log-odds.
const FIRST_AGREE: f64 = 3.0;
const FIRST_DISAGREE: f64 = -3.0;
const LAST_AGREE: f64 = 4.0;
const LAST_DISAGREE: f64 = -4.0;
/// Taken off a name comparison that only matches with first and last name swapped.
const SWAP_PENALTY: f64 = 0.5;
/// Names of different generations: `Jr.` against `Sr.`.
const GENERATION_CONFLICT: f64 = -6.0;
const EMAIL_AGREE: f64 = 8.0;
const EMAIL_CANONICAL: f64 = 6.5;
const EMAIL_OTHER_DOMAIN: f64 = 4.0;
const EMAIL_TYPO: f64 = 2.0;
const EMAIL_DISAGREE: f64 = -3.5;
const PHONE_AGREE: f64 = 6.0;
const PHONE_LAST7: f64 = 4.5;
const PHONE_DISAGREE: f64 = -2.5;
const PHONE_SHORT_AGREE: f64 = 2.0;
const PHONE_SHORT_DISAGREE: f64 = -1.0;
const DOMAIN_AGREE: f64 = 4.0;
const DOMAIN_SUBDOMAIN: f64 = 2.5;
const DOMAIN_SAME_NAME: f64 = 1.0;
const DOMAIN_DISAGREE: f64 = -2.0;
const COMPANY_AGREE: f64 = 2.0;
const COMPANY_DISAGREE: f64 = -1.0;
const POSTCODE_AGREE: f64 = 2.0;
const POSTCODE_DISAGREE: f64 = -1.0;
const BIRTH_AGREE: f64 = 4.5;
const BIRTH_TRANSPOSED: f64 = 2.0;
const BIRTH_NEAR: f64 = -1.0;
/// A birth date never changes: a different one outweighs a matching name and town.
const BIRTH_DISAGREE: f64 = -7.0;
const DATE_AGREE: f64 = 0.7;
const DATE_DISAGREE: f64 = -0.3;
const IDENT_AGREE: f64 = 7.0;
/// An identifier is one entity's for good: a different one outweighs a matching name and town.
const IDENT_DISAGREE: f64 = -7.0;
/// An identifier one digit or a transposition away: a typo as often as not.
const IDENT_NEAR: f64 = -1.0;
/// Emails both records mark as verified: each person's own, so different ones are two people.
const EMAIL_VERIFIED_DISAGREE: f64 = -7.0;
const REF_AGREE: f64 = 1.5;
const REF_DISAGREE: f64 = -0.5;
const TEXT_AGREE: f64 = 1.0;
const TEXT_NEAR: f64 = 0.4;
const TEXT_DISAGREE: f64 = -0.25;

// ───────────────────────────── classification ─────────────────────────────

/// What a column holds, judged by its name (snake_case or camelCase), declared type and foreign
/// key. The primary key is always [`FieldKind::Ignored`]. ([`similarity`] also reads a bare
/// `name` as a company name in a table with a web domain and no person columns.)
pub fn classify(column: &Column) -> FieldKind {
    use FieldKind::*;
    if column.primary_key {
        return Ignored;
    }
    let name = snake_case(&column.name);
    let tokens: Vec<&str> = name.split('_').filter(|t| !t.is_empty()).collect();
    let has = |t: &str| tokens.contains(&t);
    let has_any = |ts: &[&str]| ts.iter().any(|t| has(t));
    let decl = column.decl_type.to_ascii_uppercase();

    // Birth dates first: they look like dates, and a date is otherwise weak evidence.
    if name.contains("birth") || has_any(&["dob", "born", "birthday", "bday"]) {
        return BirthDate;
    }
    // Timestamps and bookkeeping say nothing about identity.
    let timestamp = tokens.last() == Some(&"at")
        || has_any(&[
            "created",
            "updated",
            "modified",
            "deleted",
            "timestamp",
            "synced",
            "imported",
        ])
        || decl.contains("TIMESTAMP")
        || decl.contains("DATETIME");
    let bookkeeping = has_any(&[
        "owner",
        "assignee",
        "assigned",
        "stage",
        "status",
        "state",
        "lifecycle",
        "tier",
        "sensitive",
        "hold",
        "flag",
        "flags",
        "dnc",
        "optout",
        "unsubscribed",
        "consent",
        "gdpr",
        "archived",
        "active",
        "verified",
        "bounced",
        "count",
        "amount",
        "total",
        "revenue",
        "employees",
        "score",
        "probability",
        "priority",
        "rating",
        "rank",
        "source",
        "version",
        "balance",
        "price",
        "quantity",
        "qty",
        "type",
        "kind",
        "category",
        "segment",
        "tag",
        "tags",
        "industry",
    ]) || name.contains("do_not")
        || name.contains("opt_out")
        || matches!(
            tokens.first(),
            Some(&("is" | "has" | "can" | "allow" | "num" | "n"))
        );
    // `last_contacted`, `first_seen`, `next_step`: activity markers, not names.
    let activity = tokens.len() > 1
        && matches!(tokens[0], "last" | "first" | "next" | "prev" | "previous")
        && !has("name");
    if timestamp || bookkeeping || activity {
        return Ignored;
    }
    // Profiles and logins before names and URLs: `linkedin_url`, `user_name` identify a person.
    if has_any(&[
        "linkedin", "twitter", "github", "username", "login", "handle", "ssn", "passport", "nino",
        "iban", "vat", "ein", "tin", "uuid", "guid", "external",
    ]) || (has("user") && has("name"))
    {
        return Identifier;
    }
    if let Some(fk) = &column.foreign_key {
        return if company_like(&fk.table) {
            Company
        } else {
            Identifier
        };
    }
    if has_any(&["email", "mail", "emailaddress"]) || name.contains("e_mail") {
        return Email;
    }
    if name.contains("phone") || has_any(&["mobile", "cell", "tel", "fax", "whatsapp", "msisdn"]) {
        return Phone;
    }
    if has_any(&["postcode", "zip", "zipcode", "postalcode", "plz"])
        || ((has("postal") || has("post")) && has("code"))
    {
        return Postcode;
    }
    if has_any(&["domain", "website", "url", "homepage", "web", "site"]) {
        return Domain;
    }
    if tokens.iter().any(|t| company_like(t)) && !has_any(&["number", "no", "nr"]) {
        return Company;
    }
    if has("middle") {
        return Text;
    }
    if has_any(&["firstname", "fname", "forename", "givenname", "first"]) || has("given") {
        return FirstName;
    }
    if has_any(&["lastname", "lname", "surname", "familyname", "last"])
        || (has("family") && has("name"))
    {
        return LastName;
    }
    if has_any(&["name", "fullname"]) {
        return FullName;
    }
    if tokens.last() == Some(&"id") || has_any(&["number", "no", "nr", "ident", "identifier"]) {
        return Identifier;
    }
    if decl.contains("DATE")
        || has_any(&["date", "day", "dt"])
        || (tokens.last() == Some(&"on") && tokens.len() > 1)
    {
        return Date;
    }
    match column.affinity {
        // Numbers left over are counts, amounts and flags; blobs are attachments.
        Affinity::Integer | Affinity::Real | Affinity::Numeric | Affinity::Blob => Ignored,
        Affinity::Text => Text,
    }
}

/// Whether a table or column-name token names companies.
fn company_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "compan", "account", "organi", "employer", "business", "firm", "vendor", "supplier",
    ]
    .iter()
    .any(|p| n.contains(p))
        || matches!(n.as_str(), "org" | "orgs" | "corp" | "corporation")
}

/// `firstName`, `First Name`, `first-name` → `first_name`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_alphanumeric() {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            out.push('_');
            prev_lower = false;
        }
    }
    out
}

// ───────────────────────────── scoring ─────────────────────────────

/// Compare record `a` with record `b`, both in the order of `columns` (a missing trailing value
/// counts as NULL), on the evidence of names and types alone. Pure and deterministic.
pub fn similarity(columns: &[Column], a: &[Value], b: &[Value]) -> Similarity {
    similarity_in(columns, a, b, &mut Unknown)
}

/// [`similarity`], with what the table knows of its values: each column's kind confirmed by
/// its values, and each exact agreement weighed by how common the shared value is.
/// Deterministic for the same answers of `freq`.
pub fn similarity_in(
    columns: &[Column],
    a: &[Value],
    b: &[Value],
    freq: &mut dyn Frequencies,
) -> Similarity {
    const NULL: Value = Value::Null;
    let value = |row: &[Value], i: usize| row.get(i).unwrap_or(&NULL).clone();
    let mut kinds: Vec<FieldKind> = columns.iter().map(classify).collect();
    for (i, (k, c)) in kinds.iter_mut().zip(columns).enumerate() {
        let checked = matches!(
            k,
            FieldKind::Identifier | FieldKind::Phone | FieldKind::Email | FieldKind::BirthDate
        );
        let both = !value(a, i).is_empty() && !value(b, i).is_empty();
        if checked
            && c.foreign_key.is_none()
            && both
            && let Some(p) = freq.profile(i)
        {
            *k = p.confirm(*k);
        }
    }
    // A table of organisations (a web domain, nobody's email or given name): its `name` is a
    // company name, not a person's.
    let personal = kinds.iter().any(|k| {
        matches!(
            k,
            FieldKind::FirstName | FieldKind::LastName | FieldKind::Email | FieldKind::BirthDate
        )
    });
    if !personal && kinds.contains(&FieldKind::Domain) {
        for (k, c) in kinds.iter_mut().zip(columns) {
            if *k == FieldKind::FullName && snake_case(&c.name) == "name" {
                *k = FieldKind::Company;
            }
        }
    }
    // Every name token of both records, to tell a name-derived email local part (`jane.doe@`)
    // from a distinctive one.
    let names: Vec<String> = kinds
        .iter()
        .enumerate()
        .filter(|(_, k)| {
            matches!(
                k,
                FieldKind::FirstName | FieldKind::LastName | FieldKind::FullName
            )
        })
        .flat_map(|(i, _)| [value(a, i), value(b, i)])
        .flat_map(|v| name_tokens(&v.display()))
        .collect();
    let mut fields: Vec<FieldMatch> = columns
        .iter()
        .zip(&kinds)
        .enumerate()
        .map(|(i, (col, &kind))| {
            let (va, vb) = (value(a, i), value(b, i));
            let ev = if kind == FieldKind::Ignored || va.is_empty() || vb.is_empty() {
                None
            } else {
                Some(compare(kind, col, &va, &vb, &names))
            };
            FieldMatch {
                column: col.name.clone(),
                kind,
                similarity: ev.map(|e| round(e.similarity)),
                weight: ev.map_or(0.0, |e| e.weight),
                share: None,
            }
        })
        .collect();

    swapped_name_columns(&kinds, a, b, &mut fields);
    cross_column(FieldKind::Email, &kinds, a, b, &names, &mut fields);
    cross_column(FieldKind::Phone, &kinds, a, b, &names, &mut fields);
    verified_emails(columns, &kinds, a, b, &mut fields);
    by_frequency(columns, a, b, freq, &mut fields);
    outweigh(columns, &mut fields);

    let log_odds = PRIOR_LOG_ODDS + fields.iter().map(|f| f.weight).sum::<f64>();
    Similarity {
        score: 1.0 / (1.0 + (-log_odds).exp()),
        fields,
    }
}

/// Exact agreements weighed by how common the shared value is ([`frequency::adjusted`]). The
/// larger count of the two stored spellings is taken: the more common reading.
fn by_frequency(
    columns: &[Column],
    a: &[Value],
    b: &[Value],
    freq: &mut dyn Frequencies,
    fields: &mut [FieldMatch],
) {
    for (i, f) in fields.iter_mut().enumerate() {
        let exact = f.similarity == Some(1.0) && f.weight > 0.0;
        let fk = columns[i].foreign_key.is_some();
        let (Some(typical), true) = (frequency::typical(f.kind, fk), exact) else {
            continue;
        };
        let (Some(va), Some(vb)) = (a.get(i), b.get(i)) else {
            continue;
        };
        let Some(rows) = freq.rows() else { return };
        let mut count = freq.count(i, va);
        if vb != va {
            count = count.max(freq.count(i, vb));
        }
        if let Some(count) = count {
            let (w, share) = frequency::adjusted(f.weight, typical, count, rows);
            f.weight = w;
            f.share = Some(share);
        }
    }
}

/// Strong disagreement outweighs weak agreement: when a birth date, an identifier or a verified
/// email disagrees outright, what names, addresses and other descriptive columns agree on cannot
/// lift the score above what it would be without them. Only agreement as strong (an email, a
/// phone, another identifier) can.
fn outweigh(columns: &[Column], fields: &mut [FieldMatch]) {
    let strong = |(c, f): &(&Column, &FieldMatch)| match f.kind {
        FieldKind::BirthDate => f.weight <= BIRTH_DISAGREE,
        FieldKind::Identifier => c.foreign_key.is_none() && f.weight <= IDENT_DISAGREE,
        FieldKind::Email => f.weight <= EMAIL_VERIFIED_DISAGREE,
        _ => false,
    };
    let Some(at) = columns.iter().zip(fields.iter()).position(|p| strong(&p)) else {
        return;
    };
    let weak: f64 = fields
        .iter()
        .filter(|f| {
            matches!(
                f.kind,
                FieldKind::FirstName
                    | FieldKind::LastName
                    | FieldKind::FullName
                    | FieldKind::Postcode
                    | FieldKind::Company
                    | FieldKind::Domain
                    | FieldKind::Date
                    | FieldKind::Text
            )
        })
        .map(|f| f.weight.max(0.0))
        .sum();
    fields[at].weight = fields[at].weight.min(-weak);
}

/// Tables that record whether an email was verified (`email_status`, `email_verified`): when
/// both records' emails are verified and differ, each is its owner's own, and the two records
/// are two people.
fn verified_emails(
    columns: &[Column],
    kinds: &[FieldKind],
    a: &[Value],
    b: &[Value],
    fields: &mut [FieldMatch],
) {
    let Some(status) = columns.iter().position(|c| {
        let n = snake_case(&c.name);
        n.contains("mail") && (n.contains("status") || n.contains("verified"))
    }) else {
        return;
    };
    let verified = |row: &[Value]| {
        row.get(status).is_some_and(|v| {
            matches!(
                v.display().trim().to_ascii_lowercase().as_str(),
                "verified" | "valid" | "confirmed" | "true" | "yes" | "1"
            )
        })
    };
    if !(verified(a) && verified(b)) {
        return;
    }
    let emails = kinds.iter().filter(|k| **k == FieldKind::Email).count();
    for (f, k) in fields.iter_mut().zip(kinds) {
        // With one email column, the verified one is that one's.
        if *k == FieldKind::Email && emails == 1 && f.weight < 0.0 && f.similarity.is_some() {
            f.weight = f.weight.min(EMAIL_VERIFIED_DISAGREE);
        }
    }
}

/// One column's comparison of two non-empty values.
#[derive(Debug, Clone, Copy)]
struct Evidence {
    similarity: f64,
    weight: f64,
}

fn ev(similarity: f64, weight: f64) -> Evidence {
    Evidence { similarity, weight }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn compare(kind: FieldKind, column: &Column, a: &Value, b: &Value, names: &[String]) -> Evidence {
    let (sa, sb) = (a.display(), b.display());
    let (sa, sb) = (sa.trim(), sb.trim());
    match kind {
        FieldKind::FirstName => generations(sa, sb, first_name(sa, sb)),
        FieldKind::LastName => generations(sa, sb, last_name(sa, sb)),
        FieldKind::FullName => generations(sa, sb, full_name(sa, sb)),
        FieldKind::Email => email(sa, sb, names),
        FieldKind::Phone => phone(sa, sb),
        FieldKind::Domain => domain(sa, sb),
        FieldKind::Company if column.foreign_key.is_some() || key_like(column) => {
            exact_key(sa, sb, COMPANY_AGREE, COMPANY_DISAGREE)
        }
        FieldKind::Company => company_name(sa, sb),
        FieldKind::Postcode => postcode(sa, sb),
        FieldKind::BirthDate => birth_date(sa, sb),
        FieldKind::Date => date(sa, sb),
        FieldKind::Identifier if column.foreign_key.is_some() => {
            exact_key(sa, sb, REF_AGREE, REF_DISAGREE)
        }
        FieldKind::Identifier => match (a, b) {
            (Value::Blob(x), Value::Blob(y)) => ev(
                f64::from(u8::from(x == y)),
                if x == y { IDENT_AGREE } else { IDENT_DISAGREE },
            ),
            _ => identifier(sa, sb),
        },
        FieldKind::Text => text(sa, sb),
        FieldKind::Ignored => ev(0.0, 0.0),
    }
}

/// A company column that holds a key (`company_id`, an integer), not a name: compared exactly,
/// since `co-001` and `co-002` are as different as keys get.
fn key_like(column: &Column) -> bool {
    let name = snake_case(&column.name);
    matches!(name.rsplit('_').next(), Some("id" | "key" | "ref" | "uuid"))
        || matches!(column.affinity, Affinity::Integer)
}

/// Map a string similarity onto a weight between `disagree` and `agree`: clear disagreement
/// below 0.75, neutral at 0.85, and a growing share of `agree` above, the full weight only for
/// an exact match.
fn graded(s: f64, agree: f64, disagree: f64) -> f64 {
    const KNOTS: [(f64, f64); 4] = [(0.75, 0.0), (0.85, 1.0), (0.92, 1.45), (0.999, 1.8)];
    // y: 0 = disagree, 1 = neutral, 1 + k = k·agree.
    let y = if s <= KNOTS[0].0 {
        0.0
    } else if s >= 1.0 {
        2.0
    } else if s >= KNOTS[3].0 {
        KNOTS[3].1
    } else {
        let i = KNOTS.windows(2).position(|w| s < w[1].0).unwrap_or(2);
        let ((x0, y0), (x1, y1)) = (KNOTS[i], KNOTS[i + 1]);
        y0 + (y1 - y0) * (s - x0) / (x1 - x0)
    };
    if y < 1.0 {
        disagree * (1.0 - y)
    } else {
        agree * (y - 1.0)
    }
}

// ── names ──

/// Lowercase, accents folded to ASCII where there is an obvious base letter.
fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_lowercase().next().unwrap_or(c);
        let r = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
            'æ' => "ae",
            'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
            'ď' | 'đ' | 'ð' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
            'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
            'ĥ' | 'ħ' => "h",
            'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
            'ĵ' => "j",
            'ķ' => "k",
            'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
            'ñ' | 'ń' | 'ņ' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
            'œ' => "oe",
            'ŕ' | 'ŗ' | 'ř' => "r",
            'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
            'ß' => "ss",
            'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
            'þ' => "th",
            'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
            'ŵ' => "w",
            'ý' | 'ÿ' | 'ŷ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(r);
    }
    out
}

/// Titles and generational suffixes, which say nothing about who someone is.
const NAME_NOISE: &[&str] = &[
    "mr", "mrs", "ms", "miss", "dr", "prof", "sir", "jr", "sr", "junior", "senior", "ii", "iii",
    "iv", "phd", "md",
];

/// Folded name tokens: apostrophes vanish (`O'Brien` → `obrien`), other punctuation splits.
fn name_tokens_raw(s: &str) -> Vec<String> {
    let folded: String = fold(s)
        .chars()
        .filter(|c| !matches!(c, '\'' | '’' | '`'))
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    folded.split_whitespace().map(str::to_owned).collect()
}

/// [`name_tokens_raw`] without titles and generational suffixes (unless nothing else is left).
fn name_tokens(s: &str) -> Vec<String> {
    let tokens = name_tokens_raw(s);
    let kept: Vec<String> = tokens
        .iter()
        .filter(|t| !NAME_NOISE.contains(&t.as_str()))
        .cloned()
        .collect();
    if kept.is_empty() { tokens } else { kept }
}

/// `Jr.`, `Sr.`, `III`: which generation a name names, if it says.
fn generation(s: &str) -> Option<&'static str> {
    name_tokens_raw(s)
        .iter()
        .rev()
        .find_map(|t| match t.as_str() {
            "jr" | "junior" | "ii" => Some("jr"),
            "sr" | "senior" => Some("sr"),
            "iii" => Some("iii"),
            "iv" => Some("iv"),
            _ => None,
        })
}

/// Father and son share a name, and often a phone and an address: names that state different
/// generations (`Robert King Sr` / `Robert King Jr`) are different people whatever else agrees.
fn generations(a: &str, b: &str, e: Evidence) -> Evidence {
    match (generation(a), generation(b)) {
        (Some(x), Some(y)) if x != y => {
            ev(e.similarity * 0.5, e.weight.min(0.0) + GENERATION_CONFLICT)
        }
        _ => e,
    }
}

/// One given-name token against another.
fn first_token(a: &str, b: &str) -> Evidence {
    if a == b {
        return ev(1.0, FIRST_AGREE);
    }
    if nicknames::same_person_name(a, b) {
        return ev(0.95, 0.75 * FIRST_AGREE);
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.len() == 1 {
        // An initial: consistent, but weak.
        return if long.starts_with(short) {
            ev(0.7, 0.25 * FIRST_AGREE)
        } else {
            ev(0.0, FIRST_DISAGREE)
        };
    }
    if short.len() >= 3 && long.starts_with(short) {
        // An unlisted short form: `Chris` for `Christian`.
        return ev(0.9, 0.6 * FIRST_AGREE);
    }
    let s = strsim::jaro_winkler(a, b);
    ev(s, graded(s, FIRST_AGREE, FIRST_DISAGREE))
}

/// Given names, possibly of several tokens (`Mary Jane`, `J. Robert`): the best-matching pair.
fn first_name(a: &str, b: &str) -> Evidence {
    first_tokens(&name_tokens(a), &name_tokens(b))
}

fn first_tokens(ta: &[String], tb: &[String]) -> Evidence {
    let mut best = ev(0.0, FIRST_DISAGREE);
    for x in ta {
        for y in tb {
            let e = first_token(x, y);
            if e.weight > best.weight {
                best = e;
            }
        }
    }
    let (ja, jb) = (ta.concat(), tb.concat());
    if ja == jb && !ja.is_empty() {
        best = ev(1.0, FIRST_AGREE);
    }
    best
}

fn last_name(a: &str, b: &str) -> Evidence {
    last_tokens(&name_tokens(a), &name_tokens(b))
}

/// Family names: exact, exact but for spacing (`Van der Berg`/`Vanderberg`), one part of a
/// compound (`García López`/`García`), or a typo.
fn last_tokens(ta: &[String], tb: &[String]) -> Evidence {
    if ta.is_empty() || tb.is_empty() {
        return ev(0.0, 0.0);
    }
    if ta == tb {
        return ev(1.0, LAST_AGREE);
    }
    let (ja, jb) = (ta.concat(), tb.concat());
    if ja == jb {
        return ev(0.98, 0.95 * LAST_AGREE);
    }
    let (small, big) = if ta.len() <= tb.len() {
        (ta, tb)
    } else {
        (tb, ta)
    };
    if small.iter().all(|t| t.len() > 1 && big.contains(t)) {
        return ev(0.9, 0.6 * LAST_AGREE);
    }
    let s = strsim::jaro_winkler(&ta.join(" "), &tb.join(" ")).max(strsim::jaro_winkler(&ja, &jb));
    ev(s, graded(s, LAST_AGREE, LAST_DISAGREE))
}

/// A whole name in one column: `First [Middle] Last` or `Last, First`; also tried with first and
/// last swapped. Its weight is that of a first-name plus a last-name comparison.
fn full_name(a: &str, b: &str) -> Evidence {
    let (pa, pb) = (person_name(a), person_name(b));
    match (pa, pb) {
        (Some((fa, la)), Some((fb, lb))) => {
            let straight = combine(first_tokens(&fa, &fb), last_tokens(&la, &lb), 0.0);
            let none = ev(0.0, 0.0);
            let (f, l) = swapped(&fa, &la, &fb, &lb);
            let swapped = combine(f.unwrap_or(none), l.unwrap_or(none), SWAP_PENALTY);
            if swapped.weight > straight.weight {
                swapped
            } else {
                straight
            }
        }
        _ => {
            // A single token on one side: the best of it against either part, as partial
            // evidence.
            let (ta, tb) = (name_tokens(a), name_tokens(b));
            if ta.is_empty() || tb.is_empty() {
                return ev(0.0, 0.0);
            }
            let f = first_tokens(&ta, &tb);
            let l = last_tokens(&ta, &tb);
            let best = if l.weight >= f.weight { l } else { f };
            ev(best.similarity, best.weight.min(0.5 * LAST_AGREE))
        }
    }
}

/// First and last name compared crosswise: A's first name against B's last and A's last against
/// B's first, read either way round (first-name and last-name comparisons weigh differently, and
/// the score must not depend on which record is A), the better reading. `None` where a side is
/// empty: no evidence, as everywhere.
type Crosswise = (Option<Evidence>, Option<Evidence>);

fn swapped(fa: &[String], la: &[String], fb: &[String], lb: &[String]) -> Crosswise {
    let both = |x: &[String], y: &[String]| !x.is_empty() && !y.is_empty();
    let first = |x: &[String], y: &[String]| both(x, y).then(|| first_tokens(x, y));
    let last = |x: &[String], y: &[String]| both(x, y).then(|| last_tokens(x, y));
    let weight = |c: &Crosswise| c.0.map_or(0.0, |e| e.weight) + c.1.map_or(0.0, |e| e.weight);
    let one = (first(fa, lb), last(la, fb));
    let two = (first(fb, la), last(lb, fa));
    if weight(&two) > weight(&one) {
        two
    } else {
        one
    }
}

fn combine(first: Evidence, last: Evidence, penalty: f64) -> Evidence {
    ev(
        0.4 * first.similarity + 0.6 * last.similarity,
        first.weight + last.weight - penalty,
    )
}

/// Split a full name into (given, family) tokens. `Smith, John` is read as `John Smith`; middle
/// initials are dropped. `None` for a single token.
fn person_name(s: &str) -> Option<(Vec<String>, Vec<String>)> {
    let tokens = match s.split_once(',') {
        Some((last, first))
            if !last.trim().is_empty()
                && name_tokens_raw(first)
                    .iter()
                    .any(|t| !NAME_NOISE.contains(&t.as_str())) =>
        {
            let mut t = name_tokens(first);
            t.extend(name_tokens(last));
            t
        }
        _ => name_tokens(s),
    };
    if tokens.len() < 2 {
        return None;
    }
    let first = vec![tokens[0].clone()];
    let rest: Vec<String> = tokens[1..].to_vec();
    let no_initials: Vec<String> = rest.iter().filter(|t| t.len() > 1).cloned().collect();
    let last = if no_initials.is_empty() {
        rest
    } else {
        no_initials
    };
    Some((first, last))
}

/// Tables with separate first- and last-name columns: when the two records match better with
/// first and last swapped (a data-entry slip, perhaps with one of the two left empty), use that
/// reading for both columns.
fn swapped_name_columns(kinds: &[FieldKind], a: &[Value], b: &[Value], fields: &mut [FieldMatch]) {
    let fi = kinds.iter().position(|k| *k == FieldKind::FirstName);
    let li = kinds.iter().position(|k| *k == FieldKind::LastName);
    let (Some(fi), Some(li)) = (fi, li) else {
        return;
    };
    let tokens = |row: &[Value], i: usize| {
        row.get(i)
            .filter(|v| !v.is_empty())
            .map_or_else(Vec::new, |v| name_tokens(&v.display()))
    };
    let (af, al, bf, bl) = (tokens(a, fi), tokens(a, li), tokens(b, fi), tokens(b, li));
    let crosswise = (!af.is_empty() && !bl.is_empty()) || (!al.is_empty() && !bf.is_empty());
    if !crosswise {
        return;
    }
    let straight = fields[fi].weight + fields[li].weight;
    let (f, l) = swapped(&af, &al, &bf, &bl);
    let compared = usize::from(f.is_some()) + usize::from(l.is_some());
    let total = f.map_or(0.0, |e| e.weight) + l.map_or(0.0, |e| e.weight);
    if compared > 0 && total - SWAP_PENALTY > straight {
        for (i, e) in [(fi, f), (li, l)] {
            fields[i].similarity = e.map(|e| round(e.similarity));
            fields[i].weight = e.map_or(0.0, |e| e.weight - SWAP_PENALTY / compared as f64);
        }
    }
}

/// Tables with several email (or phone) columns: a value that disagrees within its column but
/// equals one of the other record's values in a sibling column (work vs personal email, phone vs
/// mobile) is agreement after all, slightly discounted.
fn cross_column(
    kind: FieldKind,
    kinds: &[FieldKind],
    a: &[Value],
    b: &[Value],
    names: &[String],
    fields: &mut [FieldMatch],
) {
    let idx: Vec<usize> = (0..kinds.len()).filter(|&i| kinds[i] == kind).collect();
    if idx.len() < 2 {
        return;
    }
    let get = |row: &[Value], i: usize| row.get(i).filter(|v| !v.is_empty()).map(Value::display);
    let cmp = |x: &str, y: &str| match kind {
        FieldKind::Email => email(x, y, names),
        _ => phone(x, y),
    };
    for &i in &idx {
        if fields[i].weight >= 0.0 {
            continue;
        }
        let (Some(va), Some(vb)) = (get(a, i), get(b, i)) else {
            continue;
        };
        let mut best: Option<Evidence> = None;
        for &j in idx.iter().filter(|&&j| j != i) {
            for e in [
                get(b, j).map(|x| cmp(&va, &x)),
                get(a, j).map(|x| cmp(&x, &vb)),
            ]
            .into_iter()
            .flatten()
            {
                if e.weight > 0.0 && best.is_none_or(|b| e.weight > b.weight) {
                    best = Some(e);
                }
            }
        }
        if let Some(e) = best {
            fields[i].similarity = Some(round(0.9 * e.similarity));
            fields[i].weight = 0.8 * e.weight;
        }
    }
}

// ── contact points ──

/// Emails: case-insensitive exact is near-proof; the same mailbox up to dots and `+tags` is
/// nearly as good; the same local part at another domain is strong, unless it is only the
/// person's name (`names`: the records' name tokens), which namesakes share and the name columns
/// already count; anything else disagrees.
fn email(a: &str, b: &str, names: &[String]) -> Evidence {
    let norm = |s: &str| {
        let s = s.trim().to_lowercase();
        s.strip_prefix("mailto:").map(str::to_owned).unwrap_or(s)
    };
    let (a, b) = (norm(a), norm(b));
    if a == b {
        return ev(1.0, EMAIL_AGREE);
    }
    let (Some((la, da)), Some((lb, db))) = (a.rsplit_once('@'), b.rsplit_once('@')) else {
        return ev(0.0, EMAIL_DISAGREE);
    };
    let canon = |l: &str| -> String {
        let l = l.split('+').next().unwrap_or(l);
        l.chars()
            .filter(|c| !matches!(c, '.' | '_' | '-'))
            .collect()
    };
    let (ca, cb) = (canon(la), canon(lb));
    let same_domain = da == db;
    if ca == cb && !ca.is_empty() {
        return if same_domain {
            ev(0.95, EMAIL_CANONICAL)
        } else if name_derived(&ca, names) {
            ev(0.5, 0.6 * EMAIL_DISAGREE)
        } else if ca.len() >= 5 {
            ev(0.8, EMAIL_OTHER_DOMAIN)
        } else {
            // `john@` or `info@` at two domains: common, weak.
            ev(0.6, 0.5 * EMAIL_OTHER_DOMAIN)
        };
    }
    let s = strsim::jaro_winkler(&ca, &cb);
    if same_domain && s >= 0.93 && ca.len() >= 5 {
        // A typo in a mailbox, unless both are just (similar) names: then two mailboxes.
        return if name_derived(&ca, names) && name_derived(&cb, names) {
            ev(s * 0.8, 0.6 * EMAIL_DISAGREE)
        } else {
            ev(s * 0.8, EMAIL_TYPO)
        };
    }
    ev(if same_domain { 0.3 } else { 0.0 }, EMAIL_DISAGREE)
}

/// Whether an email local part (dots and tags removed) is just a name: `janedoe`, `jdoe`,
/// `doejane`, `jane`, `jane.doe42`, `josevanderberg`: a run of the records' name tokens and
/// initials (`names`), at least one of them whole, and perhaps a number.
fn name_derived(local: &str, names: &[String]) -> bool {
    let local = local
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .as_bytes();
    let n = local.len();
    // reach[i][w]: the first i bytes split into tokens and initials, w = a whole token among them.
    let mut reach = vec![[false; 2]; n + 1];
    reach[0][0] = true;
    for i in 0..n {
        for w in 0..2 {
            if !reach[i][w] {
                continue;
            }
            for t in names.iter().map(String::as_bytes) {
                if t.len() > 1 && local[i..].starts_with(t) {
                    reach[i + t.len()][1] = true;
                }
                if let Some(c) = t.first()
                    && local[i] == *c
                    && c.is_ascii()
                {
                    reach[i + 1][w] = true;
                }
            }
        }
    }
    n > 0 && reach[n][1]
}

/// The digits of a phone number, without extension and international prefix.
fn phone_digits(s: &str) -> String {
    let s = s.to_ascii_lowercase();
    let main = ["ext", "x", "#", ";"]
        .iter()
        .filter_map(|m| s.find(m))
        .min()
        .map_or(s.as_str(), |i| &s[..i]);
    let d: String = main.chars().filter(char::is_ascii_digit).collect();
    d.strip_prefix("00").map(str::to_owned).unwrap_or(d)
}

/// The national number: NANP `1` and trunk `0` prefixes dropped.
fn national(d: &str) -> &str {
    if d.len() == 11 && d.starts_with('1') {
        &d[1..]
    } else {
        d.trim_start_matches('0')
    }
}

/// Phones: digits only; equal national numbers (one side may carry a country code) are a match,
/// equal last seven digits nearly so.
fn phone(a: &str, b: &str) -> Evidence {
    let (da, db) = (phone_digits(a), phone_digits(b));
    if da.len() < 7 || db.len() < 7 {
        return if !da.is_empty() && da == db {
            ev(1.0, PHONE_SHORT_AGREE)
        } else {
            ev(0.0, PHONE_SHORT_DISAGREE)
        };
    }
    let (na, nb) = (national(&da), national(&db));
    let (short, long) = if na.len() <= nb.len() {
        (na, nb)
    } else {
        (nb, na)
    };
    if na == nb || (short.len() >= 9 && long.ends_with(short)) {
        return ev(1.0, PHONE_AGREE);
    }
    if na[na.len().saturating_sub(7)..] == nb[nb.len().saturating_sub(7)..] {
        return ev(0.9, PHONE_LAST7);
    }
    let tail = |n: &str| n[n.len().saturating_sub(10)..].to_owned();
    if strsim::damerau_levenshtein(&tail(na), &tail(nb)) == 1 {
        // One digit off: a typo, or the next desk along. No evidence either way.
        return ev(0.5, 0.0);
    }
    ev(0.0, PHONE_DISAGREE)
}

fn domain_norm(s: &str) -> String {
    let s = s.trim().to_lowercase();
    let s = s.rsplit_once('@').map_or(s.as_str(), |(_, d)| d);
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let s = s.split(['/', '?', '#', ':']).next().unwrap_or(s);
    let s = s.trim_end_matches('.');
    s.strip_prefix("www.").unwrap_or(s).to_owned()
}

/// Web domains: exact, one a subdomain of the other, or the same name under another suffix.
fn domain(a: &str, b: &str) -> Evidence {
    let (a, b) = (domain_norm(a), domain_norm(b));
    if a == b {
        return ev(1.0, DOMAIN_AGREE);
    }
    if a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}")) {
        return ev(0.8, DOMAIN_SUBDOMAIN);
    }
    let label = |d: &str| d.split('.').next().unwrap_or("").to_owned();
    if label(&a).len() >= 3 && label(&a) == label(&b) {
        return ev(0.6, DOMAIN_SAME_NAME);
    }
    ev(strsim::jaro_winkler(&a, &b) * 0.5, DOMAIN_DISAGREE)
}

/// Keys (foreign keys, company ids): equal or not, ignoring case and surrounding space.
fn exact_key(a: &str, b: &str, agree: f64, disagree: f64) -> Evidence {
    if a.eq_ignore_ascii_case(b) {
        ev(1.0, agree)
    } else {
        ev(0.0, disagree)
    }
}

const LEGAL_FORMS: &[&str] = &[
    "the",
    "inc",
    "incorporated",
    "llc",
    "llp",
    "ltd",
    "limited",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "gmbh",
    "ag",
    "sa",
    "sas",
    "sarl",
    "bv",
    "nv",
    "oy",
    "ab",
    "as",
    "pty",
    "srl",
    "spa",
    "kg",
];

/// Company names: equal once case, punctuation and legal forms (`Inc.`, `GmbH`) are set aside.
fn company_name(a: &str, b: &str) -> Evidence {
    let norm = |s: &str| {
        let t = name_tokens(s);
        let kept: Vec<String> = t
            .iter()
            .filter(|x| !LEGAL_FORMS.contains(&x.as_str()))
            .cloned()
            .collect();
        if kept.is_empty() {
            t.concat()
        } else {
            kept.concat()
        }
    };
    let (na, nb) = (norm(a), norm(b));
    if na == nb {
        return ev(1.0, COMPANY_AGREE);
    }
    let s = strsim::jaro_winkler(&na, &nb);
    if s >= 0.92 {
        return ev(s, 0.5 * COMPANY_AGREE);
    }
    ev(s, COMPANY_DISAGREE)
}

/// Postcodes: equal once case and spacing are set aside; a US ZIP+4 matches its ZIP.
fn postcode(a: &str, b: &str) -> Evidence {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_uppercase)
            .collect()
    };
    let (a, b) = (norm(a), norm(b));
    let zip5 = |s: &str| {
        if s.len() == 9 && s.chars().all(|c| c.is_ascii_digit()) {
            s[..5].to_owned()
        } else {
            s.to_owned()
        }
    };
    if a == b || zip5(&a) == zip5(&b) {
        return ev(1.0, POSTCODE_AGREE);
    }
    ev(strsim::jaro_winkler(&a, &b) * 0.5, POSTCODE_DISAGREE)
}

// ── dates and the rest ──

type Ymd = (i32, u32, u32);

/// The readings of a date: one for ISO (`1985-03-07`, `19850307`) or named months, two for an
/// ambiguous `03/07/1985`. Empty when it is not a date.
fn date_readings(s: &str) -> Vec<Ymd> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let s = s.trim();
    // Drop a time of day.
    let s = match s.find(['T', ' ']) {
        Some(i)
            if i >= 8
                && s[..i]
                    .chars()
                    .all(|c| c.is_ascii_digit() || "-/.".contains(c)) =>
        {
            &s[..i]
        }
        _ => s,
    };
    let lower = s.to_ascii_lowercase();
    let parts: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect();
    let valid = |(y, m, d): Ymd| (1..=12).contains(&m) && (1..=31).contains(&d) && y > 0;
    let year = |p: &str| -> Option<i32> {
        let y: i32 = p.parse().ok()?;
        match p.len() {
            4 => Some(y),
            2 => Some(if y > 30 { 1900 + y } else { 2000 + y }),
            _ => None,
        }
    };
    let num = |p: &str| p.parse::<u32>().ok();
    let mut out: Vec<Ymd> = Vec::new();
    match parts.as_slice() {
        [p] if p.len() == 8 && p.chars().all(|c| c.is_ascii_digit()) => {
            if let (Ok(y), Some(m), Some(d)) = (p[..4].parse(), num(&p[4..6]), num(&p[6..])) {
                out.push((y, m, d));
            }
        }
        [x, y, z] => {
            let month = |p: &str| {
                (p.len() >= 3)
                    .then(|| MONTHS.iter().position(|m| p.starts_with(m)))
                    .flatten()
                    .map(|i| i as u32 + 1)
            };
            if let Some(m) = month(y) {
                // `7 Mar 1985` or `1985 Mar 7`
                if let (Some(d), Some(yr)) = (num(x), year(z)) {
                    out.push((yr, m, d));
                } else if let (Some(yr), Some(d)) = (year(x), num(z)) {
                    out.push((yr, m, d));
                }
            } else if let Some(m) = month(x) {
                // `Mar 7 1985`
                if let (Some(d), Some(yr)) = (num(y), year(z)) {
                    out.push((yr, m, d));
                }
            } else if x.len() == 4 {
                if let (Some(yr), Some(m), Some(d)) = (year(x), num(y), num(z)) {
                    out.push((yr, m, d));
                }
            } else if let (Some(p), Some(q), Some(yr)) = (num(x), num(y), year(z)) {
                out.push((yr, q, p)); // day first
                out.push((yr, p, q)); // month first
            }
        }
        _ => {}
    }
    out.retain(|r| valid(*r));
    out.dedup();
    out
}

/// Birth dates: equal is strong, never-equal is strong against; day and month transposed, or
/// one part off, is what a typo looks like.
fn birth_date(a: &str, b: &str) -> Evidence {
    let (ra, rb) = (date_readings(a), date_readings(b));
    if ra.is_empty() || rb.is_empty() {
        return birth_digits(a, b);
    }
    let any = |f: &dyn Fn(Ymd, Ymd) -> bool| ra.iter().any(|&x| rb.iter().any(|&y| f(x, y)));
    if any(&|x, y| x == y) {
        return if ra.len() == 1 && rb.len() == 1 {
            ev(1.0, BIRTH_AGREE)
        } else {
            ev(0.95, 0.9 * BIRTH_AGREE)
        };
    }
    if any(&|x, y| x.0 == y.0 && x.1 == y.2 && x.2 == y.1) {
        return ev(0.7, BIRTH_TRANSPOSED);
    }
    let near = |x: Ymd, y: Ymd| {
        let same = [x.0 == y.0, x.1 == y.1, x.2 == y.2];
        same.iter().filter(|s| **s).count() == 2
    };
    if any(&near) || one_digit_apart(a, b) {
        return ev(0.4, BIRTH_NEAR);
    }
    ev(0.0, BIRTH_DISAGREE)
}

/// Whether two values written alike are one digit, or one swap of adjacent digits, apart.
fn one_digit_apart(a: &str, b: &str) -> bool {
    let digits = |s: &str| -> String { s.chars().filter(char::is_ascii_digit).collect() };
    let (da, db) = (digits(a), digits(b));
    da.len() >= 6 && da.len() == db.len() && strsim::damerau_levenshtein(&da, &db) == 1
}

/// Birth dates of which one is not a date (`19541904`: day and month swapped in a compact
/// date, or a digit mistyped): compared as digits. The same digits are agreement; the last two
/// pairs swapped, two adjacent digits swapped or one digit off is what a typo looks like.
fn birth_digits(a: &str, b: &str) -> Evidence {
    let digits = |s: &str| -> String { s.chars().filter(char::is_ascii_digit).collect() };
    let (da, db) = (digits(a), digits(b));
    if da.len() < 6 || db.len() < 6 {
        return if fold(a) == fold(b) {
            ev(1.0, BIRTH_AGREE)
        } else {
            ev(0.0, BIRTH_DISAGREE)
        };
    }
    if da == db {
        return ev(1.0, BIRTH_AGREE);
    }
    let n = da.len();
    let swapped =
        n == db.len() && n == 8 && da[..4] == db[..4] && da[4..6] == db[6..] && da[6..] == db[4..6];
    if swapped {
        return ev(0.7, BIRTH_TRANSPOSED);
    }
    if one_digit_apart(&da, &db) {
        return ev(0.4, BIRTH_NEAR);
    }
    ev(0.0, BIRTH_DISAGREE)
}

fn date(a: &str, b: &str) -> Evidence {
    let (ra, rb) = (date_readings(a), date_readings(b));
    let same = if ra.is_empty() || rb.is_empty() {
        a.eq_ignore_ascii_case(b)
    } else {
        ra.iter().any(|x| rb.contains(x))
    };
    if same {
        ev(1.0, DATE_AGREE)
    } else {
        ev(0.0, DATE_DISAGREE)
    }
}

/// Identifiers: equal once case, spaces and dashes are set aside.
fn identifier(a: &str, b: &str) -> Evidence {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (norm(a), norm(b));
    if a == b {
        return ev(1.0, IDENT_AGREE);
    }
    let s = strsim::jaro_winkler(&a, &b) * 0.5;
    if a.chars().count().min(b.chars().count()) >= 4 && strsim::damerau_levenshtein(&a, &b) == 1 {
        ev(s, IDENT_NEAR)
    } else {
        ev(s, IDENT_DISAGREE)
    }
}

/// Any other text: agreement is mild evidence, disagreement milder (titles, notes and addresses
/// change).
fn text(a: &str, b: &str) -> Evidence {
    let (ta, tb) = (name_tokens(a), name_tokens(b));
    if ta == tb {
        return ev(1.0, TEXT_AGREE);
    }
    let (ja, jb) = (ta.join(" "), tb.join(" "));
    let s = if ja.len() <= 40 && jb.len() <= 40 {
        strsim::jaro_winkler(&ja, &jb)
    } else {
        let common = ta.iter().filter(|t| tb.contains(t)).count();
        let union = ta.len() + tb.len() - common;
        if union == 0 {
            0.0
        } else {
            common as f64 / union as f64
        }
    };
    if s >= 0.9 {
        ev(s, TEXT_NEAR)
    } else {
        ev(s, TEXT_DISAGREE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ForeignKey;

    fn col(name: &str, decl: &str) -> Column {
        Column {
            name: name.to_owned(),
            decl_type: decl.to_owned(),
            affinity: Affinity::from_decl(decl),
            not_null: false,
            has_default: false,
            primary_key: false,
            foreign_key: None,
        }
    }

    fn fk(name: &str, table: &str) -> Column {
        Column {
            foreign_key: Some(ForeignKey {
                table: table.to_owned(),
                column: "id".to_owned(),
            }),
            ..col(name, "TEXT")
        }
    }

    #[test]
    fn classify_by_name_and_type() {
        use FieldKind::*;
        let pk = Column {
            primary_key: true,
            ..col("id", "TEXT")
        };
        let cases: Vec<(Column, FieldKind)> = vec![
            (pk, Ignored),
            (col("first_name", "TEXT"), FirstName),
            (col("firstName", "TEXT"), FirstName),
            (col("given_name", "TEXT"), FirstName),
            (col("middle_name", "TEXT"), Text),
            (col("account_number", "TEXT"), Identifier),
            (col("company_id", "TEXT"), Company),
            (col("last_name", "TEXT"), LastName),
            (col("surname", "TEXT"), LastName),
            (col("full_name", "TEXT"), FullName),
            (col("name", "TEXT"), FullName),
            (col("email", "TEXT"), Email),
            (col("work_email", "TEXT"), Email),
            (col("email_status", "TEXT"), Ignored),
            (col("phone", "TEXT"), Phone),
            (col("mobile", "TEXT"), Phone),
            (col("domain", "TEXT"), Domain),
            (col("website", "TEXT"), Domain),
            (fk("company_id", "companies"), Company),
            (fk("account", "accounts"), Company),
            (fk("contact_id", "contacts"), Identifier),
            (col("employer", "TEXT"), Company),
            (col("company_name", "TEXT"), Company),
            (col("postcode", "TEXT"), Postcode),
            (col("zip_code", "TEXT"), Postcode),
            (col("birth_date", "TEXT"), BirthDate),
            (col("dob", "DATE"), BirthDate),
            (col("close_date", "TEXT"), Date),
            (col("external_id", "TEXT"), Identifier),
            (col("linkedin_url", "TEXT"), Identifier),
            (col("title", "TEXT"), Text),
            (col("notes", "TEXT"), Text),
            (col("lifecycle_stage", "TEXT"), Ignored),
            (col("owner", "TEXT"), Ignored),
            (col("tier", "TEXT"), Ignored),
            (col("sensitive", "INTEGER"), Ignored),
            (col("legal_hold", "INTEGER"), Ignored),
            (col("do_not_contact", "INTEGER"), Ignored),
            (col("created_at", "TEXT"), Ignored),
            (col("updated_at", "TEXT"), Ignored),
            (col("employees", "INTEGER"), Ignored),
            (col("annual_revenue", "INTEGER"), Ignored),
            (col("amount", "INTEGER"), Ignored),
            (col("age", "INTEGER"), Ignored),
            (col("is_customer", "TEXT"), Ignored),
            (col("last_contacted", "TEXT"), Ignored),
            (col("last_login", "TEXT"), Ignored),
            (col("first_seen", "TEXT"), Ignored),
            (col("familyName", "TEXT"), LastName),
            (col("e-mail", "TEXT"), Email),
            (col("cell_phone", "TEXT"), Phone),
            (col("phone_no", "TEXT"), Phone),
            (col("org_name", "TEXT"), Company),
            (col("vat_number", "TEXT"), Identifier),
        ];
        for (c, want) in cases {
            assert_eq!(classify(&c), want, "{}", c.name);
        }
    }

    fn contacts() -> Vec<Column> {
        vec![
            Column {
                primary_key: true,
                ..col("id", "TEXT")
            },
            col("first_name", "TEXT"),
            col("last_name", "TEXT"),
            col("email", "TEXT"),
            col("phone", "TEXT"),
            col("title", "TEXT"),
            fk("company_id", "companies"),
            col("owner", "TEXT"),
        ]
    }

    fn row(v: [&str; 8]) -> Vec<Value> {
        v.iter()
            .map(|s| {
                if s.is_empty() {
                    Value::Null
                } else {
                    Value::Text((*s).to_owned())
                }
            })
            .collect()
    }

    #[test]
    fn pairs() {
        let cols = contacts();
        let base = [
            "c1",
            "Robert",
            "Müller",
            "robert.mueller@acme.com",
            "+1 (415) 555-0134",
            "VP Sales",
            "co-1",
            "ana",
        ];
        let with = |changes: &[(usize, &'static str)]| {
            let mut r = base;
            r[0] = "c2";
            for &(i, v) in changes {
                r[i] = v;
            }
            row(r)
        };
        // (label, b, lower bound, upper bound)
        let cases: Vec<(&str, Vec<Value>, f64, f64)> = vec![
            (
                "identical but for id and owner",
                with(&[(7, "bo")]),
                0.99,
                1.0,
            ),
            (
                "nickname, reformatted phone",
                with(&[(1, "Bob"), (4, "415.555.0134")]),
                0.99,
                1.0,
            ),
            ("typo, no email", with(&[(2, "Muler"), (3, "")]), 0.9, 1.0),
            (
                "swapped names, email case",
                with(&[(1, "Müller"), (2, "Robert"), (3, "Robert.Mueller@ACME.com")]),
                0.99,
                1.0,
            ),
            (
                "shared surname stranger",
                with(&[
                    (1, "Angela"),
                    (3, "angela.m@globex.com"),
                    (4, "212-555-0199"),
                    (5, "CTO"),
                    (6, "co-2"),
                ]),
                0.0,
                0.05,
            ),
            (
                "same name, conflicting email and phone",
                with(&[
                    (3, "rmueller@initech.com"),
                    (4, "312-555-0100"),
                    (6, "co-9"),
                ]),
                0.0,
                0.5,
            ),
            (
                "nothing to compare",
                row(["c2", "", "", "", "", "", "", ""]),
                0.0,
                0.1,
            ),
            (
                "swapped, last name empty",
                with(&[(1, "Müller"), (2, ""), (3, ""), (4, "")]),
                0.8,
                1.0,
            ),
        ];
        let a = row(base);
        for (label, b, lo, hi) in cases {
            let s = similarity(&cols, &a, &b);
            assert!(
                (lo..=hi).contains(&s.score),
                "{label}: {} not in {lo}..={hi}: {:#?}",
                s.score,
                s.fields
            );
            // Symmetric.
            let r = similarity(&cols, &b, &a);
            assert!((r.score - s.score).abs() < 1e-9, "{label}: asymmetric");
        }
    }

    #[test]
    fn missing_is_no_evidence() {
        let cols = contacts();
        let a = row(["c1", "Ann", "Lee", "", "", "", "", ""]);
        let b = row([
            "c2",
            "Ann",
            "Lee",
            "ann@x.com",
            "555 0100 222",
            "CEO",
            "co-1",
            "x",
        ]);
        let s = similarity(&cols, &a, &b);
        for f in &s.fields[3..] {
            assert_eq!(f.similarity, None, "{}", f.column);
            assert_eq!(f.weight, 0.0, "{}", f.column);
        }
        let want = 1.0 / (1.0 + (-(PRIOR_LOG_ODDS + FIRST_AGREE + LAST_AGREE)).exp());
        assert!((s.score - want).abs() < 1e-9);
    }

    #[test]
    fn company_table_name_is_a_company_name() {
        let cols = vec![
            Column {
                primary_key: true,
                ..col("id", "TEXT")
            },
            col("name", "TEXT"),
            col("domain", "TEXT"),
            col("employees", "INTEGER"),
        ];
        let a = vec![
            Value::Text("co-1".into()),
            Value::Text("Acme, Inc.".into()),
            Value::Text("https://www.acme.com".into()),
            Value::Integer(40),
        ];
        let b = vec![
            Value::Text("co-2".into()),
            Value::Text("ACME".into()),
            Value::Text("acme.com".into()),
            Value::Integer(45),
        ];
        let s = similarity(&cols, &a, &b);
        assert_eq!(s.fields[1].kind, FieldKind::Company);
        assert!(s.score > 0.95, "{s:?}");
        let c = vec![
            Value::Text("co-3".into()),
            Value::Text("Acme Rockets".into()),
            Value::Text("acmerockets.io".into()),
            Value::Null,
        ];
        assert!(similarity(&cols, &a, &c).score < 0.5);
    }

    /// Odd values in every kind of column: no panic, a score in 0..1, symmetric.
    #[test]
    fn odd_values_are_safe() {
        let kinds = [
            col("first_name", "TEXT"),
            col("last_name", "TEXT"),
            col("name", "TEXT"),
            col("email", "TEXT"),
            col("phone", "TEXT"),
            col("website", "TEXT"),
            fk("company_id", "companies"),
            col("employer", "TEXT"),
            col("zip", "TEXT"),
            col("dob", "TEXT"),
            col("close_date", "DATE"),
            col("external_id", "TEXT"),
            fk("contact_id", "contacts"),
            col("title", "TEXT"),
        ];
        let odd = [
            Value::Text("x".into()),
            Value::Text("@".into()),
            Value::Text("a@".into()),
            Value::Text("0000000000".into()),
            Value::Text("+".into()),
            Value::Text(",".into()),
            Value::Text("Ünïcödé 名前 ß".into()),
            Value::Text("99/99/99999".into()),
            Value::Text("2024-02-30T99:00".into()),
            Value::Text("12 Foo 2020".into()),
            Value::Text("ext 12".into()),
            Value::Text("j".repeat(500)),
            Value::Integer(-7),
            Value::Integer(4155550134),
            Value::Real(1.5),
            Value::Blob(vec![0, 255]),
        ];
        for c in &kinds {
            let cols = std::slice::from_ref(c);
            for x in &odd {
                for y in &odd {
                    let s = similarity(cols, std::slice::from_ref(x), std::slice::from_ref(y));
                    let r = similarity(cols, std::slice::from_ref(y), std::slice::from_ref(x));
                    assert!((0.0..=1.0).contains(&s.score), "{} {x:?} {y:?}", c.name);
                    assert!((s.score - r.score).abs() < 1e-9, "{} {x:?} {y:?}", c.name);
                }
            }
        }
    }

    #[test]
    fn strong_disagreement_outweighs_agreeing_names() {
        let cols = [
            col("first_name", "TEXT"),
            col("last_name", "TEXT"),
            col("email", "TEXT"),
            col("email_status", "TEXT"),
            col("city", "TEXT"),
        ];
        let t = |v: &str| Value::Text(v.into());
        let row = |email: &str| vec![t("Ann"), t("Quennell"), t(email), t("verified"), t("Leeds")];
        let s = similarity(&cols, &row("ann@x.com"), &row("annq@y.org"));
        assert!(s.score < 0.5, "{s:#?}");
        assert_eq!(identifier("4417723", "4417273").weight, IDENT_NEAR);
        assert_eq!(identifier("4417723", "8301927").weight, IDENT_DISAGREE);
        assert_eq!(birth_date("19650412", "19651204").weight, BIRTH_TRANSPOSED);
        assert_eq!(birth_date("19541904", "19540419").weight, BIRTH_TRANSPOSED);
        assert_eq!(birth_date("19651209", "19651029").weight, BIRTH_NEAR);
    }

    /// A `phone` column of small numbers is not a phone column: counted over the table, its
    /// values say so, and an agreement on one of them weighs as the plain text it is.
    #[test]
    fn a_column_is_what_its_values_say() {
        let cols = [col("last_name", "TEXT"), col("phone", "INTEGER")];
        let rows: Vec<Vec<Value>> = (0..200)
            .map(|i| vec![Value::Text(format!("name{i}")), Value::Integer(i % 5)])
            .collect();
        let mut counted = Counted::new(&rows);
        let s = similarity_in(&cols, &rows[0], &rows[5], &mut counted);
        assert_eq!(s.fields[1].kind, FieldKind::Text);
        assert_eq!(s.fields[1].share, Some(0.2));
        assert!(s.fields[1].weight < 0.5, "{s:#?}");
        assert_eq!(
            similarity(&cols, &rows[0], &rows[5]).fields[1].kind,
            FieldKind::Phone
        );
    }

    #[test]
    fn comparisons() {
        assert_eq!(email("A.B@X.com", "a.b@x.com", &[]).weight, EMAIL_AGREE);
        assert_eq!(
            email("a.b+crm@x.com", "ab@x.com", &[]).weight,
            EMAIL_CANONICAL
        );
        assert_eq!(
            email("jane.doe@x.com", "jane.doe@gmail.com", &[]).weight,
            EMAIL_OTHER_DOMAIN
        );
        let names = ["jane".to_owned(), "doe".to_owned()];
        assert!(email("jane.doe@x.com", "jane.doe@gmail.com", &names).weight < 0.0);
        assert!(email("jdoe@x.com", "jdoe@gmail.com", &names).weight < 0.0);
        let names = [
            "jose".to_owned(),
            "van".to_owned(),
            "der".to_owned(),
            "berg".to_owned(),
        ];
        assert!(email("jose.vanderberg@x.com", "josevanderberg@y.com", &names).weight < 0.0);
        assert!(email("jvdberg7@x.com", "jvdberg7@y.com", &names).weight < 0.0);
        assert!(email("zorro77@x.com", "zorro77@y.com", &names).weight > 0.0);
        assert_eq!(email("jane@x.com", "bob@x.com", &[]).weight, EMAIL_DISAGREE);
        assert_eq!(
            phone("+1 (415) 555-0134", "415.555.0134").weight,
            PHONE_AGREE
        );
        assert_eq!(
            phone("+44 20 7946 0000", "020 7946 0000 ext 12").weight,
            PHONE_AGREE
        );
        assert_eq!(phone("415-555-0134", "650-555-0134").weight, PHONE_LAST7);
        assert_eq!(phone("415-555-0134", "415-555-9876").weight, PHONE_DISAGREE);
        assert_eq!(birth_date("1985-03-07", "1985-03-07").weight, BIRTH_AGREE);
        assert_eq!(
            birth_date("1985-03-07", "1985-07-03").weight,
            BIRTH_TRANSPOSED
        );
        assert_eq!(
            birth_date("1985-03-07", "07/03/1985").weight,
            0.9 * BIRTH_AGREE
        );
        assert_eq!(
            birth_date("1985-03-07", "1971-11-23").weight,
            BIRTH_DISAGREE
        );
        assert_eq!(
            domain("https://www.Acme.com/about", "acme.com").weight,
            DOMAIN_AGREE
        );
        assert_eq!(company_name("Acme, Inc.", "ACME").weight, COMPANY_AGREE);
        let key = col("company_id", "TEXT");
        let (x, y) = (Value::Text("co-001".into()), Value::Text("co-002".into()));
        assert_eq!(classify(&key), FieldKind::Company);
        assert_eq!(
            compare(FieldKind::Company, &key, &x, &y, &[]).weight,
            COMPANY_DISAGREE
        );
        assert_eq!(postcode("sw1a 1aa", "SW1A1AA").weight, POSTCODE_AGREE);
        assert_eq!(
            full_name("Smith, John", "John Smith").weight,
            FIRST_AGREE + LAST_AGREE
        );
        assert_eq!(
            full_name("Smith John", "John Smith").weight,
            FIRST_AGREE + LAST_AGREE - SWAP_PENALTY
        );
        assert!(first_name("Liz", "Elizabeth").weight > 0.0);
        assert!(first_name("Bob", "Rob").weight > 0.0);
        assert!(first_name("Jon", "John").weight > 0.0);
        assert!(first_name("Angela", "Robert").weight == FIRST_DISAGREE);
        assert!(last_name("José", "JOSE").weight == LAST_AGREE);
        let cols = [col("full_name", "TEXT"), col("phone", "TEXT")];
        let row = |n: &str| vec![Value::Text(n.into()), Value::Text("020 7000 1111".into())];
        let (sr, jr) = (row("Robert King Sr."), row("Robert King, Jr"));
        assert!(similarity(&cols, &sr, &jr).score < 0.5);
        assert!(similarity(&cols, &sr, &row("Bob King")).score > 0.9);
    }
}
