//! Line framing + command parsing: never panics; lines never exceed the limit or contain LF.
#![no_main]

use ferry_proto::command::Command;
use ferry_proto::line::{LineBuffer, LineEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let max = 64 + usize::from(data.first().copied().unwrap_or(0));
    let mut lines = LineBuffer::new(max);
    // Feed in chunks whose sizes come from the data itself.
    let mut rest = data;
    let mut step = 1;
    while !rest.is_empty() {
        let take = step.min(rest.len());
        let mut chunk = &rest[..take];
        rest = &rest[take..];
        step = step % 7 + 1;
        while !chunk.is_empty() {
            let (n, event) = lines.feed(chunk);
            chunk = &chunk[n..];
            if let Some(LineEvent::Line(line)) = event {
                assert!(line.len() <= max);
                assert!(!line.contains(&b'\n'));
                if let Ok(cmd) = Command::parse(line) {
                    assert!(!cmd.verb().is_empty());
                }
            }
            if n == 0 && event.is_none() {
                break;
            }
        }
        assert!(lines.buffered() <= max + 2);
    }
});
