//! Deterministic, seeded generator of CRM datasets and proposal files for crmgate.
//!
//! Used by the fixture example (`examples/gen_fixtures.rs`), the generator tests and the
//! benchmarks. From crmgate it takes only the proposal columns.
//!
//! Every record is a pure function of `(seed, table, index)` and of the table sizes: each
//! one draws from its own `ChaCha8Rng::seed_from_u64(..)` stream. Nothing is kept per
//! row, so output streams row by row with flat memory at any size, and a proposal can
//! look at "its" record's current values (for `expected`, fill-vs-overwrite, ...) by
//! regenerating that record. Near-duplicate contacts are derived from the earlier
//! contact they duplicate, so merge proposals have real targets.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

/// Sizes and seed of a generated dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenConfig {
    pub seed: u64,
    pub companies: usize,
    pub contacts: usize,
    pub deals: usize,
    pub activities: usize,
    pub proposals: usize,
}

/// Upper bound on the activities of a [`GenConfig::scaled`] dataset.
pub const MAX_SCALED_ACTIVITIES: usize = 2_000_000;

impl GenConfig {
    /// The demo dataset committed under `fixtures/crm`.
    pub fn demo() -> Self {
        GenConfig {
            seed: 7,
            companies: 200,
            contacts: 1000,
            deals: 150,
            activities: 2000,
            proposals: 400,
        }
    }

    /// A dataset sized by its contacts: one company per 5 contacts (at least one), one deal
    /// per 7 contacts, one activity per contact (at most [`MAX_SCALED_ACTIVITIES`]).
    pub fn scaled(contacts: usize, proposals: usize) -> Self {
        GenConfig {
            seed: 7,
            companies: (contacts / 5).max(1),
            contacts,
            deals: contacts / 7,
            activities: contacts.min(MAX_SCALED_ACTIVITIES),
            proposals,
        }
    }

    fn check(&self) -> io::Result<()> {
        let bad = |msg: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, msg.to_string()));
        if self.companies == 0 && (self.contacts > 0 || self.deals > 0 || self.proposals > 0) {
            return bad("contacts, deals and proposals need at least one company");
        }
        if self.contacts == 0 && self.activities > 0 {
            return bad("activities need at least one contact");
        }
        Ok(())
    }
}

/// What [`write_dataset`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub companies: usize,
    pub contacts: usize,
    pub deals: usize,
    pub activities: usize,
    pub proposals: usize,
    /// Total size of the files written.
    pub bytes: u64,
}

/// The CRM tables [`write_tables`] writes, one `<table>.csv` each, parents first: the order to
/// import them in.
pub const TABLES: [&str; 4] = ["companies", "contacts", "deals", "activities"];

/// Columns of each file, in order (SPEC §2 and §3).
pub const COMPANY_COLUMNS: [&str; 11] = [
    "id",
    "name",
    "domain",
    "industry",
    "employees",
    "annual_revenue",
    "tier",
    "owner",
    "legal_hold",
    "created_at",
    "updated_at",
];
pub const CONTACT_COLUMNS: [&str; 15] = [
    "id",
    "first_name",
    "last_name",
    "email",
    "email_status",
    "phone",
    "title",
    "company_id",
    "lifecycle_stage",
    "owner",
    "sensitive",
    "legal_hold",
    "do_not_contact",
    "created_at",
    "updated_at",
];
pub const DEAL_COLUMNS: [&str; 10] = [
    "id",
    "name",
    "company_id",
    "contact_id",
    "stage",
    "amount",
    "owner",
    "close_date",
    "created_at",
    "updated_at",
];
pub const ACTIVITY_COLUMNS: [&str; 6] = ["id", "contact_id", "deal_id", "kind", "body", "at"];
/// The columns of a generated proposal file: those of crmgate's proposal files
/// (`crmgate::ingest::proposals::COLUMNS`) up to `reason`; generated proposals carry no
/// `evidence`, so its files stay as they were before proposals could.
pub const PROPOSAL_COLUMNS: [&str; 12] = *crmgate::ingest::proposals::COLUMNS
    .as_slice()
    .first_chunk::<12>()
    .unwrap();

/// The sales reps that own records.
pub const REPS: [&str; 6] = ["alice", "bob", "mia", "omar", "priya", "li"];
pub const DEAL_STAGES: [&str; 6] = [
    "prospecting",
    "qualification",
    "proposal",
    "negotiation",
    "closed_won",
    "closed_lost",
];
pub const TIERS: [&str; 3] = ["enterprise", "mid-market", "smb"];
pub const ACTIVITY_KINDS: [&str; 4] = ["email", "call", "meeting", "note"];
pub const TRIGGERS: [&str; 4] = [
    "form_submitted",
    "meeting_booked",
    "contract_signed",
    "ai_score",
];
/// Sources that appear in generated proposals.
pub const SOURCES: [&str; 5] = [
    "clearbit",
    "zoominfo",
    "dedupe-bot",
    "sdr-agent",
    "hubspot-ai",
];

/// Record ids: `co-<n>`, `c-<n>`, `d-<n>`, `a-<n>` with n starting at 1001.
pub fn company_id(i: usize) -> String {
    format!("co-{}", i + 1001)
}
pub fn contact_id(i: usize) -> String {
    format!("c-{}", i + 1001)
}
pub fn deal_id(i: usize) -> String {
    format!("d-{}", i + 1001)
}
pub fn activity_id(i: usize) -> String {
    format!("a-{}", i + 1001)
}

/// Writes DIR/companies.csv, DIR/contacts.csv, DIR/deals.csv, DIR/activities.csv and
/// DIR/proposals.csv.
pub fn write_dataset(dir: &Path, cfg: &GenConfig) -> io::Result<Summary> {
    let mut summary = write_tables(dir, cfg)?;
    summary.bytes += write_proposals(&dir.join("proposals.csv"), cfg, "csv")?;
    summary.proposals = cfg.proposals;
    Ok(summary)
}

/// Writes only the four CRM tables (everything [`write_dataset`] writes but proposals.csv).
pub fn write_tables(dir: &Path, cfg: &GenConfig) -> io::Result<Summary> {
    cfg.check()?;
    std::fs::create_dir_all(dir)?;
    let cx = Ctx::new(cfg);
    let mut bytes = 0;

    let mut w = csv_writer(&dir.join("companies.csv"))?;
    w.write_record(COMPANY_COLUMNS)?;
    for i in 0..cfg.companies {
        write_company(&mut w, i, &company(cx.seed, i))?;
    }
    bytes += finish_csv(w)?;

    let mut w = csv_writer(&dir.join("contacts.csv"))?;
    w.write_record(CONTACT_COLUMNS)?;
    for i in 0..cfg.contacts {
        write_contact(&mut w, i, &contact(&cx, i))?;
    }
    bytes += finish_csv(w)?;

    let mut w = csv_writer(&dir.join("deals.csv"))?;
    w.write_record(DEAL_COLUMNS)?;
    for i in 0..cfg.deals {
        write_deal(&mut w, i, &deal(&cx, i))?;
    }
    bytes += finish_csv(w)?;

    let mut w = csv_writer(&dir.join("activities.csv"))?;
    w.write_record(ACTIVITY_COLUMNS)?;
    for i in 0..cfg.activities {
        write_activity(&mut w, i, &activity(&cx, i))?;
    }
    bytes += finish_csv(w)?;

    Ok(Summary {
        companies: cfg.companies,
        contacts: cfg.contacts,
        deals: cfg.deals,
        activities: cfg.activities,
        proposals: 0,
        bytes,
    })
}

