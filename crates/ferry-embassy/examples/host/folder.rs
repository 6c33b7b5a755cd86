//! The host folder backend: a directory of the host's file system as a [`Storage`] (std; for the host
//! runner only, so that the embedded driver can be judged by the same client checks as the tokio
//! server).

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_embassy::storage::{DirRead, FileRead, FileWrite, Storage};
use ferry_proto::listing::{FileInfo, FileKind};
use ferry_proto::path::VirtualPath;
use ferry_proto::storage::{StorageErrorKind, WriteMode};

/// Names starting with this are upload temporaries: hidden from listings and refused in commands.
const TEMP_PREFIX: &str = ".ferry-upload-";

/// A folder served as the FTP root. Symbolic links are not followed.
pub struct Folder {
    root: PathBuf,
    uploads: Cell<u32>,
}

impl Folder {
    /// Serves `root`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            uploads: Cell::new(0),
        }
    }

    /// The host path of `path`; the virtual path never rises above the root.
    fn real(&self, path: &VirtualPath) -> Result<PathBuf, StorageErrorKind> {
        if path.components().any(|c| c.starts_with(TEMP_PREFIX)) {
            return Err(StorageErrorKind::InvalidName);
        }
        let real = self.root.join(path.relative());
        // Refuse symbolic links anywhere below the root, so that nothing can lead out of it.
        let mut walk = self.root.clone();
        for c in path.components() {
            walk.push(c);
            match fs::symlink_metadata(&walk) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(StorageErrorKind::PermissionDenied)
                }
                _ => {}
            }
        }
        Ok(real)
    }
}

fn error(e: io::Error) -> StorageErrorKind {
    use io::ErrorKind as K;
    match e.kind() {
        K::NotFound => StorageErrorKind::NotFound,
        K::PermissionDenied | K::ReadOnlyFilesystem => StorageErrorKind::PermissionDenied,
        K::AlreadyExists => StorageErrorKind::AlreadyExists,
        K::NotADirectory => StorageErrorKind::NotADirectory,
        K::IsADirectory => StorageErrorKind::IsADirectory,
        K::DirectoryNotEmpty => StorageErrorKind::DirectoryNotEmpty,
        K::InvalidInput | K::InvalidFilename => StorageErrorKind::InvalidName,
        K::StorageFull => StorageErrorKind::NoSpace,
        K::QuotaExceeded | K::FileTooLarge => StorageErrorKind::QuotaExceeded,
        _ => StorageErrorKind::Io,
    }
}

fn info(name: String, m: &fs::Metadata) -> FileInfo {
    let dir = m.is_dir();
    FileInfo {
        name,
        kind: if dir { FileKind::Dir } else { FileKind::File },
        size: if dir { 0 } else { m.len() },
        modified: m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok()),
        mode: if dir { 0o755 } else { 0o644 },
        nlink: 1,
        unique: None,
    }
}

/// Reads a file.
pub struct Reader(File);

impl FileRead for Reader {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StorageErrorKind> {
        self.0.read(buf).map_err(error)
    }
}

/// Writes an upload; a temporary file renamed onto the target when complete, or the target itself
/// when appending.
pub struct Writer {
    file: File,
    temp: Option<PathBuf>,
    target: PathBuf,
}

impl FileWrite for Writer {
    async fn write(&mut self, buf: &[u8]) -> Result<(), StorageErrorKind> {
        self.file.write_all(buf).map_err(error)
    }

    async fn commit(self) -> Result<(), StorageErrorKind> {
        self.file.sync_data().map_err(error)?;
        match self.temp {
            Some(temp) => fs::rename(&temp, &self.target).map_err(|e| {
                let _ = fs::remove_file(&temp);
                error(e)
            }),
            None => Ok(()),
        }
    }

    async fn discard(self) {
        if let Some(temp) = self.temp {
            let _ = fs::remove_file(temp);
        }
    }
}

/// Lists a directory.
pub struct Dir(fs::ReadDir);

