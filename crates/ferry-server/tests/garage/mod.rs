//! A real distributed S3 store for tests: Garage as a three-node cluster on loopback with replication
//! factor 3, started by the test and stopped when the [`Garage`] handle drops.
//!
//! The `garage` binary is `$GARAGE_BIN`, else `garage` on `PATH`, else `~/.cargo/bin/garage` (where
//! `.ci/scale-out` installs it: `cargo install garage@2.5.0 --locked --no-default-features --features
//! bundled-libs,sqlite`). Without it a test fails under `CI=true` and is skipped loudly otherwise.
//!
//! Each node gets free loopback ports (the OS picks them, the fixture hands them to Garage), its own
//! metadata and data folders in a temporary directory, and the sqlite metadata engine. The fixture
//! connects the nodes, assigns a layout of three zones (one node each, so every object has a copy on
//! each node), creates a bucket and a key with read/write rights on it, and waits until the S3 API
//! answers. [`Garage::stop_node`] stops one node to test that service goes on.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The access key id of the fixture's key (Garage's format: `GK` and 24 hex digits).
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
/// Its secret (64 hex digits).
pub const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The region Garage's S3 API is configured with.
pub const REGION: &str = "garage";

/// How long cluster set-up may take before the test fails.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The `garage` binary, or `None` (after a loud message) when it is missing outside CI.
///
/// # Panics
/// When it is missing and `CI` is set.
pub fn binary() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("GARAGE_BIN") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("garage")));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cargo/bin/garage"));
    }
    if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
        return Some(found);
    }
    let msg = "garage is not installed (cargo install garage@2.5.0 --locked --no-default-features \
               --features bundled-libs,sqlite, or set GARAGE_BIN)";
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Whether `curl` runs, for the raw S3 requests of [`Garage::keys`] and [`Garage::object`]: a missing
/// curl fails the test under `CI` and is a loud skip otherwise.
pub fn have_curl() -> bool {
    let found = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "curl is not installed");
        eprintln!("SKIPPED: curl is not installed");
    }
    found
}

/// `%XX` sequences decoded (a key of a listing with `encoding-type=url`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("a UTF-8 key")
}

/// Deterministic test bytes (a simple LCG), different for each `seed`.
pub fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect()
}

/// A free loopback port (the OS picks it; it is free again when this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("pick a free port")
}

/// One Garage node.
struct Node {
    config: PathBuf,
    s3_port: u16,
    rpc_port: u16,
    child: Option<Child>,
    log: PathBuf,
}

/// A three-node Garage cluster with one bucket; stopped on drop.
pub struct Garage {
    bin: PathBuf,
    nodes: Vec<Node>,
    /// The bucket the fixture created.
    pub bucket: String,
    dir: tempfile::TempDir,
}

impl Garage {
    /// Starts a three-node cluster with replication factor 3 and a bucket named `bucket`; `None`
    /// when Garage is not installed (outside CI).
    pub fn start(bucket: &str) -> Option<Self> {
        let bin = binary()?;
        let dir = tempfile::tempdir().expect("temporary folder for Garage");
        let secret = "4f0c1a7e9d2b3c5a6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";
        let mut nodes = Vec::new();
        for i in 0..3 {
            let node_dir = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(node_dir.join("meta")).unwrap();
            std::fs::create_dir_all(node_dir.join("data")).unwrap();
            let (s3_port, rpc_port, admin_port) = (free_port(), free_port(), free_port());
            let config = node_dir.join("garage.toml");
            let text = format!(
                "metadata_dir = \"{meta}\"\n\
                 data_dir = \"{data}\"\n\
                 db_engine = \"sqlite\"\n\
                 replication_factor = 3\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_secret = \"{secret}\"\n\
                 [s3_api]\n\
                 s3_region = \"{REGION}\"\n\
                 api_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\
                 [admin]\n\
                 api_bind_addr = \"127.0.0.1:{admin_port}\"\n",
                meta = node_dir.join("meta").display(),
                data = node_dir.join("data").display(),
            );
            std::fs::write(&config, text).unwrap();
            nodes.push(Node {
                config,
                s3_port,
                rpc_port,
                child: None,
                log: node_dir.join("garage.log"),
            });
        }
        let mut garage = Self {
            bin,
            nodes,
            bucket: bucket.to_owned(),
            dir,
        };
        for i in 0..3 {
            garage.spawn(i);
        }
        garage.set_up();
        Some(garage)
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::File::create(&node.log).unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&node.config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn garage");
        node.child = Some(child);
    }

