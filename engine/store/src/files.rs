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

/// Create a new store's file empty and private (0600, whatever the umask), unless it exists
/// (another process made it first, or it is an empty file given as a store). No descriptor
/// of an existing file is opened: the new one is closed before any connection holds a lock.
pub(crate) fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Ok(meta) = std::fs::metadata(path) {
        // An empty file given as a new store (`touch state.db`): made private too (a mode
        // change opens no descriptor; red team adv21-10).
        if meta.is_file() && meta.len() == 0 {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        return Ok(());
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// How many store files a process keeps a header descriptor for in [`kept_header`]'s map.
const KEPT_FILES: usize = 64;

/// The SQLite stores this process has opened (their paths, made absolute), whose files
/// ([`STORE_SUFFIXES`]) no other code of the process may open: see [`open_outside_store`].
static OPENED_STORES: std::sync::LazyLock<std::sync::Mutex<Vec<PathBuf>>> =
    std::sync::LazyLock::new(Default::default);

/// The files of a SQLite store: the database, its write-ahead log, its shared memory and its
/// rollback journal.
const STORE_SUFFIXES: [&str; 4] = ["", "-wal", "-shm", "-journal"];

/// Note that this process holds (or is about to open) the SQLite store at `path`: from now
/// on [`open_outside_store`] refuses its files.
pub fn opened_store(path: &Path) {
    let absolute = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
            std::fs::canonicalize(parent).map(|p| p.join(name)).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    };
    let mut stores = OPENED_STORES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !stores.contains(&absolute) {
        stores.push(absolute);
    }
}

/// Whether `meta` is a file of a store this process holds (the same device and inode as
/// the database, its log, its shared memory or its journal, by whatever path).
fn is_store_file(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let id = (meta.dev(), meta.ino());
    let stores = OPENED_STORES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    stores.iter().any(|store| {
        STORE_SUFFIXES.iter().any(|suffix| {
            let mut name = store.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(PathBuf::from(name)).is_ok_and(|m| (m.dev(), m.ino()) == id)
        })
    })
}

/// Whether `path` names a file of a SQLite store this process holds (by device and inode,
/// whatever the path): for what opens files without [`open_outside_store`] (a step's own
/// SQLite connection).
pub fn is_store_file_path(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| is_store_file(&m))
}

/// The refusal of a store's file.
fn store_file_refused() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "it is a file of the state store this command uses (runbook reaches the store's files only through SQLite)",
    )
}

/// Open `path` with `options`, unless it is a file of a SQLite store this process holds,
/// by any path (a hard link, a symbolic link, the store kept in a runbook's folder).
///
/// The rule (red team adv20-1, after adv19a-9): a process that holds a store never opens a
/// descriptor of the store's files besides SQLite's own, because closing it drops every
/// POSIX lock the process holds on the file, its SQLite connections' locks included; the
/// next clean SQLite client (a backup) then deletes the write-ahead log under the process,
/// whose writes are lost. Every file the engine, the console and the worker read or write
/// for a runbook, a step, a plan or an operator is opened here (tests/tidy.rs). The file is
/// looked at before it is opened (refused without a descriptor); one that becomes a store's
/// file between the look and the open is refused and its descriptor kept, never closed.
///
/// `options` never truncate (`O_TRUNC` would cut the store before the check): use
/// [`write_outside_store`].
pub fn open_outside_store(path: &Path, options: &std::fs::OpenOptions) -> std::io::Result<std::fs::File> {
    if std::fs::metadata(path).is_ok_and(|m| is_store_file(&m)) {
        return Err(store_file_refused());
    }
    let file = options.open(path)?;
    if file.metadata().is_ok_and(|m| is_store_file(&m)) {
        std::mem::forget(file);
        return Err(store_file_refused());
    }
    Ok(file)
}

/// The bytes of `path`, read through [`open_outside_store`].
pub fn read_outside_store(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut file = open_outside_store(path, std::fs::OpenOptions::new().read(true))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The text of `path` (UTF-8), read through [`open_outside_store`].
pub fn read_to_string_outside_store(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_outside_store(path)?).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8")
    })
}

/// Write `bytes` to `path` (created, or cut to nothing first) through
/// [`open_outside_store`]: opened without `O_TRUNC` and cut only once it is known not to be a
/// store's file (callers of [`open_outside_store`] never pass `truncate`: this function does).
pub fn write_outside_store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = open_outside_store(path, std::fs::OpenOptions::new().write(true).create(true))?;
    file.set_len(0)?;
    file.write_all(bytes)
}
