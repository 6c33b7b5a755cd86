//! [`LocalStorage`]: a directory of the local file system, jailed with `cap-std`.

use core::time::Duration;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use cap_std::fs::{Dir, Metadata, OpenOptions};
use ferry_proto::listing::{FileInfo, FileKind};
use ferry_proto::path::VirtualPath;

use super::{
    Lister, Storage, StorageError, StorageErrorKind, WriteMode, LIST_PAGE, SORTED_LISTING_MAX,
};

/// A directory of the local file system serving as a storage root.
///
/// Every operation goes through a [`cap_std::fs::Dir`] handle opened once on the root, so no path can
/// reach outside it: `cap-std` resolves each component itself and refuses absolute symlinks, `..` above
/// the root and symlink chains that would leave it (reported as
/// [`StorageErrorKind::PermissionDenied`]). Blocking system calls run on tokio's blocking pool.
///
/// Files that are neither regular files nor directories (FIFOs, sockets, devices) are refused for
/// reading, writing and [`set_modified`](Storage::set_modified), since opening them could block or act on
/// a device. That check precedes the open, so a local user racing to replace a file with such an object
/// can defeat it; FTP clients cannot create such objects.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: Arc<Dir>,
}

impl LocalStorage {
    /// Opens the directory `root` of the local file system as a storage root.
    ///
    /// This is the one place that uses ambient authority; everything afterwards is relative to the
    /// opened handle, so renaming or replacing `root` later does not move the jail.
    ///
    /// # Errors
    /// [`StorageErrorKind::NotFound`] if `root` does not exist, [`StorageErrorKind::NotADirectory`] if it
    /// is not a directory, [`StorageErrorKind::PermissionDenied`] if it cannot be opened.
    pub fn open(root: &Path) -> Result<Self, StorageError> {
        let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())?;
        Ok(Self::from_dir(dir))
    }

    /// Uses an already opened `cap-std` directory handle as the storage root.
    pub fn from_dir(root: Dir) -> Self {
        Self {
            root: Arc::new(root),
        }
    }

    /// Runs `f` with the root directory on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Dir) -> Result<T, StorageError> + Send + 'static,
    {
        let root = Arc::clone(&self.root);
        match tokio::task::spawn_blocking(move || f(&root)).await {
            Ok(result) => result,
            Err(err) => Err(StorageError::new(
                StorageErrorKind::Io,
                format!("storage task failed: {err}"),
            )),
        }
    }
}

impl Storage for LocalStorage {
    type Reader = tokio::fs::File;
    type Writer = tokio::fs::File;
    type Lister = LocalLister;

