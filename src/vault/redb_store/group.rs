//! Group commit: one writer thread applies the writes that arrive while it is busy in one redb
//! transaction and one fsync'd commit, and answers each caller only after that commit.
//!
//! A write is a closure over the transaction. When one fails (a corrupt row, a panic), the
//! transaction is dropped (rolled back), that caller gets its error, and the others are applied
//! again in a fresh transaction: redb cannot create a savepoint once a transaction has written,
//! so replaying is the way to keep one bad write from poisoning its batch. A failed commit fails
//! every write in the batch.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::WriteTransaction;

use super::{begin_write, Core};
use crate::vault::VaultError;

/// Most writes per transaction: bounds a batch's latency and the size of a replay.
const MAX_BATCH: usize = 256;

/// One caller's write, erased to a common type for the queue.
trait Job: Send {
    /// Applies the write inside `txn`. Called again, in a fresh transaction, when another
    /// write of the batch failed, so it must not consume its input.
    fn apply(&mut self, core: &Core, txn: &WriteTransaction) -> Result<(), VaultError>;
    /// Answers the caller once the batch is committed (`Ok`) or has failed.
    fn finish(self: Box<Self>, outcome: Result<(), VaultError>);
}

struct Typed<R, F> {
    op: F,
    out: Option<R>,
    reply: SyncSender<Result<R, VaultError>>,
}

impl<R, F> Job for Typed<R, F>
where
    R: Send,
    F: FnMut(&Core, &WriteTransaction) -> Result<R, VaultError> + Send,
{
    fn apply(&mut self, core: &Core, txn: &WriteTransaction) -> Result<(), VaultError> {
        let op = &mut self.op;
        let result = catch_unwind(AssertUnwindSafe(|| op(core, txn)))
            .unwrap_or_else(|_| Err(VaultError::Storage("a write panicked".into())));
        self.out = Some(result?);
        Ok(())
    }

    fn finish(self: Box<Self>, outcome: Result<(), VaultError>) {
        let Typed { out, reply, .. } = *self;
        let result = outcome.and_then(|()| {
            out.ok_or_else(|| VaultError::Storage("a write produced no result".into()))
        });
        // The caller may have gone away; nothing to tell then.
        let _ = reply.send(result);
    }
}

/// The handle held by the store: a queue into the writer thread. Dropping it lets the queue
/// drain, then waits for the thread, so the database is closed cleanly before the store is gone.
pub(super) struct GroupCommit {
    queue: Option<Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    pub(super) fn start(core: Arc<Core>) -> Result<Self, VaultError> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("redb-writer".into())
            .spawn(move || run(&core, &jobs))
            .map_err(VaultError::storage)?;
        Ok(GroupCommit {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Applies `op` in the next group transaction and returns its result once that transaction
    /// is durably committed. Blocks the calling thread (callers run on the blocking pool).
    pub(super) fn write<R, F>(&self, op: F) -> Result<R, VaultError>
    where
        R: Send + 'static,
        F: FnMut(&Core, &WriteTransaction) -> Result<R, VaultError> + Send + 'static,
    {
        let (job, answer) = job(op);
        let stopped = || VaultError::Storage("the database writer has stopped".into());
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

fn job<R, F>(op: F) -> (Box<dyn Job>, Receiver<Result<R, VaultError>>)
where
    R: Send + 'static,
    F: FnMut(&Core, &WriteTransaction) -> Result<R, VaultError> + Send + 'static,
{
    let (reply, answer) = mpsc::sync_channel(1);
    let job = Box::new(Typed {
        op,
        out: None,
        reply,
    });
    (job, answer)
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(core: &Core, jobs: &Receiver<Box<dyn Job>>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(core, batch);
    }
}

fn commit_batch(core: &Core, mut batch: Vec<Box<dyn Job>>) {
    while !batch.is_empty() {
        let txn = match begin_write(&core.db) {
            Ok(txn) => txn,
            Err(e) => {
                core.writes_failing.store(true, Ordering::SeqCst);
                return fail_all(core, batch, &e);
            }
        };
        let failed = batch
            .iter_mut()
            .enumerate()
            .find_map(|(i, job)| job.apply(core, &txn).err().map(|e| (i, e)));
        if let Some((i, error)) = failed {
            drop(txn); // rolls back what the batch wrote so far
            batch.remove(i).finish(Err(error));
            continue;
        }
        let committed = txn.commit();
        core.writes_failing
            .store(committed.is_err(), Ordering::SeqCst);
        // Before any caller hears of the commit, so none can then read a cached old value.
        core.cache.invalidate_touched();
        match committed {
            Ok(()) => batch.into_iter().for_each(|job| job.finish(Ok(()))),
            Err(e) => fail_all(core, batch, &VaultError::storage(e)),
        }
        return;
    }
}

fn fail_all(core: &Core, batch: Vec<Box<dyn Job>>, error: &VaultError) {
    core.cache.invalidate_touched(); // a failed commit may still have reached the disk
    let message = match error {
        VaultError::Storage(m) => m.clone(),
        other => other.to_string(),
    };
    for job in batch {
        job.finish(Err(VaultError::Storage(message.clone())));
    }
}

#[cfg(test)]
mod tests {
    use redb::TableDefinition;

    use super::*;
    use crate::vault::RedbStore;

    const T: TableDefinition<&str, u64> = TableDefinition::new("group_commit_test");

    fn put(
        key: &'static str,
        fail: bool,
    ) -> (Box<dyn Job>, Receiver<Result<&'static str, VaultError>>) {
        job(move |_: &Core, txn: &WriteTransaction| {
            txn.open_table(T).unwrap().insert(key, 1).unwrap();
            if fail {
                return Err(VaultError::Corrupt("bad row".into()));
            }
            Ok(key)
        })
    }

    #[test]
    fn one_batch_one_commit_and_a_failing_write_is_rolled_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) =
            RedbStore::open(&dir.path().join("db.redb"), &dir.path().join("id.txt")).unwrap();
        let (a, a_answer) = put("a", false);
        let (b, b_answer) = put("b", true);
        let (p, p_answer) = job(|_: &Core, _: &WriteTransaction| -> Result<(), VaultError> {
            panic!("a bug in one write")
        });
        let (c, c_answer) = put("c", false);
        commit_batch(&store.core, vec![a, b, p, c]);
        assert_eq!(a_answer.recv().unwrap().unwrap(), "a");
        assert!(matches!(
            b_answer.recv().unwrap(),
            Err(VaultError::Corrupt(_))
        ));
        assert!(p_answer.recv().unwrap().is_err());
        assert_eq!(c_answer.recv().unwrap().unwrap(), "c");
        let txn = store.core.db.begin_read().unwrap();
        let table = txn.open_table(T).unwrap();
        assert!(table.get("a").unwrap().is_some());
        assert!(
            table.get("b").unwrap().is_none(),
            "the failed write was rolled back"
        );
        assert!(table.get("c").unwrap().is_some());
    }
}
