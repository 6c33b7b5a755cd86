//! What an idle session costs: the sizes of its task's future and of its control driver's future,
//! which the server logs at trace level when a session starts. Bounds, not exact figures (the compiler
//! may lay futures out differently), tight enough to catch the regressions seen so far: a value stored
//! twice in the task (248 bytes instead of 120) or the driver (1,344 instead of 1,176). In a test
//! binary of its own, because the subscriber has to be global (the server logs from its runtime's
//! threads).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Captured, TestServer};

/// Largest accepted size of a plain session's task future, in bytes (120 when written).
const MAX_TASK: u64 = 160;
/// Largest accepted size of the control driver's future, in bytes (1,176 to 1,184 when written).
const MAX_DRIVER: u64 = 1_280;

#[test]
fn an_idle_session_stays_small() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let server = TestServer::start();
    let mut c = server.raw_login();
    c.expect("NOOP", 200);
    c.expect("QUIT", 221);
    drop(server);

    let text = captured.text();
    let bytes_of = |message: &str| -> u64 {
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["message"] == message)
            .and_then(|e| e["bytes"].as_u64())
            .unwrap_or_else(|| panic!("no {message:?} line in the trace log"))
    };
    let task = bytes_of("session task future");
    let driver = bytes_of("control driver future");
    assert!(
        task <= MAX_TASK,
        "session task future is {task} bytes (at most {MAX_TASK})"
    );
    assert!(
        driver <= MAX_DRIVER,
        "control driver future is {driver} bytes (at most {MAX_DRIVER})"
    );
}
