//! The writer thread: the one owner of the write connection.
//!
//! Callers send jobs over a channel and block on a reply channel of their own. The thread
//! takes every job queued, also those queued while it works, and runs them in ONE
//! transaction (one commit, each page they touch written to the WAL once: what makes many
//! small batches cheap), each inside a savepoint so that a failing job is undone alone, and
//! answers each caller once the transaction committed.
//! It never panics on a SQL error: the caller gets the error. It ends when the last sender
//! is dropped, after a final checkpoint.

use super::DbError;
use crossbeam_channel::{Receiver, Sender};
use rusqlite::Connection;
use std::time::{Duration, Instant};

/// Most jobs per transaction, and the time after which no more are added: bound how long
/// the first caller of a batch waits for its commit.
const MAX_BATCH: usize = 256;
const MAX_BATCH_TIME: Duration = Duration::from_millis(250);

/// One unit of work, type-erased so that commands with different results share a queue.
pub(super) trait Job: Send {
    /// Runs inside the batch's transaction; returns whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Sends the result. `batch_error` is set when the batch as a whole failed (the job's
    /// work was then rolled back even if it had succeeded).
    fn answer(self: Box<Self>, batch_error: Option<&DbError>);
}

/// A job computing `T`, answered on `reply`.
pub(super) struct Request<T, F> {
    work: Option<F>,
    result: Option<Result<T, DbError>>,
    reply: Sender<Result<T, DbError>>,
}

impl<T, F> Request<T, F> {
    pub(super) fn new(work: F, reply: Sender<Result<T, DbError>>) -> Self {
        Self {
            work: Some(work),
            result: None,
            reply,
        }
    }
}

impl<T, F> Job for Request<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, DbError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, batch_error: Option<&DbError>) {
        let result = match (self.result, batch_error) {
            (Some(Err(e)), _) => Err(e),
            (_, Some(e)) => Err(e.duplicate()),
            (Some(ok), None) => ok,
            (None, None) => Err(DbError::WriterGone),
        };
        // The caller may have given up waiting; nothing to do then.
        let _ = self.reply.send(result);
    }
}

pub(super) enum Command {
    Write(Box<dyn Job>),
    /// `PRAGMA wal_checkpoint(TRUNCATE)`, which cannot run inside a transaction.
    Checkpoint(Sender<Result<(), DbError>>),
}

/// The thread's body: runs until every sender is gone.
pub(super) fn run(conn: Connection, commands: Receiver<Command>) {
    let mut next: Option<Command> = None;
    loop {
        let command = match next.take() {
            Some(command) => command,
            None => match commands.recv() {
                Ok(command) => command,
                Err(_) => break,
            },
        };
        match command {
            Command::Checkpoint(reply) => {
                let _ = reply.send(checkpoint(&conn));
            }
            Command::Write(job) => next = run_transaction(&conn, job, &commands),
        }
    }
    // Clean shutdown: leave a small WAL and fresh planner statistics behind.
    if let Err(e) = conn.execute_batch("PRAGMA optimize") {
        tracing::debug!(error = %e, "PRAGMA optimize at close failed");
    }
    if let Err(e) = checkpoint(&conn) {
        tracing::warn!(error = %e, "checkpoint of the index database at close failed");
    }
}

/// Runs `first`, then every write that is queued by the time the previous one finished,
/// in one transaction (up to `MAX_BATCH` jobs or `MAX_BATCH_TIME`), then answers them all.
/// A caller that keeps batches in flight thus gets them committed together, and a lone
/// write is committed at once. Returns a command taken from the queue that has to wait
/// for the commit (a checkpoint).
fn run_transaction(
    conn: &Connection,
    first: Box<dyn Job>,
    commands: &Receiver<Command>,
) -> Option<Command> {
    let mut jobs = vec![first];
    let mut deferred = None;
    let outcome = run_jobs(conn, &mut jobs, commands, &mut deferred);
    if let Err(e) = &outcome {
        tracing::warn!(error = %e, jobs = jobs.len(), "index database batch failed");
        if !conn.is_autocommit() {
            // Errors here add nothing to the one being reported.
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    for job in jobs {
        job.answer(outcome.as_ref().err());
    }
    deferred
}

fn run_jobs(
    conn: &Connection,
    jobs: &mut Vec<Box<dyn Job>>,
    commands: &Receiver<Command>,
    deferred: &mut Option<Command>,
) -> Result<(), DbError> {
    let started = Instant::now();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let mut done = 0;
    while done < jobs.len() {
        conn.execute_batch("SAVEPOINT job")?;
        if jobs[done].run(conn) {
            conn.execute_batch("RELEASE job")?;
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
        }
        done += 1;
        if done == jobs.len() && jobs.len() < MAX_BATCH && started.elapsed() < MAX_BATCH_TIME {
            match commands.try_recv() {
                Ok(Command::Write(job)) => jobs.push(job),
                Ok(other) => *deferred = Some(other),
                Err(_) => {}
            }
        }
    }
    conn.execute_batch("COMMIT")?;
    Ok(())
}

fn checkpoint(conn: &Connection) -> Result<(), DbError> {
    let (busy, log, done): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if busy != 0 {
        // A reader still uses older WAL frames; they are copied at a later checkpoint.
        tracing::debug!(log, done, "index database checkpoint could not finish");
    }
    Ok(())
}
