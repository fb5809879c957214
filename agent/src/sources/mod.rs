//! Data sources: one task per link, emitting a [`crate::sample::SampleBatch`] per device per poll cycle.
//!
//! [`spawn_all`] starts every configured link (Modbus and OPC UA) on the
//! current tokio runtime.

pub mod modbus;
pub mod opcua;

use crate::clock::Clock;
use crate::config::AgentConfig;
use crate::sample::SampleBatch;
use crate::shutdown::Coordinator;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Spawns one task per link of `cfg` (links without devices idle until
/// shutdown). Each task holds a shutdown handle from `shutdown`, registers
/// its metrics in `registry` and sends batches on `tx`.
pub fn spawn_all(
    cfg: &AgentConfig,
    clock: Clock,
    tx: mpsc::Sender<SampleBatch>,
    registry: &prometheus::Registry,
    shutdown: &Coordinator,
) -> Vec<JoinHandle<()>> {
    let mut handles = Vec::new();
    for (link, devices) in cfg.modbus_links() {
        let link = link.clone();
        let devices: Vec<_> = devices.into_iter().cloned().collect();
        let (tx, registry, handle) = (tx.clone(), registry.clone(), shutdown.handle());
        handles.push(tokio::spawn(async move {
            modbus::run_link(link, devices, clock, tx, &registry, handle).await;
        }));
    }
    for (link, devices) in cfg.opcua_links() {
        let (tx, registry, handle) = (tx.clone(), registry.clone(), shutdown.handle());
        handles.push(tokio::spawn(async move {
            opcua::run_link(link, devices, clock, tx, &registry, handle).await;
        }));
    }
    handles
}

/// Registers one link's collectors. A collector the registry refuses (for
/// example a name already registered with other help text) is logged and
/// skipped, so the link keeps polling without that metric.
pub(crate) fn register_link_metrics(
    registry: &prometheus::Registry,
    link: &str,
    protocol: &str,
    collectors: Vec<Box<dyn prometheus::core::Collector>>,
) {
    for c in collectors {
        if let Err(e) = registry.register(c) {
            tracing::warn!(link, protocol, error = %e, "cannot register a link metric");
        }
    }
}
