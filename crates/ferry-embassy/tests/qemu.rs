//! The Cortex-M4F firmware (`firmware/cortex-m`, bin `firmware`) running in QEMU's `mps2-an386`
//! board, judged by real clients: QEMU runs in a network namespace of the test's own with its
//! LAN9118 on a TAP device (`10.0.2.2` on the kernel's side, the firmware at `10.0.2.15`), its
//! PSRAM loaded with a FAT image made by `mkfs.fat`; curl and Python's ftplib transfer files byte-exact
//! in every data mode; at the end the guest's memory is saved and the volume checked with
//! `fsck.fat -n` and read back with mtools.
//!
//! Needs root, `qemu-system-arm` (Debian's), `mkfs.fat`, `fsck.fat`, mtools, curl, python3. Under
//! `CI=true` a missing piece fails the test.

mod netns;

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netns::{random_file, require, round_trips, sha256, Lab, Server};

/// The firmware's address and account (firmware/cortex-m/src/bin/firmware.rs).
const FIRMWARE: Server<'static> = Server {
    host: "10.0.2.2/24",
    address: "10.0.2.15",
    account: ("esp32", "esp32"),
    ready: "listening on 10.0.2.15:21",
};
/// Where the firmware finds its FAT volume, and how big it is.
const PSRAM: &str = "0x21000000";
const DISK_KIB: usize = 8 * 1024;

/// Builds the firmware (outside the workspace, its own lock file and target folder).
fn firmware() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware/cortex-m");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "firmware", "--locked"])
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("run cargo build for the firmware");
    assert!(status.success(), "building the firmware failed");
    dir.join("target/thumbv7em-none-eabihf/release/firmware")
}

