//! [`Mounted`]: a local home with virtual folders mounted into it (see [`crate::auth::folders`]).
//!
//! Every path goes to exactly one jail: the folder whose mount point it is or lies below (the longest
//! such mount point), with that prefix stripped, or else the home. Each folder is a [`LocalStorage`]
//! of its own (a `cap-std` directory), so `..` and symlinks inside a folder stay inside it exactly as
//! they stay inside a home. Listing a directory of the home that holds a mount point adds the folder
//! as a directory entry (and hides an entry of the home by that name). A rename between two jails is
//! refused ([`StorageErrorKind::PermissionDenied`]); the engine refuses it earlier with `553`.

use ferry_proto::listing::{FileInfo, FileKind};
use ferry_proto::path::VirtualPath;

use super::{Lister, LocalLister, LocalStorage, Storage, StorageError, StorageErrorKind};

/// A home with folders mounted into it; each part a jail of its own.
#[derive(Debug, Clone)]
pub struct Mounted {
    home: LocalStorage,
    folders: Vec<(VirtualPath, LocalStorage)>,
}

impl Mounted {
    /// `home` with each `(mount point, storage)` of `folders` shown at its mount point.
    pub fn new(home: LocalStorage, folders: Vec<(VirtualPath, LocalStorage)>) -> Self {
        Self { home, folders }
    }

    /// The index of the folder holding `path` (the longest mount point it is or lies below).
    fn folder_index(&self, path: &VirtualPath) -> Option<usize> {
        self.folders
            .iter()
            .enumerate()
            .filter(|(_, (m, _))| !m.is_root() && path.starts_with(m))
            .max_by_key(|(_, (m, _))| m.as_str().len())
            .map(|(i, _)| i)
    }

    /// The jail that holds `path`, the path inside it, and the mount point (`None` for the home).
    pub(crate) fn route(
        &self,
        path: &VirtualPath,
    ) -> Result<(&LocalStorage, VirtualPath, Option<&VirtualPath>), StorageError> {
        let Some((mount, storage)) = self.folder_index(path).and_then(|i| self.folders.get(i))
        else {
            return Ok((&self.home, path.clone(), None));
        };
        let rest = path.as_str().get(mount.as_str().len()..).unwrap_or("");
        let inner = VirtualPath::root()
            .join(rest)
            .map_err(|e| StorageError::new(StorageErrorKind::InvalidName, e.to_string()))?;
        Ok((storage, inner, Some(mount)))
    }

    /// The virtual path of `inner`, a path inside the jail mounted at `mount`.
    pub(crate) fn outer(
        mount: Option<&VirtualPath>,
        inner: VirtualPath,
    ) -> Result<VirtualPath, StorageError> {
        match mount {
            None => Ok(inner),
            Some(m) if inner.is_root() => Ok(m.clone()),
            Some(m) => m
                .join(inner.relative())
                .map_err(|e| StorageError::new(StorageErrorKind::InvalidName, e.to_string())),
        }
    }

    /// Metadata of `path`; a mount point is named after itself, not after its source.
    pub(crate) async fn metadata(&self, path: &VirtualPath) -> Result<FileInfo, StorageError> {
        let (s, inner, mount) = self.route(path)?;
        let mut info = s.metadata(&inner).await?;
        if let Some(m) = mount.filter(|_| inner.is_root()) {
            m.file_name().unwrap_or("").clone_into(&mut info.name);
        }
        Ok(info)
    }

    /// Lists `path`: a folder's own listing inside one, else the home's plus the folders mounted in
    /// this directory.
    pub(crate) async fn list(&self, path: &VirtualPath) -> Result<MountedLister, StorageError> {
        let (s, inner, mount) = self.route(path)?;
        let lister = s.list(&inner).await?;
        if mount.is_some() {
            return Ok(MountedLister {
                extra: Vec::new(),
                shadows: Vec::new(),
                inner: lister,
            });
        }
        let (mut extra, mut shadows) = (Vec::new(), Vec::new());
        for (m, storage) in &self.folders {
            if m.parent() != *path {
                continue;
            }
            shadows.push(m.file_name().unwrap_or("").to_owned());
            // A source that went missing is left out of the listing (entering it fails with 550).
            if let Ok(mut info) = storage.metadata(&VirtualPath::root()).await {
                m.file_name().unwrap_or("").clone_into(&mut info.name);
                info.kind = FileKind::Dir;
                extra.push(info);
            }
        }
        Ok(MountedLister {
            extra,
            shadows,
            inner: lister,
        })
    }

    /// Renames inside one jail; across jails refused.
    pub(crate) async fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
    ) -> Result<(), StorageError> {
        let (a, from_inner, from_mount) = self.route(from)?;
        let (_, to_inner, to_mount) = self.route(to)?;
        if from_mount != to_mount {
            return Err(StorageError::new(
                StorageErrorKind::PermissionDenied,
                "cannot rename across folders",
            ));
        }
        a.rename(&from_inner, &to_inner).await
    }
}

/// The lister of a [`Mounted`] storage: the folders mounted in the directory first, then the
/// directory's own entries without those names.
#[derive(Debug)]
pub struct MountedLister {
    extra: Vec<FileInfo>,
    shadows: Vec<String>,
    inner: LocalLister,
}

impl Lister for MountedLister {
    async fn next_page(&mut self) -> Result<Option<Vec<FileInfo>>, StorageError> {
        if !self.extra.is_empty() {
            return Ok(Some(std::mem::take(&mut self.extra)));
        }
        loop {
            let Some(mut page) = self.inner.next_page().await? else {
                return Ok(None);
            };
            page.retain(|e| !self.shadows.contains(&e.name));
            if !page.is_empty() {
                return Ok(Some(page));
            }
        }
    }
}
