//! Permission checks that need a storage round trip (RNTO onto an existing name), limit refusals at
//! login, and the MLST `perm` fact of each grant.

use super::*;
use crate::listing::{FileInfo, FileKind};
use crate::storage::StorageErrorKind;
use alloc::sync::Arc;

use alloc::string::ToString;
use core::net::{Ipv4Addr, SocketAddrV4};

const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 40000));
const LOCAL: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 21));

fn vp(s: &str) -> VirtualPath {
    VirtualPath::root().join(s).expect("test paths are valid")
}

fn info(name: &str, kind: FileKind) -> FileInfo {
    FileInfo {
        name: name.to_string(),
        kind,
        size: 1,
        modified: Some(0),
        mode: 0o644,
        nlink: 1,
        unique: None,
    }
}

/// A minimal driver: a session at time zero whose output is drained as reply codes and actions.
struct T(Session<Arc<Config>>);

impl T {
    fn new() -> Self {
        let mut t = Self(Session::new(
            Arc::new(Config::default()),
            Duration::ZERO,
            LOCAL,
            PEER,
        ));
        assert_eq!(t.codes(), [220]);
        t
    }

    fn logged_in(permissions: Permissions) -> Self {
        Self::with_grant(Grant::new(permissions))
    }

    fn with_grant(grant: Grant) -> Self {
        let mut t = Self::new();
        t.send("USER u");
        assert_eq!(t.codes(), [331]);
        t.send("PASS p");
        assert!(matches!(t.action(), Action::Authenticate { .. }));
        t.complete(Completion::Auth(Ok(grant)));
        assert_eq!(t.codes(), [230]);
        t
    }

    fn send(&mut self, line: &str) {
        let data = alloc::format!("{line}\r\n");
        assert_eq!(
            self.0.handle_input(Duration::ZERO, data.as_bytes()),
            data.len()
        );
    }

    fn complete(&mut self, c: Completion) {
        self.0.handle_completion(Duration::ZERO, c);
    }

    fn out(&mut self) -> Vec<Output> {
        let mut v = Vec::new();
        while let Some(o) = self.0.poll_output() {
            v.push(o);
        }
        v
    }

    fn codes(&mut self) -> Vec<u16> {
        self.out()
            .into_iter()
            .map(|o| match o {
                Output::Reply(r) => r.code().as_u16(),
                Output::Action(a) => panic!("expected replies only, got {a:?}"),
                Output::Command { verb, .. } => panic!("commands are not reported here: {verb}"),
            })
            .collect()
    }

    fn replies(&mut self) -> Vec<Reply> {
        self.out()
            .into_iter()
            .map(|o| match o {
                Output::Reply(r) => r,
                Output::Action(a) => panic!("expected replies only, got {a:?}"),
                Output::Command { verb, .. } => panic!("commands are not reported here: {verb}"),
            })
            .collect()
    }

    fn action(&mut self) -> Action {
        let out = self.out();
        match out.as_slice() {
            [Output::Action(a)] => a.clone(),
            _ => panic!("expected one action, got {out:?}"),
        }
    }

    fn fs(&mut self, line: &str) -> FsRequest {
        self.send(line);
        match self.action() {
            Action::Fs(r) => r,
            a => panic!("{line}: expected an Fs action, got {a:?}"),
        }
    }

    /// RNFR `from`, answered with an existing file.
    fn rnfr(&mut self, from: &str) {
        assert_eq!(
            self.fs(&alloc::format!("RNFR {from}")),
            FsRequest::Metadata(vp(from))
        );
        self.complete(Completion::Fs(Ok(FsResponse::Metadata(info(
            from,
            FileKind::File,
        )))));
        assert_eq!(self.codes(), [350]);
    }
}

#[test]
fn rnto_without_overwrite_checks_the_destination_first() {
    let rename_only = Permissions::RENAME;
    // Destination missing: the rename goes ahead.
    let mut t = T::logged_in(rename_only);
    t.rnfr("a");
    assert_eq!(t.fs("RNTO b"), FsRequest::Metadata(vp("b")));
    t.complete(Completion::Fs(Err(StorageErrorKind::NotFound)));
    assert_eq!(
        t.action(),
        Action::Fs(FsRequest::Rename {
            from: vp("a"),
            to: vp("b")
        })
    );
    t.complete(Completion::Fs(Ok(FsResponse::Done)));
    assert_eq!(t.codes(), [250]);

    // Destination exists: 550 and no rename.
    t.rnfr("a");
    assert_eq!(t.fs("RNTO b"), FsRequest::Metadata(vp("b")));
    t.complete(Completion::Fs(Ok(FsResponse::Metadata(info(
        "b",
        FileKind::File,
    )))));
    let r = t.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].code().as_u16(), 550);
    assert!(
        r[0].lines().collect::<Vec<_>>()[0].contains("may not be overwritten"),
        "{r:?}"
    );
    // The session reads commands again.
    t.send("NOOP");
    assert_eq!(t.codes(), [200]);

    // Any other error while looking is reported as such.
    t.rnfr("a");
    t.fs("RNTO b");
    t.complete(Completion::Fs(Err(StorageErrorKind::PermissionDenied)));
    assert_eq!(t.codes(), [550]);
}