    /// Runs a `garage` command against node `i`; panics with its output on failure.
    pub fn cli(&self, i: usize, args: &[&str]) -> String {
        let out = self.try_cli(i, args);
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn try_cli(&self, i: usize, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("-c")
            .arg(&self.nodes[i].config)
            .args(args)
            .env("RUST_LOG", "error")
            .output()
            .expect("run garage")
    }

    /// Runs `args` against node 0 until it succeeds (the cluster settles), or fails the test.
    fn retry(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            let out = self.try_cli(0, args);
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "garage {args:?} kept failing: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The node id of node `i` (`id@addr`).
    fn node_id(&self, i: usize) -> String {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            let out = self.try_cli(i, &["node", "id", "-q"]);
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "garage node {i} did not start: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn set_up(&mut self) {
        let ids: Vec<String> = (0..3).map(|i| self.node_id(i)).collect();
        for id in &ids[1..] {
            self.retry(&["node", "connect", id]);
        }
        for (i, id) in ids.iter().enumerate() {
            let short = id.split('@').next().unwrap_or(id);
            self.retry(&[
                "layout",
                "assign",
                "-z",
                &format!("zone{i}"),
                "-c",
                "1G",
                short,
            ]);
        }
        self.retry(&["layout", "apply", "--version", "1"]);
        self.retry(&["bucket", "create", &self.bucket.clone()]);
        self.retry(&["key", "import", "--yes", "-n", "ferry-test", KEY_ID, SECRET]);
        self.retry(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &self.bucket.clone(),
            "--key",
            KEY_ID,
        ]);
        self.wait_s3(0);
    }

    /// Waits until node `i`'s S3 API accepts connections.
    fn wait_s3(&self, i: usize) {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let addr = format!("127.0.0.1:{}", self.nodes[i].s3_port);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "garage S3 API did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The S3 endpoint of node `i`, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].s3_port)
    }

    /// Every node's S3 endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Stops node `i` (SIGKILL, as a crash would).
    pub fn stop_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again after [`Garage::stop_node`].
    pub fn restart_node(&mut self, i: usize) {
        if self.nodes[i].child.is_none() {
            self.spawn(i);
            self.wait_s3(i);
        }
    }

    /// The nodes' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            all.push_str(&format!("--- garage node {i} (last lines) ---\n"));
            for line in tail.into_iter().rev() {
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    }

    /// A `curl` request to node 0's S3 API, signed with the fixture's key (`--aws-sigv4`; query
    /// parameters in sorted order, as the signature needs them); the path
    /// (`/bucket/...`, percent-encoded) is sent as it is (`--path-as-is`).
    fn s3_curl(&self, path_and_query: &str) -> Vec<u8> {
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--path-as-is", "--noproxy", "*"])
            // The SHA-256 of the empty body, which Garage wants as a header.
            .arg("-H")
            .arg("x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{REGION}:s3"))
            .arg("--user")
            .arg(format!("{KEY_ID}:{SECRET}"))
            .arg(format!("{}{path_and_query}", self.endpoint(0)))
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "curl {path_and_query}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Every key in the bucket, exactly as the store holds it: a raw `ListObjectsV2` of the whole
    /// bucket (no prefix, no delimiter) with `encoding-type=url`, so that white space at either end of
    /// a key survives the XML (OpenDAL's listing cannot serve here: its XML parser trims the text of
    /// each key). Needs `curl` (see [`have_curl`]).
    pub fn keys(&self) -> Vec<String> {
        let body = self.s3_curl(&format!(
            "/{}?encoding-type=url&list-type=2&max-keys=1000",
            self.bucket
        ));
        let xml = String::from_utf8(body).expect("a UTF-8 listing");
        assert!(xml.contains("<ListBucketResult"), "ListObjectsV2: {xml}");
        assert!(
            !xml.contains("<IsTruncated>true</IsTruncated>"),
            "more than one page of keys: {xml}"
        );
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(percent_decode)
            .collect()
    }

    /// The bytes of the object `key`, read with a raw `GetObject` (every byte of the key but
    /// SigV4's unreserved characters, letters, digits and `-_.~`, and `/` percent-encoded). Needs
    /// `curl`.
    pub fn object(&self, key: &str) -> Vec<u8> {
        let encoded: String = key
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        self.s3_curl(&format!("/{}/{encoded}", self.bucket))
    }

    /// An rclone configuration file for this cluster (remote `garage:`), and the environment rclone
    /// needs: `AWS_CA_BUNDLE` cleared (set on these machines, it makes rclone refuse plain HTTP).
    pub fn rclone_config(&self) -> PathBuf {
        let path = self.dir.path().join("rclone.conf");
        let mut f = std::fs::File::create(&path).unwrap();
        write!(
            f,
            "[garage]\ntype = s3\nprovider = Other\naccess_key_id = {KEY_ID}\n\
             secret_access_key = {SECRET}\nregion = {REGION}\nendpoint = {}\n\
             force_path_style = true\nno_check_bucket = true\n",
            self.endpoint(0)
        )
        .unwrap();
        path
    }

    /// An `rclone` command on this cluster's configuration.
    pub fn rclone(&self) -> Command {
        let mut cmd = Command::new("rclone");
        cmd.arg("--config")
            .arg(self.rclone_config())
            .env_remove("AWS_CA_BUNDLE");
        cmd
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
    }
}
