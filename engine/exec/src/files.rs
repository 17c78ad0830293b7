//! Files of the run folder and files a step reads: the engine's own, with their modes and
//! pins. A leaf: it uses nothing else of the crate.

/// The largest file a step reads itself (a SQL script, a CA bundle): as the CLI's reader.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Read a file a step needs (a SQL script, a CA file) as the run pinned it: a regular file
/// of at most [`MAX_FILE_BYTES`], opened without blocking (a FIFO put in its place cannot
/// stall the engine's one thread), and, when `expected` is given, with the SHA-256 the run
/// recorded when it started (the plan's, for `run --plan`). A file edited since is refused:
/// what runs is what was reviewed.
pub fn read_pinned(path: &std::path::Path, expected: Option<&str>) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let cannot = |e: std::io::Error| format!("cannot read `{}`: {e}", path.display());
    // Never a file of the store this process holds, by any path (adv20-1).
    let file = runbook_store::open_outside_store(
        path,
        std::fs::OpenOptions::new().read(true).custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits()),
    )
    .map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(format!("`{}` is not a regular file", path.display()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("`{}` is larger than {} MiB", path.display(), MAX_FILE_BYTES / (1024 * 1024)));
    }
    if let Some(expected) = expected {
        let now = runbook_core::plan::sha256_hex_bytes(&bytes);
        if now != expected {
            return Err(format!(
                "`{}` changed since the run started (SHA-256 {expected} then, {now} now); it was not used",
                path.display()
            ));
        }
    }
    Ok(bytes)
}

/// Open (creating) a file of the run folder readable and writable by the engine's user
/// alone (0600, whatever the umask; an existing file is set to 0600 too), emptied when
/// `truncate`, for appending otherwise.
pub fn private_file(path: &std::path::Path, truncate: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    // Emptied only once known not to be a file of the store (adv20-1: no `O_TRUNC`).
    let file = runbook_store::open_outside_store(
        path,
        std::fs::OpenOptions::new().create(true).write(true).append(!truncate).mode(0o600),
    )?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    if truncate {
        file.set_len(0)?;
    }
    Ok(file)
}
