//! Tests of the dataset generator, the crmgate-gen crate in gen/ (used by
//! examples/gen_fixtures.rs and the benchmarks): determinism, the committed fixtures,
//! referential integrity.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crmgate_gen::{GenConfig, TABLES, write_dataset, write_proposals};

/// One CSV row by column name.
type Row = BTreeMap<String, String>;
/// A table's header and its rows by id.
type Table = (Vec<String>, BTreeMap<String, Row>);

fn small() -> GenConfig {
    GenConfig {
        seed: 42,
        companies: 60,
        contacts: 400,
        deals: 50,
        activities: 500,
        proposals: 700,
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<Row>) {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            assert_eq!(rec.len(), headers.len(), "{}: ragged row", path.display());
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (headers, rows)
}

#[test]
fn same_seed_gives_identical_bytes() {
    let cfg = small();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let sa = write_dataset(a.path(), &cfg).unwrap();
    let sb = write_dataset(b.path(), &cfg).unwrap();
    assert_eq!(sa, sb);
    let mut total = 0;
    for name in TABLES.iter().chain(&["proposals"]) {
        let file = format!("{name}.csv");
        let (x, y) = (read(&a.path().join(&file)), read(&b.path().join(&file)));
        assert!(x == y, "{file} differs between two runs with the same seed");
        total += x.len() as u64;
    }
    assert_eq!(
        sa.bytes, total,
        "Summary.bytes is the size of the files written"
    );

    for format in ["json", "jsonl"] {
        let pa = a.path().join(format!("p.{format}"));
        let pb = b.path().join(format!("p.{format}"));
        let na = write_proposals(&pa, &cfg, format).unwrap();
        write_proposals(&pb, &cfg, format).unwrap();
        assert_eq!(read(&pa), read(&pb), "{format} output differs");
        assert_eq!(na, read(&pa).len() as u64);
    }

    // Another seed gives other data.
    let c = tempfile::tempdir().unwrap();
    write_dataset(c.path(), &GenConfig { seed: 43, ..cfg }).unwrap();
    assert_ne!(
        read(&a.path().join("contacts.csv")),
        read(&c.path().join("contacts.csv"))
    );
}

#[test]
fn committed_fixtures_match_the_generator() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &GenConfig::demo()).unwrap();
    let regen = "cargo run --example gen_fixtures -- --out fixtures/crm && mv fixtures/crm/proposals.csv fixtures/proposals/generated.csv";
    for name in TABLES {
        let committed = root.join("crm").join(format!("{name}.csv"));
        assert!(
            read(&committed) == read(&dir.path().join(format!("{name}.csv"))),
            "{} drifted from GenConfig::demo(); regenerate with `{regen}`",
            committed.display()
        );
    }
    let committed = root.join("proposals").join("generated.csv");
    assert!(
        read(&committed) == read(&dir.path().join("proposals.csv")),
        "{} drifted from GenConfig::demo(); regenerate with `{regen}`",
        committed.display()
    );
}

#[test]
fn counts_headers_and_references_hold() {
    let cfg = small();
    let dir = tempfile::tempdir().unwrap();
    let summary = write_dataset(dir.path(), &cfg).unwrap();
    assert_eq!(
        (
            summary.companies,
            summary.contacts,
            summary.deals,
            summary.activities,
            summary.proposals
        ),
        (
            cfg.companies,
            cfg.contacts,
            cfg.deals,
            cfg.activities,
            cfg.proposals
        )
    );

    let mut tables: BTreeMap<&str, Table> = BTreeMap::new();
    let expected_headers: [&[&str]; 4] = [
        &crmgate_gen::COMPANY_COLUMNS,
        &crmgate_gen::CONTACT_COLUMNS,
        &crmgate_gen::DEAL_COLUMNS,
        &crmgate_gen::ACTIVITY_COLUMNS,
    ];
    let prefixes = ["co-", "c-", "d-", "a-"];
    let counts = [cfg.companies, cfg.contacts, cfg.deals, cfg.activities];
    for (k, name) in TABLES.into_iter().enumerate() {
        let (headers, rows) = csv_rows(&dir.path().join(format!("{name}.csv")));
        assert_eq!(headers, expected_headers[k], "{name} header");
        assert_eq!(rows.len(), counts[k], "{name} rows");
        let mut by_id = BTreeMap::new();
        for (n, row) in rows.into_iter().enumerate() {
            assert_eq!(row["id"], format!("{}{}", prefixes[k], n + 1001));
            by_id.insert(row["id"].clone(), row);
        }
        tables.insert(name, (headers, by_id));
    }
    let ids = |t: &str| -> BTreeSet<String> { tables[t].1.keys().cloned().collect() };
    let (companies, contacts, deals) = (ids("companies"), ids("contacts"), ids("deals"));
    for c in tables["contacts"].1.values() {
        assert!(companies.contains(&c["company_id"]), "{c:?}");
    }
    for d in tables["deals"].1.values() {
        assert!(companies.contains(&d["company_id"]), "{d:?}");
        if !d["contact_id"].is_empty() {
            let contact = &tables["contacts"].1[&d["contact_id"]];
            assert_eq!(
                contact["company_id"], d["company_id"],
                "deal contact works elsewhere: {d:?}"
            );
        }
    }
    for a in tables["activities"].1.values() {
        assert!(contacts.contains(&a["contact_id"]), "{a:?}");
        assert!(
            a["deal_id"].is_empty() || deals.contains(&a["deal_id"]),
            "{a:?}"
        );
    }

    let (headers, proposals) = csv_rows(&dir.path().join("proposals.csv"));
    assert_eq!(headers, crmgate_gen::PROPOSAL_COLUMNS);
    // The generator's columns are crmgate's, in order, but the evidence it never writes.
    assert_eq!(
        crmgate_gen::PROPOSAL_COLUMNS[..],
        crmgate::ingest::proposals::COLUMNS[..12]
    );
    assert_eq!(proposals.len(), cfg.proposals);
    let mut seen = BTreeSet::new();
    let mut kinds = BTreeMap::<String, usize>::new();
    for p in &proposals {
        assert!(
            seen.insert((p["source"].clone(), p["id"].clone())),
            "duplicate id {p:?}"
        );
        *kinds.entry(p["kind"].clone()).or_default() += 1;
        let (columns, records) = &tables[p["object"].as_str()];
        let record = records
            .get(&p["record"])
            .unwrap_or_else(|| panic!("proposal on a missing record: {p:?}"));
        let conf = &p["confidence"];
        if !conf.is_empty() {
            let v: f64 = conf.parse().unwrap();
            assert!((0.0..=1.0).contains(&v) && conf.len() == 4, "{p:?}");
        }
        match p["kind"].as_str() {
            "merge" => {
                assert!(p["field"].is_empty() && p["value"].is_empty(), "{p:?}");
                let into = &records[&p["merge_into"]];
                assert_ne!(p["merge_into"], p["record"]);
                assert_eq!(into["company_id"], record["company_id"], "{p:?}");
            }
            kind => {
                let field = match kind {
                    "update" => p["field"].as_str(),
                    "verify" => "email_status",
                    "lifecycle" => "lifecycle_stage",
                    "owner" => "owner",
                    other => panic!("unknown kind {other}"),
                };
                assert!(kind == "update" || p["field"].is_empty(), "{p:?}");
                assert!(columns.iter().any(|c| c == field) && field != "id", "{p:?}");
                if !p["expected"].is_empty() {
                    assert_eq!(
                        p["expected"], record[field],
                        "expected is the current value: {p:?}"
                    );
                }
                if kind == "lifecycle" {
                    assert!(
                        crmgate_gen::TRIGGERS.contains(&p["trigger"].as_str()),
                        "{p:?}"
                    );
                }
            }
        }
    }
    for kind in ["update", "verify", "lifecycle", "owner", "merge"] {
        assert!(
            kinds.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} proposal in {kinds:?}"
        );
    }
}

