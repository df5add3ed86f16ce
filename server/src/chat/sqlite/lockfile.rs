//! The advisory lock that makes a store the only one on its database file.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::super::store::StoreError;

/// The lock file beside a database: `<db>.lock` (of the file a symlink `db` names, when it is
/// one).
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the advisory lock that makes a store the only one on its database: an exclusive
/// `flock` on a separate file, `<db>.lock` (created if needed, never removed: removing it
/// would let a third store lock a new file while the second still holds the old one). The OS
/// releases it when the holder's file is closed or its process dies, so a crash never leaves
/// a stale lock. Not SQLite's own locks: `locking_mode = EXCLUSIVE` would shut out the
/// store's read connection, and a second handle on the database file, once closed, would drop
/// the process's POSIX locks on it. The holder writes its pid into the file, for the error
/// the next one reports (and for humans).
pub(super) fn lock_database(db: &Path) -> Result<File, StoreError> {
    // Beside the file itself when `db` is a symlink (SQLite, too, follows it): two paths to
    // one database meet on one lock file. A database not created yet has nothing to follow.
    let lock = lock_path(&std::fs::canonicalize(db).unwrap_or_else(|_| db.to_owned()));
    let cannot =
        |e: std::io::Error| StoreError::Backend(format!("cannot lock {}: {e}", lock.display()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(cannot)?;
    // `File::try_lock` (a `flock`) is why the workspace needs Rust 1.89.
    let locked = file.try_lock();
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let holder = match pid.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}; "),
                Err(_) => String::new(),
            };
            return Err(StoreError::InUse {
                db: db.display().to_string(),
                lock: lock.display().to_string(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(cannot(e)),
    }
    // Only a courtesy: a failure to record the pid does not stop the store.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(file)
}
