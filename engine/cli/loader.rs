//! Reading the files a command is given or a runbook names: runbooks, included runbooks,
//! params files, plans, SQL scripts and CA files.
//!
//! Every such read goes through [`read_bytes`]: only a regular file, never one under
//! `/proc`, `/sys` or `/dev`, opened without blocking (a FIFO swapped in after the check
//! cannot hang the command) and read up to [`MAX_FILE_BYTES`]. Included runbooks must also
//! live in the including tree: under the folder of the runbook named on the command line
//! (symbolic links resolved), see [`FsLoader`].

use std::io::{ErrorKind, Read as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use runbook_core::validate::Loader;

/// The largest file read: 8 MiB. A runbook of 5,000 steps is about 1 MiB; a bigger file
/// is a mistake or an attack (`/dev/zero` would otherwise read until memory runs out).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Folders whose files are the kernel's or devices, never runbook material.
const SPECIAL_ROOTS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Reads included runbooks: only files inside `root` (the folder of the runbook named on the
/// command line), after symbolic links are resolved.
#[derive(Debug)]
pub struct FsLoader {
    root: Option<PathBuf>,
}

impl FsLoader {
    /// A loader for the runbook at `top`: includes may live in its folder and below.
    pub fn for_runbook(top: &str) -> FsLoader {
        let dir = Path::new(top).parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        FsLoader { root: std::fs::canonicalize(dir).ok() }
    }
}

impl Loader for FsLoader {
    fn load(&self, path: &str) -> Result<String, String> {
        self.confine(path)
            .map_err(|e| format!("{e}; included runbooks must live in that folder or below it"))?;
        read(path)
    }

    fn confine(&self, path: &str) -> Result<(), String> {
        match &self.root {
            Some(root) => inside(root, path),
            None => Err("the folder of the including runbook cannot be resolved".into()),
        }
    }

    fn canonical(&self, path: &str) -> Option<String> {
        canonical(path)
    }

    fn identity(&self, path: &str) -> Option<(u64, u64)> {
        identity(path)
    }
}

/// The one confinement rule for a file a runbook names and the engine reads as content (an
/// included runbook, a SQL script, a CA file): `path` (as it will be read, already resolved
/// from the naming runbook's folder and lexically normalized) must lie in `root` (a
/// canonical folder) or below once symbolic links are resolved, and be no special file.
/// A path that does not exist yet is placed by its nearest existing folder, so a link on
/// the way out is caught before the file appears. An absolute path into `root` is inside.
/// `Err`: a short lowercase reason that never quotes the file (nor a machine's absolute path).
pub fn inside(root: &Path, path: &str) -> Result<(), String> {
    let p = Path::new(path);
    // The nearest existing ancestor, resolved; the rest appended as written (`normalize`
    // left no `..` but leading ones, and those exist).
    let mut existing = p;
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    let base = loop {
        let probe = if existing.as_os_str().is_empty() { Path::new(".") } else { existing };
        if let Ok(real) = std::fs::canonicalize(probe) {
            break real;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return Err("its folder cannot be resolved".into()),
        }
    };
    let mut real = base;
    for name in rest.iter().rev() {
        real.push(name);
    }
    if real.components().any(|c| matches!(c, std::path::Component::ParentDir)) || !real.starts_with(root) {
        return Err("it is outside the folder of the runbook being checked, symbolic links resolved".into());
    }
    if let Some(special) = SPECIAL_ROOTS.iter().find(|r| real.starts_with(r)) {
        return Err(format!("it is a special file under {special}"));
    }
    // A repository's own folder holds its configuration (and a CI checkout's token), never
    // runbook material, even when the runbooks' folder is the top of the working tree.
    if real.strip_prefix(root).is_ok_and(|rest| rest.components().any(|c| c.as_os_str() == ".git")) {
        return Err("it is inside a `.git` folder, the repository's own files".into());
    }
    match std::fs::metadata(&real) {
        Ok(meta) => kind_ok(&meta),
        Err(_) => Ok(()),
    }
}

/// The file `path` names as `(device, inode)`, links followed: two paths with the same
/// identity are the same file, hard links included (RB056).
pub fn identity(path: &str) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The file `path` names, symbolic links resolved (its folder's, when the file itself does
/// not exist yet: a secret's file may be written only on the host that runs).
pub fn canonical(path: &str) -> Option<String> {
    let p = Path::new(path);
    let real = std::fs::canonicalize(p).ok().or_else(|| {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Some(std::fs::canonicalize(dir).ok()?.join(p.file_name()?))
    })?;
    Some(real.to_string_lossy().into_owned())
}

/// A file's text, or a short lowercase reason.
pub fn read(path: &str) -> Result<String, String> {
    String::from_utf8(read_bytes(path)?).map_err(|_| "the file is not UTF-8 text".to_string())
}

/// A file's bytes, if it is a regular file of at most [`MAX_FILE_BYTES`] outside the
/// special folders; otherwise a short lowercase reason (never the content).
pub fn read_bytes(path: &str) -> Result<Vec<u8>, String> {
    // Resolved first: a symbolic link to /proc/self/environ is as special as the file.
    let real = std::fs::canonicalize(path).map_err(|e| reason(&e))?;
    if let Some(root) = SPECIAL_ROOTS.iter().find(|r| real.starts_with(r)) {
        return Err(format!("it is a special file under {root} (resolved to `{}`)", real.display()));
    }
    let meta = std::fs::metadata(&real).map_err(|e| reason(&e))?;
    kind_ok(&meta)?;
    // Non-blocking: if a FIFO took the file's place since the check, opening it returns at
    // once instead of waiting for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&real)
        .map_err(|e| reason(&e))?;
    let meta = file.metadata().map_err(|e| reason(&e))?;
    kind_ok(&meta)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len().min(MAX_FILE_BYTES)).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| reason(&e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("it is larger than {} MiB", MAX_FILE_BYTES / (1024 * 1024)));
    }
    Ok(bytes)
}

fn kind_ok(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt as _;
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    Err(if t.is_dir() {
        "it is a directory".into()
    } else if t.is_fifo() {
        "it is a FIFO (named pipe), not a regular file".into()
    } else if t.is_socket() {
        "it is a socket, not a regular file".into()
    } else if t.is_char_device() || t.is_block_device() {
        "it is a device, not a regular file".into()
    } else {
        "it is not a regular file".into()
    })
}

fn reason(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::NotFound => "file not found".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::InvalidData => "the file is not UTF-8 text".to_string(),
        ErrorKind::IsADirectory => "it is a directory".to_string(),
        _ => e.to_string().to_lowercase(),
    }
}

/// The plan entries of every file besides runbooks that a run of `runbook` reads (SQL
/// scripts, CA files: [`runbook_core::model::Runbook::reads`]), each read once with its
/// digest. Each is confined again as it is read ([`inside`] the folder of `runbook`'s file:
/// a link swapped in after `check` is refused). `Err`: one line per file that cannot be read.
pub fn reads(
    runbook: &runbook_core::model::Runbook,
) -> Result<Vec<runbook_core::plan::PlanRead>, Vec<String>> {
    let top = FsLoader::for_runbook(&runbook.source.path);
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for r in runbook.reads() {
        match top.confine(&r.path).and_then(|()| read_bytes(&r.path)) {
            Ok(bytes) => out.push(runbook_core::plan::reads_entry(&r, &bytes)),
            Err(e) => problems.push(format!("cannot read `{}`: {e}", r.path)),
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}
