//! Loopback load tests: many concurrent sessions through a passive range of only ten ports, and many
//! concurrent byte-exact uploads and downloads.

#![allow(clippy::unwrap_used)]

mod common;

use std::thread;
use std::time::Duration;

use common::{random_bytes, test_config, TestServer, PASS, USER};
use suppaftp::types::FileType;
use suppaftp::{FtpStream, Mode};

#[test]
fn hundred_sessions_share_ten_passive_ports() {
    const SESSIONS: usize = 100;
    const ROUNDS: usize = 5;
    let ports = common::free_port_range(10);
    let mut config = test_config();
    config.passive.ports = Some(ports.clone());
    config.limits.max_sessions_per_ip = 500;
    config.limits.data_connect_timeout = Duration::from_secs(30);
    let srv = TestServer::with_config(config);
    srv.write("a.txt", b"a");
    srv.write("b.txt", b"bb");
    std::fs::create_dir(srv.path("dir")).unwrap();

    // The advertised ports come from the range.
    let mut c = srv.raw_login();
    for _ in 0..12 {
        let addr = c.pasv();
        assert!(ports.contains(&addr.port()), "{addr} outside {ports:?}");
    }
    c.expect("QUIT", 221);

    let addr = srv.addr;
    let workers: Vec<_> = (0..SESSIONS)
        .map(|i| {
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || -> Result<(), String> {
                    let mut ftp =
                        FtpStream::connect(addr).map_err(|e| format!("{i}: connect: {e}"))?;
                    ftp.get_ref()
                        .set_read_timeout(Some(Duration::from_secs(60)))
                        .map_err(|e| e.to_string())?;
                    ftp.login(USER, PASS)
                        .map_err(|e| format!("{i}: login: {e}"))?;
                    for round in 0..ROUNDS {
                        let lines = ftp
                            .list(None)
                            .map_err(|e| format!("session {i} round {round}: {e}"))?;
                        if lines.len() != 3
                            || !lines[0].ends_with(" a.txt")
                            || !lines[1].ends_with(" b.txt")
                            || !lines[2].ends_with(" dir")
                        {
                            return Err(format!("session {i} round {round}: listing {lines:?}"));
                        }
                    }
                    ftp.quit().map_err(|e| format!("{i}: quit: {e}"))?;
                    Ok(())
                })
                .unwrap()
        })
        .collect();
    let errors: Vec<String> = workers
        .into_iter()
        .filter_map(|w| w.join().unwrap().err())
        .collect();
    assert!(
        errors.is_empty(),
        "{} sessions failed: {errors:#?}",
        errors.len()
    );
}

#[test]
fn fifty_concurrent_byte_exact_round_trips() {
    const SESSIONS: usize = 50;
    const LEN: usize = 1024 * 1024;
    let mut config = test_config();
    config.limits.max_sessions_per_ip = 200;
    let srv = TestServer::with_config(config);
    let addr = srv.addr;
    let workers: Vec<_> = (0..SESSIONS)
        .map(|i| {
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || -> Result<Vec<u8>, String> {
                    let content = random_bytes(LEN, 1000 + i as u64);
                    let name = format!("file-{i:02}.bin");
                    let mut ftp =
                        FtpStream::connect(addr).map_err(|e| format!("{i}: connect: {e}"))?;
                    ftp.get_ref()
                        .set_read_timeout(Some(Duration::from_secs(60)))
                        .map_err(|e| e.to_string())?;
                    ftp = match i % 3 {
                        0 => ftp,
                        1 => {
                            ftp.set_mode(Mode::ExtendedPassive);
                            ftp
                        }
                        _ => ftp.active_mode(Duration::from_secs(30)),
                    };
                    ftp.login(USER, PASS)
                        .map_err(|e| format!("{i}: login: {e}"))?;
                    ftp.transfer_type(FileType::Binary)
                        .map_err(|e| format!("{i}: type: {e}"))?;
                    ftp.put_file(&name, &mut &content[..])
                        .map_err(|e| format!("{i}: stor: {e}"))?;
                    let got = ftp
                        .retr_as_buffer(&name)
                        .map_err(|e| format!("{i}: retr: {e}"))?
                        .into_inner();
                    if got != content {
                        return Err(format!(
                            "{i}: downloaded bytes differ ({} bytes)",
                            got.len()
                        ));
                    }
                    ftp.quit().map_err(|e| format!("{i}: quit: {e}"))?;
                    Ok(content)
                })
                .unwrap()
        })
        .collect();
    let mut errors = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        match w.join().unwrap() {
            Ok(content) => {
                let stored = srv.read(&format!("file-{i:02}.bin"));
                if stored != content {
                    errors.push(format!("{i}: stored bytes differ"));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    assert!(
        errors.is_empty(),
        "{} sessions failed: {errors:#?}",
        errors.len()
    );
}
