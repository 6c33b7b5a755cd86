//! LIST/NLST name patterns: no panic, bounded work on any pattern and name (libFuzzer's timeout
//! catches a blow-up), and the rules that hold for every input.
#![no_main]

use ferry_proto::glob::{is_pattern, matches};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (pattern, name) = input;
    let hit = matches(pattern, name);
    // Without pattern characters a pattern is the name itself.
    if !is_pattern(pattern) {
        assert_eq!(hit, pattern == name);
    }
    // `*` takes every name but dot files; as many `?` as the name has characters, the same.
    let visible = !name.starts_with('.');
    assert_eq!(matches("*", name), visible);
    assert_eq!(matches(&"?".repeat(name.chars().count()), name), visible);
    // A leading `*` in front of a pattern that matched (and does not start with `.`) still matches.
    if hit && !pattern.starts_with('.') {
        assert!(matches(&format!("*{pattern}"), name));
    }
});
