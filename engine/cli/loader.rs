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

/// The largest plan file read (`run --plan`, `plan --diff`): 64 MiB. A JSON plan is linear in
/// its runbook but larger (about 27 times for a 5,000-step compensated chain: 10 MB), so it
/// has its own bound; it covers the plans of runbooks up to about 2 MiB.
pub const MAX_PLAN_BYTES: u64 = 64 * 1024 * 1024;

/// Folders whose files are the kernel's or devices, never runbook material.
const SPECIAL_ROOTS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Reads included runbooks: only files inside `root` (the folder of the runbook named on the
/// command line), after symbolic links are resolved.
#[derive(Debug)]
pub struct FsLoader {
    root: Option<PathBuf>,
}

impl FsLoader {
    /// The folder files may be read from (canonical), when it can be resolved.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// A loader for the runbook at `top`: includes may live in its folder and below.
    pub fn for_runbook(top: &str) -> FsLoader {
        let dir = Path::new(top).parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        FsLoader { root: std::fs::canonicalize(dir).ok() }
    }
}

/// A reason an included runbook could not be read, with the folder rule added when the
/// reason is the rule (a missing file is only missing).
pub fn confinement_hint(reason: String) -> String {
    if reason == "file not found" {
        reason
    } else {
        format!("{reason}; included runbooks must live in that folder or below it")
    }
}

impl Loader for FsLoader {
    fn load(&self, path: &str) -> Result<String, String> {
        let root = self.root.as_deref().ok_or("the folder of the including runbook cannot be resolved")?;
        let bytes = read_inside(root, path).map_err(confinement_hint)?;
        String::from_utf8(bytes).map_err(|_| "the file is not UTF-8 text".to_string())
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
    read_bytes_up_to(path, MAX_FILE_BYTES)
}

/// A plan file's text: as [`read`], bounded by [`MAX_PLAN_BYTES`].
pub fn read_plan(path: &str) -> Result<String, String> {
    String::from_utf8(read_bytes_up_to(path, MAX_PLAN_BYTES)?)
        .map_err(|_| "the file is not UTF-8 text".to_string())
}

/// [`read_bytes`] with a bound of `max` bytes.
fn read_bytes_up_to(path: &str, max: u64) -> Result<Vec<u8>, String> {
    // Resolved first: a symbolic link to /proc/self/environ is as special as the file.
    let real = std::fs::canonicalize(path).map_err(|e| reason(&e))?;
    if let Some(root) = SPECIAL_ROOTS.iter().find(|r| real.starts_with(r)) {
        return Err(format!("it is a special file under {root} (resolved to `{}`)", real.display()));
    }
    let meta = std::fs::metadata(&real).map_err(|e| reason(&e))?;
    kind_ok(&meta)?;
    let (file, opened) = open_once(&real)?;
    if let Some(root) = SPECIAL_ROOTS.iter().find(|r| opened.starts_with(r)) {
        return Err(format!("it is a special file under {root} (resolved to `{}`)", opened.display()));
    }
    read_open(file, max)
}

/// A params file's bytes (red team adv16r F3). One named in the folder of the runbook at
/// `top` or below it (as written, e.g. a CI script's `runbooks/params/NAME.ENV.toml`) is held
/// to the folder rule of every file a runbook reads ([`read_inside`]): a symbolic link there
/// that leads out is refused. One named elsewhere on the command line is the operator's own
/// choice and is read by [`read_bytes`] (a regular file, bounded, no special folder).
pub fn read_params(top: &str, path: &str) -> Result<Vec<u8>, String> {
    let loader = FsLoader::for_runbook(top);
    match loader.root() {
        Some(root) if in_folder_of(top, path) => read_inside(root, path),
        None if in_folder_of(top, path) => Err("the folder of the runbook cannot be resolved".into()),
        _ => read_bytes(path),
    }
}

/// Whether `path`, as written, names a file in the folder of the runbook at `top` or below it.
pub fn in_folder_of(top: &str, path: &str) -> bool {
    let written = |p: &str| {
        std::path::absolute(p)
            .ok()
            .map(|a| PathBuf::from(runbook_core::validate::normalize(&a.to_string_lossy())))
    };
    let dir = Path::new(top).parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match (written(&dir.to_string_lossy()), written(path)) {
        (Some(dir), Some(file)) => file.starts_with(dir),
        _ => true,
    }
}

/// The one confined reader (red team adv16r F1, F9, F10): the bytes of the file `path`
/// names, when [`inside`] `root`, read from ONE open file whose own place is checked
/// after opening. The path is opened once (without blocking: a FIFO cannot hang the
/// command), the kernel is asked where the open file really is (`/proc/self/fd/N`), that
/// place must be inside `root` (no `.git`, no special folder), the open file must be a
/// regular file (`fstat`), and the bytes come from that same open file, at most
/// [`MAX_FILE_BYTES`]. A link swapped in between the check and the read is either what
/// was opened (and refused) or not read at all; nothing is read again by path.
pub fn read_inside(root: &Path, path: &str) -> Result<Vec<u8>, String> {
    // The clear reasons first (outside, special, a FIFO...); then the check that counts.
    inside(root, path)?;
    let (file, opened) = open_once(Path::new(path))?;
    placed(root, &opened)?;
    read_open(file, MAX_FILE_BYTES)
}

/// `path` opened for reading without blocking, and where the open file really is.
fn open_once(path: &Path) -> Result<(std::fs::File, PathBuf), String> {
    use std::os::fd::AsRawFd as _;
    // Non-blocking: if a FIFO took the file's place since the check, opening it returns at
    // once instead of waiting for a writer.
    // Never a file of the store this process holds, by any path (adv20-1).
    let file = runbook_store::open_outside_store(
        path,
        std::fs::OpenOptions::new().read(true).custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits()),
    )
    .map_err(|e| reason(&e))?;
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| "where the opened file lies cannot be told (/proc is not mounted)".to_string())?;
    Ok((file, opened))
}

