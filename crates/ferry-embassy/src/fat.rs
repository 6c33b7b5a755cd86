//! FAT12/16/32 with long file names on a block device, as a [`Storage`].
//!
//! Built on `hadris-fat` (no_std, writes VFAT long names, allocates and frees cluster chains with
//! rollback on a full volume). The volume's bytes come from anything implementing `hadris-fat`'s
//! synchronous `Read + Write + Seek`: [`BlockIo`] adapts an `embedded-sdmmc` block device (an SD
//! card on SPI); on the host, a `std::fs::File` holding an image works as is.
//!
//! The volume is used synchronously inside the async trait methods: an SD card on SPI is a blocking
//! device anyway, and each call is short (one cluster or directory operation).
//!
//! Uploads that create or replace a file are written under a hidden temporary name
//! ([`TEMP_PREFIX`]) in the target's directory and renamed onto the target only when complete, so a
//! broken upload never leaves a truncated file under the target's name; a discarded one is deleted.
//! Its clusters are linked to the temporary entry as they are written, so the file system stays
//! consistent (`fsck.fat` clean) at every step, including when the volume fills up: the writer
//! gives back the clusters of the write that failed, and the upload is then removed.
//! Names the volume cannot hold (too long, characters FAT forbids, the reserved prefix) are
//! [`StorageErrorKind::InvalidName`] (553); a full volume is [`StorageErrorKind::NoSpace`] (452).

use alloc::string::String;
use core::cell::Cell;

use ferry_proto::listing::{DateTime, FileInfo, FileKind};
use ferry_proto::path::VirtualPath;
use ferry_proto::storage::{StorageErrorKind, WriteMode};
use hadris_fat::error::Error as FatError;
use hadris_fat::sync::dir::FatDirIter;
use hadris_fat::sync::read::FileReader;
use hadris_fat::sync::write::{FatVolumeWriteExt, FileWriter};
use hadris_fat::sync::{DirectoryEntry, SeekFrom};
use hadris_fat::sync::{FatDir, FatVolume, FatVolumeReadExt, FileEntry, Read, Seek, Write};
use hadris_fat::time::{FatDateTime, TimeProvider};

use crate::storage::{DirRead, FileRead, FileWrite, Storage};

mod block;
pub use block::BlockIo;

/// Names starting with this are upload temporaries: hidden from listings and refused in commands.
pub const TEMP_PREFIX: &str = ".ferry-upload-";

/// The bytes a volume lives on.
pub trait Volume: Read + Write + Seek {}
impl<T: Read + Write + Seek> Volume for T {}

/// A clock for FAT timestamps: seconds since the Unix epoch, from whatever the device knows.
#[derive(Debug)]
pub struct UnixClock(pub fn() -> i64);

impl TimeProvider for UnixClock {
    fn now(&self) -> FatDateTime {
        fat_time((self.0)())
    }
}

/// A mounted FAT volume.
pub struct FatStorage<D: Volume> {
    fs: FatVolume<D>,
    /// Numbers temporary upload names.
    uploads: Cell<u32>,
}

impl<D: Volume> FatStorage<D> {
    /// Mounts the FAT file system on `data`, stamping files with `clock`.
    ///
    /// # Errors
    /// [`StorageErrorKind::Io`] if `data` holds no FAT file system this crate can read.
    pub fn mount(data: D, clock: &'static UnixClock) -> Result<Self, StorageErrorKind> {
        let fs = FatVolume::builder(data)
            .time_provider(clock)
            .open()
            .map_err(|_| StorageErrorKind::Io)?;
        Ok(Self {
            fs,
            uploads: Cell::new(0),
        })
    }

