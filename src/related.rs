//! The records a proposal's target references by a foreign key (a contact's company), read for
//! the policy's `related` conditions: only in the tables the policy names, so a policy without
//! them costs no lookup. Apply and the replay look each parent up; propose reads it in the same
//! statement as the target ([`parent_reads`], [`from_plan`]), once per proposal of a million.

use crate::error::Result;
use crate::model::{Related, Value};
use crate::policy::Policy;
use crate::schema::Object;
use crate::schema::Schema;
use crate::store::{ColumnPlan, PlanRow, ReadRecords};

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

/// The parents of `obj` that `policy`'s related conditions read, for
/// [`ColumnPlan::with_parents`]: each as (the foreign-key column, the parent, the parent's
/// columns the conditions read). The same parents, by the same rule, as [`related`] finds.
pub fn parent_reads<'s>(
    policy: &Policy,
    schema: &'s Schema,
    obj: &Object,
) -> Vec<(usize, &'s Object, Vec<usize>)> {
    let mut out = Vec::new();
    for (i, c) in obj.columns.iter().enumerate() {
        let Some(fk) = &c.foreign_key else { continue };
        if !policy.reads_related(&fk.table) {
            continue;
        }
        let Some(parent) = schema.object(&fk.table) else {
            continue;
        };
        if parent.columns.get(parent.pk).map(|p| &p.name) != Some(&fk.column) {
            continue;
        }
        let cols = (0..parent.columns.len())
            .filter(|&j| policy.reads_related_field(&parent.name, &parent.columns[j].name))
            .collect();
        out.push((i, parent, cols));
    }
    out
}

/// The related records of a record read by `plan` (built with [`parent_reads`]).
pub fn from_plan(plan: &ColumnPlan, row: &PlanRow) -> Vec<Related> {
    plan.parents
        .iter()
        .zip(&row.parents)
        .filter(|(p, _)| !row.values[p.fk].is_empty())
        .filter_map(|(p, found)| {
            let values = found.as_ref()?;
            Some(Related {
                object: p.object.clone(),
                fields: p
                    .names
                    .iter()
                    .cloned()
                    .zip(values.iter().cloned())
                    .collect(),
            })
        })
        .collect()
}

/// Whether column `c` of `obj` must be read for the policy's related conditions.
pub fn wanted(policy: &Policy, obj: &Object, c: usize) -> bool {
    obj.columns[c]
        .foreign_key
        .as_ref()
        .is_some_and(|fk| policy.reads_related(&fk.table))
}
