//! Reading kernel files: whole-file reads into reused buffers, text from bytes, and the typed
//! errors every file reader returns (`procfs`, `cgroup`), with their lower-case messages.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// "No such process": a process's file read after the process exited.
pub(crate) const ESRCH: i32 = 3;

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

/// Files re-read every tick, held open and read from offset 0 each time (`pread`): one system
/// call per read instead of open, read, read to the end, close.
///
/// One read returns all of a kernel file that fits in the buffer (`seq_file`, which every
/// file read through here uses, fills a read as far as the request goes), so a read shorter
/// than the buffer is the whole file; a full one is continued until the end.
///
/// A handle that fails is dropped and the path opened again once: a process's file held open
/// refers to that process, so after it exits (`ESRCH`) a new process with the same PID is read
/// through a new handle, and a removed cgroup's file gives way to whatever the path holds now.
/// At most `capacity` files are held; beyond that a file is read by path. [`OpenFiles::sweep`]
/// closes the files that were not read since the previous sweep.
#[derive(Debug)]
pub(crate) struct OpenFiles {
    held: Vec<Held>,
    capacity: usize,
    /// Counts sweeps; a file read since the last one carries the current value.
    round: u64,
}

#[derive(Debug)]
struct Held {
    path: PathBuf,
    file: fs::File,
    round: u64,
}

impl OpenFiles {
    pub(crate) fn new(capacity: usize) -> Self {
        OpenFiles { held: Vec::new(), capacity, round: 0 }
    }

    /// Reads the whole of `path` into `bytes` (cleared first) through its held handle,
    /// opening and holding it on first use.
    pub(crate) fn read(&mut self, path: &Path, bytes: &mut Vec<u8>) -> Result<(), ReadError> {
        if let Some(index) = self.held.iter().position(|held| held.path == path) {
            self.held[index].round = self.round;
            if read_at_start(&self.held[index].file, bytes).is_ok() {
                return Ok(());
            }
            self.held.swap_remove(index);
        }
        let file = fs::File::open(path).map_err(|error| ReadError::io(path, error))?;
        let read = read_at_start(&file, bytes).map_err(|error| ReadError::io(path, error));
        if read.is_ok() && self.held.len() < self.capacity {
            self.held.push(Held { path: path.to_path_buf(), file, round: self.round });
        }
        read
    }

    /// Closes every file not read since the previous sweep.
    pub(crate) fn sweep(&mut self) {
        let round = self.round;
        self.held.retain(|held| held.round == round);
        self.round += 1;
    }

    /// How many files are held open.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

/// Reads a file from offset 0 to its end into `bytes` (cleared first), within
/// [`MAX_FILE_BYTES`].
fn read_at_start(file: &fs::File, bytes: &mut Vec<u8>) -> io::Result<()> {
    bytes.clear();
    bytes.reserve(4096);
    loop {
        let filled = bytes.len();
        bytes.resize(bytes.capacity(), 0);
        let spare = bytes.len() - filled;
        match file.read_at(&mut bytes[filled..], filled as u64) {
            Ok(read) => {
                bytes.truncate(filled + read);
                if read < spare {
                    return Ok(());
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => bytes.truncate(filled),
            Err(error) => {
                bytes.clear();
                return Err(error);
            }
        }
        if bytes.len() as u64 > MAX_FILE_BYTES {
            bytes.clear();
            return Err(io::Error::new(io::ErrorKind::InvalidData, "larger than 4 MiB"));
        }
        // Doubles the buffer for the rest.
        bytes.reserve(bytes.len());
    }
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
    fn held_files_are_read_whole_and_again_after_they_change() {
        let dir = std::env::temp_dir().join(format!("vigil-open-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (small, large) = (dir.join("small"), dir.join("large"));
        fs::write(&small, "1\n").unwrap();
        // Larger than the first read's buffer, to be continued where it stopped.
        let text: String = (0..3000).map(|n| format!("{n}\n")).collect();
        fs::write(&large, &text).unwrap();

        let mut open = OpenFiles::new(1);
        let mut bytes = Vec::new();
        open.read(&small, &mut bytes).unwrap();
        assert_eq!(bytes, b"1\n");
        fs::write(&small, "22\n").unwrap();
        open.read(&small, &mut bytes).unwrap();
        assert_eq!(bytes, b"22\n", "the held handle reads what the file holds now");
        // Beyond the capacity a file is read by path, not held.
        open.read(&large, &mut bytes).unwrap();
        assert_eq!(bytes, text.as_bytes());
        assert_eq!(open.len(), 1);
        // A file not read since the previous sweep is closed by the next.
        open.sweep();
        assert_eq!(open.len(), 1);
        open.sweep();
        assert_eq!(open.len(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_held_file_of_a_process_that_exited_fails_and_is_let_go() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let stat = PathBuf::from(format!("/proc/{}/stat", child.id()));
        let mut open = OpenFiles::new(4);
        let mut bytes = Vec::new();
        open.read(&stat, &mut bytes).unwrap();
        assert_eq!(open.len(), 1);
        child.kill().unwrap();
        child.wait().unwrap();
        let error = open.read(&stat, &mut bytes).unwrap_err();
        assert!(error.is_vanished(), "{error}");
        assert_eq!(open.len(), 0);
    }

    #[test]
    fn invalid_utf8_becomes_a_lossy_copy() {
        let mut lossy = String::new();
        assert_eq!(as_text(b"java", &mut lossy), "java");
        assert_eq!(as_text(b"ja\xffva", &mut lossy), "ja\u{fffd}va");
    }
}