    /// The directory at `path`.
    fn dir(&self, path: &VirtualPath) -> Result<FatDir<'_, D>, StorageErrorKind> {
        let mut dir = self.fs.root_dir();
        for name in path.components() {
            let entry = find(&dir, name)?;
            if !entry.is_directory() {
                return Err(StorageErrorKind::NotADirectory);
            }
            dir = self.fs.open_dir_entry(&entry).map_err(error)?;
        }
        Ok(dir)
    }

    /// The parent directory of `path` and the entry's name in it.
    fn parent<'p>(
        &self,
        path: &'p VirtualPath,
    ) -> Result<(FatDir<'_, D>, &'p str), StorageErrorKind> {
        let name = path.file_name().ok_or(StorageErrorKind::PermissionDenied)?;
        if name.starts_with(TEMP_PREFIX) {
            return Err(StorageErrorKind::InvalidName);
        }
        Ok((self.dir(&path.parent())?, name))
    }

    /// The entry at `path` (not the root).
    fn entry(&self, path: &VirtualPath) -> Result<FileEntry, StorageErrorKind> {
        let (dir, name) = self.parent(path)?;
        find(&dir, name)
    }

    fn temp_name(&self) -> String {
        let n = self.uploads.get().wrapping_add(1);
        self.uploads.set(n);
        let mut name = String::from(TEMP_PREFIX);
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        let mut v = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        name.extend(digits[i..].iter().map(|&d| char::from(d)));
        name
    }
}

fn find<D: Volume>(dir: &FatDir<'_, D>, name: &str) -> Result<FileEntry, StorageErrorKind> {
    dir.find(name)
        .map_err(error)?
        .ok_or(StorageErrorKind::NotFound)
}

/// The one mapping from `hadris-fat` errors to storage error kinds.
fn error(e: FatError) -> StorageErrorKind {
    match e {
        FatError::EntryNotFound => StorageErrorKind::NotFound,
        FatError::NotADirectory => StorageErrorKind::NotADirectory,
        FatError::NotAFile => StorageErrorKind::IsADirectory,
        FatError::AlreadyExists => StorageErrorKind::AlreadyExists,
        FatError::DirectoryNotEmpty => StorageErrorKind::DirectoryNotEmpty,
        FatError::InvalidFilename | FatError::InvalidShortFilename | FatError::InvalidPath => {
            StorageErrorKind::InvalidName
        }
        FatError::NoFreeSpace | FatError::DirectoryFull => StorageErrorKind::NoSpace,
        _ => StorageErrorKind::Io,
    }
}

fn fat_time(unix: i64) -> FatDateTime {
    let t = DateTime::from_unix(unix);
    match u16::try_from(t.year) {
        Ok(year) if (1980..=2107).contains(&year) => {
            FatDateTime::new(year, t.month, t.day, t.hour, t.minute, t.second)
        }
        _ => FatDateTime::EPOCH,
    }
}

fn unix_time(t: FatDateTime) -> Option<i64> {
    let (date, time, _) = t.to_raw();
    let dt = DateTime {
        year: 1980 + i64::from(date >> 9),
        month: ((date >> 5) & 0xf) as u8,
        day: (date & 0x1f) as u8,
        hour: (time >> 11) as u8,
        minute: ((time >> 5) & 0x3f) as u8,
        second: ((time & 0x1f) * 2) as u8,
    };
    dt.to_unix()
}

fn info(name: String, entry: &FileEntry) -> FileInfo {
    let dir = entry.is_directory();
    FileInfo {
        name,
        kind: if dir { FileKind::Dir } else { FileKind::File },
        size: if dir { 0 } else { entry.len() },
        modified: unix_time(entry.modified()),
        mode: if dir { 0o755 } else { 0o644 },
        nlink: 1,
        unique: None,
    }
}

/// Reads a file.
pub struct FatReader<'s, D: Volume>(FileReader<'s, D>);

impl<D: Volume> FileRead for FatReader<'_, D> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StorageErrorKind> {
        self.0.read(buf).map_err(error)
    }
}

/// Lists a directory, skipping `.`, `..`, volume labels and upload temporaries.
pub struct FatDirReader<'s, D: Volume>(FatDirIter<'s, D>);

