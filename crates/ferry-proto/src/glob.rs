//! Server-side name patterns for LIST and NLST (`NLST dir/log-*.txt`, what `mget *.txt` in the classic
//! clients sends), as vsftpd, ProFTPD and Pure-FTPd offer them.
//!
//! A pattern applies to the **last** path component only, and only to the names inside the directory
//! its other components name (resolved and jailed like any path), so a pattern can never reach outside
//! that directory: `..` in the directory part is ordinary path resolution, and `/` cannot occur in the
//! pattern itself. MLSD and MLST never glob (RFC 3659 §7.2.1); neither do STAT and the other commands.
//!
//! The syntax is the shell's, without escapes:
//! - `*` matches any run of characters (also none), `?` exactly one character;
//! - `[...]` one character of a set: single characters and ranges (`[a-z0-9]`), negated by a leading
//!   `!` or `^` (`[!.]`); a `]` right after the opening (or after the negation) and a `-` first or last
//!   are literal; a `[` without its `]` is a literal `[`;
//! - a name that starts with `.` is matched only by a pattern that starts with a literal `.` (as a shell
//!   leaves dot files out of `*`);
//! - everything else matches itself, compared by Unicode scalar value (no case folding).
//!
//! The matcher is iterative and allocation-free: no recursion, and one saved position for the last `*`
//! seen, so its work is at most the pattern's length times the name's length, whatever the input.
//! Patterns are at most [`MAX_PATTERN_LEN`] bytes.

use alloc::string::String;

/// The longest pattern accepted, in bytes; a longer one is refused with `501`.
pub const MAX_PATTERN_LEN: usize = 255;

/// True when `component` holds a pattern character (`*`, `?` or `[`), so that LIST and NLST treat it
/// as a pattern unless a file of that very name exists.
#[must_use]
pub fn is_pattern(component: &str) -> bool {
    component.bytes().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// True when `name` matches `pattern` (syntax in the [module docs](self)).
#[must_use]
pub fn matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // After a `*`: where the pattern goes on, and where in the name that rest was last tried.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let c = char_at(name, ni);
        let step = match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, ni));
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match class(pattern, pi + 1, c) {
                Some((true, len)) => Some(len + 1),
                Some((false, _)) => None,
                // No closing `]`: a literal `[`.
                None => (c == '[').then_some(1),
            },
            Some(_) => {
                let pc = char_at(pattern, pi);
                (pc == c).then_some(pc.len_utf8())
            }
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                pi += len;
                ni += c.len_utf8();
            }
            // Let the last `*` take one more character and try the rest of the pattern again.
            (None, Some((sp, sn))) => {
                let sn = sn + char_at(name, sn).len_utf8();
                star = Some((sp, sn));
                pi = sp;
                ni = sn;
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// The character starting at byte `i` of `s` (`i` is always on a character boundary here).
fn char_at(s: &str, i: usize) -> char {
    s.get(i..).and_then(|t| t.chars().next()).unwrap_or('\0')
}

/// Matches `c` against the set that starts at byte `start` of `pattern` (just after its `[`): whether
/// it matched and the set's length in bytes up to and including its `]`, or `None` when the set is not
/// closed.
fn class(pattern: &str, start: usize, c: char) -> Option<(bool, usize)> {
    let p = pattern.as_bytes();
    let mut i = start;
    let negated = matches!(p.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let lo = match p.get(i) {
            None => return None,
            Some(b']') if !first => break,
            Some(_) => char_at(pattern, i),
        };
        first = false;
        i += lo.len_utf8();
        // A range `lo-hi`, unless the `-` is the last character of the set.
        if p.get(i) == Some(&b'-') && !matches!(p.get(i + 1), None | Some(b']')) {
            let hi = char_at(pattern, i + 1);
            i += 1 + hi.len_utf8();
            hit |= lo <= c && c <= hi;
        } else {
            hit |= lo == c;
        }
    }
    Some((hit != negated, i + 1 - start))
}

/// A pattern from a LIST or NLST argument, as the driver applies it to the names of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    /// The pattern: the argument's last component, at most [`MAX_PATTERN_LEN`] bytes.
    pub pattern: String,
    /// The directory part as the client wrote it, up to and including its last `/` (empty for a
    /// pattern in the working directory). NLST lines are this prefix followed by the name
    /// (`NLST dir/log-*.txt` sends `dir/log-1.txt`), so that a client can RETR each line as it is.
    pub prefix: String,
    /// The most names to send ([`Config::max_list_matches`](crate::session::Config::max_list_matches));
    /// the listing ends there and the driver logs that it was cut.
    pub max: usize,
}

