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
//! seen, so its work is at most about twice the pattern's length times the name's length, whatever the
//! input ([`max_steps`]). Patterns are at most [`MAX_PATTERN_LEN`] bytes.
//!
//! That product is still large: a 255-byte pattern against a 205-byte name is some 50,000 steps, and
//! a listing repeats it for every name in the directory. So a listing counts its work in a [`Budget`]:
//! [`BUDGET_BASE`] steps to begin with and [`BUDGET_PER_NAME`] more for every name it examines. An
//! ordinary pattern (`*.txt`, `log-2024-??-*`) costs a few steps per character of a name and never
//! comes near it; a pattern built to backtrack uses the allowance up within a few dozen names, and the
//! listing ends with [`TooComplex`] (the server's reply: `550`, or `451` after the `150`). The work of
//! one listing's pattern is thus at most about [`BUDGET_BASE`] plus [`BUDGET_PER_NAME`] steps per name
//! listed (one step is roughly a nanosecond), a small constant times the cost of listing those names
//! without a pattern.

use alloc::string::String;

/// The longest pattern accepted, in bytes; a longer one is refused with `501`.
pub const MAX_PATTERN_LEN: usize = 255;

/// Matching steps a listing's [`Budget`] allows before it has examined any name: enough for any
/// pattern at its worst over a few dozen of the longest names (about a millisecond of work).
pub const BUDGET_BASE: u64 = 1 << 20;

/// Matching steps each name a listing examines adds to its [`Budget`]: four times what `*.txt` costs
/// against a 255-byte name, so that ordinary patterns never run out, however large the directory.
pub const BUDGET_PER_NAME: u64 = 1 << 10;

/// The matching work one listing may still spend, in steps (see the [module docs](self)): a step is one
/// turn of the matcher's loop, or one byte of a `[...]` set read, or one byte of the pattern's tail
/// checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    left: u64,
    spent: u64,
}

/// A pattern needed more matching work than its listing's [`Budget`] allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooComplex;

impl Budget {
    /// A listing's budget before it has examined a name: [`BUDGET_BASE`] steps.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            left: BUDGET_BASE,
            spent: 0,
        }
    }

    /// A budget that never runs out (for [`matches`] and [`steps`]).
    const fn unlimited() -> Self {
        Self {
            left: u64::MAX,
            spent: 0,
        }
    }

    /// The steps spent so far.
    #[must_use]
    pub const fn spent(&self) -> u64 {
        self.spent
    }

    /// Spends `n` steps, or all that is left and [`TooComplex`] when that is fewer.
    fn take(&mut self, n: u64) -> Result<(), TooComplex> {
        if self.left < n {
            self.spent += self.left;
            self.left = 0;
            return Err(TooComplex);
        }
        self.left -= n;
        self.spent += n;
        Ok(())
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new()
    }
}

/// The most steps matching any pattern of `pattern_len` bytes against any name of `name_len` bytes
/// can take: the pattern is read once to find its last `]`; between two moves of the last `*`'s saved
/// position the matcher takes at most one turn per pattern byte and reads each `[...]` set once, the
/// saved position moves at most once per name byte, and the tail check reads the pattern once more.
#[must_use]
pub const fn max_steps(pattern_len: usize, name_len: usize) -> u64 {
    let (p, n) = (pattern_len as u64, name_len as u64);
    (n + 1) * (2 * p + 1) + 2 * p
}

/// The steps matching `name` against `pattern` takes (at most [`max_steps`] of their lengths).
#[must_use]
pub fn steps(pattern: &str, name: &str) -> u64 {
    let mut budget = Budget::unlimited();
    let _ = run(pattern, name, &mut budget);
    budget.spent()
}

