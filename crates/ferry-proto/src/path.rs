//! Virtual paths: what a client names, normalised and confined to the session's root.

use alloc::string::String;
use core::fmt;

/// Why a client-supplied path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// The path contains a NUL byte, which no file system accepts.
    Nul,
    /// The path is longer than [`VirtualPath::MAX_LEN`].
    TooLong,
    /// The path contains a control character other than NUL (U+0001 to U+001F, such as CR, LF or
    /// TAB, or DEL U+007F): no listing could carry such a name (see
    /// [`listing::is_listable`](crate::listing::is_listable)), so none is created or looked up.
    ControlCharacter,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nul => f.write_str("path contains a NUL byte"),
            Self::TooLong => f.write_str("path too long"),
            Self::ControlCharacter => f.write_str("path contains a control character"),
        }
    }
}

/// The position of the last `/` in `path` (a byte search: smaller code than `str::rfind`).
fn last_slash(path: &str) -> Option<usize> {
    path.bytes().rposition(|b| b == b'/')
}

/// An absolute, normalised path inside the session's root, such as `/` or `/photos/a b.jpg`.
///
/// Invariants, upheld by every constructor: it starts with `/`, has no empty, `.` or `..` components,
/// no trailing `/` (except the root itself) and no NUL byte, other control character or DEL. `..` at
/// the root stays at the root, so a `VirtualPath` can never name anything above `/`. Components are
/// kept verbatim otherwise: spaces, leading dashes, backslashes and non-ASCII letters are ordinary
/// name characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VirtualPath(String);

impl VirtualPath {
    /// The longest path accepted, in bytes (Linux's `PATH_MAX`).
    pub const MAX_LEN: usize = 4096;

    /// The root, `/`.
    pub fn root() -> Self {
        Self(String::from("/"))
    }

    /// Resolves a client argument against this directory: absolute arguments start from the root,
    /// relative ones from `self`; `.` and empty components are dropped and `..` removes one component
    /// (never rising above the root).
    ///
    /// # Errors
    /// [`PathError::Nul`] if `arg` contains NUL, [`PathError::ControlCharacter`] if it contains another
    /// control character or DEL, [`PathError::TooLong`] if the result would exceed [`Self::MAX_LEN`].
    pub fn join(&self, arg: &str) -> Result<Self, PathError> {
        if arg.contains('\0') {
            return Err(PathError::Nul);
        }
        // The one place every client-supplied name passes: a name no listing can carry (a lone CR
        // survives the end-of-line handling, `MKD bad\rname`) is never created, renamed to or looked up.
        if !crate::listing::is_listable(arg) {
            return Err(PathError::ControlCharacter);
        }
        let mut out = if arg.starts_with('/') {
            String::from("/")
        } else {
            self.0.clone()
        };
        for part in arg.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if let Some(i) = last_slash(&out) {
                        out.truncate(i.max(1));
                    }
                }
                name => {
                    if out.len() > 1 {
                        out.push('/');
                    }
                    out.push_str(name);
                    if out.len() > Self::MAX_LEN {
                        return Err(PathError::TooLong);
                    }
                }
            }
        }
        Ok(Self(out))
    }

    /// The path as text, always starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `/`.
    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    /// The path relative to the root, without the leading `/` (`""` for the root itself).
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// The parent directory (the root is its own parent).
    pub fn parent(&self) -> Self {
        match last_slash(&self.0) {
            Some(0) | None => Self::root(),
            Some(i) => Self(String::from(&self.0[..i])),
        }
    }

    /// The last component, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            last_slash(&self.0).map(|i| &self.0[i + 1..])
        }
    }

    /// The components from the root down (none for the root).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.relative().split('/').filter(|c| !c.is_empty())
    }

    /// True if `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &VirtualPath) -> bool {
        if other.is_root() {
            return true;
        }
        self.0 == other.0
            || (self.0.starts_with(other.as_str())
                && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Default for VirtualPath {
    fn default() -> Self {
        Self::root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> VirtualPath {
        VirtualPath::root().join(s).unwrap_or_default()
    }

    #[test]
    fn normalises() {
        assert_eq!(p("a/./b//c/").as_str(), "/a/b/c");
        assert_eq!(p("a/b/../c").as_str(), "/a/c");
        assert_eq!(p("../../etc/passwd").as_str(), "/etc/passwd");
        assert_eq!(p("/").as_str(), "/");
        assert_eq!(p("").as_str(), "/");
        assert_eq!(p("a/..").as_str(), "/");
        assert_eq!(p("..").as_str(), "/");
    }

    #[test]
    fn relative_to_cwd() {
        let cwd = p("/x/y");
        assert_eq!(cwd.join("z").map(|v| v.0).ok().as_deref(), Some("/x/y/z"));
        assert_eq!(cwd.join("..").map(|v| v.0).ok().as_deref(), Some("/x"));
        assert_eq!(cwd.join("/q").map(|v| v.0).ok().as_deref(), Some("/q"));
        assert_eq!(
            cwd.join("../../../..").map(|v| v.0).ok().as_deref(),
            Some("/")
        );
    }

    #[test]
    fn keeps_odd_names_verbatim() {
        assert_eq!(p(" a b ").as_str(), "/ a b ");
        assert_eq!(p("-rf").as_str(), "/-rf");
        assert_eq!(p("a\\b").as_str(), "/a\\b");
        assert_eq!(p("ünï").as_str(), "/ünï");
        assert_eq!(p("...").as_str(), "/...");
    }

    #[test]
    fn refuses_nul_and_long() {
        assert_eq!(VirtualPath::root().join("a\0b"), Err(PathError::Nul));
        let long = "a/".repeat(3000);
        assert_eq!(VirtualPath::root().join(&long), Err(PathError::TooLong));
    }

    #[test]
    fn refuses_control_characters_anywhere() {
        for bad in [
            "bad\rname",
            "bad\nname",
            "tab\t",
            "\u{1b}[0m",
            "del\u{7f}",
            "d\r/x",
            "/a/\u{1}",
        ] {
            assert_eq!(
                VirtualPath::root().join(bad),
                Err(PathError::ControlCharacter),
                "{bad:?}"
            );
        }
        // Everything else is an ordinary name character.
        for good in [" a ", "-1", "back\\slash", "ünï ✓", "\u{85}", "a*b?[c]"] {
            assert!(VirtualPath::root().join(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(p("/a/b").parent().as_str(), "/a");
        assert_eq!(p("/a").parent().as_str(), "/");
        assert_eq!(VirtualPath::root().parent().as_str(), "/");
        assert_eq!(p("/a/b").file_name(), Some("b"));
        assert_eq!(VirtualPath::root().file_name(), None);
        assert!(p("/a/b").starts_with(&p("/a")));
        assert!(!p("/ab").starts_with(&p("/a")));
    }

    proptest! {
        #[test]
        fn never_escapes_and_is_normal(cwd in "[a-z./]{0,20}", arg in "(\\.\\.|\\.|/|[a-zA-Z \\\\-]{1,3}){0,12}") {
            let base = VirtualPath::root().join(&cwd).unwrap_or_default();
            if let Ok(v) = base.join(&arg) {
                let s = v.as_str();
                prop_assert!(s.starts_with('/'));
                prop_assert!(s == "/" || !s.ends_with('/'));
                for c in v.components() {
                    prop_assert!(c != "." && c != ".." && !c.is_empty());
                }
                // Normal form is a fixed point.
                prop_assert_eq!(VirtualPath::root().join(s).ok(), Some(v.clone()));
                prop_assert!(v.starts_with(&VirtualPath::root()));
            }
        }
    }
}