/// The rule of [`inside`] on the place an open file really is.
fn placed(root: &Path, real: &Path) -> Result<(), String> {
    if !real.is_absolute() || !real.starts_with(root) {
        return Err("it is outside the folder of the runbook being checked, symbolic links resolved".into());
    }
    if let Some(special) = SPECIAL_ROOTS.iter().find(|r| real.starts_with(r)) {
        return Err(format!("it is a special file under {special}"));
    }
    if real.strip_prefix(root).is_ok_and(|rest| rest.components().any(|c| c.as_os_str() == ".git")) {
        return Err("it is inside a `.git` folder, the repository's own files".into());
    }
    Ok(())
}

/// The bytes of an open file: a regular file (`fstat`), at most [`MAX_FILE_BYTES`].
fn read_open(file: std::fs::File, max: u64) -> Result<Vec<u8>, String> {
    let meta = file.metadata().map_err(|e| reason(&e))?;
    kind_ok(&meta)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len().min(max)).unwrap_or(0));
    file.take(max + 1).read_to_end(&mut bytes).map_err(|e| reason(&e))?;
    if bytes.len() as u64 > max {
        return Err(format!("it is larger than {} MiB", max / (1024 * 1024)));
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
        // The store's own file (adv20-1) says so; any other refusal is the system's.
        ErrorKind::PermissionDenied if e.get_ref().is_some() => e.to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::InvalidData => "the file is not UTF-8 text".to_string(),
        ErrorKind::IsADirectory => "it is a directory".to_string(),
        _ => e.to_string().to_lowercase(),
    }
}

/// The plan entries of every file besides runbooks that a run of `runbook` reads (SQL
/// scripts, CA files: [`runbook_core::model::Runbook::reads`]), each read once with its
/// digest. Each is confined again as it is read ([`read_inside`] the folder of `runbook`'s
/// file: the open file itself is checked, so a link swapped in after `check` is refused). `Err`: one line per file that cannot be read.
pub fn reads(
    runbook: &runbook_core::model::Runbook,
) -> Result<Vec<runbook_core::plan::PlanRead>, Vec<String>> {
    let top = FsLoader::for_runbook(&runbook.source.path);
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for r in runbook.reads() {
        let read = match top.root() {
            Some(root) => read_inside(root, &r.path),
            None => Err("the folder of the including runbook cannot be resolved".into()),
        };
        match read {
            Ok(bytes) => out.push(runbook_core::plan::reads_entry(&r, &bytes)),
            Err(e) => problems.push(format!("cannot read `{}`: {e}", r.path)),
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}
