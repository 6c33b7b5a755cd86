//! Control-connection line framing: LF-terminated lines, a length limit and Telnet command stripping.
//!
//! RFC 959 §4 carries commands over a Telnet (RFC 854) stream, one per line. [`LineBuffer`] turns the raw
//! byte stream into lines:
//!
//! - a line ends at LF; one CR directly before the LF is stripped, so both CRLF and bare LF work;
//! - Telnet sequences are removed: `IAC IAC` is one `0xFF` data byte, `IAC WILL/WONT/DO/DONT <option>` is
//!   dropped, and `IAC <any other byte>` (IP, DM, AYT, ...) is dropped, so the `IAC IP IAC DM ABOR\r\n`
//!   that clients send to abort a transfer yields the line `ABOR`;
//! - a line longer than the limit is discarded up to its LF and reported once as [`LineEvent::TooLong`],
//!   without the buffer ever growing past the limit.
//!
//! All state survives between [`LineBuffer::feed`] calls, so a line or a Telnet sequence may be split
//! across reads at any byte.

use alloc::vec::Vec;

/// Telnet "interpret as command" escape byte.
const IAC: u8 = 0xFF;
/// Telnet WILL; WILL, WONT (252), DO (253) and DONT (254) take one option byte.
const WILL: u8 = 251;
/// Telnet DONT, the last of the option negotiation commands.
const DONT: u8 = 254;
/// Smallest allocation made when the buffer first grows.
const MIN_CAPACITY: usize = 64;

/// Where the Telnet decoder is within a command sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Telnet {
    /// Plain data.
    Data,
    /// After an `IAC`.
    Iac,
    /// After `IAC WILL/WONT/DO/DONT`, expecting the option byte.
    Option,
}

/// One framing result from [`LineBuffer::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A complete line, without its terminator and with Telnet sequences removed.
    Line(&'a [u8]),
    /// A line longer than the limit ended; its bytes were discarded.
    TooLong,
}

/// Frames a control connection's byte stream into lines, with a hard length limit.
///
/// Memory is bounded: the buffer holds at most `max_len` bytes, whatever the peer sends. A returned line
/// borrows the buffer, which is reused (not reallocated) for the next line.
#[derive(Clone, Debug)]
pub struct LineBuffer {
    /// Data bytes of the current line (or of the line last returned, until the next `feed`).
    buf: Vec<u8>,
    /// The longest line accepted, in bytes, excluding the terminator.
    max_len: usize,
    /// Telnet decoder state.
    telnet: Telnet,
    /// A CR data byte was seen and not yet stored: it is dropped if LF follows.
    cr: bool,
    /// The current line exceeded `max_len`; its bytes are being discarded up to the LF.
    overflow: bool,
    /// `buf` holds a line already returned; it is cleared at the start of the next `feed`.
    complete: bool,
}

