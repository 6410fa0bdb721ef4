#![no_main]
//! Any text as a policy: parsed, or refused with problems whose lines are in the text.

use std::sync::OnceLock;

use crmgate::schema::Schema;
use crmgate::store::{OpenMode, Store};
use libfuzzer_sys::fuzz_target;

/// The schema of a store made by `crmgate init`, built once per process.
fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(&dir.path().join("crm.db"), OpenMode::Create).expect("store");
        store.create_default_tables().expect("tables");
        let schema = store.schema().clone();
        drop(store);
        schema
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(problems) = crmgate::policy::parse(text, schema()) {
        let last_line = text.matches('\n').count() + 1;
        assert!(!problems.is_empty());
        for p in problems {
            assert!(
                (1..=last_line).contains(&p.line),
                "line {} of {last_line}",
                p.line
            );
            assert!(!p.message.is_empty());
        }
    }
});
