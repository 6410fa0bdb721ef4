//! The records a proposal's target references by a foreign key (a contact's company), for the
//! policy's `related` conditions: only in the tables the policy names, so a policy without them
//! costs no lookup. Which parents and which of their columns a policy reads is decided here,
//! from the policy and the schema alone; the caller reads them (apply and the replay look each
//! parent up, propose reads them in the statement that reads the target).

use crate::error::Result;
use crate::model::{Related, Value};
use crate::policy::Policy;
use crate::schema::{Object, Schema};

/// A parent the policy's related conditions read: through `obj`'s foreign-key column `fk`, the
/// columns `cols` of `parent`, found by its primary key (what the CRM's keys reference).
pub struct ParentRead<'s> {
    pub fk: usize,
    pub parent: &'s Object,
    pub cols: Vec<usize>,
}

/// The parents of `obj` that `policy`'s related conditions read, in column order.
pub fn parent_reads<'s>(policy: &Policy, schema: &'s Schema, obj: &Object) -> Vec<ParentRead<'s>> {
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
        out.push(ParentRead {
            fk: i,
            parent,
            cols,
        });
    }
    out
}

/// The related record of a parent read, from the parent's whole row: the columns the
/// conditions read, by name.
fn of_parent(read: &ParentRead<'_>, row: &[Value]) -> Related {
    Related {
        object: read.parent.name.clone(),
        fields: read
            .cols
            .iter()
            .map(|&c| (read.parent.columns[c].name.clone(), row[c].clone()))
            .collect(),
    }
}

/// The records that `rows` (records of `obj`: the target, and for a merge the survivor too)
/// reference in the tables `policy` reads, each found by `lookup(parent, key)` (its whole row,
/// or `None`). A row may hold only some columns read; the foreign keys the policy needs must be
/// among them.
pub fn related(
    policy: &Policy,
    schema: &Schema,
    obj: &Object,
    rows: &[&[Value]],
    mut lookup: impl FnMut(&Object, &str) -> Result<Option<Vec<Value>>>,
) -> Result<Vec<Related>> {
    let mut out = Vec::new();
    for read in parent_reads(policy, schema, obj) {
        for row in rows {
            let Some(v) = row.get(read.fk).filter(|v| !v.is_empty()) else {
                continue;
            };
            if let Some(prow) = lookup(read.parent, &v.display())? {
                out.push(of_parent(&read, &prow));
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
