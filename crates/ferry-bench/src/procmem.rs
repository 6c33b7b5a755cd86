//! Memory of a server and all its processes, from `/proc/PID/smaps_rollup` (Linux).
//!
//! RSS counts every resident page of each process (shared pages once per process); USS counts only the
//! pages private to each process (`Private_Clean + Private_Dirty`), the memory that would be freed if it
//! exited; PSS splits shared pages among their users. Summed over a pre-forking server (one process or
//! two per session, like vsftpd) USS is the fair "cost per session"; for a one-process server the three
//! differ only by the shared libraries. Kernel socket buffers are in none of them.

use std::collections::{BTreeSet, HashMap};
use std::fs;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// Which processes make up the server.
#[derive(Clone, Debug)]
pub enum Target {
    /// This process and its descendants.
    Pid(u32),
    /// Every process with this command name (`/proc/PID/comm`) and their descendants.
    Name(String),
}

/// Memory summed over the server's processes, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Processes measured.
    pub processes: usize,
    /// Resident set size.
    pub rss_kib: u64,
    /// Proportional set size.
    pub pss_kib: u64,
    /// Unique (private) set size.
    pub uss_kib: u64,
}

/// Measures the target's processes now.
///
/// # Errors
/// `/proc` unreadable, or no process matches.
pub fn measure(target: &Target) -> Result<Memory> {
    let pids = processes(target)?;
    if pids.is_empty() {
        bail!("no process matches {target:?}");
    }
    let mut m = Memory::default();
    for pid in pids {
        // A process may exit between the scan and the read: skip it.
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        let r = parse_rollup(&text);
        m.processes += 1;
        m.rss_kib += r.rss_kib;
        m.pss_kib += r.pss_kib;
        m.uss_kib += r.uss_kib;
    }
    Ok(m)
}

/// Sums the fields of one `smaps_rollup`.
fn parse_rollup(text: &str) -> Memory {
    let mut m = Memory::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(key), Some(value)) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(kib) = value.parse::<u64>() else {
            continue;
        };
        match key {
            "Rss:" => m.rss_kib += kib,
            "Pss:" => m.pss_kib += kib,
            "Private_Clean:" | "Private_Dirty:" => m.uss_kib += kib,
            _ => {}
        }
    }
    m
}

/// The parent PID from the text of `/proc/PID/stat` (the field after the state, which follows the
/// command name in parentheses; the name may itself hold parentheses and spaces).
fn parse_ppid(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The target's processes: its roots and all their descendants.
fn processes(target: &Target) -> Result<BTreeSet<u32>> {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut roots = BTreeSet::new();
    for entry in fs::read_dir("/proc").context("reading /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(ppid) = parse_ppid(&stat) {
            parent.insert(pid, ppid);
        }
        match target {
            Target::Pid(p) if *p == pid => {
                roots.insert(pid);
            }
            Target::Name(name) => {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim_end() == name {
                    roots.insert(pid);
                }
            }
            Target::Pid(_) => {}
        }
    }
    let mut all = roots.clone();
    // Add children until nothing changes (the tree is shallow: a few passes at most).
    loop {
        let before = all.len();
        for (pid, ppid) in &parent {
            if all.contains(ppid) {
                all.insert(*pid);
            }
        }
        if all.len() == before {
            return Ok(all);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_fields() {
        let text = "55d0c0a00000-7ffd1f9ff000 ---p 00000000 00:00 0   [rollup]\n\
                    Rss:                4096 kB\nPss:                1024 kB\n\
                    Pss_Anon:            512 kB\nShared_Clean:       3000 kB\n\
                    Private_Clean:       100 kB\nPrivate_Dirty:       900 kB\n";
        let m = parse_rollup(text);
        assert_eq!((m.rss_kib, m.pss_kib, m.uss_kib), (4096, 1024, 1000));
    }

    #[test]
    fn ppid_after_odd_names() {
        assert_eq!(parse_ppid("123 (vsftpd) S 45 123 123 0"), Some(45));
        assert_eq!(parse_ppid("123 (a) b (c) R 7 1 1"), Some(7));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn measures_this_process() {
        let m =
            measure(&Target::Pid(std::process::id())).unwrap_or_else(|e| panic!("measure: {e:#}"));
        assert!(m.processes >= 1);
        assert!(m.rss_kib > 0 && m.uss_kib <= m.rss_kib);
    }
}
