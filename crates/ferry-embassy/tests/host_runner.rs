//! The embedded driver judged by real clients: the host runner (`examples/host`) on a TAP device in a
//! network namespace of each test's own, driven by curl, lftp and Python's ftplib inside it.
//!
//! Needs root, `ip` and the clients; FAT tests also `mkfs.fat`, `fsck.fat` and mtools. See
//! [`netns`] for the namespace rules and what happens when a tool is missing.

mod netns;

use std::fs;
use std::process::Command;

use netns::{random_file, require, round_trips, sha256, Lab, SERVER};

#[test]
fn folder_clients() {
    if !require(&["ip", "curl", "lftp", "python3", "sha256sum"]) {
        return;
    }
    let root = tempfile::tempdir().expect("root");
    let root_arg = root.path().to_str().unwrap_or_default().to_owned();
    let lab = Lab::start(
        "folder",
        &["--root", &root_arg],
        &["--passive-ports", "40000-40009"],
    );

    // STOR/RETR byte-exact: 0 B, 1 B, 1 MiB, 16 MiB.
    round_trips(&lab, &[0, 1, 1 << 20, 16 << 20], |len| {
        format!("file-{len}.bin")
    });
    for len in [0usize, 1, 1 << 20, 16 << 20] {
        let on_disk = root.path().join(format!("file-{len}.bin"));
        assert_eq!(
            sha256(&on_disk),
            sha256(&lab.dir.path().join(format!("up-{len}")))
        );
    }

    // PASV (EPSV off), EPRT and PORT with curl.
    let expected = sha256(&lab.dir.path().join(format!("up-{}", 1 << 20)));
    for flags in [
        &["--disable-epsv"][..],
        &["-P", "-"][..],
        &["-P", "-", "--disable-eprt"][..],
    ] {
        let out = lab.dir.path().join("mode.bin");
        let mut cmd = vec!["curl", "-sS"];
        cmd.extend_from_slice(flags);
        let url = lab.url("file-1048576.bin");
        cmd.extend(["-o", out.to_str().unwrap_or_default(), &url]);
        lab.ok(&cmd);
        assert_eq!(sha256(&out), expected, "curl {flags:?}");
    }

    // Listings: curl LIST and NLST, lftp's ls and mirror-style get.
    let list = String::from_utf8_lossy(&lab.ok(&["curl", "-sS", &lab.url("")])).into_owned();
    assert!(list.lines().any(|l| l.ends_with(" file-1.bin")), "{list}");
    let nlst = String::from_utf8_lossy(&lab.ok(&["curl", "-sS", "-l", &lab.url("")])).into_owned();
    let mut names: Vec<&str> = nlst.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "file-0.bin",
            "file-1.bin",
            "file-1048576.bin",
            "file-16777216.bin"
        ]
    );
    let lftp_out = lab.dir.path().join("lftp.bin");
    let script = format!(
        "set cmd:fail-exit yes; open -u {},{} {SERVER}; ls; get file-1048576.bin -o {}; mkdir lftp-dir; rmdir lftp-dir; bye",
        netns::USER,
        netns::PASS,
        lftp_out.display()
    );
    let ls = String::from_utf8_lossy(&lab.ok(&["lftp", "-c", &script])).into_owned();
    assert!(ls.contains("file-16777216.bin"), "{ls}");
    assert_eq!(sha256(&lftp_out), expected, "lftp get");

    // Python ftplib: MKD/RMD/DELE/RNFR/RNTO, SIZE/MDTM, MLSD/NLST/LIST, REST, APPE, TYPE A, PORT.
    lab.python("basic", &[]);
    // ABOR mid-transfer (with NOOP answered during it), then the session goes on.
    lab.python("abort", &["file-16777216.bin"]);
    // Overlong lines and garbage get replies; the session goes on.
    lab.python("garbage", &[]);
    // A client dropped mid-upload leaves no file behind.
    lab.python("drop_upload", &["dropped.bin", "4194304"]);
    assert!(!root.path().join("dropped.bin").exists());
    let leftovers: Vec<_> = fs::read_dir(root.path())
        .expect("read root")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".ferry-upload-")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary upload files left: {leftovers:?}"
    );
}

