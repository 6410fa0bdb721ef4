//! The second stage of a propose run: every row that passed its own checks goes to the staging
//! table, in file order, while the file is still being read. Reading and checking (CSV or JSON
//! parsing, validation, hashing) run on a second core, and this thread only stages: neither
//! waits for the other.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

use super::check::{COLUMNS, Checked};
use super::proposals::{FileReport, FileRun, Run};
use super::{FileSummary, Input, read_rows};
use crate::error::{Error, Problem, Result};
use crate::schema::Schema;

/// Rows are handed from the reading thread to the staging one this many at a time.
const CHECK_BATCH: usize = 1024;

/// Checked rows in flight between the threads, in batches: what bounds the memory of staging.
const BATCHES_IN_FLIGHT: usize = 4;

impl Run<'_, '_> {
    /// Reads `input` to the end, staging each row that passes its checks and rejecting the
    /// others. A file that cannot be read to the end (a bad header, a broken JSON array) is
    /// never partly ingested: it ends the run, or with `skip_invalid` it is set aside whole.
    pub(super) fn stage_file(&mut self, input: &Input) -> Result<()> {
        let name = input.display_name();
        let ingest_id = self
            .w
            .begin_ingest(&self.req.actor, &name, input.format.as_str())?;
        self.files.push(FileRun {
            ingest_id,
            report: FileReport {
                file: name,
                format: input.format.as_str(),
                ..FileReport::default()
            },
        });
        let file = self.files.len() - 1;
        let mark = self.rejects_mark()?;
        let bytes = Arc::new(AtomicU64::new(0));
        let schema = self.w.schema().clone();
        let req = self.req;
        let source = req.source.as_deref();
        let summary = std::thread::scope(|scope| -> Result<FileSummary> {
            let (tx, rx) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT);
            let read = bytes.clone();
            let reader = scope.spawn(move || read_checked(input, &schema, source, read, tx));
            let staged = self.stage_checked(file, input, &bytes, rx);
            let summary = reader.join().expect("the reading thread does not panic");
            // This side's own error explains a stop on the reading side.
            staged.and(summary)
        })?;
        (req.progress)(input, summary.bytes);
        self.files[file].report.sha256 = summary.sha256;
        match summary.fatal {
            Some(fatal) if self.req.skip_invalid => self.set_aside(file, fatal, mark),
            Some(fatal) => Err(self.error(Some(fatal))),
            None => Ok(()),
        }
    }

    /// Sets aside file `file`, which could not be read to its end: its staged rows are
    /// dropped, the rows it rejected are forgotten (the rejects file goes back to `mark`), and
    /// the rejects file names it once, with the line where reading failed and why.
    fn set_aside(&mut self, file: usize, fatal: Problem, mark: u64) -> Result<()> {
        let ingest_id = self.files[file].ingest_id;
        self.staged -= self.w.unstage_ingest(ingest_id)?;
        self.forget_rejects(file, mark)?;
        self.files[file].report.set_aside = Some(format!("line {}: {}", fatal.line, fatal.message));
        let message = format!("the whole file was set aside: {}", fatal.message);
        self.reject(file, fatal.line, message, None)
    }

    /// Stages the good rows of each batch that comes in and rejects the bad ones.
    fn stage_checked(
        &mut self,
        file: usize,
        input: &Input,
        bytes: &AtomicU64,
        batches: Receiver<Vec<Checked>>,
    ) -> Result<()> {
        let ingest_id = self.files[file].ingest_id;
        for batch in batches {
            for checked in batch {
                let rows = &mut self.files[file].report.rows;
                *rows += 1;
                if rows.is_multiple_of(8192) {
                    (self.req.progress)(input, bytes.load(Ordering::Relaxed));
                }
                match checked {
                    Checked::Good(p) => {
                        self.w.stage(&p, ingest_id)?;
                        self.staged += 1;
                    }
                    Checked::Bad {
                        line,
                        message,
                        cells,
                    } => self.reject(file, line, message, cells)?,
                }
            }
        }
        Ok(())
    }
}

/// The reading thread: reads and checks every row of `input`, sending them on in batches.
/// Stops early when the staging side hangs up (it stopped on an error of its own).
fn read_checked(
    input: &Input,
    schema: &Schema,
    source: Option<&str>,
    bytes: Arc<AtomicU64>,
    tx: SyncSender<Vec<Checked>>,
) -> Result<FileSummary> {
    let required: &[&str] = if source.is_some() {
        &["kind", "object", "record"]
    } else {
        &["source", "kind", "object", "record"]
    };
    let mut batch = Vec::with_capacity(CHECK_BATCH);
    let summary = read_rows(input, &COLUMNS, required, bytes, &mut |item| {
        batch.push(Checked::of(schema, item, source));
        if batch.len() == CHECK_BATCH && tx.send(std::mem::take(&mut batch)).is_err() {
            return Err(Error::Store("ingest stopped".into()));
        }
        Ok(())
    });
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    summary
}