/// True when `component` holds a pattern character (`*`, `?` or `[`), so that LIST and NLST treat it
/// as a pattern unless a file of that very name exists.
#[must_use]
pub fn is_pattern(component: &str) -> bool {
    component.bytes().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// True when `name` matches `pattern` (syntax in the [module docs](self)), however much work it takes
/// (at most [`max_steps`]).
#[must_use]
pub fn matches(pattern: &str, name: &str) -> bool {
    run(pattern, name, &mut Budget::unlimited()).unwrap_or(false)
}

/// The matcher: whether `name` matches `pattern`, spending a step of `budget` per turn of its loop.
fn run(pattern: &str, name: &str, budget: &mut Budget) -> Result<bool, TooComplex> {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return Ok(false);
    }
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    budget.take(p.len() as u64)?;
    let close = p.iter().rposition(|&b| b == b']');
    let (mut pi, mut ni) = (0, 0);
    // After a `*`: where the pattern goes on, and where in the name that rest was last tried.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        budget.take(1)?;
        let c = char_at(name, ni);
        let step = match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, ni));
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => {
                // A set is closed by the first `]` after its first member (which may be a `]`
                // itself): one after that position exists exactly when the last `]` is there, so an
                // unclosed `[` is known without reading the rest of the pattern again.
                let first = pi + 1 + usize::from(matches!(p.get(pi + 1), Some(b'!' | b'^')));
                match close
                    .filter(|&k| k > first)
                    .and_then(|_| class(pattern, pi + 1, c))
                {
                    Some((hit, len)) => {
                        budget.take(len as u64)?;
                        hit.then_some(len + 1)
                    }
                    // No closing `]`: a literal `[`.
                    None => (c == '[').then_some(1),
                }
            }
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
            (None, None) => return Ok(false),
        }
    }
    budget.take((p.len() - pi) as u64)?;
    Ok(p[pi..].iter().all(|&b| b == b'*'))
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

    /// True when `name` matches the pattern, within what is left of the listing's `budget`, which
    /// first earns [`BUDGET_PER_NAME`] steps for this name.
    ///
    /// # Errors
    /// [`TooComplex`] when the budget runs out: the listing should end there.
    pub fn matches_within(&self, name: &str, budget: &mut Budget) -> Result<bool, TooComplex> {
        budget.left = budget.left.saturating_add(BUDGET_PER_NAME);
        run(&self.pattern, name, budget)
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

    /// A 255-byte pattern that costs the most against a long name of `a`s it cannot match: a `*`, a
    /// set of 251 members read whole at every position the `*` lets it try, then a `b` never there.
    fn adversarial() -> String {
        String::from("*[") + &"a".repeat(MAX_PATTERN_LEN - 4) + "]b"
    }

    #[test]
    fn steps_are_counted_and_bounded() {
        let (p, name) = (adversarial(), "a".repeat(205));
        assert_eq!(p.len(), MAX_PATTERN_LEN);
        let n = steps(&p, &name);
        // Pattern length times name length: every start of the name reads the whole set...
        assert!(n > 200 * 250, "{n}");
        // ...but never above the bound, for this or any other input tried here.
        assert!(n <= max_steps(p.len(), name.len()), "{n}");
        let sets = "*[a-z][a-z][a-z][!b]".repeat(12) + "b";
        let other = "[abc-".repeat(50) + "*";
        // Unclosed sets are literal `[`s, found so without reading on to the pattern's end each time.
        let unclosed = String::from("*") + &"[".repeat(MAX_PATTERN_LEN - 1);
        let brackets = "[".repeat(204) + "x";
        for (p, name) in [
            (unclosed.as_str(), brackets.as_str()),
            (sets.as_str(), name.as_str()),
            (other.as_str(), "[[[["),
            ("*a*a*a*a*a*a*a*a*a*b", name.as_str()),
            ("*", name.as_str()),
        ] {
            assert!(steps(p, name) <= max_steps(p.len(), name.len()), "{p}");
        }
        // An ordinary pattern costs a few steps per character.
        assert!(
            steps("*.txt", &name) <= 3 * 205,
            "{}",
            steps("*.txt", &name)
        );
        const { assert!(3 * 255 < BUDGET_PER_NAME) };
    }

    #[test]
    fn a_listing_budget_stops_an_adversarial_pattern_within_a_few_dozen_names() {
        let glob = Glob {
            pattern: adversarial(),
            prefix: String::new(),
            max: usize::MAX,
        };
        let name = "a".repeat(205);
        let mut budget = Budget::new();
        let mut examined = 0u64;
        let stopped = (0..20_000).any(|_| {
            examined += 1;
            glob.matches_within(&name, &mut budget).is_err()
        });
        assert!(stopped);
        assert!(examined < 64, "{examined} names before the budget ran out");
        assert!(budget.spent() <= BUDGET_BASE + examined * BUDGET_PER_NAME);
        // An ordinary pattern over as many names of that length never runs out.
        let glob = Glob {
            pattern: String::from("*.txt"),
            ..glob
        };
        let mut budget = Budget::new();
        for _ in 0..20_000 {
            assert_eq!(glob.matches_within(&name, &mut budget), Ok(false));
        }
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

        #[test]
        fn steps_stay_within_the_bound(p in "[ab*?\\[\\]!^-]{0,60}", n in "[ab\\[\\]-]{0,60}") {
            prop_assert!(steps(&p, &n) <= max_steps(p.len(), n.len()));
        }
    }
}
