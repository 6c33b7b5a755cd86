//! The session span on every log line: a server logging JSON, its output parsed back. In a test
//! binary of its own, because the subscriber has to be global (the server logs from its runtime's
//! threads) and no other test's sessions may mix in.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Captured, TestServer, PASS, USER};
use suppaftp::types::FileType;

#[test]
fn every_session_line_carries_id_peer_and_user() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let server = TestServer::start();
    server.write("f.txt", b"hello");
    let mut ftp = server.ftp();
    ftp.transfer_type(FileType::Binary).unwrap();
    ftp.retr_as_buffer("f.txt").unwrap();
    ftp.quit().unwrap();
    drop(server);

    let text = captured.text();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let session: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["span"]["name"] == "session")
        .collect();
    let message = |m: &str| {
        session
            .iter()
            .find(|e| e["message"] == m)
            .unwrap_or_else(|| panic!("no {m:?} line in\n{text}"))
    };
    let opened = message("session opened");
    let id = opened["span"]["id"].as_u64().unwrap();
    let peer = opened["span"]["peer"].as_str().unwrap().to_owned();
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    for e in &session {
        assert_eq!(e["span"]["id"].as_u64(), Some(id), "{e}");
        assert_eq!(e["span"]["peer"].as_str(), Some(peer.as_str()), "{e}");
    }
    let login = message("login");
    assert_eq!(login["span"]["user"], USER);
    assert_eq!(login["level"], "INFO");
    let done = message("transfer complete");
    assert_eq!(done["span"]["user"], USER);
    assert_eq!(done["direction"], "download");
    assert_eq!(done["path"], "/f.txt");
    assert_eq!(done["bytes"], 5);
    assert_eq!(done["result"], "complete");
    assert!(done["secs"].is_number() && done["bytes_per_sec"].is_number());
    // Commands and replies at debug, the password never.
    let pass = session
        .iter()
        .find(|e| e["message"] == "command" && e["verb"] == "PASS")
        .unwrap_or_else(|| panic!("no PASS command line in\n{text}"));
    assert_eq!(pass["arg"], "<redacted>");
    assert_eq!(pass["level"], "DEBUG");
    assert!(!text.contains(PASS), "the password appears in the log");
    assert!(session
        .iter()
        .any(|e| e["message"] == "reply" && e["code"] == 226));
    assert!(session.iter().any(|e| e["message"] == "session closed"));
}