    // Files come out of `open_read`/`open_write` freshly opened and positioned, with no operation
    // pending in tokio's wrapper, so their descriptors may be used directly.
    #[cfg(unix)]
    fn reader_fd(reader: &Self::Reader) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(std::os::fd::AsFd::as_fd(reader))
    }

    #[cfg(unix)]
    fn writer_fd(writer: &Self::Writer) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(std::os::fd::AsFd::as_fd(writer))
    }

    async fn metadata(&self, path: &VirtualPath) -> Result<FileInfo, StorageError> {
        let rel = rel_path(path);
        let name = path.file_name().unwrap_or("").to_owned();
        self.blocking(move |root| Ok(file_info(name, &root.metadata(&rel)?)))
            .await
    }

    async fn list(&self, path: &VirtualPath) -> Result<LocalLister, StorageError> {
        let rel = rel_path(path);
        let name = path.file_name().unwrap_or("").to_owned();
        self.blocking(move |root| {
            let dir = match root.open_dir(&rel) {
                Ok(dir) => dir,
                Err(err) if err.kind() == io::ErrorKind::NotADirectory => {
                    let one = vec![file_info(name, &root.metadata(&rel)?)];
                    return Ok(LocalLister::new(one, None));
                }
                Err(err) => return Err(err.into()),
            };
            // Read ahead one entry more than is sorted: a directory that ends within that is sorted
            // by name, a larger one goes out in the file system's order as it is read.
            let mut rest = dir.entries()?;
            let (mut first, ended) = read_entries(&mut rest, SORTED_LISTING_MAX + 1);
            if ended {
                first.sort_unstable_by(|a, b| a.name.cmp(&b.name));
                Ok(LocalLister::new(first, None))
            } else {
                Ok(LocalLister::new(first, Some(rest)))
            }
        })
        .await
    }

    async fn open_read(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> Result<(Self::Reader, u64), StorageError> {
        let rel = rel_path(path);
        let (file, size) = self
            .blocking(move |root| {
                check_regular(&root.metadata(&rel)?)?;
                let file = root.open(&rel)?;
                let md = file.metadata()?;
                check_regular(&md)?;
                let mut file = file.into_std();
                file.seek(SeekFrom::Start(offset))?;
                Ok((file, md.len()))
            })
            .await?;
        Ok((tokio::fs::File::from_std(file), size))
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Self::Writer, StorageError> {
        if path.is_root() {
            return Err(root_is_dir());
        }
        let rel = rel_path(path);
        let file = self
            .blocking(move |root| open_write(root, &rel, mode))
            .await?;
        Ok(tokio::fs::File::from_std(file))
    }

    async fn create_unique(
        &self,
        dir: &VirtualPath,
        stem: &str,
    ) -> Result<(VirtualPath, Self::Writer), StorageError> {
        let names = super::unique_names(dir, stem)?;
        let (path, file) = self
            .blocking(move |root| {
                for path in names {
                    let path = path?;
                    match open_write(root, &rel_path(&path), WriteMode::CreateNew) {
                        Ok(file) => return Ok((path, file)),
                        Err(err) if err.kind() == StorageErrorKind::AlreadyExists => {}
                        Err(err) => return Err(err),
                    }
                }
                Err(super::no_unique_name())
            })
            .await?;
        Ok((path, tokio::fs::File::from_std(file)))
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(root_is_dir());
        }
        let rel = rel_path(path);
        self.blocking(move |root| match root.remove_file(&rel) {
            Ok(()) => Ok(()),
            // Some systems report unlink(2) on a directory as EPERM rather than EISDIR.
            Err(err) => match root.symlink_metadata(&rel) {
                Ok(md) if md.is_dir() => Err(StorageError::new(
                    StorageErrorKind::IsADirectory,
                    err.to_string(),
                )),
                _ => Err(err.into()),
            },
        })
        .await
    }

    async fn create_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::new(
                StorageErrorKind::AlreadyExists,
                "the root directory always exists",
            ));
        }
        let rel = rel_path(path);
        self.blocking(move |root| Ok(root.create_dir(&rel)?)).await
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(root_is_fixed());
        }
        let rel = rel_path(path);
        self.blocking(move |root| Ok(root.remove_dir(&rel)?)).await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if from.is_root() || to.is_root() {
            return Err(root_is_fixed());
        }
        let (from, to) = (rel_path(from), rel_path(to));
        self.blocking(move |root| Ok(root.rename(&from, root, &to)?))
            .await
    }

    async fn set_modified(&self, path: &VirtualPath, unix_secs: i64) -> Result<(), StorageError> {
        let time = system_time(unix_secs).ok_or_else(|| {
            StorageError::new(StorageErrorKind::Io, "modification time out of range")
        })?;
        let rel = rel_path(path);
        self.blocking(move |root| {
            // Directories are opened read-only like files (`open_dir` may give a path-only handle,
            // on which futimens(2) fails); special files are refused before opening.
            let md = root.metadata(&rel)?;
            if !md.is_dir() {
                check_regular(&md)?;
            }
            let file = root.open(&rel)?;
            let opened = file.metadata()?;
            if !opened.is_dir() {
                check_regular(&opened)?;
            }
            file.into_std().set_modified(time)?;
            Ok(())
        })
        .await
    }

    /// chmod(2) through the jail: cap-std resolves `path` inside the root (a symlink is followed only
    /// while it stays inside; `..` and absolute targets are refused) and changes the mode of what it
    /// reaches. Special files (devices, FIFOs, sockets) are refused as everywhere else.
    // Elsewhere (Windows: no Unix modes) the trait's default answers "not supported".
    #[cfg(unix)]
    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<(), StorageError> {
        use cap_std::fs::PermissionsExt as _;
        let rel = rel_path(path);
        self.blocking(move |root| {
            let md = root.metadata(&rel)?;
            if !md.is_dir() {
                check_regular(&md)?;
            }
            root.set_permissions(&rel, cap_std::fs::Permissions::from_mode(mode & 0o777))?;
            Ok(())
        })
        .await
    }

    /// A relative `home` is opened inside this root through the jail (`..`, absolute symlinks and
    /// symlinks leading out are refused); an absolute one is opened as a new root with ambient
    /// authority, since the administrator chose it. Either way the result is jailed at the home.
    async fn open_home(&self, home: &Path) -> Result<Self, StorageError> {
        let home = home.to_owned();
        if home.is_absolute() {
            return match tokio::task::spawn_blocking(move || Self::open(&home)).await {
                Ok(result) => result,
                Err(err) => Err(StorageError::new(
                    StorageErrorKind::Io,
                    format!("storage task failed: {err}"),
                )),
            };
        }
        self.blocking(move |root| Ok(Self::from_dir(root.open_dir(&home)?)))
            .await
    }
}

/// The `cap-std` path for a virtual path: relative to the root, `.` for the root itself.
fn rel_path(path: &VirtualPath) -> PathBuf {
    if path.is_root() {
        PathBuf::from(".")
    } else {
        PathBuf::from(path.relative())
    }
}

/// Opens `rel` for writing as `mode` says (blocking).
fn open_write(root: &Dir, rel: &Path, mode: WriteMode) -> Result<std::fs::File, StorageError> {
    // Refuse directories and special files before opening: opening a FIFO for writing would block.
    // `CreateNew` needs no check: an exclusive create never opens anything that exists.
    if mode != WriteMode::CreateNew {
        match root.metadata(rel) {
            Ok(md) => check_regular(&md)?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err.into()),
        }
    }
    let mut opts = OpenOptions::new();
    match mode {
        WriteMode::Truncate => opts.write(true).create(true).truncate(true),
        WriteMode::Append => opts.append(true).create(true),
        WriteMode::CreateNew => opts.write(true).create_new(true),
        WriteMode::Resume(offset) | WriteMode::Extend(offset) => {
            opts.write(true).create(offset == 0)
        }
    };
    let file = root.open_with(rel, &opts)?;
    let md = file.metadata()?;
    check_regular(&md)?;
    let mut file = file.into_std();
    if let WriteMode::Resume(offset) | WriteMode::Extend(offset) = mode {
        // The size of the file as opened (not as looked up before): Extend never drops a byte.
        let keep = mode.kept(Some(md.len())).map_err(|kind| {
            StorageError::new(
                kind,
                format!(
                    "restart offset {offset} against a file of {} bytes{}",
                    md.len(),
                    if kind == StorageErrorKind::PermissionDenied {
                        ": dropping the rest needs the overwrite permission"
                    } else {
                        ""
                    }
                ),
            )
        })?;
        if keep < md.len() {
            file.set_len(keep)?;
        }
        file.seek(SeekFrom::Start(keep))?;
    }
    Ok(file)
}

/// Fails unless `md` describes a regular file (`IsADirectory` for a directory).
fn check_regular(md: &Metadata) -> Result<(), StorageError> {
    if md.is_file() {
        Ok(())
    } else if md.is_dir() {
        Err(StorageError::new(
            StorageErrorKind::IsADirectory,
            "is a directory",
        ))
    } else {
        Err(not_regular())
    }
}

