//! Checkpoints off the writer's thread. A checkpoint copies the WAL's pages into the database
//! file and syncs it; run by the writer after a commit (SQLite's automatic checkpoint), it held
//! every append back meanwhile: about 20 ms of the window-1 ack tail in `durable_bench`
//! (BENCHMARKS.md). Here the writer's connection does not checkpoint by itself: its WAL hook,
//! called after each commit with the WAL's size in pages, wakes the checkpointer thread once
//! the WAL holds [`START_PAGES`], and that thread checkpoints on a connection of its own
//! (`PASSIVE`: it neither waits for the writer or the readers nor holds them up). The next
//! write transaction after a checkpoint that copied every frame starts the WAL over.
//!
//! A writer that never pauses can keep a concurrent checkpoint from ever copying every frame
//! (it appends while the checkpoint copies), and the WAL would grow without end: past
//! [`FORCE_PAGES`] the writer checkpoints in its hook itself, as SQLite's own automatic
//! checkpoint would, which completes (nothing appends meanwhile) unless a reader holds an old
//! snapshot. The hook never reports an error: the commit it follows has happened, and an error
//! there would make the commit look failed.

use std::os::raw::c_int;
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use tracing::{debug, warn};

use super::super::store::StoreError;
use super::{backend, schema};

/// WAL pages after which the checkpointer is woken ([`schema::WAL_CHECKPOINT_PAGES`]).
const START_PAGES: c_int = schema::WAL_CHECKPOINT_PAGES;

/// WAL pages after which the writer checkpoints itself.
const FORCE_PAGES: c_int = 4 * START_PAGES;

/// What the checkpointer thread is told.
enum Wake {
    Checkpoint,
    Stop,
}

/// The checkpointer thread; told to stop and waited for on drop (whatever became of the
/// writer's connection, whose hook holds the other sender).
pub(super) struct Checkpointer {
    wake: SyncSender<Wake>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread (with a connection of its own to `path`) and sets `writer`'s WAL hook.
    pub(super) fn start(path: &Path, writer: &mut Connection) -> Result<Checkpointer, StoreError> {
        Checkpointer::start_at(path, writer, START_PAGES, FORCE_PAGES)
    }

    /// [`Checkpointer::start`] with the thresholds given.
    fn start_at(
        path: &Path,
        writer: &mut Connection,
        start: c_int,
        force: c_int,
    ) -> Result<Checkpointer, StoreError> {
        let conn = schema::open(path)?;
        let (wake, woken) = sync_channel::<Wake>(1);
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                for wake in woken {
                    match wake {
                        Wake::Checkpoint => checkpoint(&conn),
                        Wake::Stop => break,
                    }
                }
            })
            .map_err(backend)?;
        let hook_wake = wake.clone();
        // Off first: the pragma sets a hook of SQLite's own, replacing any other.
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(backend)?;
        writer
            .wal_hook(Some(move |wal: &mut Wal, pages: c_int| {
                after_commit(wal, pages, start, force, &hook_wake);
                Ok(())
            }))
            .map_err(backend)?;
        Ok(Checkpointer {
            wake,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Waits, if a wake is pending, for the checkpoint under way to take it.
        let _ = self.wake.send(Wake::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer's WAL hook: past `start` pages wakes the checkpointer (a wake already pending is
/// enough), past `force` checkpoints here.
fn after_commit(wal: &mut Wal, pages: c_int, start: c_int, force: c_int, wake: &SyncSender<Wake>) {
    if pages >= force {
        match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
            Ok((log, copied)) => debug!(log, copied, "the writer checkpointed the WAL itself"),
            // Busy: the checkpointer is at it; the next commit tries again.
            Err(e) => debug!(error = %e, pages, "the writer's checkpoint did not run"),
        }
    } else if pages >= start {
        let _ = wake.try_send(Wake::Checkpoint);
    }
}

fn checkpoint(conn: &Connection) {
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match done {
        Ok((busy, log, copied)) => debug!(busy, log, copied, "WAL checkpoint"),
        Err(e) => warn!(error = %e, "a WAL checkpoint failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WAL file's size in pages after `batches` transactions of 10 pages' worth of rows each,
    /// with the checkpoints as `start_at` sets them (`None`: SQLite's automatic ones off and
    /// no checkpointer at all).
    fn wal_pages_after(thresholds: Option<(c_int, c_int)>, batches: usize) -> u64 {
        let dir = std::env::temp_dir().join(format!(
            "chat-checkpoint-{}-{:?}",
            std::process::id(),
            thresholds
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let mut writer = schema::open(&path).unwrap();
        writer.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let checkpointer = match thresholds {
            Some((start, force)) => {
                Some(Checkpointer::start_at(&path, &mut writer, start, force).unwrap())
            }
            None => {
                writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
                None
            }
        };
        for _ in 0..batches {
            let tx = writer.transaction().unwrap();
            for _ in 0..10 {
                tx.execute("INSERT INTO t (x) VALUES (zeroblob(4000))", [])
                    .unwrap();
            }
            tx.commit().unwrap();
            // A steady writer, but not one that never pauses.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let wal = std::fs::metadata(dir.join("t.db-wal")).unwrap().len() / 4096;
        drop(writer);
        drop(checkpointer);
        let _ = std::fs::remove_dir_all(&dir);
        wal
    }

    #[test]
    fn the_checkpointer_thread_keeps_the_wal_bounded() {
        // 300 transactions of 10 pages: about 3,000 pages of WAL without checkpoints.
        let unchecked = wal_pages_after(None, 300);
        assert!(unchecked >= 3_000, "{unchecked} pages without checkpoints");
        // The thread, woken at 200 pages (the writer's own checkpoint far away).
        let checked = wal_pages_after(Some((200, 1_000_000)), 300);
        assert!(checked < 1_500, "{checked} pages with the checkpointer");
    }

    #[test]
    fn past_the_force_bound_the_writer_checkpoints_itself() {
        // The thread never woken: only the writer's own checkpoint past 300 pages.
        let checked = wal_pages_after(Some((c_int::MAX, 300)), 300);
        assert!(
            checked < 1_000,
            "{checked} pages with the writer's checkpoints"
        );
    }
}
