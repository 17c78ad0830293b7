//! The only code of the store that opens a file itself (tests/tidy.rs,
//! `the_store_opens_files_only_in_files_rs_in_this_repository`): every other access to a
//! SQLite store's file goes through SQLite. Opening and closing a descriptor of the store's
//! file would drop the process's SQLite locks on it (see [`kept_header`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{MIGRATION_WAIT, Result, StoreError};

/// An exclusive lock on `PATH.migrating` (beside a SQLite store), held while its schema is
/// brought up to date; released when the file handle is dropped. Taken with `try_lock`
/// polled up to [`MIGRATION_WAIT`], never a blocking `lock` (a holder that never lets go
/// would hang every command on the store).
pub(crate) async fn migration_lock(path: &Path) -> Result<std::fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".migrating");
    let lock_path = PathBuf::from(name);
    let shown = path.display().to_string();
    let bad = |e: std::io::Error| StoreError::BadFile {
        path: shown.clone(),
        reason: format!("cannot take the lock for its schema upgrade: {e}"),
    };
    let opened = lock_path.clone();
    let file = tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&opened)
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("the schema upgrade's lock task failed: {e}")))?
    .map_err(bad)?;
    let deadline = tokio::time::Instant::now() + MIGRATION_WAIT;
    let mut wait = Duration::from_millis(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::MigrationBusy { path: shown });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(bad(e)),
        }
    }
}

/// Read the first bytes of a SQLite store's file through a descriptor this process keeps
/// open for its whole life, one per file (device and inode).
///
/// POSIX record locks (`fcntl`, what SQLite locks with) belong to the process, and
/// closing *any* descriptor of a file drops *every* lock the process holds on it, those of
/// its own SQLite connections included. A probe that opened the file with a `File` and closed
/// it, in a process that already had a pool on it (the console: a read-only store for
/// anonymous pages, a read-write one for signed-in acts), silently unlocked that pool: the
/// next SQLite client that closed cleanly (a backup) took itself for the last, checkpointed
/// and deleted the write-ahead log under the console, which then lived on its own deleted
/// log (red team adv19a-9). So the store's file is never closed by this process: the first
/// read opens it and keeps the descriptor; later reads of the same file use it (`pread`).
/// Distinct files are few (one store a process, a handful in tests); past
/// [`KEPT_FILES`] the descriptor is still never closed (leaked on purpose, not dropped).
pub(crate) fn kept_header(path: &Path, into: &mut [u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{FileExt as _, MetadataExt as _};
    static KEPT: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<(u64, u64), std::fs::File>>> =
        std::sync::LazyLock::new(Default::default);
    let meta = std::fs::metadata(path)?;
    let key = (meta.dev(), meta.ino());
    let mut kept = KEPT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(file) = kept.get(&key) {
        return file.read_exact_at(into, 0);
    }
    let file = std::fs::File::open(path)?;
    let read = file.read_exact_at(into, 0);
    // Keyed by what was opened (the path may name another file by now): never dropped.
    let opened = file.metadata().map(|m| (m.dev(), m.ino()));
    match opened {
        Ok(key) if kept.len() < KEPT_FILES && !kept.contains_key(&key) => {
            kept.insert(key, file);
        }
        _ => std::mem::forget(file),
    }
    read
}

/// How many store files a process keeps a header descriptor for in [`kept_header`]'s map.
const KEPT_FILES: usize = 64;
