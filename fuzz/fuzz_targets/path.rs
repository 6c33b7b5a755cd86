//! Virtual path resolution: the result is always absolute, normalised and inside the root.
#![no_main]

use ferry_proto::path::VirtualPath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (cwd, arg) = input;
    let Ok(base) = VirtualPath::root().join(cwd) else { return };
    let Ok(p) = base.join(arg) else { return };
    let s = p.as_str();
    assert!(s.starts_with('/'));
    assert!(s == "/" || !s.ends_with('/'));
    assert!(!s.contains('\0'));
    for c in p.components() {
        assert!(!c.is_empty() && c != "." && c != "..");
    }
    // The normal form is a fixed point, and resolving it from anywhere gives itself.
    assert_eq!(VirtualPath::root().join(s).ok().as_ref(), Some(&p));
    assert_eq!(base.join(s).ok().as_ref(), Some(&p));
});
