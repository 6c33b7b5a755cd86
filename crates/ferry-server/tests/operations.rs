//! Operations over real transfers: the Prometheus endpoint scraped after a known workload, and the
//! xferlog lines checked field by field.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::{random_bytes, test_config, wait_until, TestServer, PASS, USER};
use ferry_server::metrics::{self, Metrics};
use ferry_server::xferlog::XferLog;
use suppaftp::types::FileType;

/// How long sessions and ports may take to close (asynchronously, after QUIT).
const SETTLE: Duration = Duration::from_secs(10);

/// A runtime serving `metrics` on a free loopback port.
struct MetricsEndpoint {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

impl MetricsEndpoint {
    fn start(metrics: Arc<Metrics>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(metrics::serve(listener, metrics, std::future::pending()));
        Self { addr, _rt: rt }
    }

    /// GET `path`: the status line and the body.
    fn get(&self, path: &str) -> (String, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_owned(), body.to_owned())
    }

    /// The value of the series `line_start` (`name{labels}`) in a fresh scrape.
    fn value(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics");
        value_in(&body, series)
    }
}

fn value_in(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter_map(|l| l.strip_prefix(series))
        .find_map(|rest| rest.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

#[test]
fn metrics_endpoint_counts_a_known_workload() {
    let m = Arc::new(Metrics::new());
    let mut config = test_config();
    config.metrics = Some(Arc::clone(&m));
    let server = TestServer::with_config(config);
    let endpoint = MetricsEndpoint::start(Arc::clone(&m));
    server.write("a.bin", &random_bytes(1000, 1));
    server.write("b.bin", &random_bytes(2500, 2));

    let mut ftp = server.ftp();
    ftp.transfer_type(FileType::Binary).unwrap();
    for name in ["a.bin", "b.bin", "a.bin"] {
        ftp.retr_as_buffer(name).unwrap();
    }
    ftp.put_file("up1.bin", &mut &random_bytes(700, 3)[..])
        .unwrap();
    ftp.put_file("up2.bin", &mut &random_bytes(300, 4)[..])
        .unwrap();
    assert!(ftp.retr_as_buffer("missing.bin").is_err());
    ftp.quit().unwrap();

    // One failed login on a second session.
    let mut raw = server.raw();
    raw.expect(&format!("USER {USER}"), 331);
    raw.expect(&format!("PASS not-{PASS}"), 530);
    raw.expect("QUIT", 221);

    let (status, body) = endpoint.get("/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let expect = [
        ("ferry_sessions_total", 2.0),
        (
            "ferry_transfers_total{direction=\"download\",outcome=\"complete\"}",
            3.0,
        ),
        (
            "ferry_transfers_total{direction=\"download\",outcome=\"failed\"}",
            1.0,
        ),
        (
            "ferry_transfers_total{direction=\"upload\",outcome=\"complete\"}",
            2.0,
        ),
        ("ferry_data_bytes_total{direction=\"out\"}", 4500.0),
        ("ferry_data_bytes_total{direction=\"in\"}", 1000.0),
        ("ferry_logins_total{outcome=\"success\"}", 1.0),
        ("ferry_logins_total{outcome=\"failure\"}", 1.0),
        ("ferry_command_duration_seconds_count{verb=\"RETR\"}", 4.0),
        ("ferry_command_duration_seconds_count{verb=\"STOR\"}", 2.0),
        ("ferry_command_duration_seconds_count{verb=\"PASS\"}", 2.0),
        ("ferry_bans_total", 0.0),
    ];
    for (series, want) in expect {
        assert_eq!(value_in(&body, series), Some(want), "{series} in\n{body}");
    }
    // 226 for each of the five transfers, 230 for the login, 221 for each QUIT, and more.
    assert!(value_in(&body, "ferry_replies_total{class=\"2xx\"}").unwrap() >= 8.0);
    // 550 for the missing file and 530 for the wrong password.
    assert!(value_in(&body, "ferry_replies_total{class=\"5xx\"}").unwrap() >= 2.0);
    assert!(body.contains("# TYPE ferry_command_duration_seconds histogram"));
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");

    wait_until("the sessions have closed", SETTLE, || {
        endpoint.value("ferry_sessions_open") == Some(0.0)
    });
    assert_eq!(endpoint.value("ferry_passive_ports_in_use"), Some(0.0));
    assert_eq!(endpoint.get("/").0, "HTTP/1.1 404 Not Found");
}

#[test]
fn metrics_count_passive_ports_while_they_listen() {
    let m = Arc::new(Metrics::new());
    let mut config = test_config();
    config.metrics = Some(Arc::clone(&m));
    let server = TestServer::with_config(config);
    let mut c = server.raw_login();
    c.pasv();
    assert!(m.encode().contains("ferry_passive_ports_in_use 1\n"));
    // ABOR closes the idle passive listener.
    c.expect("ABOR", 225);
    wait_until("the passive port has closed", SETTLE, || {
        m.encode().contains("ferry_passive_ports_in_use 0\n")
    });
}

/// The fields of one xferlog line: 5 date words, then 13 fields.
fn xferlog_fields(line: &str) -> Vec<&str> {
    let fields: Vec<&str> = line.split(' ').filter(|f| !f.is_empty()).collect();
    assert_eq!(fields.len(), 18, "field count of {line:?}");
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    assert!(days.contains(&fields[0]), "{line}");
    assert!(months.contains(&fields[1]), "{line}");
    let day: u32 = fields[2].parse().unwrap();
    assert!((1..=31).contains(&day), "{line}");
    let time: Vec<u32> = fields[3].split(':').map(|p| p.parse().unwrap()).collect();
    assert!(
        time.len() == 3 && time[0] < 24 && time[1] < 60 && time[2] < 61,
        "{line}"
    );
    assert!(fields[4].parse::<u32>().unwrap() >= 2024, "{line}");
    assert!(
        fields[5].parse::<u64>().unwrap() >= 1,
        "transfer time {line}"
    );
    fields[5..].to_vec()
}

#[test]
fn xferlog_lines_after_real_transfers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xferlog");
    let mut config = test_config();
    config.xferlog = Some(Arc::new(XferLog::open(&path).unwrap()));
    let server = TestServer::with_config(config);
    std::fs::create_dir(server.path("dir with space")).unwrap();
    server.write("dir with space/file one.bin", &random_bytes(1234, 5));
    server.write("big.bin", &random_bytes(32 << 20, 9));

    let mut ftp = server.ftp();
    ftp.transfer_type(FileType::Binary).unwrap();
    ftp.retr_as_buffer("dir with space/file one.bin").unwrap();
    ftp.put_file("up.bin", &mut &random_bytes(4321, 6)[..])
        .unwrap();
    ftp.transfer_type(FileType::Ascii(suppaftp::types::FormatControl::Default))
        .unwrap();
    ftp.put_file("notes.txt", &mut &b"one\r\ntwo\r\n"[..])
        .unwrap();
    // A listing is not a file transfer: no line.
    ftp.nlst(None).unwrap();
    ftp.quit().unwrap();

    // A download the client gives up on after 64 KiB: incomplete.
    let mut c = server.raw_login();
    c.expect("TYPE I", 200);
    let data = c.pasv();
    c.send("RETR big.bin");
    let mut sock = TcpStream::connect(data).unwrap();
    let mut buf = vec![0u8; 64 << 10];
    sock.read_exact(&mut buf).unwrap();
    assert_eq!(c.reply().code, 150);
    drop(sock);
    assert_eq!(c.reply().code, 426);
    c.expect("QUIT", 221);

    // A login with an anonymous name.
    let mut a = server.raw();
    a.login("anonymous", "guest@example.org");
    a.expect("TYPE I", 200);
    let r = a.transfer(common::DataMode::Pasv, "RETR big.bin", None);
    r.assert_ok();
    assert_eq!(r.data.len(), 32 << 20);
    a.expect("QUIT", 221);

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    let f = xferlog_fields(lines[0]);
    // transfer-time host size name type flag direction mode user service auth-method auth-id status
    assert_eq!(
        &f[1..],
        [
            "127.0.0.1",
            "1234",
            "/dir_with_space/file_one.bin",
            "b",
            "_",
            "o",
            "r",
            USER,
            "ftp",
            "0",
            "*",
            "c"
        ]
    );
    let f = xferlog_fields(lines[1]);
    assert_eq!(f[2..4], ["4321", "/up.bin"]);
    assert_eq!(f[4..], ["b", "_", "i", "r", USER, "ftp", "0", "*", "c"]);
    let f = xferlog_fields(lines[2]);
    assert_eq!(f[3..7], ["/notes.txt", "a", "_", "i"]);
    let f = xferlog_fields(lines[3]);
    assert_eq!(f[3], "/big.bin");
    let sent: u64 = f[2].parse().unwrap();
    assert!((64 << 10..32 << 20).contains(&sent), "{}", lines[3]);
    assert_eq!(f[12], "i", "an interrupted download is incomplete");
    let f = xferlog_fields(lines[4]);
    assert_eq!(f[2], (32u64 << 20).to_string());
    assert_eq!(f[7..9], ["a", "anonymous"]);
    assert_eq!(f[12], "c");
}