impl<D: Volume> DirRead for FatDirReader<'_, D> {
    async fn next(&mut self) -> Option<Result<FileInfo, StorageErrorKind>> {
        loop {
            let entry: DirectoryEntry = match self.0.next_entry()? {
                Ok(e) => e,
                Err(e) => return Some(Err(error(e))),
            };
            let Some(file) = entry.as_entry() else {
                continue;
            };
            let name = file.name();
            if name == "." || name == ".." || name.starts_with(TEMP_PREFIX) {
                continue;
            }
            if file.attributes().bits() & 0x08 != 0 {
                // Volume label.
                continue;
            }
            return Some(Ok(info(String::from(name.as_ref()), file)));
        }
    }
}

/// An upload in progress.
pub struct FatWriter<'s, D: Volume> {
    storage: &'s FatStorage<D>,
    writer: Option<FileWriter<'s, D>>,
    /// The directory the file lives in.
    dir: FatDir<'s, D>,
    /// Temporary name to rename onto `target` when complete; `None` when writing in place.
    temp: Option<String>,
    target: String,
}

impl<D: Volume> FatWriter<'_, D> {
    /// Commits the writer's size and chain to its entry.
    fn close(&mut self) -> Result<(), StorageErrorKind> {
        match self.writer.take() {
            Some(w) => w.finish().map_err(error),
            None => Ok(()),
        }
    }
}

impl<D: Volume> FileWrite for FatWriter<'_, D> {
    async fn write(&mut self, buf: &[u8]) -> Result<(), StorageErrorKind> {
        let w = self.writer.as_mut().ok_or(StorageErrorKind::Io)?;
        let mut rest = buf;
        while !rest.is_empty() {
            let n = w.write(rest).map_err(error)?;
            if n == 0 {
                return Err(StorageErrorKind::NoSpace);
            }
            rest = &rest[n..];
        }
        Ok(())
    }

    async fn commit(mut self) -> Result<(), StorageErrorKind> {
        let closed = self.close();
        let Some(temp) = self.temp.take() else {
            return closed;
        };
        let result = closed.and_then(|()| {
            let entry = find(&self.dir, &temp)?;
            match find(&self.dir, &self.target) {
                Ok(old) if old.is_directory() => return Err(StorageErrorKind::IsADirectory),
                Ok(old) => self.storage.fs.delete(&old).map_err(error)?,
                Err(StorageErrorKind::NotFound) => {}
                Err(e) => return Err(e),
            }
            self.storage
                .fs
                .rename(&entry, &self.dir, &self.target)
                .map(|_| ())
                .map_err(error)
        });
        if result.is_err() {
            if let Ok(entry) = find(&self.dir, &temp) {
                let _ = self.storage.fs.delete(&entry);
            }
        }
        result
    }

    async fn discard(mut self) {
        let _ = self.close();
        if let Some(temp) = self.temp.take() {
            if let Ok(entry) = find(&self.dir, &temp) {
                let _ = self.storage.fs.delete(&entry);
            }
        }
    }
}

impl<D: Volume> Storage for FatStorage<D> {
    type Reader<'s>
        = FatReader<'s, D>
    where
        Self: 's;
    type Writer<'s>
        = FatWriter<'s, D>
    where
        Self: 's;
    type Dir<'s>
        = FatDirReader<'s, D>
    where
        Self: 's;

    async fn metadata(&self, path: &VirtualPath) -> Result<FileInfo, StorageErrorKind> {
        if path.is_root() {
            return Ok(FileInfo {
                name: String::new(),
                kind: FileKind::Dir,
                size: 0,
                modified: None,
                mode: 0o755,
                nlink: 1,
                unique: None,
            });
        }
        let entry = self.entry(path)?;
        Ok(info(String::new(), &entry))
    }

