//! Text without `core::fmt`: numbers written into small stack buffers, and padding.
//!
//! The engine runs on microcontrollers where flash is counted in KiB. `format!`/`write!` bring in
//! `core::fmt`'s machinery (argument tables, `Formatter` padding, the integer `Display` impls and, on
//! 32-bit cores, the 64-bit division routine they call): about 5 KiB, a fifth of the engine's budget
//! (docs/embedded.md). The engine's replies and listing lines are built from string slices and these
//! numbers instead, which is also faster. `clippy.toml` in this crate keeps `format!` and `write!`
//! out of it.

use core::fmt::{self, Write};

/// An integer as text (decimal, hexadecimal or octal), held in a stack buffer.
#[derive(Clone, Copy)]
pub(crate) struct Num {
    buf: [u8; 23],
    start: u8,
}

impl Num {
    /// `n` in decimal.
    pub(crate) fn dec(n: u64) -> Self {
        Self::digits(n, 10)
    }

    /// `n` in decimal, with a `-` when negative.
    pub(crate) fn signed(n: i64) -> Self {
        let mut s = Self::dec(n.unsigned_abs());
        if n < 0 {
            s.start -= 1;
            s.buf[usize::from(s.start)] = b'-';
        }
        s
    }

    /// `n` in lower-case hexadecimal.
    pub(crate) fn hex(n: u64) -> Self {
        Self::digits(n, 16)
    }

    /// `n` in octal.
    pub(crate) fn oct(n: u64) -> Self {
        Self::digits(n, 8)
    }

    fn digits(mut n: u64, radix: u64) -> Self {
        let mut s = Self {
            buf: [b'0'; 23],
            start: 23,
        };
        loop {
            let (q, r) = div_rem(n, radix);
            s.start -= 1;
            // r < 16.
            s.buf[usize::from(s.start)] = b"0123456789abcdef"[r as usize];
            n = q;
            if n == 0 {
                return s;
            }
        }
    }

    /// The text, at least `width` digits: zeros added in front (for a non-negative number).
    pub(crate) fn zeros(mut self, width: usize) -> Self {
        while self.len() < width.min(self.buf.len()) {
            self.start -= 1;
        }
        self
    }

    /// The number of characters.
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - usize::from(self.start)
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits, letters and '-' are ever written.
        core::str::from_utf8(&self.buf[usize::from(self.start)..]).unwrap_or("")
    }
}

/// Writes the ASCII `text` right-aligned in `width` columns (spaces in front); longer text is written
/// whole.
pub(crate) fn write_right<W: Write + ?Sized>(out: &mut W, text: &str, width: usize) -> fmt::Result {
    pad(out, width.saturating_sub(text.len()))?;
    out.write_str(text)
}

/// Writes `n` spaces.
pub(crate) fn pad<W: Write + ?Sized>(out: &mut W, mut n: usize) -> fmt::Result {
    const SPACES: &str = "                ";
    while n > 0 {
        let k = n.min(SPACES.len());
        out.write_str(&SPACES[..k])?;
        n -= k;
    }
    Ok(())
}

/// `n / d` and `n % d` (`d > 0`). On 64-bit targets the processor divides; elsewhere a number
/// below 2^32 uses the 32-bit divide and a larger one shifts and subtracts, so that the 64-bit
/// division routine of the compiler's runtime (about 1 KiB on a Cortex-M) is not linked for it.
pub(crate) fn div_rem(n: u64, d: u64) -> (u64, u64) {
    #[cfg(target_pointer_width = "64")]
    {
        (n / d, n % d)
    }
    #[cfg(not(target_pointer_width = "64"))]
    {
        long_div_rem(n, d)
    }
}

/// Floor division and its non-negative remainder (`d > 0`): `n.div_euclid(d)`, `n.rem_euclid(d)`.
pub(crate) fn floor_div_rem(n: i64, d: u64) -> (i64, u64) {
    if n >= 0 {
        let (q, r) = div_rem(n.unsigned_abs(), d);
        // q <= n.
        (q as i64, r)
    } else {
        // n = -(m + 1), so floor(n / d) = -(m / d) - 1 and the remainder is d - 1 - m % d.
        let m = !n as u64;
        let (q, r) = div_rem(m, d);
        // q <= m < 2^63.
        (-(q as i64) - 1, d - 1 - r)
    }
}