/// Writes only the proposals file in the given format ("csv" | "json" | "jsonl") — the
/// same proposals as [`write_dataset`] would for `cfg`. Returns the bytes written.
pub fn write_proposals(path: &Path, cfg: &GenConfig, format: &str) -> io::Result<u64> {
    cfg.check()?;
    let cx = Ctx::new(cfg);
    match format {
        "csv" => {
            let mut w = csv_writer(path)?;
            w.write_record(PROPOSAL_COLUMNS)?;
            for i in 0..cfg.proposals {
                let p = proposal(&cx, i);
                w.write_record(p.csv_cells().iter().map(|c| c.as_bytes()))?;
            }
            finish_csv(w)
        }
        "json" | "jsonl" => {
            let array = format == "json";
            let mut w = Counting::new(BufWriter::with_capacity(1 << 16, File::create(path)?));
            let mut line = String::with_capacity(512);
            if array {
                w.write_all(b"[\n")?;
            }
            for i in 0..cfg.proposals {
                line.clear();
                proposal(&cx, i).push_json(&mut line);
                if array && i + 1 < cfg.proposals {
                    line.push(',');
                }
                line.push('\n');
                w.write_all(line.as_bytes())?;
            }
            if array {
                w.write_all(b"]\n")?;
            }
            w.flush()?;
            Ok(w.count)
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown proposal format {other:?} (expected csv, json or jsonl)"),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Output plumbing
// ---------------------------------------------------------------------------------------

/// Counts the bytes that go through it.
struct Counting<W: Write> {
    inner: W,
    count: u64,
}

impl<W: Write> Counting<W> {
    fn new(inner: W) -> Self {
        Counting { inner, count: 0 }
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type CsvOut = csv::Writer<Counting<BufWriter<File>>>;

fn csv_writer(path: &Path) -> io::Result<CsvOut> {
    let file = BufWriter::with_capacity(1 << 16, File::create(path)?);
    Ok(csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Counting::new(file)))
}

fn finish_csv(mut w: CsvOut) -> io::Result<u64> {
    w.flush()?;
    Ok(w.get_ref().count)
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

fn opt_s(s: Option<&'static str>) -> &'static str {
    s.unwrap_or("")
}

fn opt_n(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

fn write_company(w: &mut CsvOut, i: usize, c: &Company) -> io::Result<()> {
    let domain = if c.domain_stored {
        c.domain.as_str()
    } else {
        ""
    };
    w.write_record([
        company_id(i).as_str(),
        &c.name,
        domain,
        opt_s(c.industry),
        &opt_n(c.employees),
        &opt_n(c.annual_revenue),
        c.tier,
        opt_s(c.owner),
        flag(c.legal_hold),
        &rfc3339(c.created),
        &rfc3339(c.updated),
    ])?;
    Ok(())
}

fn write_contact(w: &mut CsvOut, i: usize, c: &Contact) -> io::Result<()> {
    w.write_record([
        contact_id(i).as_str(),
        &c.first,
        &c.last,
        opt(&c.email),
        opt_s(c.email_status),
        opt(&c.phone),
        opt_s(c.title),
        &c.company.map(company_id).unwrap_or_default(),
        opt_s(c.lifecycle),
        opt_s(c.owner),
        flag(c.sensitive),
        flag(c.legal_hold),
        flag(c.do_not_contact),
        &rfc3339(c.created),
        &rfc3339(c.updated),
    ])?;
    Ok(())
}

fn write_deal(w: &mut CsvOut, i: usize, d: &Deal) -> io::Result<()> {
    w.write_record([
        deal_id(i).as_str(),
        &d.name,
        &company_id(d.company),
        &d.contact.map(contact_id).unwrap_or_default(),
        d.stage,
        &d.amount.to_string(),
        opt_s(d.owner),
        &date(d.close_day),
        &rfc3339(d.created),
        &rfc3339(d.updated),
    ])?;
    Ok(())
}

fn write_activity(w: &mut CsvOut, i: usize, a: &Activity) -> io::Result<()> {
    w.write_record([
        activity_id(i).as_str(),
        &contact_id(a.contact),
        &a.deal.map(deal_id).unwrap_or_default(),
        a.kind,
        &a.body,
        &rfc3339(a.at),
    ])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Randomness helpers
// ---------------------------------------------------------------------------------------

const T_COMPANY: u64 = 1;
const T_CONTACT: u64 = 2;
const T_DEAL: u64 = 3;
const T_ACTIVITY: u64 = 4;
const T_PROPOSAL: u64 = 5;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The random stream of one record: a pure function of (seed, table, index).
fn rec_rng(seed: u64, table: u64, idx: usize) -> ChaCha8Rng {
    let key = splitmix64(splitmix64(seed ^ table.wrapping_mul(0xA076_1D64_78BD_642F)) ^ idx as u64);
    ChaCha8Rng::seed_from_u64(key)
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut r = rng.random_range(0..total);
    for &(item, w) in items {
        if r < w {
            return item;
        }
        r -= w;
    }
    items[items.len() - 1].0
}

/// `true` with probability `percent`/100.
fn chance(rng: &mut ChaCha8Rng, percent: u32) -> bool {
    rng.random_range(0..100) < percent
}

/// A stated confidence in hundredths (`lo..=hi`), or none `none_pct`% of the time.
fn confidence(rng: &mut ChaCha8Rng, lo: u8, hi: u8, none_pct: u32) -> Option<u8> {
    if chance(rng, none_pct) {
        None
    } else {
        Some(rng.random_range(lo..=hi))
    }
}

// ---------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------

const DAY: i64 = 86_400;

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Seconds since the epoch → `2025-03-14T09:26:53Z`.
fn rfc3339(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(DAY));
    let s = t.rem_euclid(DAY);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Days since the epoch → `2025-03-14`.
fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Records are created in [T_START, T_CREATED_END) and updated before T_END.
fn t_start() -> i64 {
    days_from_civil(2022, 1, 1) * DAY
}
fn t_created_end() -> i64 {
    days_from_civil(2025, 7, 1) * DAY
}
fn t_end() -> i64 {
    days_from_civil(2025, 10, 1) * DAY
}

fn created_updated(rng: &mut ChaCha8Rng) -> (i64, i64) {
    let created = rng.random_range(t_start()..t_created_end());
    (created, updated_after(rng, created))
}

fn updated_after(rng: &mut ChaCha8Rng, created: i64) -> i64 {
    if chance(rng, 15) {
        created
    } else {
        rng.random_range(created..t_end())
    }
}

// ---------------------------------------------------------------------------------------
// Word lists
// ---------------------------------------------------------------------------------------

#[rustfmt::skip]
const CO_PREFIX: [&str; 64] = [
    "acme", "blue", "north", "bright", "silver", "green", "summit", "apex", "nova", "pioneer",
    "red", "iron", "clear", "swift", "golden", "harbor", "quantum", "cedar", "maple", "orbit",
    "stellar", "urban", "vertex", "atlas", "beacon", "cobalt", "delta", "echo", "falcon",
    "granite", "horizon", "indigo", "juniper", "keystone", "lumen", "meridian", "nimbus", "oak",
    "pacific", "quarry", "river", "sierra", "terra", "union", "vista", "willow", "zenith", "amber",
    "boulder", "canyon", "drift", "ember", "fjord", "glacier", "hollow", "island", "jade", "kite",
    "lark", "mosaic", "opal", "prairie", "ridge", "tidal",
];
#[rustfmt::skip]
const CO_CORE: [&str; 48] = [
    "robotics", "logistics", "labs", "systems", "analytics", "health", "foods", "energy",
    "dynamics", "networks", "software", "capital", "ventures", "media", "works", "solutions",
    "partners", "bio", "foundry", "freight", "metrics", "cloud", "devices", "security", "studios",
    "supply", "textiles", "motors", "pharma", "insights", "farms", "tools", "logic", "data",
    "marine", "aero", "mobility", "learning", "payments", "materials", "retail", "homes", "print",
    "optics", "grid", "hydro", "signal", "craft",
];
const CO_TLD: [&str; 4] = ["com", "io", "co", "net"];
const CO_SUFFIX: [&str; 7] = ["Inc", "LLC", "Ltd", "GmbH", "SA", "BV", "Group"];
/// Distinct (prefix, core, tld) combinations; beyond it domains get a number.
const CO_SPACE: usize = CO_PREFIX.len() * CO_CORE.len() * CO_TLD.len();
/// Steps through CO_SPACE in a scrambled order (coprime with CO_SPACE).
const CO_STEP: usize = 7919;

#[rustfmt::skip]
const INDUSTRIES: [&str; 22] = [
    "Software", "Logistics", "Manufacturing", "Healthcare", "Financial Services", "Retail",
    "Education", "Energy", "Biotech", "Media", "Telecommunications", "Construction", "Hospitality",
    "Legal Services", "Real Estate", "Agriculture", "Automotive", "Aerospace", "Insurance",
    "Nonprofit", "Food & Beverage", "Transportation",
];

#[rustfmt::skip]
const TITLES: [&str; 36] = [
    "CEO", "CTO", "CFO", "COO", "VP Sales", "VP Marketing", "VP Engineering", "Head of Operations",
    "Head of Growth", "Director of Engineering", "Director, Supply Chain", "IT Director",
    "Sales Manager", "Account Executive", "Marketing Manager", "Demand Generation Manager",
    "Procurement Lead", "Purchasing Manager", "Software Engineer", "Senior Software Engineer",
    "Engineering Manager", "Product Manager", "Data Analyst", "Operations Analyst",
    "Office Manager", "RevOps Manager", "Customer Success Manager", "Founder", "Co-founder & CEO",
    "Chief of Staff", "Finance Manager", "HR Business Partner", "Solutions Architect",
    "General Counsel", "Sales Development Rep", "Partner",
];

/// A name as displayed and as an ASCII email local-part fragment.
type Name = (&'static str, &'static str);

struct Culture {
    weight: u32,
    first: &'static [Name],
    last: &'static [Name],
}

#[rustfmt::skip]
static CULTURES: [Culture; 10] = [
    Culture {
        weight: 40,
        first: &[
            ("James", "james"), ("Robert", "robert"), ("John", "john"), ("Michael", "michael"),
            ("William", "william"), ("David", "david"), ("Richard", "richard"),
            ("Joseph", "joseph"), ("Thomas", "thomas"), ("Christopher", "christopher"),
            ("Daniel", "daniel"), ("Matthew", "matthew"), ("Anthony", "anthony"),
            ("Steven", "steven"), ("Andrew", "andrew"), ("Kevin", "kevin"),
            ("Jonathan", "jonathan"), ("Nicholas", "nicholas"), ("Alexander", "alexander"),
            ("Mary", "mary"), ("Patricia", "patricia"), ("Jennifer", "jennifer"),
            ("Linda", "linda"), ("Elizabeth", "elizabeth"), ("Susan", "susan"),
            ("Jessica", "jessica"), ("Sarah", "sarah"), ("Karen", "karen"),
            ("Margaret", "margaret"), ("Emily", "emily"), ("Katherine", "katherine"),
            ("Rebecca", "rebecca"), ("Samantha", "samantha"), ("Laura", "laura"),
            ("Megan", "megan"), ("Olivia", "olivia"), ("Emma", "emma"), ("Hannah", "hannah"),
            ("Zoë", "zoe"), ("Grace", "grace"), ("Bob", "bob"), ("Mike", "mike"), ("Kate", "kate"),
            ("Tom", "tom"), ("Chris", "chris"), ("Liz", "liz"),
        ],
        last: &[
            ("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"),
            ("Brown", "brown"), ("Jones", "jones"), ("Miller", "miller"), ("Davis", "davis"),
            ("Wilson", "wilson"), ("Anderson", "anderson"), ("Taylor", "taylor"),
            ("Moore", "moore"), ("Jackson", "jackson"), ("Thompson", "thompson"),
            ("White", "white"), ("Harris", "harris"), ("Clark", "clark"), ("Lewis", "lewis"),
            ("Robinson", "robinson"), ("Walker", "walker"), ("Young", "young"), ("Allen", "allen"),
            ("King", "king"), ("Wright", "wright"), ("Scott", "scott"), ("Green", "green"),
            ("Adams", "adams"), ("Baker", "baker"), ("Nelson", "nelson"), ("Carter", "carter"),
            ("Mitchell", "mitchell"), ("Roberts", "roberts"), ("Turner", "turner"),
            ("Campbell", "campbell"), ("Parker", "parker"), ("Evans", "evans"),
            ("Collins", "collins"), ("Stewart", "stewart"), ("O'Brien", "obrien"),
            ("O'Connor", "oconnor"), ("Murphy", "murphy"), ("Kelly", "kelly"),
            ("Sullivan", "sullivan"), ("McCarthy", "mccarthy"), ("Brooks", "brooks"),
        ],
    },
    Culture {
        weight: 12,
        first: &[
            ("José", "jose"), ("María", "maria"), ("Juan", "juan"), ("Carlos", "carlos"),
            ("Luis", "luis"), ("Ana", "ana"), ("Sofía", "sofia"), ("Lucía", "lucia"),
            ("Javier", "javier"), ("Alejandro", "alejandro"), ("Camila", "camila"),
            ("Valentina", "valentina"), ("Diego", "diego"), ("Mateo", "mateo"),
            ("Martín", "martin"), ("Andrés", "andres"), ("Inés", "ines"), ("Raúl", "raul"),
            ("Paula", "paula"), ("Elena", "elena"),
        ],
        last: &[
            ("García", "garcia"), ("Martínez", "martinez"), ("Rodríguez", "rodriguez"),
            ("López", "lopez"), ("Hernández", "hernandez"), ("González", "gonzalez"),
            ("Pérez", "perez"), ("Sánchez", "sanchez"), ("Ramírez", "ramirez"),
            ("Torres", "torres"), ("Flores", "flores"), ("Rivera", "rivera"), ("Gómez", "gomez"),
            ("Díaz", "diaz"), ("Morales", "morales"), ("Ortiz", "ortiz"), ("Castillo", "castillo"),
            ("Jiménez", "jimenez"), ("Ruiz", "ruiz"), ("Álvarez", "alvarez"),
        ],
    },
    Culture {
        weight: 10,
        first: &[
            ("Lukas", "lukas"), ("Jonas", "jonas"), ("Leon", "leon"), ("Felix", "felix"),
            ("Maximilian", "maximilian"), ("Anna", "anna"), ("Lea", "lea"), ("Sophie", "sophie"),
            ("Marie", "marie"), ("Katharina", "katharina"), ("Jürgen", "juergen"),
            ("Søren", "soren"), ("Björn", "bjorn"), ("Ingrid", "ingrid"), ("Astrid", "astrid"),
            ("Sigrid", "sigrid"), ("Åsa", "asa"), ("Lars", "lars"), ("Henrik", "henrik"),
            ("Freya", "freya"),
        ],
        last: &[
            ("Müller", "mueller"), ("Schmidt", "schmidt"), ("Schneider", "schneider"),
            ("Fischer", "fischer"), ("Weber", "weber"), ("Meyer", "meyer"), ("Wagner", "wagner"),
            ("Becker", "becker"), ("Schulz", "schulz"), ("Hoffmann", "hoffmann"),
            ("Schäfer", "schaefer"), ("Koch", "koch"), ("Richter", "richter"), ("Klein", "klein"),
            ("Wolf", "wolf"), ("Jensen", "jensen"), ("Nielsen", "nielsen"), ("Hansen", "hansen"),
            ("Johansson", "johansson"), ("Lindström", "lindstrom"), ("Øberg", "oberg"),
            ("Bjørnstad", "bjornstad"),
        ],
    },
    Culture {
        weight: 7,
        first: &[
            ("Jean", "jean"), ("Pierre", "pierre"), ("François", "francois"),
            ("Étienne", "etienne"), ("Louis", "louis"), ("Hugo", "hugo"), ("Chloé", "chloe"),
            ("Camille", "camille"), ("Léa", "lea"), ("Manon", "manon"), ("Élodie", "elodie"),
            ("Amélie", "amelie"), ("Margaux", "margaux"), ("Théo", "theo"), ("Noël", "noel"),
            ("Anaïs", "anais"),
        ],
        last: &[
            ("Martin", "martin"), ("Bernard", "bernard"), ("Dubois", "dubois"), ("Petit", "petit"),
            ("Durand", "durand"), ("Leroy", "leroy"), ("Moreau", "moreau"), ("Lefèvre", "lefevre"),
            ("Girard", "girard"), ("Bonnet", "bonnet"), ("Fontaine", "fontaine"),
            ("Rousseau", "rousseau"), ("Chevalier", "chevalier"), ("Lambert", "lambert"),
            ("Faure", "faure"),
        ],
    },
    Culture {
        weight: 6,
        first: &[
            ("Łukasz", "lukasz"), ("Piotr", "piotr"), ("Krzysztof", "krzysztof"),
            ("Tomasz", "tomasz"), ("Paweł", "pawel"), ("Michał", "michal"),
            ("Agnieszka", "agnieszka"), ("Małgorzata", "malgorzata"), ("Katarzyna", "katarzyna"),
            ("Zofia", "zofia"), ("Magdalena", "magdalena"), ("Jakub", "jakub"),
            ("Wojciech", "wojciech"), ("Dmitri", "dmitri"), ("Olga", "olga"), ("Ivana", "ivana"),
            ("Petra", "petra"),
        ],
        last: &[
            ("Nowak", "nowak"), ("Kowalski", "kowalski"), ("Wiśniewski", "wisniewski"),
            ("Wójcik", "wojcik"), ("Kamiński", "kaminski"), ("Lewandowski", "lewandowski"),
            ("Zieliński", "zielinski"), ("Szymański", "szymanski"), ("Dąbrowski", "dabrowski"),
            ("Kozłowski", "kozlowski"), ("Novák", "novak"), ("Horváth", "horvath"),
            ("Petrović", "petrovic"), ("Ivanova", "ivanova"),
        ],
    },
    Culture {
        weight: 6,
        first: &[
            ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("磊", "lei"),
            ("强", "qiang"), ("洋", "yang"), ("杰", "jie"), ("婷", "ting"), ("晓明", "xiaoming"),
            ("丽华", "lihua"), ("Wei", "wei"), ("Xin", "xin"), ("Hao", "hao"),
        ],
        last: &[
            ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
            ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("Wang", "wang"),
            ("Chen", "chen"), ("Zhang", "zhang"),
        ],
    },
    Culture {
        weight: 8,
        first: &[
            ("Aarav", "aarav"), ("Vivaan", "vivaan"), ("Aditya", "aditya"), ("Arjun", "arjun"),
            ("Rohan", "rohan"), ("Priya", "priya"), ("Ananya", "ananya"), ("Diya", "diya"),
            ("Isha", "isha"), ("Kavya", "kavya"), ("Rahul", "rahul"), ("Vikram", "vikram"),
            ("Sanjay", "sanjay"), ("Deepika", "deepika"), ("Neha", "neha"), ("Anil", "anil"),
            ("Sunita", "sunita"), ("Ravi", "ravi"), ("Pooja", "pooja"), ("Amit", "amit"),
        ],
        last: &[
            ("Sharma", "sharma"), ("Patel", "patel"), ("Singh", "singh"), ("Kumar", "kumar"),
            ("Gupta", "gupta"), ("Mehta", "mehta"), ("Iyer", "iyer"), ("Reddy", "reddy"),
            ("Nair", "nair"), ("Rao", "rao"), ("Joshi", "joshi"), ("Desai", "desai"),
            ("Kapoor", "kapoor"), ("Chopra", "chopra"), ("Banerjee", "banerjee"),
            ("Menon", "menon"),
        ],
    },
    Culture {
        weight: 4,
        first: &[
            ("Haruto", "haruto"), ("Yuto", "yuto"), ("Sota", "sota"), ("Ren", "ren"),
            ("Yui", "yui"), ("Hina", "hina"), ("Sakura", "sakura"), ("Aoi", "aoi"),
            ("Kenji", "kenji"), ("Takeshi", "takeshi"), ("Yuki", "yuki"), ("Akira", "akira"),
            ("Emi", "emi"), ("Naoko", "naoko"),
        ],
        last: &[
            ("Satō", "sato"), ("Suzuki", "suzuki"), ("Takahashi", "takahashi"),
            ("Tanaka", "tanaka"), ("Watanabe", "watanabe"), ("Itō", "ito"),
            ("Yamamoto", "yamamoto"), ("Nakamura", "nakamura"), ("Kobayashi", "kobayashi"),
            ("Katō", "kato"),
        ],
    },
    Culture {
        weight: 3,
        first: &[
            ("Minh", "minh"), ("Anh", "anh"), ("Linh", "linh"), ("Huy", "huy"), ("Thảo", "thao"),
            ("Min-jun", "minjun"), ("Seo-yeon", "seoyeon"), ("Ji-ho", "jiho"), ("Ha-eun", "haeun"),
        ],
        last: &[
            ("Nguyễn", "nguyen"), ("Trần", "tran"), ("Lê", "le"), ("Phạm", "pham"), ("Kim", "kim"),
            ("Lee", "lee"), ("Park", "park"), ("Choi", "choi"),
        ],
    },
    Culture {
        weight: 4,
        first: &[
            ("Omar", "omar"), ("Ahmed", "ahmed"), ("Fatima", "fatima"), ("Layla", "layla"),
            ("Youssef", "youssef"), ("Mohammed", "mohammed"), ("Aisha", "aisha"),
            ("Karim", "karim"), ("Leila", "leila"), ("Zeynep", "zeynep"), ("Emre", "emre"),
            ("Mehmet", "mehmet"), ("Ayşe", "ayse"), ("Çağla", "cagla"),
        ],
        last: &[
            ("Haddad", "haddad"), ("Khalil", "khalil"), ("Nasser", "nasser"), ("Hassan", "hassan"),
            ("Farouk", "farouk"), ("Aziz", "aziz"), ("Yılmaz", "yilmaz"), ("Kaya", "kaya"),
            ("Demir", "demir"), ("Şahin", "sahin"), ("Öztürk", "ozturk"), ("Çelik", "celik"),
        ],
    },
];

/// (formal, nickname): near-duplicates and first-name corrections swap one for the other.
#[rustfmt::skip]
const NICKNAMES: [(&str, &str); 24] = [
    ("Robert", "Bob"), ("William", "Bill"), ("Michael", "Mike"), ("James", "Jim"),
    ("Katherine", "Kate"), ("Elizabeth", "Liz"), ("Thomas", "Tom"), ("Richard", "Rick"),
    ("Daniel", "Dan"), ("Christopher", "Chris"), ("Margaret", "Maggie"), ("Alexander", "Alex"),
    ("Joseph", "Joe"), ("Patricia", "Pat"), ("Anthony", "Tony"), ("Samantha", "Sam"),
    ("Jonathan", "Jon"), ("Rebecca", "Becky"), ("Nicholas", "Nick"), ("Jennifer", "Jen"),
    ("Steven", "Steve"), ("Matthew", "Matt"), ("Andrew", "Andy"), ("Maximilian", "Max"),
];

fn nickname_swap(first: &str) -> Option<&'static str> {
    NICKNAMES.iter().find_map(|&(formal, nick)| {
        if first == formal {
            Some(nick)
        } else if first == nick {
            Some(formal)
        } else {
            None
        }
    })
}

#[rustfmt::skip]
const US_AREAS: [&str; 10] = [
    "415", "212", "312", "617", "206", "512", "303", "646", "408", "213",
];

/// A phone number with 10 to 12 digits in one of a few common notations.
fn phone(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..10) {
        0..=3 => format!(
            "+1 {} 555 01{:02}",
            pick(rng, &US_AREAS),
            rng.random_range(0..100)
        ),
        4 => format!(
            "({}) 555-01{:02}",
            pick(rng, &US_AREAS),
            rng.random_range(0..100)
        ),
        5 => format!(
            "+1-{}-555-01{:02}",
            pick(rng, &US_AREAS),
            rng.random_range(0..100)
        ),
        6 | 7 => format!("+44 20 7946 0{:03}", rng.random_range(0..1000)),
        8 => format!("+49 30 {:07}", rng.random_range(1_000_000..10_000_000)),
        _ => format!(
            "+33 1 {:02} {:02} {:02} {:02}",
            rng.random_range(10..100),
            rng.random_range(0..100),
            rng.random_range(0..100),
            rng.random_range(0..100)
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------

/// Table sizes; every record is a pure function of these and its index.
struct Ctx {
    seed: u64,
    companies: usize,
    contacts: usize,
    deals: usize,
}

impl Ctx {
    fn new(cfg: &GenConfig) -> Self {
        Ctx {
            seed: cfg.seed,
            companies: cfg.companies,
            contacts: cfg.contacts,
            deals: cfg.deals,
        }
    }
}

struct Company {
    name: String,
    /// The company's real domain; the CRM holds it only if `domain_stored`.
    domain: String,
    domain_stored: bool,
    industry: Option<&'static str>,
    employees: Option<u64>,
    annual_revenue: Option<u64>,
    tier: &'static str,
    owner: Option<&'static str>,
    legal_hold: bool,
    created: i64,
    updated: i64,
}

/// Name words and domain of company `i`: unique domains for every index (no RNG needed).
fn company_identity(seed: u64, i: usize) -> (&'static str, &'static str, String) {
    let offset = (splitmix64(seed ^ 0xC0) % CO_SPACE as u64) as usize;
    let r = i % CO_SPACE;
    let round = i / CO_SPACE;
    let p = (r * CO_STEP + offset) % CO_SPACE;
    let prefix = CO_PREFIX[p % CO_PREFIX.len()];
    let core = CO_CORE[(p / CO_PREFIX.len()) % CO_CORE.len()];
    let tld = CO_TLD[p / (CO_PREFIX.len() * CO_CORE.len())];
    let domain = if round == 0 {
        format!("{prefix}-{core}.{tld}")
    } else {
        format!("{prefix}-{core}{}.{tld}", round + 1)
    };
    (prefix, core, domain)
}

fn title_case(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut upper = true;
    for ch in word.chars() {
        if upper {
            out.extend(ch.to_uppercase());
        } else {
            out.push(ch);
        }
        upper = ch == '-' || ch == ' ' || ch == '.';
    }
    out
}

fn company(seed: u64, i: usize) -> Company {
    let (prefix, core, domain) = company_identity(seed, i);
    let mut rng = rec_rng(seed, T_COMPANY, i);
    let mut name = format!("{} {}", title_case(prefix), title_case(core));
    if chance(&mut rng, 30) {
        name.push(' ');
        name.push_str(pick(&mut rng, &CO_SUFFIX));
    }
    let tier = weighted(
        &mut rng,
        &[("enterprise", 10), ("mid-market", 30), ("smb", 60)],
    );
    let (lo, hi) = match tier {
        "enterprise" => weighted(
            &mut rng,
            &[
                ((1_000, 5_000), 50),
                ((5_000, 20_000), 35),
                ((20_000, 80_000), 15),
            ],
        ),
        "mid-market" => weighted(&mut rng, &[((200, 600), 60), ((600, 2_000), 40)]),
        _ => weighted(&mut rng, &[((3, 20), 35), ((20, 80), 40), ((80, 200), 25)]),
    };
    let employees: u64 = rng.random_range(lo..hi);
    let per_head: u64 = rng.random_range(80..300) * 1000;
    let revenue = (employees * per_head).div_ceil(100_000) * 100_000;
    let (created, updated) = created_updated(&mut rng);
    Company {
        name,
        domain,
        domain_stored: !chance(&mut rng, 8),
        industry: (!chance(&mut rng, 10)).then(|| pick(&mut rng, &INDUSTRIES)),
        employees: (!chance(&mut rng, 8)).then_some(employees),
        annual_revenue: (!chance(&mut rng, 15)).then_some(revenue),
        tier,
        owner: (!chance(&mut rng, 10)).then(|| pick(&mut rng, &REPS)),
        legal_hold: chance(&mut rng, 2),
        created,
        updated,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DupKind {
    Typo,
    Nickname,
    EmailCase,
    MissingPhone,
    Exact,
}

#[derive(Clone)]
struct Contact {
    first: String,
    last: String,
    /// ASCII forms of the person's real names (for email addresses).
    first_ascii: String,
    last_ascii: String,
    /// The real names (a typo duplicate displays a misspelling).
    true_first: String,
    true_last: String,
    email: Option<String>,
    email_status: Option<&'static str>,
    phone: Option<String>,
    title: Option<&'static str>,
    company: Option<usize>,
    lifecycle: Option<&'static str>,
    owner: Option<&'static str>,
    sensitive: bool,
    legal_hold: bool,
    do_not_contact: bool,
    created: i64,
    updated: i64,
    /// Set on a deliberate near-duplicate: the earlier contact it duplicates.
    dup: Option<(usize, DupKind)>,
}

/// Per mille of contacts that are deliberate near-duplicates of an earlier one.
const DUP_PER_MILLE: u32 = 30;
/// How far back a duplicate's original may be.
const DUP_WINDOW: usize = 5000;

fn raw_dup(seed: u64, i: usize) -> bool {
    i > 0 && rec_rng(seed, T_CONTACT, i).random_range(0..1000) < DUP_PER_MILLE
}

/// The random stream of contact `i` after its head, and the contact it duplicates, if any.
/// A duplicate's original is never itself a duplicate.
fn contact_head(seed: u64, i: usize) -> (ChaCha8Rng, Option<usize>) {
    let mut rng = rec_rng(seed, T_CONTACT, i);
    let is_dup = rng.random_range(0..1000) < DUP_PER_MILLE;
    if is_dup && i > 0 {
        for _ in 0..16 {
            let j = rng.random_range(i.saturating_sub(DUP_WINDOW)..i);
            if !raw_dup(seed, j) {
                return (rng, Some(j));
            }
        }
    }
    (rng, None)
}

fn contact_dup_of(seed: u64, i: usize) -> Option<usize> {
    contact_head(seed, i).1
}

fn contact(cx: &Ctx, i: usize) -> Contact {
    let (mut rng, dup_of) = contact_head(cx.seed, i);
    match dup_of {
        Some(j) => duplicate_contact(cx, &mut rng, j),
        None => base_contact(cx, &mut rng),
    }
}

fn email_for(first_ascii: &str, last_ascii: &str, domain: &str) -> String {
    format!("{first_ascii}.{last_ascii}@{domain}")
}

fn contact_domain(cx: &Ctx, company: Option<usize>) -> String {
    match company {
        Some(c) => company_identity(cx.seed, c).2,
        None => "example.com".to_string(),
    }
}

fn base_contact(cx: &Ctx, rng: &mut ChaCha8Rng) -> Contact {
    let culture = &CULTURES[{
        let weights: [(usize, u32); CULTURES.len()] =
            std::array::from_fn(|k| (k, CULTURES[k].weight));
        weighted(rng, &weights)
    }];
    let (first, first_ascii) = pick(rng, culture.first);
    let (last, last_ascii) = pick(rng, culture.last);
    let company = (cx.companies > 0).then(|| rng.random_range(0..cx.companies));
    let email = if chance(rng, 10) {
        None
    } else {
        let email = email_for(first_ascii, last_ascii, &contact_domain(cx, company));
        Some(if chance(rng, 3) {
            recase_email(&email)
        } else {
            email
        })
    };
    let email_status = email.as_ref().and_then(|_| {
        weighted(
            rng,
            &[
                (Some("valid"), 55),
                (Some("unknown"), 12),
                (Some("risky"), 8),
                (Some("invalid"), 5),
                (None, 20),
            ],
        )
    });
    let phone = (!chance(rng, 20)).then(|| phone(rng));
    let title = (!chance(rng, 15)).then(|| pick(rng, &TITLES));
    let lifecycle = weighted(
        rng,
        &[
            (Some("subscriber"), 10),
            (Some("lead"), 30),
            (Some("mql"), 15),
            (Some("sql"), 10),
            (Some("opportunity"), 9),
            (Some("customer"), 17),
            (Some("evangelist"), 3),
            (Some("other"), 2),
            (None, 4),
        ],
    );
    let owner = (!chance(rng, 25)).then(|| pick(rng, &REPS));
    let (created, updated) = created_updated(rng);
    Contact {
        first: first.to_string(),
        last: last.to_string(),
        first_ascii: first_ascii.to_string(),
        last_ascii: last_ascii.to_string(),
        true_first: first.to_string(),
        true_last: last.to_string(),
        email,
        email_status,
        phone,
        title,
        company,
        lifecycle,
        owner,
        sensitive: chance(rng, 3),
        legal_hold: chance(rng, 2),
        do_not_contact: chance(rng, 4),
        created,
        updated,
        dup: None,
    }
}

/// A misspelling of `name` (swap, drop or double a letter), if it is long enough.
fn typo(rng: &mut ChaCha8Rng, name: &str) -> Option<String> {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() < 4 || !chars.iter().all(|c| c.is_alphabetic()) {
        return None;
    }
    let k = rng.random_range(1..chars.len() - 1);
    let mut out = chars.clone();
    match rng.random_range(0..3) {
        0 if chars[k] != chars[k + 1] => out.swap(k, k + 1),
        1 => {
            out.remove(k);
        }
        _ => out.insert(k, chars[k]),
    }
    Some(out.into_iter().collect())
}

/// `jose.garcia@x.com` → `Jose.Garcia@x.com`; `Jose.Garcia@x.com` → `JOSE.GARCIA@x.com`.
fn recase_email(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let cased = title_case(local);
    let local = if cased == local {
        local.to_uppercase()
    } else {
        cased
    };
    format!("{local}@{domain}")
}

fn duplicate_contact(cx: &Ctx, rng: &mut ChaCha8Rng, j: usize) -> Contact {
    let orig = contact(cx, j);
    let mut c = orig.clone();
    let wanted = weighted(
        rng,
        &[
            (DupKind::Typo, 30),
            (DupKind::Nickname, 20),
            (DupKind::EmailCase, 25),
            (DupKind::MissingPhone, 25),
        ],
    );
    // Try the wanted variation first, then the others, then an exact copy.
    let order = [
        wanted,
        DupKind::Typo,
        DupKind::Nickname,
        DupKind::EmailCase,
        DupKind::MissingPhone,
    ];
    let mut kind = DupKind::Exact;
    for k in order {
        let done = match k {
            DupKind::Typo => {
                let last_first = chance(rng, 60);
                let (a, b) = if last_first {
                    (typo(rng, &orig.last), None)
                } else {
                    (None, typo(rng, &orig.first))
                };
                match (a, b) {
                    (Some(l), _) => {
                        c.last = l;
                        true
                    }
                    (_, Some(f)) => {
                        c.first = f;
                        true
                    }
                    _ => false,
                }
            }
            DupKind::Nickname => match nickname_swap(&orig.first) {
                Some(n) => {
                    c.first = n.to_string();
                    true
                }
                None => false,
            },
            DupKind::EmailCase => match &orig.email {
                Some(e) => {
                    c.email = Some(recase_email(e));
                    c.email_status = None;
                    true
                }
                None => false,
            },
            DupKind::MissingPhone => c.phone.take().is_some(),
            DupKind::Exact => false,
        };
        if done {
            kind = k;
            break;
        }
    }
    c.dup = Some((j, kind));
    if chance(rng, 30) {
        c.title = (!chance(rng, 30)).then(|| pick(rng, &TITLES));
    }
    c.lifecycle = Some(pick(rng, &["subscriber", "lead", "lead", "mql"]));
    c.owner = (!chance(rng, 40)).then(|| pick(rng, &REPS));
    c.legal_hold = chance(rng, 1);
    let latest = t_end() - DAY;
    c.created = (orig.created + rng.random_range(DAY..400 * DAY)).min(latest);
    c.updated = updated_after(rng, c.created);
    c
}

struct Deal {
    name: String,
    company: usize,
    contact: Option<usize>,
    stage: &'static str,
    amount: u64,
    owner: Option<&'static str>,
    close_day: i64,
    created: i64,
    updated: i64,
}

const DEAL_PRODUCTS: [&str; 10] = [
    "Platform license",
    "Annual renewal",
    "Expansion (EMEA)",
    "Pilot",
    "Enterprise upgrade",
    "Support contract",
    "Data add-on",
    "Seats +50",
    "Onboarding services",
    "Multi-year agreement",
];

fn deal(cx: &Ctx, i: usize) -> Deal {
    let mut rng = rec_rng(cx.seed, T_DEAL, i);
    let with_contact = cx.contacts > 0 && chance(&mut rng, 80);
    let (company_idx, contact_idx) = if with_contact {
        let k = rng.random_range(0..cx.contacts);
        match contact(cx, k).company {
            Some(co) => (co, Some(k)),
            None => (rng.random_range(0..cx.companies), None),
        }
    } else {
        (rng.random_range(0..cx.companies), None)
    };
    let co = company(cx.seed, company_idx);
    let name = format!("{} - {}", co.name, pick(&mut rng, &DEAL_PRODUCTS));
    let stage = weighted(
        &mut rng,
        &[
            ("prospecting", 20),
            ("qualification", 18),
            ("proposal", 15),
            ("negotiation", 12),
            ("closed_won", 20),
            ("closed_lost", 15),
        ],
    );
    let amount = if chance(&mut rng, 10) {
        rng.random_range(200..3_000) * 500
    } else {
        rng.random_range(6..200) * 500
    };
    let (created, updated) = created_updated(&mut rng);
    let close_day = created.div_euclid(DAY) + rng.random_range(14..240);
    Deal {
        name,
        company: company_idx,
        contact: contact_idx,
        stage,
        amount,
        owner: (!chance(&mut rng, 5)).then(|| pick(&mut rng, &REPS)),
        close_day,
        created,
        updated,
    }
}

struct Activity {
    contact: usize,
    deal: Option<usize>,
    kind: &'static str,
    body: String,
    at: i64,
}

const TOPICS: [&str; 16] = [
    "pricing",
    "the renewal",
    "onboarding",
    "the security review",
    "SSO setup",
    "Q3 roadmap",
    "data migration",
    "the pilot results",
    "contract terms",
    "seat count",
    "API limits",
    "invoicing, PO numbers",
    "the \"pro\" plan",
    "integration with their ERP",
    "support SLAs",
    "a reference call",
];

fn activity(cx: &Ctx, i: usize) -> Activity {
    let mut rng = rec_rng(cx.seed, T_ACTIVITY, i);
    let mut deal_idx = None;
    let mut contact_idx = None;
    if cx.deals > 0 && chance(&mut rng, 35) {
        let d = rng.random_range(0..cx.deals);
        deal_idx = Some(d);
        contact_idx = deal(cx, d).contact;
    }
    let contact_idx = contact_idx.unwrap_or_else(|| rng.random_range(0..cx.contacts));
    let c = contact(cx, contact_idx);
    let kind = weighted(
        &mut rng,
        &[("email", 40), ("call", 25), ("meeting", 20), ("note", 15)],
    );
    let topic = pick(&mut rng, &TOPICS);
    let who = &c.first;
    let body = match (kind, rng.random_range(0..3)) {
        ("email", 0) => format!("Sent follow-up to {who} about {topic}"),
        ("email", 1) => format!("{who} replied: interested in {topic}"),
        ("email", _) => format!("Email re: {topic}"),
        ("call", 0) => format!("Left voicemail for {who}"),
        ("call", 1) => format!("Call with {who}: discussed {topic}"),
        ("call", _) => format!("Discovery call, {topic}"),
        ("meeting", 0) => format!("Demo for {who}'s team"),
        ("meeting", 1) => format!("Meeting booked with {who} on {topic}"),
        ("meeting", _) => format!("On-site meeting: {topic}"),
        (_, 0) => format!("{who} prefers email over calls"),
        (_, 1) => format!("Note: asked about {topic}"),
        _ => format!("Champion changed roles; revisit {topic}"),
    };
    let at = rng.random_range(c.created..t_end());
    Activity {
        contact: contact_idx,
        deal: deal_idx,
        kind,
        body,
        at,
    }
}

// ---------------------------------------------------------------------------------------
// Proposals
// ---------------------------------------------------------------------------------------

/// A proposal cell that may be absent, null (clears the field), text or an integer.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Omit,
    Null,
    Text(String),
    Int(u64),
}

impl Val {
    fn csv(&self) -> String {
        match self {
            Val::Omit | Val::Null => String::new(),
            Val::Text(s) => s.clone(),
            Val::Int(n) => n.to_string(),
        }
    }
    fn text(s: impl Into<String>) -> Val {
        Val::Text(s.into())
    }
    fn opt(s: Option<&str>) -> Option<Val> {
        s.map(Val::text)
    }
}

struct Proposal {
    id: String,
    source: &'static str,
    kind: &'static str,
    object: &'static str,
    record: String,
    field: Option<&'static str>,
    value: Val,
    merge_into: Option<String>,
    /// Hundredths.
    confidence: Option<u8>,
    expected: Option<Val>,
    trigger: Option<&'static str>,
    reason: Option<String>,
}

fn conf_text(c: u8) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

impl Proposal {
    fn csv_cells(&self) -> [String; 12] {
        [
            self.id.clone(),
            self.source.to_string(),
            self.kind.to_string(),
            self.object.to_string(),
            self.record.clone(),
            self.field.unwrap_or("").to_string(),
            self.value.csv(),
            self.merge_into.clone().unwrap_or_default(),
            self.confidence.map(conf_text).unwrap_or_default(),
            self.expected.as_ref().map(Val::csv).unwrap_or_default(),
            self.trigger.unwrap_or("").to_string(),
            self.reason.clone().unwrap_or_default(),
        ]
    }

    /// One JSON object on one line; empty cells are left out, `value` is null when it
    /// clears a field, integers and `confidence` are numbers.
    fn push_json(&self, out: &mut String) {
        fn key(out: &mut String, k: &str) {
            if !out.ends_with('{') {
                out.push(',');
            }
            out.push('"');
            out.push_str(k);
            out.push_str("\":");
        }
        fn string(out: &mut String, k: &str, v: &str) {
            key(out, k);
            out.push_str(&serde_json::to_string(v).expect("a string serializes"));
        }
        fn val(out: &mut String, k: &str, v: &Val) {
            match v {
                Val::Omit => {}
                Val::Null => {
                    key(out, k);
                    out.push_str("null");
                }
                Val::Text(s) => string(out, k, s),
                Val::Int(n) => {
                    key(out, k);
                    out.push_str(&n.to_string());
                }
            }
        }
        out.push('{');
        string(out, "id", &self.id);
        string(out, "source", self.source);
        string(out, "kind", self.kind);
        string(out, "object", self.object);
        string(out, "record", &self.record);
        if let Some(f) = self.field {
            string(out, "field", f);
        }
        val(out, "value", &self.value);
        if let Some(m) = &self.merge_into {
            string(out, "merge_into", m);
        }
        if let Some(c) = self.confidence {
            key(out, "confidence");
            out.push_str(&conf_text(c));
        }
        if let Some(e) = &self.expected {
            val(out, "expected", e);
        }
        if let Some(t) = self.trigger {
            string(out, "trigger", t);
        }
        if let Some(r) = &self.reason {
            string(out, "reason", r);
        }
        out.push('}');
    }
}

/// The body of a proposal, before its id and common decorations.
struct Draft {
    source: &'static str,
    kind: &'static str,
    object: &'static str,
    record: String,
    field: Option<&'static str>,
    value: Val,
    merge_into: Option<String>,
    confidence: Option<u8>,
    /// The record's current value of the field (if set), offered as `expected`.
    current: Option<Val>,
    trigger: Option<&'static str>,
    reason: String,
}

/// How many random records a proposal looks at to find a suitable one.
const TRIES: usize = 8;

fn proposal(cx: &Ctx, i: usize) -> Proposal {
    let mut rng = rec_rng(cx.seed, T_PROPOSAL, i);
    let roll = rng.random_range(0..100);
    let draft = match roll {
        0..60 => None,
        60..75 => verify(cx, &mut rng),
        75..85 => lifecycle(cx, &mut rng),
        85..95 => Some(owner(cx, &mut rng)),
        _ => merge(cx, &mut rng),
    };
    let d = match draft {
        Some(d) => d,
        None => update(cx, &mut rng),
    };
    let expected = match d.current {
        Some(cur) if d.kind != "merge" && chance(&mut rng, 50) => Some(cur),
        _ => None,
    };
    let reason = (!chance(&mut rng, 8)).then_some(d.reason);
    Proposal {
        id: format!("p-{}", i + 1),
        source: d.source,
        kind: d.kind,
        object: d.object,
        record: d.record,
        field: d.field,
        value: d.value,
        merge_into: d.merge_into,
        confidence: d.confidence,
        expected,
        trigger: d.trigger,
        reason,
    }
}

fn update(cx: &Ctx, rng: &mut ChaCha8Rng) -> Draft {
    let object = if cx.contacts == 0 {
        "companies"
    } else if cx.deals == 0 {
        weighted(rng, &[("contacts", 80), ("companies", 20)])
    } else {
        weighted(rng, &[("contacts", 78), ("companies", 16), ("deals", 6)])
    };
    let fill = chance(rng, 50);
    let source = weighted(
        rng,
        &[("clearbit", 45), ("zoominfo", 35), ("hubspot-ai", 20)],
    );
    let mut d = match object {
        "contacts" => update_contact(cx, rng, fill),
        "companies" => update_company(cx, rng, fill),
        _ => update_deal(cx, rng),
    };
    d.source = source;
    d.confidence = confidence(rng, 50, 99, 12);
    d
}

fn draft(object: &'static str, record: String, field: &'static str, value: Val) -> Draft {
    Draft {
        source: "clearbit",
        kind: "update",
        object,
        record,
        field: Some(field),
        value,
        merge_into: None,
        confidence: None,
        current: None,
        trigger: None,
        reason: String::new(),
    }
}

const FILL_REASONS: [&str; 6] = [
    "Found on LinkedIn profile",
    "From the company website team page",
    "Matched in enrichment database",
    "Seen in email signature",
    "Provided on a webinar registration form",
    "Public business registry",
];
const CHANGE_REASONS: [&str; 6] = [
    "Newer value in enrichment database",
    "LinkedIn profile updated recently",
    "Email signature differs from CRM",
    "Old value bounced / not reachable",
    "Corrected per company website",
    "Contact confirmed on a call",
];

fn update_contact(cx: &Ctx, rng: &mut ChaCha8Rng, fill: bool) -> Draft {
    if fill {
        for _ in 0..TRIES {
            let k = rng.random_range(0..cx.contacts);
            let c = contact(cx, k);
            let mut empty: Vec<&'static str> = Vec::with_capacity(3);
            if c.email.is_none() {
                empty.push("email");
            }
            if c.phone.is_none() {
                empty.push("phone");
            }
            if c.title.is_none() {
                empty.push("title");
            }
            if empty.is_empty() {
                continue;
            }
            let field = pick(rng, &empty);
            let value = match field {
                "email" => email_for(
                    &c.first_ascii,
                    &c.last_ascii,
                    &contact_domain(cx, c.company),
                ),
                "phone" => phone(rng),
                _ => pick(rng, &TITLES).to_string(),
            };
            let mut d = draft("contacts", contact_id(k), field, Val::Text(value));
            d.reason = pick(rng, &FILL_REASONS).to_string();
            return d;
        }
    }
    let k = rng.random_range(0..cx.contacts);
    let c = contact(cx, k);
    let record = contact_id(k);
    // Clearing a stale title or phone now and then.
    if chance(rng, 3)
        && let Some(t) = c.title
    {
        let mut d = draft("contacts", record, "title", Val::Null);
        d.current = Some(Val::text(t));
        d.reason = "Title no longer listed on the company website".to_string();
        return d;
    }
    let mut field = weighted(
        rng,
        &[
            ("title", 30),
            ("phone", 25),
            ("email", 20),
            ("first_name", 12),
            ("last_name", 13),
        ],
    );
    if (field == "phone" && c.phone.is_none()) || (field == "email" && c.email.is_none()) {
        field = "title";
    }
    let (value, current, reason): (String, Option<String>, String) = match field {
        "phone" => {
            let cur = c.phone.clone().unwrap_or_default();
            let mut v = phone(rng);
            while v == cur {
                v = phone(rng);
            }
            (v, c.phone.clone(), pick(rng, &CHANGE_REASONS).to_string())
        }
        "email" => {
            let cur = c.email.clone().unwrap_or_default();
            let domain = contact_domain(cx, c.company);
            let first_initial: String = c.first_ascii.chars().take(1).collect();
            let options = [
                cur.to_lowercase(),
                email_for(&c.first_ascii, &c.last_ascii, &domain),
                format!("{first_initial}{}@{domain}", c.last_ascii),
                format!("{}@{domain}", c.first_ascii),
            ];
            let start = rng.random_range(0..options.len());
            let v = (0..options.len())
                .map(|o| &options[(start + o) % options.len()])
                .find(|v| **v != cur)
                .cloned()
                .unwrap_or_else(|| format!("{}.{}@{domain}", c.last_ascii, c.first_ascii));
            (
                v,
                c.email.clone(),
                "Email bounced; new address from signature".to_string(),
            )
        }
        "first_name" => {
            let v = if c.first != c.true_first {
                c.true_first.clone()
            } else if let Some(n) = nickname_swap(&c.first) {
                n.to_string()
            } else if title_case(&c.first_ascii) != c.first {
                title_case(&c.first_ascii)
            } else {
                c.first.to_uppercase()
            };
            (
                v,
                Some(c.first.clone()),
                "Name as written on LinkedIn".to_string(),
            )
        }
        "last_name" => {
            let v = if c.last != c.true_last {
                c.true_last.clone()
            } else if title_case(&c.last_ascii) != c.last && chance(rng, 50) {
                title_case(&c.last_ascii)
            } else {
                let other = loop {
                    let k2 = rng.random_range(0..CULTURES[0].last.len());
                    let other = CULTURES[0].last[k2].0;
                    if other != c.last {
                        break other;
                    }
                };
                format!("{}-{other}", c.last)
            };
            (
                v,
                Some(c.last.clone()),
                "Last name changed (marriage) per LinkedIn".to_string(),
            )
        }
        _ => {
            let mut v = pick(rng, &TITLES);
            while Some(v) == c.title {
                v = pick(rng, &TITLES);
            }
            (
                v.to_string(),
                c.title.map(str::to_string),
                "New role on LinkedIn".to_string(),
            )
        }
    };
    let mut d = draft("contacts", record, field, Val::Text(value));
    d.current = current.map(Val::Text);
    d.reason = reason;
    d
}

fn update_company(cx: &Ctx, rng: &mut ChaCha8Rng, fill: bool) -> Draft {
    if fill {
        for _ in 0..TRIES {
            let k = rng.random_range(0..cx.companies);
            let c = company(cx.seed, k);
            let mut empty: Vec<&'static str> = Vec::with_capacity(3);
            if c.industry.is_none() {
                empty.push("industry");
            }
            if c.employees.is_none() {
                empty.push("employees");
            }
            if !c.domain_stored {
                empty.push("domain");
            }
            if empty.is_empty() {
                continue;
            }
            let field = pick(rng, &empty);
            let value = match field {
                "industry" => Val::text(pick(rng, &INDUSTRIES)),
                "employees" => Val::Int(rng.random_range(5..5000)),
                _ => Val::Text(c.domain.clone()),
            };
            let mut d = draft("companies", company_id(k), field, value);
            d.reason = pick(rng, &FILL_REASONS).to_string();
            return d;
        }
    }
    let k = rng.random_range(0..cx.companies);
    let c = company(cx.seed, k);
    let mut field = weighted(rng, &[("industry", 40), ("employees", 45), ("domain", 15)]);
    if field == "domain" && !c.domain_stored {
        field = "employees";
    }
    let (value, current, reason) = match field {
        "industry" => {
            let mut v = pick(rng, &INDUSTRIES);
            while Some(v) == c.industry {
                v = pick(rng, &INDUSTRIES);
            }
            (
                Val::text(v),
                Val::opt(c.industry),
                "Industry classification from enrichment database",
            )
        }
        "domain" => {
            let (host, tld) = c
                .domain
                .rsplit_once('.')
                .unwrap_or((c.domain.as_str(), "com"));
            let new_tld = CO_TLD.iter().find(|t| **t != tld).copied().unwrap_or("com");
            (
                Val::Text(format!("{host}.{new_tld}")),
                Some(Val::Text(c.domain.clone())),
                "Website redirects to a new domain",
            )
        }
        _ => {
            let base = c.employees.unwrap_or(50);
            let delta = (base * rng.random_range(5..40) / 100).max(1);
            let v = if chance(rng, 70) {
                base + delta
            } else {
                (base - delta).max(1)
            };
            let v = if v == base { base + 1 } else { v };
            (
                Val::Int(v),
                c.employees.map(Val::Int),
                "Headcount from LinkedIn company page",
            )
        }
    };
    let mut d = draft("companies", company_id(k), field, value);
    d.current = current;
    d.reason = reason.to_string();
    d
}

fn update_deal(cx: &Ctx, rng: &mut ChaCha8Rng) -> Draft {
    let k = rng.random_range(0..cx.deals);
    let dl = deal(cx, k);
    if chance(rng, 60) {
        let pct = rng.random_range(10..50);
        let up = chance(rng, 60);
        let delta = (dl.amount * pct / 100 / 500).max(1) * 500;
        let v = if up {
            dl.amount + delta
        } else {
            dl.amount.saturating_sub(delta).max(500)
        };
        let v = if v == dl.amount { v + 500 } else { v };
        let mut d = draft("deals", deal_id(k), "amount", Val::Int(v));
        d.current = Some(Val::Int(dl.amount));
        d.reason = "Amount from the latest quote".to_string();
        d
    } else {
        let pos = DEAL_STAGES.iter().position(|s| *s == dl.stage).unwrap_or(0);
        let v = if pos < 3 {
            DEAL_STAGES[pos + 1]
        } else {
            let mut v = pick(rng, &DEAL_STAGES);
            while v == dl.stage {
                v = pick(rng, &DEAL_STAGES);
            }
            v
        };
        let mut d = draft("deals", deal_id(k), "stage", Val::text(v));
        d.current = Some(Val::text(dl.stage));
        d.reason = "Stage inferred from email thread".to_string();
        d
    }
}

fn verify(cx: &Ctx, rng: &mut ChaCha8Rng) -> Option<Draft> {
    if cx.contacts == 0 {
        return None;
    }
    let mut k = rng.random_range(0..cx.contacts);
    let mut c = contact(cx, k);
    for _ in 0..TRIES {
        if c.email.is_some() {
            break;
        }
        k = rng.random_range(0..cx.contacts);
        c = contact(cx, k);
    }
    let value = weighted(
        rng,
        &[
            ("valid", 55),
            ("risky", 20),
            ("invalid", 15),
            ("unknown", 10),
        ],
    );
    let reason = match value {
        "valid" => "SMTP check passed",
        "risky" => "Catch-all domain; mailbox not confirmed",
        "invalid" => "Mailbox does not exist (SMTP 550)",
        _ => "Mail server did not answer",
    };
    Some(Draft {
        source: "clearbit",
        kind: "verify",
        object: "contacts",
        record: contact_id(k),
        field: None,
        value: Val::text(value),
        merge_into: None,
        confidence: confidence(rng, 60, 99, 10),
        current: Val::opt(c.email_status),
        trigger: None,
        reason: reason.to_string(),
    })
}

fn lifecycle(cx: &Ctx, rng: &mut ChaCha8Rng) -> Option<Draft> {
    if cx.contacts == 0 {
        return None;
    }
    let k = rng.random_range(0..cx.contacts);
    let c = contact(cx, k);
    let value = match c.lifecycle {
        None | Some("subscriber") | Some("other") => "lead",
        Some("lead") => "mql",
        Some("mql") => "sql",
        Some("sql") => "opportunity",
        Some("opportunity") => "customer",
        Some("customer") => "evangelist",
        _ => "customer",
    };
    let trigger = match value {
        "customer" if chance(rng, 70) => "contract_signed",
        "sql" | "opportunity" if chance(rng, 60) => "meeting_booked",
        "lead" | "mql" if chance(rng, 60) => "form_submitted",
        _ => "ai_score",
    };
    let reason = match trigger {
        "contract_signed" => "Contract signed in DocuSign",
        "meeting_booked" => "Meeting booked via scheduling link",
        "form_submitted" => "Submitted the demo request form",
        _ => "Engagement score crossed the threshold",
    };
    Some(Draft {
        source: pick(rng, &["sdr-agent", "hubspot-ai"]),
        kind: "lifecycle",
        object: "contacts",
        record: contact_id(k),
        field: None,
        value: Val::text(value),
        merge_into: None,
        confidence: confidence(rng, 40, 99, 15),
        current: Val::opt(c.lifecycle),
        trigger: Some(trigger),
        reason: reason.to_string(),
    })
}

fn owner(cx: &Ctx, rng: &mut ChaCha8Rng) -> Draft {
    let object = if cx.contacts == 0 {
        "companies"
    } else if cx.deals == 0 {
        weighted(rng, &[("contacts", 75), ("companies", 25)])
    } else {
        weighted(rng, &[("contacts", 70), ("companies", 20), ("deals", 10)])
    };
    let (record, current) = match object {
        "contacts" => {
            let k = rng.random_range(0..cx.contacts);
            (contact_id(k), contact(cx, k).owner)
        }
        "companies" => {
            let k = rng.random_range(0..cx.companies);
            (company_id(k), company(cx.seed, k).owner)
        }
        _ => {
            let k = rng.random_range(0..cx.deals);
            (deal_id(k), deal(cx, k).owner)
        }
    };
    let mut value = pick(rng, &REPS);
    while Some(value) == current {
        value = pick(rng, &REPS);
    }
    let reason = if current.is_none() {
        format!("Unowned record; {value} covers this territory")
    } else {
        format!("Territory reassignment to {value}")
    };
    Draft {
        source: "sdr-agent",
        kind: "owner",
        object,
        record,
        field: None,
        value: Val::text(value),
        merge_into: None,
        confidence: confidence(rng, 50, 95, 20),
        current: Val::opt(current),
        trigger: None,
        reason,
    }
}

fn merge(cx: &Ctx, rng: &mut ChaCha8Rng) -> Option<Draft> {
    if cx.contacts < 2 {
        return None;
    }
    for _ in 0..400 {
        let k = rng.random_range(1..cx.contacts);
        if contact_dup_of(cx.seed, k).is_none() {
            continue;
        }
        let c = contact(cx, k);
        let (j, kind) = c.dup?;
        let (lo, hi, reason) = match kind {
            DupKind::Typo => (
                70,
                95,
                "Same company, email and phone; name differs by one letter",
            ),
            DupKind::Nickname => (65, 92, "Same company and email; first name is a nickname"),
            DupKind::EmailCase => (85, 99, "Same name and company; email differs only in case"),
            DupKind::MissingPhone => (
                80,
                98,
                "Same name, email and company; duplicate has no phone",
            ),
            DupKind::Exact => (90, 99, "Identical name, email and company"),
        };
        return Some(Draft {
            source: "dedupe-bot",
            kind: "merge",
            object: "contacts",
            record: contact_id(k),
            field: None,
            value: Val::Omit,
            merge_into: Some(contact_id(j)),
            confidence: confidence(rng, lo, hi, 10),
            current: None,
            trigger: None,
            reason: reason.to_string(),
        });
    }
    None
}

#[cfg(test)]
mod unit {
    // A `harness = false` bench that includes this file is built with cfg(test) but
    // without its #[test] functions.
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_741_944_413), "2025-03-14T09:26:53Z");
        for day in [0, 59, 60, 365, 10_000, 20_000, 20_527] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn company_domains_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..CO_SPACE * 2 + 10 {
            assert!(
                seen.insert(company_identity(7, i).2),
                "duplicate domain at {i}"
            );
        }
    }
}
