//! Virtual folders: directories of the host mounted into a user's tree (users-file key `folders`).
//!
//! ```toml
//! folders = [{ path = "/shared", source = "/srv/ftp/shared", permissions = ["list", "read"] }]
//! ```
//!
//! `path` is where the folder appears (absolute, not `/`, normalised); `source` is the directory it
//! shows (relative: inside the server root, opened through the root's jail; absolute: as written);
//! `permissions` replace the account's inside the folder (default: the account's). Each folder is a
//! jail of its own, so neither `..` nor a symlink leads out of it. No folder may lie inside another
//! (or repeat one): a path belongs to at most one folder, which keeps permissions and renames simple.

use std::path::PathBuf;

use ferry_proto::path::VirtualPath;
use ferry_proto::session::{FolderGrant, Permissions};
use serde::Deserialize;

use super::users::permission_by_name;

/// One virtual folder of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folder {
    /// Where the folder appears in the user's tree.
    pub path: VirtualPath,
    /// The directory it shows: relative to the server root, or absolute on the host.
    pub source: PathBuf,
    /// What the user may do inside it.
    pub permissions: Permissions,
}

impl Folder {
    /// The engine's view of this folder (its place and permissions).
    pub fn grant(&self) -> FolderGrant {
        FolderGrant {
            path: self.path.clone(),
            permissions: self.permissions,
        }
    }
}

/// The most folders one account may have.
pub const MAX_FOLDERS: usize = 64;

/// A folder as written in the users file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFolder {
    path: String,
    source: String,
    #[serde(default)]
    permissions: Option<Vec<String>>,
}

/// Checks the `folders` of an account whose own permissions are `account`. An account may have a
/// quota too: it covers the home, and the folders lie outside it ([`crate::quota`]).
pub(super) fn folders_of(raw: &[RawFolder], account: Permissions) -> Result<Vec<Folder>, String> {
    if raw.len() > MAX_FOLDERS {
        return Err(format!("at most {MAX_FOLDERS} folders per account"));
    }
    let mut out: Vec<Folder> = Vec::with_capacity(raw.len());
    for f in raw {
        if !f.path.starts_with('/') {
            return Err(format!("folder path {:?} must be absolute", f.path));
        }
        let path = VirtualPath::root()
            .join(&f.path)
            .map_err(|e| format!("folder path {:?}: {e}", f.path))?;
        if path.is_root() || path.as_str() != f.path.trim_end_matches('/') {
            return Err(format!(
                "folder path {:?} must be a normalised path other than \"/\"",
                f.path
            ));
        }
        if f.source.is_empty() || f.source.contains('\0') {
            return Err(format!(
                "folder {:?}: source must be a non-empty path",
                f.path
            ));
        }
        let permissions = match &f.permissions {
            None => account,
            Some(names) => {
                let mut p = Permissions::NONE;
                for n in names {
                    p = p | permission_by_name(n)
                        .ok_or_else(|| format!("folder {:?}: unknown permission {n:?}", f.path))?;
                }
                p
            }
        };
        if let Some(other) = out
            .iter()
            .find(|o| o.path.starts_with(&path) || path.starts_with(&o.path))
        {
            return Err(format!(
                "folders {:?} and {:?} overlap (one folder may not lie inside another)",
                other.path.as_str(),
                path.as_str()
            ));
        }
        out.push(Folder {
            path,
            source: PathBuf::from(&f.source),
            permissions,
        });
    }
    Ok(out)
}
