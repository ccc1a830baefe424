//! Reading kernel files: whole-file reads into reused buffers, text from bytes, and the typed
//! errors every file reader returns (`procfs`, `cgroup`), with their lower-case messages.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why the text of a `/proc` or cgroup file could not be understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{0} is not a number")]
    NotANumber(&'static str),
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// Why a file could not be read or parsed; the message names the file.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("read {}: {}", path.display(), describe_io(source))]
    Io { path: PathBuf, source: io::Error },
    #[error("parse {}: {source}", path.display())]
    Parse { path: PathBuf, source: ParseError },
}

impl ReadError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        ReadError::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn parse(path: &Path, source: ParseError) -> Self {
        ReadError::Parse { path: path.to_path_buf(), source }
    }

    /// Whether the file does not exist. For a process this means it exited; for a system file
    /// it means the kernel does not offer it.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Whether the process behind the file is gone: the file vanished (`ENOENT`), or it was
    /// opened just before the process exited and the read failed with `ESRCH`.
    pub fn is_vanished(&self) -> bool {
        const ESRCH: i32 = 3;
        match self {
            ReadError::Io { source, .. } => {
                source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(ESRCH)
            }
            ReadError::Parse { .. } => false,
        }
    }

    /// Whether the failure may be the process behind the file exiting: the file vanished, or
    /// access was refused (an exiting process refuses access to what it has dropped, even to
    /// root). [`ProcReader::has_exited`](crate::sources::procfs::ProcReader::has_exited) says
    /// whether it did.
    pub fn may_mean_exit(&self) -> bool {
        self.is_vanished()
            || matches!(self, ReadError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied)
    }

    /// Whether the kernel has the file but does not support reading it (PSI disabled at boot
    /// gives `EOPNOTSUPP`).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == io::ErrorKind::Unsupported)
    }
}

/// A lower-case description of an I/O error, as the project's error messages are written.
pub fn describe_io(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => {
            let text = error.to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => text,
            }
        }
    }
}

/// The largest kernel file vigil reads (a host's mount table is the largest, tens of KiB).
pub(crate) const MAX_FILE_BYTES: u64 = 4 << 20;

/// Reads a whole file into `bytes` (cleared first), keeping its allocation.
///
/// Kernel files report a size of 0 or 4096 whatever they hold, so asking for the size first (as
/// `File::read_to_end` does, with `statx` and `lseek`) only costs two system calls per file:
/// reading through a bounded `Take` skips them, leaving open, read until end, close.
pub(crate) fn read_into(path: &Path, bytes: &mut Vec<u8>) -> Result<(), ReadError> {
    bytes.clear();
    let file = fs::File::open(path).map_err(|error| ReadError::io(path, error))?;
    file.take(MAX_FILE_BYTES + 1).read_to_end(bytes).map_err(|error| ReadError::io(path, error))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        bytes.clear();
        let error = io::Error::new(io::ErrorKind::InvalidData, "larger than 4 MiB");
        return Err(ReadError::io(path, error));
    }
    Ok(())
}

/// The bytes as text: borrowed when they are UTF-8 (the usual case), otherwise a lossy copy in
/// `lossy`. Process names and command lines may hold any bytes.
pub(crate) fn as_text<'a>(bytes: &'a [u8], lossy: &'a mut String) -> &'a str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => {
            lossy.clear();
            lossy.push_str(&String::from_utf8_lossy(bytes));
            lossy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_lower_case() {
        let error = ReadError::io(Path::new("/proc/42/limits"), io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(error.to_string(), "read /proc/42/limits: no such file or directory");
        assert!(error.is_vanished());
        let error = ReadError::io(Path::new("/proc/42/stat"), io::Error::from_raw_os_error(3));
        assert!(error.is_vanished());
        assert!(error.to_string().starts_with("read /proc/42/stat: no such process"));
    }

    #[test]
    fn invalid_utf8_becomes_a_lossy_copy() {
        let mut lossy = String::new();
        assert_eq!(as_text(b"java", &mut lossy), "java");
        assert_eq!(as_text(b"ja\xffva", &mut lossy), "ja\u{fffd}va");
    }
}