/// The error for objects that are neither regular files nor directories.
fn not_regular() -> StorageError {
    StorageError::new(
        StorageErrorKind::PermissionDenied,
        "not a regular file or directory",
    )
}

/// The error for file operations on the root.
fn root_is_dir() -> StorageError {
    StorageError::new(StorageErrorKind::IsADirectory, "the root is a directory")
}

/// The error for removing or renaming the root.
fn root_is_fixed() -> StorageError {
    StorageError::new(
        StorageErrorKind::PermissionDenied,
        "the root directory cannot be removed or renamed",
    )
}

/// The [`Lister`] of [`LocalStorage`]: the entries read ahead by [`Storage::list`] (the whole directory,
/// sorted, when it holds at most [`SORTED_LISTING_MAX`] entries), then the rest of a larger directory
/// as it is read, one page per trip to the blocking pool. It holds at most the read-ahead and one page.
pub struct LocalLister {
    /// Entries read and not yet given.
    ready: std::vec::IntoIter<FileInfo>,
    /// The rest of a directory too large to sort; `None` once read to its end.
    rest: Option<cap_std::fs::ReadDir>,
}

impl LocalLister {
    fn new(ready: Vec<FileInfo>, rest: Option<cap_std::fs::ReadDir>) -> Self {
        Self {
            ready: ready.into_iter(),
            rest,
        }
    }
}

impl std::fmt::Debug for LocalLister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLister")
            .field("ready", &self.ready.len())
            .field("more", &self.rest.is_some())
            .finish()
    }
}

impl Lister for LocalLister {
    async fn next_page(&mut self) -> Result<Option<Vec<FileInfo>>, StorageError> {
        loop {
            let page: Vec<FileInfo> = self.ready.by_ref().take(LIST_PAGE).collect();
            if !page.is_empty() {
                return Ok(Some(page));
            }
            let Some(mut rest) = self.rest.take() else {
                return Ok(None);
            };
            let read = tokio::task::spawn_blocking(move || {
                let (page, ended) = read_entries(&mut rest, LIST_PAGE);
                (page, (!ended).then_some(rest))
            })
            .await;
            let (page, rest) = read.map_err(|err| {
                StorageError::new(StorageErrorKind::Io, format!("storage task failed: {err}"))
            })?;
            self.rest = rest;
            self.ready = page.into_iter();
        }
    }
}

/// Reads up to `max` entries of a directory, described without following symlinks; entries whose name
/// is not UTF-8 or whose metadata cannot be read are skipped. Returns them and whether the directory
/// ended.
fn read_entries(dir: &mut cap_std::fs::ReadDir, max: usize) -> (Vec<FileInfo>, bool) {
    let mut out = Vec::new();
    while out.len() < max {
        let Some(entry) = dir.next() else {
            return (out, true);
        };
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else {
            tracing::debug!("skipping a directory entry whose name is not UTF-8");
            continue;
        };
        // `DirEntry::metadata` does not follow symlinks.
        let Ok(md) = entry.metadata() else { continue };
        out.push(file_info(name, &md));
    }
    (out, false)
}

/// Describes `md` under `name`.
fn file_info(name: String, md: &Metadata) -> FileInfo {
    let file_type = md.file_type();
    let kind = if file_type.is_symlink() {
        FileKind::Symlink
    } else if file_type.is_dir() {
        FileKind::Dir
    } else {
        FileKind::File
    };
    let (mode, nlink, unique) = unix_facts(md);
    FileInfo {
        name,
        kind,
        size: md.len(),
        modified: md.modified().ok().and_then(unix_secs),
        mode,
        nlink,
        unique,
    }
}

/// Permission bits, link count and `(device, inode)` identity.
#[cfg(unix)]
fn unix_facts(md: &Metadata) -> (u32, u64, Option<(u64, u64)>) {
    use cap_std::fs::{MetadataExt, PermissionsExt};
    (
        md.permissions().mode() & 0o777,
        md.nlink(),
        Some((md.dev(), md.ino())),
    )
}

/// Permission bits (derived from the read-only flag), link count and identity (unknown).
#[cfg(not(unix))]
fn unix_facts(md: &Metadata) -> (u32, u64, Option<(u64, u64)>) {
    let base = if md.is_dir() { 0o755 } else { 0o644 };
    let mode = if md.permissions().readonly() {
        base & 0o555
    } else {
        base
    };
    (mode, 1, None)
}

/// Seconds since the Unix epoch, rounded down; `None` if out of `i64` range.
fn unix_secs(time: cap_std::time::SystemTime) -> Option<i64> {
    let time = time.into_std();
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        Err(before) => {
            let before = before.duration();
            let secs = i64::try_from(before.as_secs()).ok()?;
            let secs = if before.subsec_nanos() > 0 {
                secs.checked_add(1)?
            } else {
                secs
            };
            Some(-secs)
        }
    }
}