#[test]
fn pool_of_four() {
    if !require(&["ip", "python3"]) {
        return;
    }
    let root = tempfile::tempdir().expect("root");
    let file = root.path().join("big.bin");
    random_file(&file, 2 << 20, 7);
    let digest = sha256(&file);
    let root_arg = root.path().to_str().unwrap_or_default().to_owned();
    let lab = Lab::start("pool", &["--root", &root_arg], &["--sessions", "4"]);
    // Four sessions transferring at once, a fifth refused with 421, a dropped client's slot reused.
    lab.python("pool", &["4", "big.bin", &digest]);
}

/// An empty FAT image of `mib` MiB (FAT16 for small ones, as `mkfs.fat` chooses).
fn fat_image(dir: &std::path::Path, mib: u64) -> std::path::PathBuf {
    let image = dir.join("card.img");
    let status = Command::new("mkfs.fat")
        .args([
            "-C",
            image.to_str().unwrap_or_default(),
            &(mib * 1024).to_string(),
        ])
        .output()
        .expect("run mkfs.fat");
    assert!(status.status.success(), "mkfs.fat: {status:?}");
    image
}

/// `fsck.fat -n` must report the image clean.
fn fsck_clean(image: &std::path::Path) {
    let out = Command::new("fsck.fat")
        .args(["-n", image.to_str().unwrap_or_default()])
        .output()
        .expect("run fsck.fat");
    assert!(
        out.status.success(),
        "fsck.fat -n: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fat_image_with_long_names() {
    if !require(&[
        "ip",
        "curl",
        "python3",
        "mkfs.fat",
        "fsck.fat",
        "mcopy",
        "mdir",
        "sha256sum",
    ]) {
        return;
    }
    let work = tempfile::tempdir().expect("work dir");
    let image = fat_image(work.path(), 8);
    let image_arg = image.to_str().unwrap_or_default().to_owned();
    let lab = Lab::start("fat", &["--fat", &image_arg], &[]);

    // Uploads with long names, into a directory with a long name.
    let long = "sensor-log-2026-11-30.csv";
    let local = work.path().join("log.csv");
    random_file(&local, 300_000, 11);
    lab.ok(&[
        "curl",
        "-sS",
        "--ftp-create-dirs",
        "-T",
        local.to_str().unwrap_or_default(),
        &lab.url(&format!("Measurements%202026/{long}")),
    ]);
    round_trips(&lab, &[0, 1, 1 << 20], |len| format!("file-{len}.bin"));
    // Rename and delete.
    lab.ok(&[
        "curl",
        "-sS",
        &lab.url(""),
        "-Q",
        "RNFR file-1.bin",
        "-Q",
        "RNTO renamed with spaces.bin",
        "-Q",
        "DELE file-0.bin",
    ]);
    // Names the volume cannot hold: 553.
    lab.python("store_expect", &["bad*name.txt", "10", "553"]);
    lab.python("store_expect", &[&"n".repeat(300), "10", "553"]);
    lab.python("command_expect", &["MKD what?", "553"]);
    // A client dropped mid-upload.
    lab.python("drop_upload", &["dropped.bin", "2097152"]);
    // A full volume: 452, and the upload is gone.
    lab.python("store_expect", &["too-big.bin", "12000000", "452"]);
    drop(lab);

    // An independent tool reads the image: long names intact, bytes exact; fsck finds it clean.
    fsck_clean(&image);
    let mtools = |args: &[&str]| {
        let out = Command::new(args[0])
            .args(&args[1..])
            .env("MTOOLS_SKIP_CHECK", "1")
            .output()
            .expect("run mtools");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listing = mtools(&["mdir", "-i", &image_arg, "::/Measurements 2026"]);
    assert!(listing.contains(long), "{listing}");
    let back = work.path().join("back.csv");
    mtools(&[
        "mcopy",
        "-i",
        &image_arg,
        &format!("::/Measurements 2026/{long}"),
        back.to_str().unwrap_or_default(),
    ]);
    assert_eq!(sha256(&back), sha256(&local));
    let back = work.path().join("back.bin");
    mtools(&[
        "mcopy",
        "-i",
        &image_arg,
        "::/renamed with spaces.bin",
        back.to_str().unwrap_or_default(),
    ]);
    assert_eq!(fs::read(&back).expect("read back").len(), 1);
    let root = mtools(&["mdir", "-i", &image_arg, "::/"]);
    assert!(!root.contains("file-0"), "{root}");
    assert!(!root.contains("dropped"), "{root}");
    assert!(!root.contains("too-big"), "{root}");
    assert!(!root.to_lowercase().contains("ferry-upload"), "{root}");
}