impl LineBuffer {
    /// A buffer accepting lines of up to `max_len` bytes, excluding the CRLF or LF terminator.
    ///
    /// Nothing is allocated until bytes arrive.
    pub fn new(max_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_len,
            telnet: Telnet::Data,
            cr: false,
            overflow: false,
            complete: false,
        }
    }

    /// Consumes bytes from `input` up to and including the end of the first complete line, and returns
    /// how many bytes were consumed and the resulting event, if any.
    ///
    /// When no line ends within `input`, all of it is consumed and buffered and the event is `None`.
    /// Otherwise the bytes after the LF are left unconsumed: call `feed` again with the rest. The returned
    /// line borrows the buffer and stays valid until the next call on `self`.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<LineEvent<'_>>) {
        if self.complete {
            self.buf.clear();
            self.complete = false;
        }
        for (i, &byte) in input.iter().enumerate() {
            let data = match self.telnet {
                Telnet::Data if byte == IAC => {
                    self.telnet = Telnet::Iac;
                    continue;
                }
                Telnet::Data => byte,
                Telnet::Iac if byte == IAC => {
                    self.telnet = Telnet::Data;
                    IAC
                }
                Telnet::Iac if (WILL..=DONT).contains(&byte) => {
                    self.telnet = Telnet::Option;
                    continue;
                }
                Telnet::Iac | Telnet::Option => {
                    self.telnet = Telnet::Data;
                    continue;
                }
            };
            if data == b'\n' {
                self.cr = false;
                self.complete = true;
                let event = if core::mem::take(&mut self.overflow) {
                    LineEvent::TooLong
                } else {
                    LineEvent::Line(&self.buf)
                };
                return (i + 1, Some(event));
            }
            if self.cr {
                self.push(b'\r');
            }
            self.cr = data == b'\r';
            if !self.cr {
                self.push(data);
            }
        }
        (input.len(), None)
    }

    /// The line last returned by [`LineBuffer::feed`] (empty if none is held): the same bytes as its
    /// [`LineEvent::Line`], for a caller that had to let go of that borrow.
    pub fn last_line(&self) -> &[u8] {
        if self.complete {
            &self.buf
        } else {
            &[]
        }
    }

    /// Bytes of memory held for lines ([`LineBuffer::shrink`] releases them when no line data is held).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes of the incomplete current line held (including a CR that may yet turn out to be part of
    /// the terminator); `0` right after a line was returned and while an over-long line is discarded.
    pub fn buffered(&self) -> usize {
        if self.complete {
            0
        } else {
            self.buf.len() + usize::from(self.cr)
        }
    }

    /// Releases the buffer's memory if it holds no line data, for sessions that go idle.
    ///
    /// Framing state (a pending CR, a split Telnet sequence, an over-long line being discarded) is kept,
    /// so calling this between any two `feed` calls never changes the lines produced.
    pub fn shrink(&mut self) {
        if self.complete {
            self.buf.clear();
            self.complete = false;
        }
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// Appends one data byte to the current line, or switches to discarding if it would exceed the limit.
    fn push(&mut self, byte: u8) {
        if self.overflow {
            return;
        }
        if self.buf.len() >= self.max_len {
            self.overflow = true;
            self.buf.clear();
            return;
        }
        if self.buf.len() == self.buf.capacity() {
            // Grow geometrically but never past `max_len`; `len < max_len` here, so `target > len`.
            let target = self
                .buf
                .capacity()
                .saturating_mul(2)
                .max(MIN_CAPACITY)
                .min(self.max_len);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.push(byte);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    /// An owned event, for comparing sequences.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Ev {
        Line(Vec<u8>),
        TooLong,
    }

    fn own(ev: LineEvent<'_>) -> Ev {
        match ev {
            LineEvent::Line(l) => Ev::Line(l.to_vec()),
            LineEvent::TooLong => Ev::TooLong,
        }
    }

    /// Feeds `input` in pieces of the given sizes (cycled), checking the memory bound after every call.
    fn run_chunked(lb: &mut LineBuffer, input: &[u8], sizes: &[usize]) -> Vec<Ev> {
        let mut events = Vec::new();
        let mut rest = input;
        let mut k = 0;
        while !rest.is_empty() {
            let n = sizes[k % sizes.len()].clamp(1, rest.len());
            k += 1;
            let mut chunk = &rest[..n];
            rest = &rest[n..];
            while !chunk.is_empty() {
                let (used, ev) = lb.feed(chunk);
                assert!(used > 0 && used <= chunk.len());
                if let Some(ev) = ev {
                    events.push(own(ev));
                }
                chunk = &chunk[used..];
                assert!(
                    lb.buf.capacity() <= lb.max_len,
                    "capacity {} > {}",
                    lb.buf.capacity(),
                    lb.max_len
                );
            }
        }
        events
    }

    fn run(max_len: usize, input: &[u8]) -> Vec<Ev> {
        run_chunked(&mut LineBuffer::new(max_len), input, &[usize::MAX])
    }

    fn line(s: &[u8]) -> Ev {
        Ev::Line(s.to_vec())
    }

    /// A reference model: decode Telnet over the whole stream, then split, strip and check lengths.
    fn oracle(max_len: usize, input: &[u8]) -> Vec<Ev> {
        let mut data = Vec::new();
        let mut i = 0;
        while i < input.len() {
            if input[i] != IAC {
                data.push(input[i]);
                i += 1;
            } else {
                match input.get(i + 1) {
                    Some(&IAC) => {
                        data.push(IAC);
                        i += 2;
                    }
                    Some(&(251..=254)) => i += 3,
                    _ => i += 2,
                }
            }
        }
        let mut events = Vec::new();
        let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        parts.pop(); // the unterminated tail
        for mut part in parts {
            if let [head @ .., b'\r'] = part {
                part = head;
            }
            events.push(if part.len() > max_len {
                Ev::TooLong
            } else {
                line(part)
            });
        }
        events
    }

    #[test]
    fn crlf_and_bare_lf() {
        assert_eq!(
            run(100, b"USER a\r\nPASS b\nNOOP\r\n"),
            vec![line(b"USER a"), line(b"PASS b"), line(b"NOOP")]
        );
    }

    #[test]
    fn only_one_cr_is_stripped() {
        assert_eq!(
            run(100, b"A\r\r\nB\rC\n\r\n"),
            vec![line(b"A\r"), line(b"B\rC"), line(b"")]
        );
    }

    #[test]
    fn empty_lines() {
        assert_eq!(run(0, b"\r\n\n"), vec![line(b""), line(b"")]);
        assert_eq!(run(10, b"\n"), vec![line(b"")]);
    }

    #[test]
    fn feed_stops_after_each_line() {
        let mut lb = LineBuffer::new(100);
        let input = b"NOOP\r\nPWD\r\nPAR";
        let (n, ev) = lb.feed(input);
        assert_eq!((n, ev), (6, Some(LineEvent::Line(b"NOOP"))));
        let (n, ev) = lb.feed(&input[6..]);
        assert_eq!((n, ev), (5, Some(LineEvent::Line(b"PWD"))));
        assert_eq!(lb.buffered(), 0);
        let (n, ev) = lb.feed(&input[11..]);
        assert_eq!((n, ev), (3, None));
        assert_eq!(lb.buffered(), 3);
        assert_eq!(lb.feed(b""), (0, None));
        assert_eq!(lb.feed(b"T\r"), (2, None));
        assert_eq!(lb.buffered(), 5);
        assert_eq!(lb.feed(b"\n"), (1, Some(LineEvent::Line(b"PART"))));
    }

    #[test]
    fn telnet_abort_sequence() {
        assert_eq!(run(100, b"\xFF\xF4\xFF\xF2ABOR\r\n"), vec![line(b"ABOR")]);
    }

    #[test]
    fn telnet_sequences() {
        // IAC IAC is a data byte; negotiation takes an option byte, even LF or IAC.
        assert_eq!(run(100, b"A\xFF\xFFB\r\n"), vec![line(b"A\xFFB")]);
        assert_eq!(run(100, b"A\xFF\xFB\nB\r\n"), vec![line(b"AB")]);
        assert_eq!(run(100, b"A\xFF\xFE\xFFB\r\n"), vec![line(b"AB")]);
        assert_eq!(run(100, b"A\xFF\xFC\x01\xFF\xFD\x03B\n"), vec![line(b"AB")]);
        // Any other command byte is dropped with its IAC, including LF and CR.
        assert_eq!(run(100, b"A\xFF\nB\xFF\rC\n"), vec![line(b"ABC")]);
        // A CR survives a Telnet command between it and the LF.
        assert_eq!(run(100, b"A\r\xFF\xF1\n"), vec![line(b"A")]);
        assert_eq!(run(100, b"A\r\xFF\xFF\n"), vec![line(b"A\r\xFF")]);
    }

    #[test]
    fn telnet_split_across_feeds() {
        let mut lb = LineBuffer::new(100);
        assert_eq!(lb.feed(b"AB\xFF"), (3, None));
        assert_eq!(lb.feed(b"\xFF"), (1, None));
        assert_eq!(lb.feed(b"\xFF"), (1, None));
        assert_eq!(lb.feed(b"\xFB"), (1, None));
        assert_eq!(lb.feed(b"\n"), (1, None));
        assert_eq!(lb.feed(b"C\r"), (2, None));
        assert_eq!(lb.feed(b"\n"), (1, Some(LineEvent::Line(b"AB\xFFC"))));
    }

    #[test]
    fn too_long_is_reported_once_and_recovers() {
        assert_eq!(
            run(4, b"ABCD\r\nABCDE\r\nOK\r\n"),
            vec![line(b"ABCD"), Ev::TooLong, line(b"OK")]
        );
        assert_eq!(
            run(4, b"ABCDEFGHIJKLMNOP\nX\n"),
            vec![Ev::TooLong, line(b"X")]
        );
        // A CR that is not part of the terminator counts.
        assert_eq!(run(4, b"ABCD\rX\n"), vec![Ev::TooLong]);
        assert_eq!(run(4, b"ABC\r\r\n"), vec![line(b"ABC\r")]);
        assert_eq!(run(4, b"ABCD\r\r\n"), vec![Ev::TooLong]);
        // Telnet bytes that decode to nothing do not count.
        assert_eq!(run(4, b"AB\xFF\xF4\xFF\xF2CD\n"), vec![line(b"ABCD")]);
        assert_eq!(run(0, b"A\n\n"), vec![Ev::TooLong, line(b"")]);
    }

    #[test]
    fn over_long_line_does_not_grow_memory() {
        let mut lb = LineBuffer::new(100);
        for _ in 0..1000 {
            assert_eq!(lb.feed(&[b'x'; 1000]), (1000, None));
            assert!(lb.buf.capacity() <= 100);
            assert_eq!(lb.buffered(), 0);
        }
        assert_eq!(lb.feed(b"\r\nNOOP\r\n"), (2, Some(LineEvent::TooLong)));
        assert_eq!(lb.feed(b"NOOP\r\n"), (6, Some(LineEvent::Line(b"NOOP"))));
    }

    #[test]
    fn buffer_is_reused() {
        let mut lb = LineBuffer::new(1000);
        assert_eq!(lb.feed(b"RETR file\r\n").0, 11);
        let cap = lb.buf.capacity();
        let ptr = lb.buf.as_ptr();
        for _ in 0..10 {
            assert_eq!(lb.feed(b"NOOP\r\n"), (6, Some(LineEvent::Line(b"NOOP"))));
        }
        assert_eq!((lb.buf.capacity(), lb.buf.as_ptr()), (cap, ptr));
    }

    #[test]
    fn shrink_releases_memory_only_when_empty() {
        let mut lb = LineBuffer::new(1000);
        assert_eq!(lb.feed(b"STOR a\r\n").0, 8);
        lb.shrink();
        assert_eq!(lb.buf.capacity(), 0);
        assert_eq!(lb.feed(b"LIST\r"), (5, None));
        lb.shrink();
        assert_eq!(lb.buf.capacity(), MIN_CAPACITY);
        assert_eq!(lb.feed(b"\n"), (1, Some(LineEvent::Line(b"LIST"))));
        // A pending Telnet sequence survives a shrink.
        assert_eq!(lb.feed(b"\xFF"), (1, None));
        lb.shrink();
        assert_eq!(lb.buf.capacity(), 0);
        assert_eq!(lb.feed(b"\xF4QUIT\n"), (6, Some(LineEvent::Line(b"QUIT"))));
    }

    fn stream() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            3 => b'a'..=b'd',
            2 => Just(b'\n'),
            2 => Just(b'\r'),
            2 => Just(IAC),
            1 => WILL..=DONT,
            1 => Just(0xF4u8),
            1 => any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..400)
    }

    proptest! {
        #[test]
        fn chunking_does_not_matter(
            max_len in 0usize..40,
            input in stream(),
            sizes in proptest::collection::vec(1usize..24, 1..16),
        ) {
            let whole = run(max_len, &input);
            prop_assert_eq!(&whole, &oracle(max_len, &input));
            let mut lb = LineBuffer::new(max_len);
            prop_assert_eq!(&run_chunked(&mut lb, &input, &sizes), &whole);
            for ev in &whole {
                if let Ev::Line(l) = ev {
                    prop_assert!(l.len() <= max_len);
                }
            }
        }

        #[test]
        fn shrinking_does_not_matter(
            max_len in 0usize..40,
            input in stream(),
            sizes in proptest::collection::vec(1usize..24, 1..16),
        ) {
            let mut lb = LineBuffer::new(max_len);
            let mut events = Vec::new();
            let mut rest = &input[..];
            let mut k = 0;
            while !rest.is_empty() {
                let n = sizes[k % sizes.len()].min(rest.len());
                k += 1;
                let (used, ev) = lb.feed(&rest[..n]);
                if let Some(ev) = ev {
                    events.push(own(ev));
                }
                rest = &rest[used..];
                lb.shrink();
                prop_assert!(lb.buf.capacity() <= max_len);
            }
            prop_assert_eq!(events, oracle(max_len, &input));
        }

        #[test]
        fn memory_is_bounded(max_len in 0usize..3000, input in proptest::collection::vec(any::<u8>(), 0..8000)) {
            let mut lb = LineBuffer::new(max_len);
            run_chunked(&mut lb, &input, &[997]);
            prop_assert!(lb.buf.capacity() <= max_len);
            prop_assert!(lb.buffered() <= max_len + 1);
        }
    }
}
