//! The records a proposal's target references by a foreign key (a contact's company), read for
//! the policy's `related` conditions: only in the tables the policy names, so a policy without
//! them costs no lookup. Propose, apply and the replay read them the same way.

use crate::error::Result;
use crate::model::{Related, Value};
use crate::policy::Policy;
use crate::schema::Object;
use crate::store::ReadRecords;

/// The records that `rows` (records of `obj`: the target, and for a merge the survivor too)
/// reference in the tables `policy` reads through foreign keys. A row may hold only some
/// columns read; the foreign keys the policy needs must be among them.
pub fn related(
    r: &impl ReadRecords,
    policy: &Policy,
    obj: &Object,
    rows: &[&[Value]],
) -> Result<Vec<Related>> {
    let mut out = Vec::new();
    for (i, c) in obj.columns.iter().enumerate() {
        let Some(fk) = &c.foreign_key else { continue };
        if !policy.reads_related(&fk.table) {
            continue;
        }
        let Some(parent) = r.schema().object(&fk.table) else {
            continue;
        };
        // Parents are found by their primary key, which is what the CRM's keys reference.
        if parent.columns.get(parent.pk).map(|p| &p.name) != Some(&fk.column) {
            continue;
        }
        for row in rows {
            let Some(v) = row.get(i).filter(|v| !v.is_empty()) else {
                continue;
            };
            if let Some(prow) = r.record_row(parent, &v.display())? {
                // Only the fields a condition reads: a propose of a million contacts builds
                // one of these for each.
                let fields = parent
                    .column_names()
                    .zip(prow)
                    .filter(|(name, _)| policy.reads_related_field(&parent.name, name))
                    .map(|(name, v)| (name.to_string(), v))
                    .collect();
                out.push(Related {
                    object: parent.name.clone(),
                    fields,
                });
            }
        }
    }
    Ok(out)
}

/// Whether column `c` of `obj` must be read for the policy's related conditions.
pub fn wanted(policy: &Policy, obj: &Object, c: usize) -> bool {
    obj.columns[c]
        .foreign_key
        .as_ref()
        .is_some_and(|fk| policy.reads_related(&fk.table))
}