/// The time `unix_secs` seconds after (or before) the Unix epoch, if representable.
fn system_time(unix_secs: i64) -> Option<SystemTime> {
    let delta = Duration::from_secs(unix_secs.unsigned_abs());
    if unix_secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(delta)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(delta)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on unexpected errors.
mod tests {
    use std::collections::BTreeMap;
    use std::fs;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn list_all(s: &LocalStorage, path: &VirtualPath) -> Result<Vec<FileInfo>, StorageError> {
        Ok(s.list(path).await?.collect(usize::MAX).await?.0)
    }

    /// A directory of up to SORTED_LISTING_MAX entries is sorted by name; a larger one is listed in the
    /// file system's order, every entry exactly once.
    #[tokio::test]
    async fn small_directories_are_sorted_and_large_ones_streamed_whole() {
        let (tmp, s) = setup();
        for (dir, count) in [
            ("small", SORTED_LISTING_MAX),
            ("large", SORTED_LISTING_MAX + 1000),
        ] {
            fs::create_dir(tmp.path().join(dir)).unwrap();
            for i in (0..count).rev() {
                fs::write(tmp.path().join(dir).join(format!("{i:06}")), b"").unwrap();
            }
            // Page by page, each within the bound the trait documents.
            let mut lister = s.list(&vp(dir)).await.unwrap();
            let mut names = Vec::new();
            while let Some(page) = lister.next_page().await.unwrap() {
                assert!(
                    !page.is_empty() && page.len() <= LIST_PAGE,
                    "{}",
                    page.len()
                );
                names.extend(page.into_iter().map(|e| e.name));
            }
            assert!(
                lister.next_page().await.unwrap().is_none(),
                "stays finished"
            );
            assert_eq!(names.len(), count, "{dir}");
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), count, "{dir}: every entry once");
            if dir == "small" {
                assert_eq!(names, sorted, "{dir}: sorted");
            }
        }
    }

    fn vp(s: &str) -> VirtualPath {
        VirtualPath::root().join(s).unwrap()
    }

    fn setup() -> (tempfile::TempDir, LocalStorage) {
        let tmp = tempfile::tempdir().unwrap();
        let storage = LocalStorage::open(tmp.path()).unwrap();
        (tmp, storage)
    }

    async fn read_all(storage: &LocalStorage, path: &str, offset: u64) -> (Vec<u8>, u64) {
        let (mut reader, size) = storage.open_read(&vp(path), offset).await.unwrap();
        let mut buf = Vec::new();
        reader.read_to_end(&mut buf).await.unwrap();
        (buf, size)
    }

    async fn write_all(storage: &LocalStorage, path: &str, mode: WriteMode, data: &[u8]) {
        let mut writer = storage.open_write(&vp(path), mode).await.unwrap();
        writer.write_all(data).await.unwrap();
        writer.shutdown().await.unwrap();
    }

    fn kind<T: core::fmt::Debug>(result: Result<T, StorageError>) -> StorageErrorKind {
        result.unwrap_err().kind()
    }

    fn names(list: &[FileInfo]) -> Vec<&str> {
        list.iter().map(|i| i.name.as_str()).collect()
    }

    #[tokio::test]
    async fn open_fails_for_missing_or_file_root() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = LocalStorage::open(&tmp.path().join("nope"));
        assert_eq!(kind(missing), StorageErrorKind::NotFound);
        fs::write(tmp.path().join("f"), b"x").unwrap();
        let file = LocalStorage::open(&tmp.path().join("f"));
        assert_eq!(kind(file), StorageErrorKind::NotADirectory);
    }

    #[tokio::test]
    async fn metadata_of_files_dirs_and_root() {
        let (tmp, s) = setup();
        fs::write(tmp.path().join("a.txt"), b"hello").unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();

        let info = s.metadata(&vp("a.txt")).await.unwrap();
        assert_eq!(info.name, "a.txt");
        assert_eq!(info.kind, FileKind::File);
        assert_eq!(info.size, 5);
        assert_eq!(info.nlink, 1);
        assert!(info.modified.is_some_and(|m| m > 1_600_000_000));
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let std_md = fs::metadata(tmp.path().join("a.txt")).unwrap();
            assert_eq!(info.mode, std_md.permissions().mode() & 0o777);
            assert_eq!(info.unique, Some((std_md.dev(), std_md.ino())));
            assert_eq!(info.modified, Some(std_md.mtime()));
        }

        let dir = s.metadata(&vp("/d")).await.unwrap();
        assert_eq!((dir.name.as_str(), dir.kind), ("d", FileKind::Dir));

        let root = s.metadata(&VirtualPath::root()).await.unwrap();
        assert_eq!((root.name.as_str(), root.kind), ("", FileKind::Dir));

        assert_eq!(
            kind(s.metadata(&vp("nope")).await),
            StorageErrorKind::NotFound
        );
        assert_eq!(
            kind(s.metadata(&vp("a.txt/x")).await),
            StorageErrorKind::NotADirectory
        );
    }

    #[tokio::test]
    async fn list_sorts_and_describes_entries() {
        let (tmp, s) = setup();
        fs::write(tmp.path().join("b"), b"12").unwrap();
        fs::write(tmp.path().join("a"), b"1").unwrap();
        fs::create_dir(tmp.path().join("c")).unwrap();
        fs::write(tmp.path().join("c/inner"), b"").unwrap();

        let list = list_all(&s, &VirtualPath::root()).await.unwrap();
        assert_eq!(names(&list), ["a", "b", "c"]);
        assert_eq!(list[1].size, 2);
        assert_eq!(list[2].kind, FileKind::Dir);

        assert_eq!(names(&list_all(&s, &vp("c")).await.unwrap()), ["inner"]);

        // A file lists as itself.
        let one = list_all(&s, &vp("b")).await.unwrap();
        assert_eq!(names(&one), ["b"]);
        assert_eq!((one[0].kind, one[0].size), (FileKind::File, 2));

        assert_eq!(
            kind(list_all(&s, &vp("missing")).await),
            StorageErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn list_of_empty_dir_is_empty() {
        let (tmp, s) = setup();
        fs::create_dir(tmp.path().join("e")).unwrap();
        assert!(list_all(&s, &vp("e")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn open_read_at_offsets() {
        let (tmp, s) = setup();
        fs::write(tmp.path().join("f"), b"0123456789").unwrap();
        assert_eq!(read_all(&s, "f", 0).await, (b"0123456789".to_vec(), 10));
        assert_eq!(read_all(&s, "f", 7).await, (b"789".to_vec(), 10));
        assert_eq!(read_all(&s, "f", 10).await, (Vec::new(), 10));
        assert_eq!(read_all(&s, "f", 1000).await, (Vec::new(), 10));

        fs::create_dir(tmp.path().join("d")).unwrap();
        assert_eq!(
            kind(s.open_read(&vp("d"), 0).await),
            StorageErrorKind::IsADirectory
        );
        assert_eq!(
            kind(s.open_read(&VirtualPath::root(), 0).await),
            StorageErrorKind::IsADirectory
        );
        assert_eq!(
            kind(s.open_read(&vp("nope"), 0).await),
            StorageErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn sparse_file_beyond_4_gib() {
        const GIB: u64 = 1 << 30;
        let (tmp, s) = setup();
        let mut file = fs::File::create(tmp.path().join("big")).unwrap();
        file.set_len(5 * GIB).unwrap();
        let at = 4 * GIB + GIB / 2;
        file.seek(SeekFrom::Start(at)).unwrap();
        io::Write::write_all(&mut file, b"deep").unwrap();
        drop(file);

        assert_eq!(s.metadata(&vp("big")).await.unwrap().size, 5 * GIB);
        let (mut reader, size) = s.open_read(&vp("big"), at).await.unwrap();
        assert_eq!(size, 5 * GIB);
        let mut buf = [0u8; 6];
        reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"deep\0\0");

        // Resume beyond 4 GiB keeps the prefix and writes from there.
        write_all(&s, "big", WriteMode::Resume(at + 2), b"EP!").await;
        let md = fs::metadata(tmp.path().join("big")).unwrap();
        assert_eq!(md.len(), at + 5);
        let (tail, _) = read_all(&s, "big", at).await;
        assert_eq!(tail, b"deEP!");
    }

    #[tokio::test]
    async fn write_truncate_replaces_content() {
        let (tmp, s) = setup();
        write_all(&s, "f", WriteMode::Truncate, b"first version").await;
        assert_eq!(fs::read(tmp.path().join("f")).unwrap(), b"first version");
        write_all(&s, "f", WriteMode::Truncate, b"2nd").await;
        assert_eq!(fs::read(tmp.path().join("f")).unwrap(), b"2nd");
    }

    #[tokio::test]
    async fn write_resume_keeps_prefix_and_drops_tail() {
        let (tmp, s) = setup();
        let f = tmp.path().join("f");
        fs::write(&f, b"0123456789").unwrap();
        write_all(&s, "f", WriteMode::Resume(4), b"ab").await;
        assert_eq!(fs::read(&f).unwrap(), b"0123ab");

        // Resuming at the exact end appends.
        write_all(&s, "f", WriteMode::Resume(6), b"XY").await;
        assert_eq!(fs::read(&f).unwrap(), b"0123abXY");

        // Resume(0) rewrites everything, and creates a missing file.
        write_all(&s, "f", WriteMode::Resume(0), b"z").await;
        assert_eq!(fs::read(&f).unwrap(), b"z");
        write_all(&s, "new", WriteMode::Resume(0), b"n").await;
        assert_eq!(fs::read(tmp.path().join("new")).unwrap(), b"n");

        // An offset past the end fails and leaves the file alone.
        let past = s.open_write(&vp("f"), WriteMode::Resume(2)).await;
        assert_eq!(kind(past), StorageErrorKind::InvalidOffset);
        assert_eq!(fs::read(&f).unwrap(), b"z");

        // A non-zero offset on a missing file is NotFound, and creates nothing.
        let missing = s.open_write(&vp("ghost"), WriteMode::Resume(3)).await;
        assert_eq!(kind(missing), StorageErrorKind::NotFound);
        assert!(!tmp.path().join("ghost").exists());
    }

    #[tokio::test]
    async fn write_append_adds_to_end_or_creates() {
        let (tmp, s) = setup();
        write_all(&s, "log", WriteMode::Append, b"one\n").await;
        write_all(&s, "log", WriteMode::Append, b"two\n").await;
        assert_eq!(fs::read(tmp.path().join("log")).unwrap(), b"one\ntwo\n");
    }

    #[tokio::test]
    async fn write_create_new_never_overwrites() {
        let (tmp, s) = setup();
        write_all(&s, "f", WriteMode::CreateNew, b"original").await;
        let again = s.open_write(&vp("f"), WriteMode::CreateNew).await;
        assert_eq!(kind(again), StorageErrorKind::AlreadyExists);
        assert_eq!(fs::read(tmp.path().join("f")).unwrap(), b"original");

        fs::create_dir(tmp.path().join("d")).unwrap();
        let dir = s.open_write(&vp("d"), WriteMode::CreateNew).await;
        assert_eq!(kind(dir), StorageErrorKind::AlreadyExists);
    }

    #[tokio::test]
    async fn write_to_directory_or_missing_parent_fails() {
        let (tmp, s) = setup();
        fs::create_dir(tmp.path().join("d")).unwrap();
        for mode in [WriteMode::Truncate, WriteMode::Append, WriteMode::Resume(0)] {
            let r = s.open_write(&vp("d"), mode).await;
            assert_eq!(kind(r), StorageErrorKind::IsADirectory, "{mode:?}");
            let r = s.open_write(&VirtualPath::root(), mode).await;
            assert_eq!(kind(r), StorageErrorKind::IsADirectory, "{mode:?}");
        }
        let r = s.open_write(&vp("no/such/file"), WriteMode::Truncate).await;
        assert_eq!(kind(r), StorageErrorKind::NotFound);
    }

    #[tokio::test]
    async fn create_unique_picks_free_names() {
        let (tmp, s) = setup();
        fs::create_dir(tmp.path().join("up")).unwrap();
        fs::write(tmp.path().join("up/r.txt"), b"keep").unwrap();
        fs::create_dir(tmp.path().join("up/r.txt.2")).unwrap();

        let mut got = Vec::new();
        for i in 0..3u8 {
            let (path, mut w) = s.create_unique(&vp("up"), "r.txt").await.unwrap();
            w.write_all(&[b'0' + i]).await.unwrap();
            w.shutdown().await.unwrap();
            got.push(path.as_str().to_owned());
        }
        assert_eq!(got, ["/up/r.txt.1", "/up/r.txt.3", "/up/r.txt.4"]);
        assert_eq!(fs::read(tmp.path().join("up/r.txt")).unwrap(), b"keep");
        assert_eq!(fs::read(tmp.path().join("up/r.txt.1")).unwrap(), b"0");
        assert_eq!(fs::read(tmp.path().join("up/r.txt.4")).unwrap(), b"2");

        let (path, _) = s
            .create_unique(&VirtualPath::root(), "fresh")
            .await
            .unwrap();
        assert_eq!(path.as_str(), "/fresh");

        for bad in ["", ".", "..", "a/b", "a\0b"] {
            let r = s.create_unique(&VirtualPath::root(), bad).await;
            assert_eq!(kind(r), StorageErrorKind::InvalidName, "{bad:?}");
        }
        let r = s.create_unique(&vp("missing"), "x").await;
        assert_eq!(kind(r), StorageErrorKind::NotFound);
    }

    #[tokio::test]
    async fn create_unique_is_race_free() {
        let (tmp, s) = setup();
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let (path, mut w) = s.create_unique(&VirtualPath::root(), "same").await.unwrap();
                w.write_all(&[i]).await.unwrap();
                w.shutdown().await.unwrap();
                (path, i)
            }));
        }
        let mut seen = BTreeMap::new();
        for t in tasks {
            let (path, i) = t.await.unwrap();
            assert!(seen.insert(path.as_str().to_owned(), i).is_none());
        }
        for (path, i) in seen {
            assert_eq!(fs::read(tmp.path().join(&path[1..])).unwrap(), [i]);
        }
    }

    #[tokio::test]
    async fn remove_file_refuses_directories() {
        let (tmp, s) = setup();
        fs::write(tmp.path().join("f"), b"").unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        s.remove_file(&vp("f")).await.unwrap();
        assert!(!tmp.path().join("f").exists());
        assert_eq!(
            kind(s.remove_file(&vp("f")).await),
            StorageErrorKind::NotFound
        );
        assert_eq!(
            kind(s.remove_file(&vp("d")).await),
            StorageErrorKind::IsADirectory
        );
        assert_eq!(
            kind(s.remove_file(&VirtualPath::root()).await),
            StorageErrorKind::IsADirectory
        );
        assert!(tmp.path().join("d").is_dir());
    }

    #[tokio::test]
    async fn create_and_remove_dirs() {
        let (tmp, s) = setup();
        s.create_dir(&vp("d")).await.unwrap();
        assert!(tmp.path().join("d").is_dir());
        assert_eq!(
            kind(s.create_dir(&vp("d")).await),
            StorageErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(s.create_dir(&VirtualPath::root()).await),
            StorageErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(s.create_dir(&vp("x/y")).await),
            StorageErrorKind::NotFound
        );

        fs::write(tmp.path().join("d/f"), b"").unwrap();
        assert_eq!(
            kind(s.remove_dir(&vp("d")).await),
            StorageErrorKind::DirectoryNotEmpty
        );
        assert_eq!(
            kind(s.remove_dir(&vp("d/f")).await),
            StorageErrorKind::NotADirectory
        );
        fs::remove_file(tmp.path().join("d/f")).unwrap();
        s.remove_dir(&vp("d")).await.unwrap();
        assert!(!tmp.path().join("d").exists());
        assert_eq!(
            kind(s.remove_dir(&vp("d")).await),
            StorageErrorKind::NotFound
        );
        assert_eq!(
            kind(s.remove_dir(&VirtualPath::root()).await),
            StorageErrorKind::PermissionDenied
        );
        assert!(tmp.path().exists());
    }

    #[tokio::test]
    async fn rename_moves_and_replaces_files() {
        let (tmp, s) = setup();
        fs::write(tmp.path().join("a"), b"A").unwrap();
        fs::write(tmp.path().join("b"), b"B").unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();

        s.rename(&vp("a"), &vp("d/a2")).await.unwrap();
        assert_eq!(fs::read(tmp.path().join("d/a2")).unwrap(), b"A");
        assert!(!tmp.path().join("a").exists());

        s.rename(&vp("d/a2"), &vp("b")).await.unwrap();
        assert_eq!(fs::read(tmp.path().join("b")).unwrap(), b"A");

        assert_eq!(
            kind(s.rename(&vp("nope"), &vp("x")).await),
            StorageErrorKind::NotFound
        );
        assert_eq!(
            kind(s.rename(&vp("b"), &vp("d")).await),
            StorageErrorKind::IsADirectory
        );
        assert_eq!(
            kind(s.rename(&VirtualPath::root(), &vp("x")).await),
            StorageErrorKind::PermissionDenied
        );
        assert_eq!(
            kind(s.rename(&vp("b"), &VirtualPath::root()).await),
            StorageErrorKind::PermissionDenied
        );
        s.rename(&vp("d"), &vp("d2")).await.unwrap();
        assert!(tmp.path().join("d2").is_dir());
    }

    #[tokio::test]
    async fn set_mode_inside_the_jail_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        let s = LocalStorage::open(&root).unwrap();
        fs::write(root.join("f"), b"").unwrap();
        fs::create_dir(root.join("d")).unwrap();
        s.set_mode(&vp("f"), 0o600).await.unwrap();
        assert_eq!(mode(&root.join("f")), 0o600);
        s.set_mode(&vp("d"), 0o750).await.unwrap();
        assert_eq!(mode(&root.join("d")), 0o750);
        // A symlink inside the root is followed (chmod(2) does); one leading out is refused.
        std::os::unix::fs::symlink("f", root.join("link")).unwrap();
        s.set_mode(&vp("link"), 0o640).await.unwrap();
        assert_eq!(mode(&root.join("f")), 0o640);
        let outside = tmp.path().join("outside");
        fs::write(&outside, b"").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("rel")).unwrap();
        for escape in ["abs", "rel"] {
            assert_eq!(
                kind(s.set_mode(&vp(escape), 0o777).await),
                StorageErrorKind::PermissionDenied,
                "{escape}"
            );
        }
        assert_eq!(mode(&outside), 0o644);
        assert_eq!(
            kind(s.set_mode(&vp("nope"), 0o644).await),
            StorageErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn set_modified_on_files_and_dirs() {
        let (tmp, s) = setup();
        fs::write(tmp.path().join("f"), b"").unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        s.set_modified(&vp("f"), 1_000_000_000).await.unwrap();
        assert_eq!(
            s.metadata(&vp("f")).await.unwrap().modified,
            Some(1_000_000_000)
        );
        s.set_modified(&vp("d"), 1_234_567_890).await.unwrap();
        assert_eq!(
            s.metadata(&vp("d")).await.unwrap().modified,
            Some(1_234_567_890)
        );
        s.set_modified(&vp("f"), -86_400).await.unwrap();
        assert_eq!(s.metadata(&vp("f")).await.unwrap().modified, Some(-86_400));
        assert_eq!(
            kind(s.set_modified(&vp("nope"), 0).await),
            StorageErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn odd_names_round_trip() {
        let (tmp, s) = setup();
        let odd = [
            " spaced name ",
            "-rf",
            "--help",
            "ünïcødé 名前",
            "a\\b",
            "...",
            "#x;y",
        ];
        for name in odd {
            write_all(&s, name, WriteMode::Truncate, name.as_bytes()).await;
            assert_eq!(fs::read(tmp.path().join(name)).unwrap(), name.as_bytes());
            assert_eq!(read_all(&s, name, 0).await.0, name.as_bytes());
        }
        s.create_dir(&vp("-dir with space")).await.unwrap();
        s.rename(&vp("-rf"), &vp("-dir with space/-rf"))
            .await
            .unwrap();

        let list = list_all(&s, &VirtualPath::root()).await.unwrap();
        let mut expected: Vec<&str> = odd.iter().copied().filter(|n| *n != "-rf").collect();
        expected.push("-dir with space");
        expected.sort_unstable();
        assert_eq!(names(&list), expected);
        assert_eq!(
            names(&list_all(&s, &vp("-dir with space")).await.unwrap()),
            ["-rf"]
        );
    }

    #[cfg(unix)]
    mod jail {
        use std::os::unix::fs::symlink;
        use std::path::Path;

        use super::*;

        /// Names, contents and modification times of everything under `dir`.
        fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
            let mut out = BTreeMap::new();
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let md = fs::symlink_metadata(&path).unwrap();
                if md.is_dir() {
                    out.extend(snapshot(&path));
                    out.insert(path, (Vec::new(), md.modified().unwrap()));
                } else {
                    out.insert(
                        path.clone(),
                        (fs::read(&path).unwrap(), md.modified().unwrap()),
                    );
                }
            }
            out
        }

        /// A root with escaping symlinks next to an `outside` directory holding a secret.
        struct Jail {
            _tmp: tempfile::TempDir,
            root: PathBuf,
            outside: PathBuf,
            storage: LocalStorage,
        }

        fn jail() -> Jail {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("root");
            let outside = tmp.path().join("outside");
            fs::create_dir(&root).unwrap();
            fs::create_dir(&outside).unwrap();
            fs::create_dir(outside.join("sub")).unwrap();
            fs::write(outside.join("secret.txt"), b"secret").unwrap();

            fs::write(root.join("inside.txt"), b"inside").unwrap();
            fs::create_dir(root.join("dir")).unwrap();
            fs::write(root.join("dir/x"), b"x").unwrap();
            symlink("../outside", root.join("rel")).unwrap();
            symlink(&outside, root.join("abs")).unwrap();
            symlink("/etc", root.join("etc")).unwrap();
            symlink("hop2", root.join("chain")).unwrap();
            symlink("dir/../../outside", root.join("hop2")).unwrap();
            symlink("../outside/new.txt", root.join("dangling")).unwrap();
            symlink("../outside/secret.txt", root.join("secret_link")).unwrap();
            symlink("loop_b", root.join("loop_a")).unwrap();
            symlink("loop_a", root.join("loop_b")).unwrap();
            symlink("inside.txt", root.join("good_link")).unwrap();
            symlink("dir", root.join("good_dir_link")).unwrap();
            let storage = LocalStorage::open(&root).unwrap();
            Jail {
                _tmp: tmp,
                root,
                outside,
                storage,
            }
        }

        fn refused<T: core::fmt::Debug>(result: Result<T, StorageError>, what: &str) {
            let k = kind(result);
            assert!(
                matches!(
                    k,
                    StorageErrorKind::PermissionDenied | StorageErrorKind::NotFound
                ),
                "{what}: {k:?}"
            );
        }

        #[tokio::test]
        async fn escaping_symlinks_are_never_followed() {
            let j = jail();
            let s = &j.storage;
            let before = snapshot(&j.outside);
            for link in ["rel", "abs", "etc", "chain"] {
                let secret = vp(&format!("{link}/secret.txt"));
                let new = vp(&format!("{link}/new.txt"));
                let sub = vp(&format!("{link}/sub"));
                refused(s.metadata(&vp(link)).await, link);
                refused(s.metadata(&secret).await, link);
                refused(list_all(s, &vp(link)).await, link);
                refused(list_all(s, &sub).await, link);
                refused(s.open_read(&secret, 0).await, link);
                for mode in [
                    WriteMode::Truncate,
                    WriteMode::Append,
                    WriteMode::CreateNew,
                    WriteMode::Resume(0),
                    WriteMode::Resume(3),
                ] {
                    refused(s.open_write(&secret, mode).await, link);
                    refused(s.open_write(&new, mode).await, link);
                }
                refused(s.create_unique(&vp(link), "u").await, link);
                refused(s.remove_file(&secret).await, link);
                refused(s.create_dir(&vp(&format!("{link}/made"))).await, link);
                refused(s.remove_dir(&sub).await, link);
                refused(s.rename(&secret, &vp("stolen")).await, link);
                refused(s.rename(&vp("inside.txt"), &new).await, link);
                refused(s.rename(&vp("dir"), &sub).await, link);
                refused(s.set_modified(&secret, 0).await, link);
                refused(s.set_modified(&vp(link), 0).await, link);
            }
            for link in ["dangling", "secret_link"] {
                refused(s.metadata(&vp(link)).await, link);
                refused(s.open_read(&vp(link), 0).await, link);
                for mode in [WriteMode::Truncate, WriteMode::Append, WriteMode::Resume(0)] {
                    refused(s.open_write(&vp(link), mode).await, link);
                }
                refused(s.set_modified(&vp(link), 0).await, link);
            }
            // An exclusive create never follows the dangling link either.
            let r = s.open_write(&vp("dangling"), WriteMode::CreateNew).await;
            assert_eq!(kind(r), StorageErrorKind::AlreadyExists);

            assert_eq!(snapshot(&j.outside), before);
            assert!(!j.root.join("stolen").exists());
            assert_eq!(fs::read(j.root.join("inside.txt")).unwrap(), b"inside");
            assert!(j.root.join("dir").is_dir());
        }

        #[tokio::test]
        async fn special_files_are_refused_without_blocking() {
            let (tmp, s) = setup();
            let made = std::process::Command::new("mkfifo")
                .arg(tmp.path().join("fifo"))
                .status();
            if !made.is_ok_and(|status| status.success()) {
                return; // No mkfifo(1) here; nothing to test.
            }
            let denied = StorageErrorKind::PermissionDenied;
            assert_eq!(kind(s.open_read(&vp("fifo"), 0).await), denied);
            for mode in [WriteMode::Truncate, WriteMode::Append, WriteMode::Resume(0)] {
                assert_eq!(kind(s.open_write(&vp("fifo"), mode).await), denied);
            }
            let create_new = s.open_write(&vp("fifo"), WriteMode::CreateNew).await;
            assert_eq!(kind(create_new), StorageErrorKind::AlreadyExists);
            assert_eq!(kind(s.set_modified(&vp("fifo"), 0).await), denied);
            let (path, _) = s.create_unique(&VirtualPath::root(), "fifo").await.unwrap();
            assert_eq!(path.as_str(), "/fifo.1");
            assert_eq!(
                names(&list_all(&s, &VirtualPath::root()).await.unwrap()),
                ["fifo", "fifo.1"]
            );
        }

        #[tokio::test]
        async fn symlink_loops_fail_cleanly() {
            let j = jail();
            let s = &j.storage;
            assert_eq!(
                kind(s.metadata(&vp("loop_a")).await),
                StorageErrorKind::NotFound
            );
            assert_eq!(
                kind(s.open_read(&vp("loop_a"), 0).await),
                StorageErrorKind::NotFound
            );
            assert!(s
                .open_write(&vp("loop_a"), WriteMode::Truncate)
                .await
                .is_err());
            assert_eq!(
                kind(list_all(s, &vp("loop_a")).await),
                StorageErrorKind::NotFound
            );
        }

        #[tokio::test]
        async fn listing_shows_links_without_following() {
            let j = jail();
            let list = list_all(&j.storage, &VirtualPath::root()).await.unwrap();
            let kinds: BTreeMap<&str, FileKind> =
                list.iter().map(|i| (i.name.as_str(), i.kind)).collect();
            for link in [
                "rel",
                "abs",
                "etc",
                "chain",
                "dangling",
                "loop_a",
                "good_link",
            ] {
                assert_eq!(kinds.get(link), Some(&FileKind::Symlink), "{link}");
            }
            assert_eq!(kinds.get("dir"), Some(&FileKind::Dir));
            assert_eq!(kinds.get("inside.txt"), Some(&FileKind::File));
        }

        #[tokio::test]
        async fn symlinks_inside_the_root_work() {
            let j = jail();
            let s = &j.storage;
            let info = s.metadata(&vp("good_link")).await.unwrap();
            assert_eq!(
                (info.name.as_str(), info.kind, info.size),
                ("good_link", FileKind::File, 6)
            );
            assert_eq!(read_all(s, "good_link", 2).await, (b"side".to_vec(), 6));
            assert_eq!(
                names(&list_all(s, &vp("good_dir_link")).await.unwrap()),
                ["x"]
            );
            assert_eq!(
                names(&list_all(s, &vp("good_link")).await.unwrap()),
                ["good_link"]
            );

            write_all(s, "good_link", WriteMode::Append, b"!").await;
            assert_eq!(fs::read(j.root.join("inside.txt")).unwrap(), b"inside!");

            // Removing or renaming a link acts on the link, never on its target.
            let before = snapshot(&j.outside);
            s.remove_file(&vp("secret_link")).await.unwrap();
            s.rename(&vp("abs"), &vp("dir/abs2")).await.unwrap();
            s.remove_file(&vp("dir/abs2")).await.unwrap();
            s.remove_file(&vp("good_link")).await.unwrap();
            assert_eq!(snapshot(&j.outside), before);
            assert!(j.root.join("inside.txt").exists());
        }
    }
}