impl DirRead for Dir {
    async fn next(&mut self) -> Option<Result<FileInfo, StorageErrorKind>> {
        loop {
            let entry = match self.0.next()? {
                Ok(e) => e,
                Err(e) => return Some(Err(error(e))),
            };
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            match entry.metadata() {
                Ok(m) if m.is_dir() || m.is_file() => return Some(Ok(info(name, &m))),
                _ => continue,
            }
        }
    }
}

impl Storage for Folder {
    type Reader<'s> = Reader;
    type Writer<'s> = Writer;
    type Dir<'s> = Dir;

    async fn metadata(&self, path: &VirtualPath) -> Result<FileInfo, StorageErrorKind> {
        let m = fs::metadata(self.real(path)?).map_err(error)?;
        Ok(info(String::new(), &m))
    }

    async fn read_dir(&self, path: &VirtualPath) -> Result<Dir, StorageErrorKind> {
        let real = self.real(path)?;
        if !fs::metadata(&real).map_err(error)?.is_dir() {
            return Err(StorageErrorKind::NotADirectory);
        }
        fs::read_dir(real).map(Dir).map_err(error)
    }

    async fn open_read(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> Result<(Reader, u64), StorageErrorKind> {
        let mut file = File::open(self.real(path)?).map_err(error)?;
        let m = file.metadata().map_err(error)?;
        if m.is_dir() {
            return Err(StorageErrorKind::IsADirectory);
        }
        if offset > m.len() {
            return Err(StorageErrorKind::InvalidOffset);
        }
        file.seek(SeekFrom::Start(offset)).map_err(error)?;
        Ok((Reader(file), m.len()))
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Writer, StorageErrorKind> {
        let target = self.real(path)?;
        let existing = match fs::metadata(&target) {
            Ok(m) if m.is_dir() => return Err(StorageErrorKind::IsADirectory),
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(error(e)),
        };
        match mode {
            WriteMode::CreateNew if existing.is_some() => Err(StorageErrorKind::AlreadyExists),
            WriteMode::Truncate | WriteMode::CreateNew => {
                let n = self.uploads.get().wrapping_add(1);
                self.uploads.set(n);
                let parent = target.parent().ok_or(StorageErrorKind::PermissionDenied)?;
                let temp = parent.join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
                let file = File::create_new(&temp).map_err(error)?;
                Ok(Writer {
                    file,
                    temp: Some(temp),
                    target,
                })
            }
            WriteMode::Append | WriteMode::Resume(_) | WriteMode::Extend(_) => {
                let mut file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(&target)
                    .map_err(error)?;
                // Resume(0) and Append may create the file: look at what is there now.
                let size = file.metadata().map_err(error)?.len();
                let at = mode.kept(existing.map(|_| size))?;
                if at < size {
                    file.set_len(at).map_err(error)?;
                }
                file.seek(SeekFrom::Start(at)).map_err(error)?;
                Ok(Writer {
                    file,
                    temp: None,
                    target,
                })
            }
        }
    }

    async fn create_dir(&self, path: &VirtualPath) -> Result<(), StorageErrorKind> {
        fs::create_dir(self.real(path)?).map_err(error)
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageErrorKind> {
        fs::remove_dir(self.real(path)?).map_err(error)
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageErrorKind> {
        let real = self.real(path)?;
        if fs::metadata(&real).map_err(error)?.is_dir() {
            return Err(StorageErrorKind::IsADirectory);
        }
        fs::remove_file(real).map_err(error)
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageErrorKind> {
        fs::rename(self.real(from)?, self.real(to)?).map_err(error)
    }

    async fn set_modified(
        &self,
        path: &VirtualPath,
        unix_secs: i64,
    ) -> Result<(), StorageErrorKind> {
        let secs = u64::try_from(unix_secs).map_err(|_| StorageErrorKind::Io)?;
        let file = File::options()
            .write(true)
            .open(self.real(path)?)
            .map_err(error)?;
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .map_err(error)
    }
}
