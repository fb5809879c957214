//! Blocking file work (spool appends and acknowledgements, which fsync) run without stalling the polls.
//!
//! An fsync on a gateway's SD card or a busy disk can take tens of
//! milliseconds. Done inline on a runtime worker it holds up every poll
//! scheduled on that worker, and polls that fall behind are skipped, so
//! samples would be lost to our own disk writes. On the multi-threaded
//! runtime the call is made with [`tokio::task::block_in_place`], which hands
//! the worker's other tasks to another thread first; elsewhere (the
//! current-thread runtime of paused-time tests, or no runtime) it runs inline.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f`, which may block on the disk, without stalling other tasks.
pub fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::off_runtime;

    #[test]
    fn runs_inline_without_a_runtime() {
        assert_eq!(off_runtime(|| 7), 7);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_inline_on_the_current_thread_runtime() {
        assert_eq!(off_runtime(|| 8), 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keeps_other_tasks_running_on_the_multi_thread_runtime() {
        // A task that ticks while another blocks for 200 ms: with the
        // blocking call handed off, the ticker keeps going.
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                t.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let blockers: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn(async {
                    off_runtime(|| std::thread::sleep(std::time::Duration::from_millis(200)))
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let during = ticks.load(std::sync::atomic::Ordering::Relaxed);
        for b in blockers {
            b.await.unwrap();
        }
        ticker.await.unwrap();
        assert!(
            during >= 3,
            "the ticker advanced only {during} times while both workers blocked"
        );
    }
}
