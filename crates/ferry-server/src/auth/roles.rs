//! Permission names and roles of the users file: the words an administrator writes for a [`Permissions`]
//! set.

use std::fmt;
use std::str::FromStr;

use ferry_proto::session::Permissions;
use serde::de::{self, Deserializer};
use serde::Deserialize;
/// The permission names of the users file, in their canonical order.
pub const PERMISSION_NAMES: [(&str, Permissions); 10] = [
    ("list", Permissions::LIST),
    ("read", Permissions::READ),
    ("write", Permissions::WRITE),
    ("overwrite", Permissions::OVERWRITE),
    ("append", Permissions::APPEND),
    ("delete", Permissions::DELETE),
    ("rename", Permissions::RENAME),
    ("mkdir", Permissions::MKDIR),
    ("rmdir", Permissions::RMDIR),
    ("chmod", Permissions::CHMOD),
];

/// The permission called `name` in the users file, if there is one.
pub fn permission_by_name(name: &str) -> Option<Permissions> {
    PERMISSION_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
}

/// The users-file names of the permissions in `set`, in canonical order.
pub fn permission_names(set: Permissions) -> Vec<&'static str> {
    PERMISSION_NAMES
        .iter()
        .filter(|(_, p)| set.contains(*p))
        .map(|(n, _)| *n)
        .collect()
}

/// A permission preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// `read-only`: list and download.
    ReadOnly,
    /// `upload-only`, a drop box: upload new files and create directories; no listing, no downloads, no
    /// changes to existing files.
    UploadOnly,
    /// `read-write`: the nine file permissions (not `chmod`).
    ReadWrite,
    /// `admin`: every permission, `chmod` (SITE CHMOD) included, and any that later versions add (for
    /// example administrative SITE commands), which `read-write` will not get.
    Admin,
}

impl Role {
    /// Every role, in the order documented.
    pub const ALL: [Self; 4] = [
        Self::ReadOnly,
        Self::UploadOnly,
        Self::ReadWrite,
        Self::Admin,
    ];

    /// The role's name in the users file.
    pub fn name(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::UploadOnly => "upload-only",
            Self::ReadWrite => "read-write",
            Self::Admin => "admin",
        }
    }

    /// What the role may do.
    pub fn permissions(self) -> Permissions {
        match self {
            Self::ReadOnly => Permissions::READ_ONLY,
            Self::UploadOnly => Permissions::WRITE | Permissions::MKDIR,
            Self::ReadWrite => Permissions::ALL,
            Self::Admin => Permissions::ADMIN,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?} (expected read-only, upload-only, read-write or admin)")
            })
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}
