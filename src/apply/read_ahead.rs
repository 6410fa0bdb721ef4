//! Reading a chunk's rows on a second core, a little ahead of the writer that uses them.
//!
//! Apply reads each proposal and the record it targets before it writes, and revert each change
//! before it undoes it: a fifth of an apply's time, a tenth of a revert's. A [`ReadAhead`] does
//! those reads on a [`Snapshot`] in another thread. The reader begins its read once the writer
//! holds the write lock, so it sees the store as the chunk's transaction found it, and nobody
//! else can commit until that transaction ends. Applying one proposal changes no other
//! proposal, and undoing one change no other change (a trigger could, so with triggers other
//! than crmgate's own nothing is read ahead): each reads as the writer would find it when its
//! turn comes. Records are another matter: the chunk writes them, so apply uses a record read
//! ahead only if the chunk has not written it yet (see [`Written`]). The reader ends its read
//! before it hands over the last batch, so it never holds back the checkpoint of the chunk's
//! commit. Whatever goes wrong on the reader's side, the writer reads the rest itself.

use std::sync::mpsc;

use crate::error::Result;
use crate::store::{Snapshot, Writer};

/// How many rows the reader sends at a time, and how many such batches may wait: memory stays
/// at a few batches however long the chunk.
const BATCH: usize = 512;
const BATCHES_WAITING: usize = 2;

type Batches<T> = mpsc::Receiver<Result<Vec<T>>>;

/// A chunk's ids, and where to send its rows.
type Request<T> = (Vec<i64>, mpsc::SyncSender<Result<Vec<T>>>);

pub struct ReadAhead<T> {
    read: fn(&Snapshot, i64) -> Result<T>,
    reader: Option<Reader<T>>,
}

struct Reader<T> {
    requests: mpsc::Sender<Request<T>>,
    thread: std::thread::JoinHandle<()>,
}

impl<T: Send + 'static> ReadAhead<T> {
    /// Reads each id with `read`.
    pub fn new(read: fn(&Snapshot, i64) -> Result<T>) -> ReadAhead<T> {
        ReadAhead { read, reader: None }
    }

    /// Starts reading `ids`, the rows of the chunk `w` is about to write, in order.
    pub fn start(&mut self, w: &Writer<'_>, ids: &[i64]) -> Result<Ahead<T>> {
        // Asked in every chunk's transaction: someone may add a trigger between two.
        if ids.len() <= BATCH || w.other_triggers()? {
            return Ok(Ahead::none());
        }
        if self.reader.is_none() {
            self.reader = Some(Reader::spawn(w.snapshot()?, self.read));
        }
        let reader = self.reader.as_ref().expect("started above");
        let (batches, receive) = mpsc::sync_channel(BATCHES_WAITING);
        Ok(match reader.requests.send((ids.to_vec(), batches)) {
            Ok(()) => Ahead {
                batches: Some(receive),
                batch: Vec::new().into_iter(),
            },
            Err(_) => Ahead::none(),
        })
    }
}

impl<T: Send + 'static> Reader<T> {
    fn spawn(mut snapshot: Snapshot, read: fn(&Snapshot, i64) -> Result<T>) -> Reader<T> {
        let (requests, asked) = mpsc::channel::<Request<T>>();
        let thread = std::thread::spawn(move || {
            for (ids, batches) in asked {
                let mut read_all = || -> Result<()> {
                    snapshot.renew()?;
                    let mut left = ids.chunks(BATCH).peekable();
                    while let Some(batch) = left.next() {
                        let rows = batch
                            .iter()
                            .map(|&id| read(&snapshot, id))
                            .collect::<Result<Vec<_>>>()?;
                        if left.peek().is_none() {
                            snapshot.release()?;
                        }
                        if batches.send(Ok(rows)).is_err() {
                            break; // the writer stopped
                        }
                    }
                    Ok(())
                };
                if let Err(e) = read_all() {
                    let _ = batches.send(Err(e));
                }
                let _ = snapshot.release();
            }
        });
        Reader { requests, thread }
    }
}

impl<T> Drop for ReadAhead<T> {
    fn drop(&mut self) {
        if let Some(Reader { requests, thread }) = self.reader.take() {
            drop(requests);
            let _ = thread.join();
        }
    }
}

/// A chunk's rows, in order: from the reader while it delivers them, else read by the writer.
pub struct Ahead<T> {
    batches: Option<Batches<T>>,
    batch: std::vec::IntoIter<T>,
}

impl<T> Ahead<T> {
    /// Nothing read ahead: the writer reads every row itself.
    pub fn none() -> Ahead<T> {
        Ahead {
            batches: None,
            batch: Vec::new().into_iter(),
        }
    }

    /// The next row: the reader's, or `read_here`'s once the reader has none.
    pub fn next(&mut self, read_here: impl FnOnce() -> Result<T>) -> Result<T> {
        if let Some(row) = self.batch.next() {
            return Ok(row);
        }
        if let Some(batches) = &self.batches {
            if let Ok(Ok(batch)) = batches.recv() {
                self.batch = batch.into_iter();
                if let Some(row) = self.batch.next() {
                    return Ok(row);
                }
            }
            self.batches = None;
        }
        read_here()
    }
}

/// The records a chunk has written, for the rule on records read ahead: one is used only while
/// the chunk has not written it. A write that may reach records it does not name (a merge's
/// deletion and re-pointed rows, a whole record deleted under a foreign key's ON DELETE) ends the
/// use of any record read ahead for the rest of the chunk.
#[derive(Default)]
pub struct Written {
    /// A hash of (object, record) per record written: two records that share one cost only a
    /// read more.
    keys: std::collections::HashSet<u64>,
    beyond: bool,
}

impl Written {
    /// `ahead` (what was read ahead of this record) if it still holds, and the record counted
    /// as written from now on: call it before the write.
    pub fn take<T>(&mut self, object: &str, record: &str, ahead: Option<T>) -> Option<T> {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        (object, record).hash(&mut h);
        let fresh = self.keys.insert(h.finish()) && !self.beyond;
        ahead.filter(|_| fresh)
    }

    /// A write reached, or may have reached, records it did not name.
    pub fn beyond(&mut self) {
        self.beyond = true;
    }
}
