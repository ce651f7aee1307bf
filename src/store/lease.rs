//! Lease owners: `{hostname}:{pid}:{start}:{nonce}`, and telling whether one is dead.
//!
//! `start` is the process's start time in clock ticks since boot (`/proc/<pid>/stat` field 22),
//! which any process on the host can read back: a lease whose pid is gone, or whose pid now
//! belongs to a process started at another time, is void at once. So `kill -9` and a rerun
//! resumes without waiting for the lease to expire. Owners on other hosts are only trusted
//! until `lease_until`.

use std::sync::OnceLock;

/// This process: host, pid and start time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessId {
    /// Hostname.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (0 where /proc is unavailable).
    pub start: u64,
}

impl ProcessId {
    /// This process.
    pub fn current() -> &'static ProcessId {
        static ME: OnceLock<ProcessId> = OnceLock::new();
        ME.get_or_init(|| {
            let pid = std::process::id();
            ProcessId { host: hostname(), pid, start: start_time(pid).unwrap_or(0) }
        })
    }

    /// `{host}:{pid}:{start}`.
    pub fn tag(&self) -> String {
        format!("{}:{}:{}", self.host, self.pid, self.start)
    }

    /// A fresh lease owner for one handler run: `{host}:{pid}:{start}:{nonce}`. Two jobs for one
    /// delivery in the same process get different owners, so they exclude each other too.
    pub fn owner(&self) -> String {
        format!("{}:{}", self.tag(), uuid::Uuid::new_v4().simple())
    }

    /// A name unique to this process, usable in apalis worker names: `{host}-{pid}-{start}`.
    pub fn worker_suffix(&self) -> String {
        format!("{}-{}-{}", self.host, self.pid, self.start)
    }
}

/// The hostname, from the kernel (falls back to `localhost`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
        .replace([':', '/'], "_")
}

/// A process's start time (ticks since boot), from `/proc/<pid>/stat`.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: parse after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    // Fields after `comm` start at field 3 (state); starttime is field 22 → index 19 here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Is the owner `{host}:{pid}:{start}[:…]` a process on this host that no longer runs?
/// Owners on other hosts, or unparsable ones, are never declared dead here.
pub fn owner_is_dead_here(owner: &str) -> bool {
    let mut it = owner.split(':');
    let (Some(host), Some(pid), Some(start)) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    let me = ProcessId::current();
    if host != me.host {
        return false;
    }
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    match start_time(pid) {
        None => true,
        Some(now) => start != 0 && now != start,
    }
}

/// Same test for an apalis worker name ending in `-{host}-{pid}-{start}-{run}.{restarts}`.
pub fn worker_is_dead_here(worker: &str) -> bool {
    let parts: Vec<&str> = worker.rsplitn(4, '-').collect();
    // rsplitn from the right: ["{run}.{restarts}", start, pid, "<queue>-<host>"]
    if parts.len() < 4 {
        return false;
    }
    let (start, pid, head) = (parts[1], parts[2], parts[3]);
    let me = ProcessId::current();
    if !head.ends_with(&format!("-{}", me.host)) {
        return false;
    }
    owner_is_dead_here(&format!("{}:{pid}:{start}", me.host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_gone_pid_is_dead() {
        let me = ProcessId::current();
        assert!(me.start > 0, "start time readable from /proc");
        assert!(!owner_is_dead_here(&me.owner()));
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(owner_is_dead_here(&format!("{}:4194305:1:x", me.host)));
        // Same pid, other start time: the pid was reused.
        assert!(owner_is_dead_here(&format!("{}:{}:{}:x", me.host, me.pid, me.start + 1)));
        // Another host is never judged here.
        assert!(!owner_is_dead_here("elsewhere:4194305:1:x"));
        assert!(!owner_is_dead_here("garbage"));
    }

    #[test]
    fn worker_names() {
        let me = ProcessId::current();
        assert!(!worker_is_dead_here(&format!("deliver-{}-0.0", me.worker_suffix())));
        assert!(worker_is_dead_here(&format!("deliver-{}-4194305-7-0.1", me.host)));
        assert!(!worker_is_dead_here("deliver-otherhost-4194305-7-0.0"));
    }
}
