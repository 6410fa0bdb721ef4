//! What an import asks of the store beyond an upsert: whether a table holds records yet, and a
//! record inserted from the columns a file gave.

use super::Writer;
use super::db_err;
use crate::error::Result;
use crate::model::Value;
use crate::schema::Object;

impl Writer<'_> {
    /// Whether `obj`'s table holds any record.
    pub fn has_records(&self, obj: &Object) -> Result<bool> {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", super::ident(&obj.name));
        self.tx
            .query_row(&sql, [], |r| r.get::<_, bool>(0))
            .map_err(db_err)
    }

    /// Inserts a record of the given columns (`cols` index `obj.columns`); the others take
    /// their defaults.
    pub fn insert_given(&self, obj: &Object, cols: &[usize], values: &[Value]) -> Result<()> {
        self.insert_columns(obj, cols, values)
    }
}