#[test]
fn rnto_with_overwrite_renames_at_once() {
    let mut t = T::logged_in(Permissions::RENAME | Permissions::OVERWRITE);
    t.rnfr("a");
    assert_eq!(
        t.fs("RNTO b"),
        FsRequest::Rename {
            from: vp("a"),
            to: vp("b")
        }
    );
}

#[test]
fn rnto_without_rename_is_denied_before_any_storage_action() {
    let mut t = T::logged_in(Permissions::ALL);
    t.rnfr("a");
    // A new login with fewer rights cannot reuse the pending RNFR, and RNFR itself is refused.
    let mut t = T::logged_in(Permissions::from_bits(
        Permissions::ALL.bits() & !Permissions::RENAME.bits(),
    ));
    t.send("RNFR a");
    assert_eq!(t.codes(), [550]);
    t.send("RNTO b");
    assert_eq!(t.codes(), [503]);
}

#[test]
fn too_many_sessions_is_an_immediate_530_that_does_not_count() {
    let config = Config {
        max_failed_logins: 1,
        ..Config::default()
    };
    let mut t = T(Session::new(Arc::new(config), Duration::ZERO, LOCAL, PEER));
    t.codes();
    for _ in 0..3 {
        t.send("USER u");
        assert_eq!(t.codes(), [331]);
        t.send("PASS p");
        t.action();
        t.complete(Completion::Auth(Err(AuthError::TooManySessions)));
        let r = t.replies();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].code().as_u16(), 530);
        assert!(r[0].lines().collect::<Vec<_>>()[0].contains("Too many sessions"));
    }
    // Still open (max_failed_logins is 1), and a later login works.
    t.send("USER u");
    t.send("PASS p");
    t.out();
    t.complete(Completion::Auth(Ok(Grant::new(Permissions::ALL))));
    assert_eq!(t.codes(), [230]);
}

#[test]
fn mlst_perm_facts_follow_the_grant() {
    let p = |bits: &[Permissions]| bits.iter().fold(Permissions::NONE, |a, b| a | *b);
    // The letters as a string.
    trait Perm {
        fn perm(self, dir: bool) -> String;
    }
    impl Perm for Permissions {
        fn perm(self, dir: bool) -> String {
            self.mlst_perm(dir).collect()
        }
    }
    assert_eq!(Permissions::ALL.perm(false), "adfrw");
    assert_eq!(Permissions::ALL.perm(true), "cdeflmp");
    assert_eq!(Permissions::READ_ONLY.perm(false), "r");
    assert_eq!(Permissions::READ_ONLY.perm(true), "el");
    assert_eq!(Permissions::NONE.perm(true), "e");
    assert_eq!(p(&[Permissions::WRITE]).perm(true), "ce");
    assert_eq!(p(&[Permissions::WRITE]).perm(false), "");
    assert_eq!(p(&[Permissions::OVERWRITE]).perm(false), "w");
    assert_eq!(p(&[Permissions::APPEND]).perm(false), "a");
    // Removing a directory is RMDIR; purging its contents is DELETE.
    assert_eq!(p(&[Permissions::RMDIR]).perm(true), "de");
    assert_eq!(p(&[Permissions::DELETE]).perm(true), "ep");
    assert_eq!(p(&[Permissions::DELETE]).perm(false), "d");

    // MLST itself reports the logged-in user's rights.
    let mut t = T::logged_in(Permissions::READ_ONLY);
    assert_eq!(t.fs("MLST f"), FsRequest::Metadata(vp("f")));
    t.complete(Completion::Fs(Ok(FsResponse::Metadata(info(
        "f",
        FileKind::File,
    )))));
    let r = t.replies();
    assert!(
        r[0].lines().collect::<Vec<_>>()[1].contains("perm=r;"),
        "{r:?}"
    );
}

