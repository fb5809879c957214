//! glibc malloc tuning for the long-running `run` command: one arena and
//! fixed mmap/trim thresholds, so memory freed after start-up, after a
//! `/metrics` scrape or after sealing a report goes back to the system
//! instead of staying resident in per-thread arenas.
//!
//! glibc reads its tunables (`GLIBC_TUNABLES`) only when a process starts,
//! and the workspace forbids the `unsafe` a `mallopt` call would need, so
//! [`reexec_with_tunables`] starts the same binary again, same arguments and
//! PID, with the variable set. An operator who sets `GLIBC_TUNABLES`
//! (even to an empty value) keeps exactly that. Measured in
//! `docs/bench/agent-footprint.md`.

/// The tunables the agent runs with: one malloc arena (the agent's few
/// threads seldom allocate at the same moment: 16 arenas held 1-2 MiB more),
/// allocations from 64 KiB up in their own mappings that are unmapped when
/// freed (glibc's default threshold grows to the largest block freed, after
/// which such blocks stay in the heap), the heap grown by what is asked
/// only (`top_pad=0` instead of 128 KiB more each time) and its top
/// returned once 64 KiB are free at it; no per-thread caches and no fast bins (`tcache_count=0`,
/// `mxfast=0`: freed small blocks are merged with their free neighbours at
/// once instead of being held per size, 1 MiB less heap resident at the
/// footprint load for no measurable CPU), and no cache of the stacks of
/// exited threads (`stack_cache_size=0`: the blocking-pool threads that
/// built the OPC UA clients at start and sealed reports left 20 stacks of
/// 24 KiB resident each). Measured in `docs/bench/agent-footprint.md`.
pub const TUNABLES: &str = "glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=65536:glibc.malloc.top_pad=0:glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0:glibc.pthread.stack_cache_size=0";

/// The environment variable glibc reads its tunables from.
pub const VAR: &str = "GLIBC_TUNABLES";

/// Whether the agent should re-execute itself with [`TUNABLES`]: only on
/// glibc, and only when `GLIBC_TUNABLES` is not set at all.
pub fn wanted(current: Option<&std::ffi::OsStr>) -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu")) && current.is_none()
}

/// Replaces the process with the same binary and arguments with
/// `GLIBC_TUNABLES` = [`TUNABLES`] when [`wanted`]. Returns (and the caller
/// goes on untuned) when it is not wanted or the exec fails; the error is
/// returned for the log.
pub fn reexec_with_tunables() -> Option<std::io::Error> {
    if !wanted(std::env::var_os(VAR).as_deref()) {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => return Some(e),
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        // `exec` only returns on failure.
        Some(
            std::process::Command::new(&exe)
                .arg0(arg0)
                .args(args)
                .env(VAR, TUNABLES)
                .exec(),
        )
    }
    #[cfg(not(unix))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_when_the_operator_set_nothing() {
        let glibc = cfg!(all(target_os = "linux", target_env = "gnu"));
        assert_eq!(wanted(None), glibc);
        assert!(!wanted(Some("".as_ref())));
        assert!(!wanted(Some(TUNABLES.as_ref())));
        assert!(!wanted(Some("glibc.malloc.arena_max=4".as_ref())));
    }

    #[test]
    fn tunables_are_glibc_malloc_and_thread_stack_settings() {
        // arena_max first: the footprint bench recognises the agent's own
        // tuning by it (glibc cuts the variable in the process's environ
        // to its first entry).
        assert!(TUNABLES.starts_with("glibc.malloc.arena_max=1:"));
        for t in TUNABLES.split(':') {
            let (k, v) = t.split_once('=').unwrap();
            assert!(
                k.starts_with("glibc.malloc.") || k == "glibc.pthread.stack_cache_size",
                "{k}"
            );
            assert!(v.parse::<u64>().is_ok(), "{t}");
        }
    }
}
