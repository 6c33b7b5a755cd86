//! TYPE A line-ending conversion (RFC 959 §3.1.1.1), as streaming transforms.
//!
//! On the wire, ASCII lines end in CRLF; on disk Ferry stores the local convention, LF.

use alloc::vec::Vec;

/// Converts file bytes to the network form: every LF not already preceded by CR becomes CRLF.
#[derive(Clone, Debug, Default)]
pub struct ToNetwork {
    last_was_cr: bool,
}

impl ToNetwork {
    /// Appends the converted form of `input` to `out`; state carries across calls.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        for &b in input {
            if b == b'\n' && !self.last_was_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_was_cr = b == b'\r';
        }
    }
}

/// Converts network bytes to the file form: CRLF becomes LF; a lone CR is kept.
#[derive(Clone, Debug, Default)]
pub struct FromNetwork {
    pending_cr: bool,
}

impl FromNetwork {
    /// Appends the converted form of `input` to `out`; a CR at the end of `input` is held until the next
    /// call (or [`FromNetwork::finish`]) shows whether an LF follows.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        for &b in input {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    out.push(b'\r');
                }
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
    }

    /// Flushes a CR held at the end of the stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn to_net(chunks: &[&[u8]]) -> Vec<u8> {
        let mut c = ToNetwork::default();
        let mut out = Vec::new();
        for ch in chunks {
            c.convert(ch, &mut out);
        }
        out
    }

    fn from_net(chunks: &[&[u8]]) -> Vec<u8> {
        let mut c = FromNetwork::default();
        let mut out = Vec::new();
        for ch in chunks {
            c.convert(ch, &mut out);
        }
        c.finish(&mut out);
        out
    }

    #[test]
    fn converts_both_ways() {
        assert_eq!(to_net(&[b"a\nb\r\nc\r"]), b"a\r\nb\r\nc\r");
        assert_eq!(to_net(&[b"a\r", b"\nb\n"]), b"a\r\nb\r\n");
        assert_eq!(from_net(&[b"a\r\nb\rc\r"]), b"a\nb\rc\r");
        assert_eq!(from_net(&[b"a\r", b"\nb"]), b"a\nb");
    }

    proptest! {
        #[test]
        fn roundtrip_of_lf_text(text in "[a-z\n]{0,200}", split in 0usize..200) {
            let bytes = text.as_bytes();
            let split = split.min(bytes.len());
            let wire = to_net(&[&bytes[..split], &bytes[split..]]);
            prop_assert!(!wire.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
            let back = from_net(&[&wire[..split.min(wire.len())], &wire[split.min(wire.len())..]]);
            prop_assert_eq!(back, bytes.to_vec());
        }
    }
}