    async fn read_dir(&self, path: &VirtualPath) -> Result<Self::Dir<'_>, StorageErrorKind> {
        Ok(FatDirReader(self.dir(path)?.entries()))
    }

    async fn open_read(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> Result<(Self::Reader<'_>, u64), StorageErrorKind> {
        let entry = self.entry(path)?;
        if entry.is_directory() {
            return Err(StorageErrorKind::IsADirectory);
        }
        let size = entry.len();
        if offset > size {
            return Err(StorageErrorKind::InvalidOffset);
        }
        let mut reader = self.fs.read_file(&entry).map_err(error)?;
        if offset > 0 {
            reader.seek(SeekFrom::Start(offset)).map_err(error)?;
        }
        Ok((FatReader(reader), size))
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Self::Writer<'_>, StorageErrorKind> {
        let (dir, name) = self.parent(path)?;
        let existing = match find(&dir, name) {
            Ok(e) if e.is_directory() => return Err(StorageErrorKind::IsADirectory),
            Ok(e) => Some(e),
            Err(StorageErrorKind::NotFound) => None,
            Err(e) => return Err(e),
        };
        let in_place = |entry: &FileEntry, append: bool| {
            let writer = if append {
                FileWriter::new_append(&self.fs, entry)
            } else {
                FileWriter::new(&self.fs, entry)
            };
            writer.map_err(error)
        };
        let (writer, temp) = match (mode, existing) {
            (WriteMode::CreateNew, Some(_)) => return Err(StorageErrorKind::AlreadyExists),
            (WriteMode::Append, Some(e)) => (in_place(&e, true)?, None),
            (WriteMode::Resume(_) | WriteMode::Extend(_), Some(e)) => {
                let n = mode.kept(Some(e.len()))?;
                let n = usize::try_from(n).map_err(|_| StorageErrorKind::InvalidOffset)?;
                self.fs.truncate(&e, n).map_err(error)?;
                let e = find(&dir, name)?;
                (in_place(&e, true)?, None)
            }
            (WriteMode::Resume(n) | WriteMode::Extend(n), None) if n > 0 => {
                return Err(StorageErrorKind::InvalidOffset)
            }
            (WriteMode::Append | WriteMode::Resume(_) | WriteMode::Extend(_), None) => {
                // Nothing to keep: a new file, written in place.
                let e = self.fs.create_file(&dir, name).map_err(error)?;
                (in_place(&e, false)?, None)
            }
            (WriteMode::Truncate | WriteMode::CreateNew, _) => {
                let temp = self.temp_name();
                let e = self.fs.create_file(&dir, &temp).map_err(error)?;
                (in_place(&e, false)?, Some(temp))
            }
        };
        Ok(FatWriter {
            storage: self,
            writer: Some(writer),
            dir,
            temp,
            target: String::from(name),
        })
    }

    async fn create_dir(&self, path: &VirtualPath) -> Result<(), StorageErrorKind> {
        let (dir, name) = self.parent(path)?;
        self.fs.create_dir(&dir, name).map(|_| ()).map_err(error)
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageErrorKind> {
        let entry = self.entry(path)?;
        if !entry.is_directory() {
            return Err(StorageErrorKind::NotADirectory);
        }
        self.fs.delete(&entry).map_err(error)
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageErrorKind> {
        let entry = self.entry(path)?;
        if entry.is_directory() {
            return Err(StorageErrorKind::IsADirectory);
        }
        self.fs.delete(&entry).map_err(error)
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageErrorKind> {
        let entry = self.entry(from)?;
        let (dest, name) = self.parent(to)?;
        match find(&dest, name) {
            Ok(old) if old.is_directory() || entry.is_directory() => {
                return Err(StorageErrorKind::AlreadyExists)
            }
            Ok(old) => {
                if from == to {
                    return Ok(());
                }
                self.fs.delete(&old).map_err(error)?;
            }
            Err(StorageErrorKind::NotFound) => {}
            Err(e) => return Err(e),
        }
        // The entry may have moved if the delete compacted nothing; look it up again to be safe.
        let entry = self.entry(from)?;
        self.fs
            .rename(&entry, &dest, name)
            .map(|_| ())
            .map_err(error)
    }

    async fn set_modified(
        &self,
        path: &VirtualPath,
        unix_secs: i64,
    ) -> Result<(), StorageErrorKind> {
        let entry = self.entry(path)?;
        self.fs
            .set_times(&entry, Some(fat_time(unix_secs)), None, None)
            .map_err(error)
    }
}
