//! Graceful shutdown as a type: a broadcast signal every task listens to, and
//! a completion guard each task holds until it has flushed, so the process
//! exits only after the open window is sealed and the spool is synced.

use tokio::sync::{broadcast, mpsc};

/// Held by a task: tells it when to stop.
#[derive(Debug)]
pub struct Shutdown {
    notify: broadcast::Receiver<()>,
    fired: bool,
    /// Dropped when the task is done; the coordinator waits for all of them.
    _done: mpsc::Sender<()>,
}

impl Shutdown {
    /// Whether shutdown has been signalled (without waiting).
    pub fn is_shutdown(&self) -> bool {
        self.fired
    }

    /// Waits until shutdown is signalled. Cancel-safe.
    pub async fn recv(&mut self) {
        if self.fired {
            return;
        }
        // An error means the sender is gone, which also means "stop".
        let _ = self.notify.recv().await;
        self.fired = true;
    }
}

/// Owned by the process: hands out [`Shutdown`] handles, fires them, waits.
#[derive(Debug)]
pub struct Coordinator {
    notify: broadcast::Sender<()>,
    done_tx: Option<mpsc::Sender<()>>,
    done_rx: mpsc::Receiver<()>,
}

impl Default for Coordinator {
    fn default() -> Self {
        Self::new()
    }
}

impl Coordinator {
    pub fn new() -> Self {
        let (notify, _) = broadcast::channel(1);
        let (done_tx, done_rx) = mpsc::channel(1);
        Coordinator {
            notify,
            done_tx: Some(done_tx),
            done_rx,
        }
    }

    /// A handle for one task.
    pub fn handle(&self) -> Shutdown {
        Shutdown {
            notify: self.notify.subscribe(),
            fired: false,
            _done: self
                .done_tx
                .clone()
                .expect("handles are taken before shutdown"),
        }
    }

    /// Signals every task and waits until all handles are dropped.
    pub async fn shutdown(mut self) {
        let _ = self.notify.send(());
        self.done_tx.take();
        let _ = self.done_rx.recv().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_every_task() {
        let c = Coordinator::new();
        let mut h = c.handle();
        let flushed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = flushed.clone();
        tokio::spawn(async move {
            h.recv().await;
            tokio::task::yield_now().await;
            f.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        c.shutdown().await;
        assert!(flushed.load(std::sync::atomic::Ordering::SeqCst));
    }
}