#[test]
fn json_and_jsonl_match_csv() {
    let cfg = small();
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &cfg).unwrap();
    let (_, csv_props) = csv_rows(&dir.path().join("proposals.csv"));

    let json_path = dir.path().join("proposals.json");
    write_proposals(&json_path, &cfg, "json").unwrap();
    let array: Vec<serde_json::Value> =
        serde_json::from_slice(&read(&json_path)).expect("the JSON output parses");

    let jsonl_path = dir.path().join("proposals.jsonl");
    write_proposals(&jsonl_path, &cfg, "jsonl").unwrap();
    let text = String::from_utf8(read(&jsonl_path)).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each JSONL line parses"))
        .collect();

    assert_eq!(array.len(), cfg.proposals);
    assert_eq!(lines.len(), cfg.proposals);
    assert_eq!(array, lines);
    for (obj, row) in array.iter().zip(&csv_props) {
        let obj = obj.as_object().unwrap();
        for column in crmgate_gen::PROPOSAL_COLUMNS {
            let cell = &row[column];
            let cell_json = match obj.get(column) {
                None => {
                    assert!(
                        cell.is_empty(),
                        "{column} left out but {cell:?} in CSV: {obj:?}"
                    );
                    assert!(
                        column != "value" || row["kind"] == "merge",
                        "value left out: {obj:?}"
                    );
                    continue;
                }
                Some(serde_json::Value::Null) => {
                    assert_eq!(column, "value", "only value may be null: {obj:?}");
                    String::new()
                }
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => {
                    // Compare numbers as numbers: `0.80` in CSV is `0.8` once parsed.
                    let csv_num: f64 = cell
                        .parse()
                        .unwrap_or_else(|_| panic!("{column}: {cell:?}"));
                    assert_eq!(n.as_f64(), Some(csv_num), "{column} of {obj:?}");
                    continue;
                }
                Some(other) => panic!("{column} is {other:?}"),
            };
            assert_eq!(&cell_json, cell, "{column} of {obj:?}");
        }
        if let Some(c) = obj.get("confidence") {
            assert!(c.is_number(), "confidence is a number: {obj:?}");
        }
    }
}

#[test]
fn scaled_and_demo_configs() {
    let demo = GenConfig::demo();
    assert_eq!(
        (
            demo.seed,
            demo.companies,
            demo.contacts,
            demo.deals,
            demo.activities,
            demo.proposals
        ),
        (7, 200, 1000, 150, 2000, 400)
    );
    let s = GenConfig::scaled(1_000_000, 1_000_000);
    assert_eq!(
        (s.companies, s.contacts, s.deals, s.activities),
        (200_000, 1_000_000, 142_857, 1_000_000)
    );
    let tiny = GenConfig::scaled(3, 20);
    assert_eq!(tiny.companies, 1);
    // Tiny datasets still produce valid proposals (no deals, few contacts).
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &tiny).unwrap();
    let (_, proposals) = csv_rows(&dir.path().join("proposals.csv"));
    assert_eq!(proposals.len(), 20);
    assert!(write_proposals(&dir.path().join("x"), &tiny, "xml").is_err());
}
