//! The demo data, built into the binary so `crmgate demo` and `init --demo` work from anywhere.

pub struct Fixture {
    pub name: &'static str,
    pub data: &'static [u8],
}

macro_rules! fixture {
    ($path:literal) => {
        Fixture {
            name: $path,
            data: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path)),
        }
    };
}

/// CRM tables, in the order their foreign keys need.
pub const CRM: [(&str, Fixture); 4] = [
    ("companies", fixture!("fixtures/crm/companies.csv")),
    ("contacts", fixture!("fixtures/crm/contacts.csv")),
    ("deals", fixture!("fixtures/crm/deals.csv")),
    ("activities", fixture!("fixtures/crm/activities.csv")),
];

pub const PROPOSALS: [Fixture; 3] = [
    fixture!("fixtures/proposals/clearbit.csv"),
    fixture!("fixtures/proposals/dedupe-bot.json"),
    fixture!("fixtures/proposals/agents.jsonl"),
];

/// A file with one bad row, to show what a refused ingest looks like.
pub const BAD: Fixture = fixture!("fixtures/bad/unknown-field.csv");

/// The policy a plain `init` installs: the demo policy's rules, no sources, single-user mode.
pub const DEFAULT_POLICY: Fixture = fixture!("fixtures/policy/default.toml");

/// The policy `init --demo` and `demo` install: named sources and roles.
pub const DEMO_POLICY: Fixture = fixture!("fixtures/policy/demo.toml");
