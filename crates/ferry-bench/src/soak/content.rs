//! Expected file contents of the soak: seeded pseudo-random streams, regenerated at any offset.

use super::*;

/// SplitMix64: the pseudo-random stream behind file contents and choices.
pub(super) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with the bytes of stream `seed` from `offset` on (random access: byte `p` is byte
/// `p % 8` of `splitmix(seed ^ p / 8)`).
pub(super) fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let block = splitmix(seed ^ (pos / 8).wrapping_mul(0xD6E8_FEB8_6659_FD93)).to_le_bytes();
        let within = (pos % 8) as usize;
        let n = (8 - within).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&block[within..within + n]);
        i += n;
        pos += n as u64;
    }
}

/// `len` bytes of stream `seed` from `start`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Segment {
    pub(super) seed: u64,
    pub(super) start: u64,
    pub(super) len: u64,
}

/// What a file must contain: segments of pseudo-random streams, in order.
#[derive(Clone, Debug, Default)]
pub(super) struct Content {
    pub(super) segments: Vec<Segment>,
}

impl Content {
    pub(super) fn new(seed: u64, len: u64) -> Self {
        let mut c = Self::default();
        c.push(seed, len);
        c
    }

    pub(super) fn len(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    pub(super) fn push(&mut self, seed: u64, len: u64) {
        if len > 0 {
            self.segments.push(Segment {
                seed,
                start: 0,
                len,
            });
        }
    }

    /// Keeps the first `n` bytes.
    pub(super) fn truncate(&mut self, n: u64) {
        let mut left = n;
        let mut keep = Vec::new();
        for s in &self.segments {
            if left == 0 {
                break;
            }
            let take = s.len.min(left);
            keep.push(Segment { len: take, ..*s });
            left -= take;
        }
        self.segments = keep;
    }

    /// Calls `f` with the bytes from `from` to the end, in chunks.
    pub(super) fn chunks(&self, from: u64, mut f: impl FnMut(&[u8])) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut skip = from;
        for s in &self.segments {
            if skip >= s.len {
                skip -= s.len;
                continue;
            }
            let mut pos = s.start + skip;
            let end = s.start + s.len;
            skip = 0;
            while pos < end {
                let n = usize::try_from(end - pos)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                fill(s.seed, pos, &mut buf[..n]);
                f(&buf[..n]);
                pos += n as u64;
            }
        }
    }

    /// SHA-256 of the bytes from `from` to the end.
    pub(super) fn sha256_from(&self, from: u64) -> [u8; 32] {
        let mut h = Sha256::new();
        self.chunks(from, |c| h.update(c));
        h.finalize().into()
    }
}

// ---- the control connection ----------------------------------------------------------------------