/// Runs `cmd` on the host (not in the namespace) and fails the test unless it succeeds.
fn host(cmd: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .expect("run a host tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Sends HMP commands to QEMU's monitor socket, each answered before the next.
fn monitor(socket: &Path, commands: &[&str]) {
    let stream = UnixStream::connect(socket).expect("connect to QEMU's monitor");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("monitor timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("monitor stream"));
    let mut writer = stream;
    let mut prompt = || {
        let mut seen = Vec::new();
        while !seen.ends_with(b"(qemu) ") {
            let mut byte = [0u8; 1];
            let n = reader.read(&mut byte).expect("read the monitor");
            assert!(n == 1, "QEMU's monitor closed");
            seen.push(byte[0]);
        }
    };
    prompt();
    for c in commands {
        writeln!(writer, "{c}").expect("write to the monitor");
        prompt();
    }
}

#[test]
fn firmware_in_qemu_serves_real_clients() {
    if !require(&[
        "ip",
        "qemu-system-arm",
        "mkfs.fat",
        "fsck.fat",
        "mcopy",
        "mdir",
        "curl",
        "python3",
        "sha256sum",
    ]) {
        return;
    }
    let elf = firmware();
    let work = tempfile::tempdir().expect("temporary folder");
    let image = work.path().join("disk.img");
    let image_arg = image.to_str().unwrap_or_default().to_owned();
    host(&["mkfs.fat", "-C", &image_arg, &DISK_KIB.to_string()]);
    // A file on the card before the device starts, with a long name.
    let preloaded = work.path().join("preloaded");
    random_file(&preloaded, 300_000, 7);
    host(&[
        "mcopy",
        "-i",
        &image_arg,
        preloaded.to_str().unwrap_or_default(),
        "::sensor-log-2026-11-29.csv",
    ]);

    let monitor_socket = work.path().join("monitor.sock");
    let lab = Lab::spawn("qemu", &FIRMWARE, |tap| {
        let mut cmd = Command::new("qemu-system-arm");
        cmd.args(["-M", "mps2-an386", "-display", "none", "-serial", "stdio"])
            .arg("-kernel")
            .arg(&elf)
            .arg("-nic")
            .arg(format!(
                "tap,ifname={tap},script=no,downscript=no,model=lan9118"
            ))
            .arg("-device")
            .arg(format!("loader,file={image_arg},addr={PSRAM},force-raw=on"))
            .arg("-monitor")
            .arg(format!(
                "unix:{},server,nowait",
                monitor_socket.to_str().unwrap_or_default()
            ));
        cmd
    });

    // The file that was on the card, listed by its long name and read back byte-exact.
    let list = String::from_utf8_lossy(&lab.ok(&["curl", "-sS", "--max-time", "60", &lab.url("")]))
        .into_owned();
    assert!(list.contains(" sensor-log-2026-11-29.csv"), "{list}");
    let got = lab.dir.path().join("preloaded-back");
    lab.ok(&[
        "curl",
        "-sS",
        "--max-time",
        "60",
        "-o",
        got.to_str().unwrap_or_default(),
        &lab.url("sensor-log-2026-11-29.csv"),
    ]);
    assert_eq!(sha256(&got), sha256(&preloaded));

    // STOR and RETR byte-exact, 0 B to 1 MiB, through the emulated Ethernet controller.
    round_trips(&lab, &[0, 1, 4095, 1 << 20], |len| {
        format!("sensor-log-2026-11-30-{len}.csv")
    });

    // Every data mode: PASV, PORT, EPRT (EPSV above).
    let big = lab.dir.path().join(format!("up-{}", 1 << 20));
    for flags in [
        &["--disable-epsv"][..],
        &["-P", "-", "--disable-eprt"][..],
        &["-P", "-"][..],
    ] {
        let out = lab.dir.path().join("mode.bin");
        let mut cmd = vec!["curl", "-sS", "--max-time", "120"];
        cmd.extend_from_slice(flags);
        let url = lab.url("sensor-log-2026-11-30-1048576.csv");
        cmd.extend(["-o", out.to_str().unwrap_or_default(), &url]);
        lab.ok(&cmd);
        assert_eq!(sha256(&out), sha256(&big), "curl {flags:?}");
    }

    // The ftplib scenarios of the host runner's tests: commands, ABOR, garbage, the session pool
    // with a 421, a dropped upload, a full volume.
    lab.python("basic", &[]);
    lab.python("abort", &["sensor-log-2026-11-30-1048576.csv"]);
    lab.python("garbage", &[]);
    lab.python(
        "pool",
        &["4", "sensor-log-2026-11-30-1048576.csv", &sha256(&big)],
    );
    lab.python("drop_upload", &["dropped.bin", "1048576"]);
    lab.python("store_expect", &["too-big.bin", "12000000", "452"]);

    // The volume as the device left it: consistent, and the files where the clients put them.
    let after = work.path().join("after.img");
    monitor(
        &monitor_socket,
        &[
            "stop",
            &format!(
                "pmemsave {PSRAM} {} \"{}\"",
                DISK_KIB * 1024,
                after.to_str().unwrap_or_default()
            ),
        ],
    );
    let after_arg = after.to_str().unwrap_or_default();
    let fsck = Command::new("fsck.fat")
        .args(["-n", after_arg])
        .output()
        .expect("run fsck.fat");
    assert!(
        fsck.status.success(),
        "fsck.fat -n: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let dir = String::from_utf8_lossy(&host(&["mdir", "-i", after_arg, "::"])).into_owned();
    assert!(dir.contains("sensor-log-2026-11-30-1048576.csv"), "{dir}");
    assert!(
        !dir.contains("dropped") && !dir.contains("too-big"),
        "{dir}"
    );
    let copied = work.path().join("copied");
    host(&[
        "mcopy",
        "-n",
        "-i",
        after_arg,
        "::sensor-log-2026-11-30-1048576.csv",
        copied.to_str().unwrap_or_default(),
    ]);
    assert_eq!(sha256(&copied), sha256(&big), "read back by mtools");
}
