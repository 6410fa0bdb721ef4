//! Setting a store up: `init` creates the default CRM tables and crmgate's own, and installs
//! the default policy; the demo builds its own store from the bundled data, and only ever
//! rebuilds a store it built. The first run on a store leaves an event; later runs change
//! nothing, so `init` is idempotent.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fixtures;
use crate::ingest::Input;
use crate::ingest::proposals::{self, Report, Request};
use crate::model::NewEvent;
use crate::store::{OpenMode, Store};

/// What a store is set up for: plain use, or the demo (its data and its policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Plain,
    Demo,
}

/// A store that [`init`] opened, and the tables it created (none when it was set up already).
pub struct Initialized {
    pub store: Store,
    pub created: Vec<&'static str>,
}

/// Opens (creating when missing) the store at `path` and creates the default tables; a store
/// without a policy gets the bundled one for `purpose`.
pub fn init(path: &Path, purpose: Purpose, actor: &str, now: &str) -> Result<Initialized> {
    let mut store = Store::open(path, OpenMode::Create)?;
    let created = store.create_default_tables()?;
    // Only the run that creates the store leaves an event; a store created by the demo starts
    // with a `demo` event, which is how the demo recognises its own.
    if !created.is_empty() {
        store.write(now, |w| {
            w.append_event(NewEvent {
                actor: actor.to_string(),
                actor_kind: "human",
                action: match purpose {
                    Purpose::Plain => "init",
                    Purpose::Demo => "demo",
                },
                detail: serde_json::json!({ "created_tables": created }),
                ..NewEvent::default()
            })
            .map(|_| ())
        })?;
    }
    if store.current_policy()?.is_none() {
        let p = match purpose {
            Purpose::Plain => &fixtures::DEFAULT_POLICY,
            Purpose::Demo => &fixtures::DEMO_POLICY,
        };
        let text = std::str::from_utf8(p.data).expect("the bundled policies are UTF-8");
        let text = match purpose {
            Purpose::Plain => text.to_string(),
            Purpose::Demo => with_admin(text, crate::actor::os_user()),
        };
        store.write(now, |w| {
            super::policy::install(w, p.name, &text, actor).map(|_| ())
        })?;
    }
    Ok(Initialized { store, created })
}

/// The demo policy with `os_user`, who set the demo up, named an admin in its `[roles]`: the
/// demo and the README act as alice, bob and mia with `--as`, which takes the OS user holding
/// `admin`. A user the policy names already keeps the roles it gives them.
fn with_admin(policy: &str, os_user: &str) -> String {
    let key = toml::Value::String(os_user.to_string()).to_string();
    let named = policy.lines().any(|l| {
        let k = l.split('=').next().unwrap_or("").trim();
        k == os_user || k == key
    });
    if named {
        return policy.to_string();
    }
    let mut out = String::with_capacity(policy.len() + 80);
    for line in policy.split_inclusive('\n') {
        out.push_str(line);
        if line.trim_start().starts_with("[roles]") {
            out.push_str(&format!(
                "{key} = [\"admin\"]  # the OS user who set the demo up, so it may act as the others\n"
            ));
        }
    }
    out
}

/// Makes room for the demo at `path`: a store the demo built is removed (with its WAL files);
/// anything else there is refused untouched.
pub fn clear_demo_store(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    if !is_demo_store(path) {
        return Err(Error::refused_with_hint(
            format!(
                "{} exists and is not a demo store; the demo will not touch it",
                path.display()
            ),
            "pass --db with a new path, e.g. `crmgate demo --db /tmp/crmgate-demo.db`",
        ));
    }
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// Whether an existing file is a store the demo built (and may rebuild).
fn is_demo_store(path: &Path) -> bool {
    let Ok(store) = Store::open(path, OpenMode::Existing) else {
        return false;
    };
    store.first_event_action().ok().flatten().as_deref() == Some("demo")
}

/// One bundled CRM table as imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub object: &'static str,
    pub file: &'static str,
    /// Records in the file: inserted, updated or already there.
    pub records: u64,
}

/// Imports the bundled CRM tables, each in its own transaction.
pub fn import_crm(store: &mut Store, actor: &str, now: &str) -> Result<Vec<Loaded>> {
    let mut loaded = Vec::new();
    for (object, f) in &fixtures::CRM {
        let input = Input::embedded(f.name, f.data)?;
        let r = crate::records::import_file(store, object, &input, actor, now)?;
        loaded.push(Loaded {
            object,
            file: f.name,
            records: r.created + r.updated + r.unchanged,
        });
    }
    Ok(loaded)
}

/// The bundled proposal files, as inputs.
pub fn proposal_inputs() -> Result<Vec<Input>> {
    fixtures::PROPOSALS
        .iter()
        .map(|f| Input::embedded(f.name, f.data))
        .collect()
}

/// The bundled file with one bad row, as an input.
pub fn bad_input() -> Result<Input> {
    Input::embedded(fixtures::BAD.name, fixtures::BAD.data)
}

/// Ingests `inputs` under the policy in force, in one transaction: all rows or none.
pub fn ingest(store: &mut Store, inputs: &[Input], actor: &str, now: &str) -> Result<Report> {
    let (policy_version, policy) = super::policy::load(store)?;
    proposals::propose(
        store,
        &Request {
            inputs,
            source: None,
            skip_invalid: false,
            rejects: None,
            actor: actor.to_string(),
            now: now.to_string(),
            policy: &policy,
            policy_version,
            bulk_min_rows: proposals::BULK_MIN_ROWS,
            progress: &|_, _| {},
        },
    )
}

/// Loads the demo into a store: the bundled CRM records, then the bundled proposals.
pub fn load_demo(store: &mut Store, actor: &str, now: &str) -> Result<Report> {
    import_crm(store, actor, now)?;
    ingest(store, &proposal_inputs()?, actor, now)
}