impl Glob {
    /// True when `name` matches the pattern.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        matches(&self.pattern, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// The obvious recursive matcher (exponential on bad input) for `*`, `?` and literals: the reference
    /// of the property test.
    fn reference(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| reference(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && reference(&p[1..], &n[1..]),
            Some(&c) => n.first() == Some(&c) && reference(&p[1..], &n[1..]),
        }
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("*.txt", "a.txt"));
        assert!(!matches("*.txt", ".txt"));
        assert!(matches("log-*.txt", "log-.txt"));
        assert!(matches("log-*.txt", "log-2024-01.txt"));
        assert!(!matches("log-*.txt", "log-1.txt.gz"));
        assert!(matches("a?c", "abc"));
        assert!(matches("a?c", "aéc"), "one character, two bytes");
        assert!(!matches("a?c", "ac"));
        assert!(matches("*", "x"));
        assert!(matches("**a**", "bab"));
        assert!(matches("*a*b*c*", "xaxbxcx"));
        assert!(!matches("*a*b*c*", "xcxbxax"));
        assert!(matches("ünï*", "ünïcode ✓"));
    }

    #[test]
    fn sets() {
        assert!(matches("[ab]1", "a1"));
        assert!(matches("[ab]1", "b1"));
        assert!(!matches("[ab]1", "c1"));
        assert!(matches("[a-c]", "b"));
        assert!(!matches("[a-c]", "d"));
        assert!(matches("[!a-c]", "d"));
        assert!(matches("[^a-c]", "d"));
        assert!(!matches("[^a-c]", "a"));
        assert!(matches("[]a]", "]"));
        assert!(matches("[!]a]", "b"));
        assert!(matches("[a-]", "-"));
        assert!(matches("[-a]", "-"));
        assert!(matches("[é-ë]", "ê"));
        assert!(matches("x[0-9][0-9]", "x42"));
        // Unclosed: a literal `[`.
        assert!(matches("a[b", "a[b"));
        assert!(!matches("a[b", "ab"));
        assert!(matches("*[", "x["));
    }

    #[test]
    fn dot_files_need_a_leading_dot() {
        assert!(!matches("*", ".hidden"));
        assert!(!matches("?hidden", ".hidden"));
        assert!(!matches("[.]hidden", ".hidden"));
        assert!(matches(".h*", ".hidden"));
        assert!(matches(".*", ".hidden"));
        assert!(matches("*.txt", "a.b.txt"));
    }

    #[test]
    fn pattern_characters() {
        assert!(is_pattern("*.txt") && is_pattern("a?") && is_pattern("[ab]"));
        assert!(!is_pattern("plain.txt") && !is_pattern("-1") && !is_pattern("a]b"));
    }

    #[test]
    fn bad_input_takes_bounded_work() {
        // Exponential for a naive backtracking matcher; linear-times-linear here.
        let pattern = "*a".repeat(MAX_PATTERN_LEN / 2);
        let name = "a".repeat(4096);
        assert!(!matches(&pattern, &(name.clone() + "b")));
        assert!(matches(&pattern, &name));
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(
            p in "[ab*?.]{0,8}",
            n in "[ab.]{0,10}",
        ) {
            let pc: Vec<char> = p.chars().collect();
            let nc: Vec<char> = n.chars().collect();
            let expected = (!n.starts_with('.') || p.starts_with('.')) && reference(&pc, &nc);
            prop_assert_eq!(matches(&p, &n), expected);
        }

        #[test]
        fn never_panics(p in "\\PC{0,40}", n in "\\PC{0,40}") {
            let _ = matches(&p, &n);
        }
    }
}