#[test]
fn site_chmod_needs_chmod_and_a_plain_octal_mode() {
    let mut t = T::logged_in(Permissions::ADMIN);
    assert_eq!(
        t.fs("SITE CHMOD 0640 a b"),
        FsRequest::SetMode {
            path: vp("a b"),
            mode: 0o640
        }
    );
    t.complete(Completion::Fs(Ok(FsResponse::Done)));
    assert_eq!(t.codes(), [200]);
    // A storage without modes (S3, FAT): 504; a missing file: 550.
    t.fs("site chmod 600 f");
    t.complete(Completion::Fs(Err(StorageErrorKind::Unsupported)));
    assert_eq!(t.codes(), [504]);
    t.fs("SITE CHMOD 600 f");
    t.complete(Completion::Fs(Err(StorageErrorKind::NotFound)));
    assert_eq!(t.codes(), [550]);
    for bad in [
        "SITE CHMOD 4755 f",
        "SITE CHMOD 1777 f",
        "SITE CHMOD 778 f",
        "SITE CHMOD u+x f",
        "SITE CHMOD 644",
        "SITE CHMOD",
    ] {
        t.send(bad);
        assert_eq!(t.codes(), [501], "{bad}");
    }
    // Every file permission is not enough.
    let mut t = T::logged_in(Permissions::ALL);
    t.send("SITE CHMOD 644 f");
    assert_eq!(t.codes(), [550]);
    assert!(!Permissions::ALL.contains(Permissions::CHMOD));
    assert!(Permissions::ADMIN.contains(Permissions::ALL | Permissions::CHMOD));
    assert_eq!(Permissions::from_bits(u16::MAX), Permissions::ADMIN);
}

/// A grant of everything at home with a read-only folder `/pub` and a write-and-rename folder `/in/drop`.
fn folder_grant() -> Grant {
    Grant {
        permissions: Permissions::ALL,
        folders: alloc::vec![
            FolderGrant {
                path: vp("/pub"),
                permissions: Permissions::READ_ONLY,
            },
            FolderGrant {
                path: vp("/in/drop"),
                permissions: Permissions::WRITE.union(Permissions::RENAME),
            },
        ],
    }
}

#[test]
fn folder_permissions_replace_the_accounts_inside_the_folder() {
    let g = folder_grant();
    assert_eq!(g.folder_of(&vp("/pub")), Some(0));
    assert_eq!(g.folder_of(&vp("/pub/a/b")), Some(0));
    assert_eq!(g.folder_of(&vp("/public")), None);
    assert_eq!(g.folder_of(&vp("/in")), None);
    assert_eq!(g.folder_of(&vp("/in/drop/x")), Some(1));
    assert_eq!(g.permissions_for(&vp("/pub/a")), Permissions::READ_ONLY);
    assert_eq!(g.permissions_for(&vp("/publication")), Permissions::ALL);
    assert_eq!(
        g.permissions_for(&vp("/in/drop")),
        Permissions::WRITE | Permissions::RENAME
    );
    assert_eq!(g.permissions_for(&vp("/")), Permissions::ALL);
    assert!(g.is_mount_point(&vp("/pub")) && !g.is_mount_point(&vp("/pub/a")));
}

#[test]
fn folders_have_their_own_permissions_and_keep_their_mount_points() {
    let mut t = T::with_grant(folder_grant());
    // Read-only inside /pub, everything at home (even through `..` out of the folder).
    for cmd in [
        "DELE /pub/a",
        "MKD /pub/d",
        "RMD /pub/d",
        "RNFR /pub/a",
        "SITE CHMOD 644 /pub/a",
    ] {
        t.send(cmd);
        assert_eq!(t.codes(), [550], "{cmd}");
    }
    assert_eq!(t.fs("DELE /pub/../a"), FsRequest::RemoveFile(vp("/a")));
    t.complete(Completion::Fs(Ok(FsResponse::Done)));
    assert_eq!(t.codes(), [250]);
    // Mount points cannot be removed or renamed, whatever the folder allows.
    for cmd in ["RMD /in/drop", "DELE /in/drop", "RNFR /in/drop"] {
        t.send(cmd);
        assert_eq!(t.codes(), [550], "{cmd}");
    }
    // Renames across folders (and onto a mount point) are refused with 553.
    t.rnfr("/a");
    t.send("RNTO /in/drop/a");
    assert_eq!(t.codes(), [553]);
    t.rnfr("/a");
    t.send("RNTO /in/drop");
    assert_eq!(t.codes(), [553]);
    t.rnfr("/a");
    assert_eq!(
        t.fs("RNTO /in/b"),
        FsRequest::Rename {
            from: vp("/a"),
            to: vp("/in/b")
        }
    );
}