/// Division without the 64-bit division routine (see [`div_rem`]); `d > 0`.
#[cfg_attr(target_pointer_width = "64", allow(dead_code))]
fn long_div_rem(n: u64, d: u64) -> (u64, u64) {
    if let (Ok(n), Ok(d)) = (u32::try_from(n), u32::try_from(d)) {
        return (u64::from(n / d), u64::from(n % d));
    }
    let (mut q, mut r) = (0u64, 0u64);
    for bit in (0..64).rev() {
        // r < d <= u64::MAX, so r << 1 loses at most the top bit, which the carry check keeps.
        let carry = r >> 63;
        r = (r << 1) | ((n >> bit) & 1);
        if carry != 0 || r >= d {
            r = r.wrapping_sub(d);
            q |= 1 << bit;
        }
    }
    (q, r)
}

/// Parses a non-empty string of ASCII digits (no sign, no spaces) into a `u64`; `None` on overflow.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::borrow::ToOwned;
    use alloc::string::String;
    use proptest::prelude::*;

    #[test]
    fn numbers() {
        assert_eq!(Num::dec(0).as_str(), "0");
        assert_eq!(Num::dec(u64::MAX).as_str(), "18446744073709551615");
        assert_eq!(Num::signed(i64::MIN).as_str(), "-9223372036854775808");
        assert_eq!(Num::signed(-7).as_str(), "-7");
        assert_eq!(Num::hex(0xdead_beef).as_str(), "deadbeef");
        assert_eq!(Num::hex(u64::MAX).as_str(), "ffffffffffffffff");
        assert_eq!(Num::oct(0o644).zeros(4).as_str(), "0644");
        assert_eq!(Num::oct(u64::MAX).as_str(), "1777777777777777777777");
        assert_eq!(Num::dec(7).zeros(2).as_str(), "07");
        assert_eq!(Num::dec(123).zeros(2).as_str(), "123");
        let mut s = String::new();
        write_right(&mut s, "42", 5).expect("a String takes any text");
        write_right(&mut s, "123456", 3).expect("a String takes any text");
        pad(&mut s, 20).expect("a String takes any text");
        assert_eq!(s, "   42123456                    ");
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("1 "), None);
        assert_eq!(parse_u64("+1"), None);
    }

    proptest! {
        #[test]
        fn formats_like_core(n in any::<u64>(), i in any::<i64>()) {
            prop_assert_eq!(Num::dec(n).as_str().to_owned(), alloc::format!("{n}"));
            prop_assert_eq!(Num::hex(n).as_str().to_owned(), alloc::format!("{n:x}"));
            prop_assert_eq!(Num::oct(n).as_str().to_owned(), alloc::format!("{n:o}"));
            prop_assert_eq!(Num::signed(i).as_str().to_owned(), alloc::format!("{i}"));
            prop_assert_eq!(parse_u64(&alloc::format!("{n}")), Some(n));
        }

        #[test]
        fn long_division_divides(n in any::<u64>(), d in 1..=u64::MAX, small in 1..100_000u64) {
            prop_assert_eq!(long_div_rem(n, d), (n / d, n % d));
            prop_assert_eq!(long_div_rem(n, small), (n / small, n % small));
            prop_assert_eq!(long_div_rem(n & 0xffff_ffff, small), ((n & 0xffff_ffff) / small, (n & 0xffff_ffff) % small));
        }

        #[test]
        fn floor_division(n in any::<i64>(), d in 1..1_000_000u64) {
            let di = i64::try_from(d).unwrap_or(1);
            prop_assert_eq!(floor_div_rem(n, d), (n.div_euclid(di), n.rem_euclid(di).unsigned_abs()));
        }
    }
}
