//! Reading runbook files from disk for the core's validator.

use std::io::ErrorKind;

use runbook_core::validate::Loader;

/// Reads files relative to the current directory.
#[derive(Debug, Default)]
pub struct FsLoader;

impl Loader for FsLoader {
    fn load(&self, path: &str) -> Result<String, String> {
        read(path)
    }
}

/// A file's text, or a short lowercase reason.
pub fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => "file not found".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::InvalidData => "the file is not UTF-8 text".to_string(),
        ErrorKind::IsADirectory => "it is a directory".to_string(),
        _ => e.to_string().to_lowercase(),
    })
}
