//! Config reload (SIGHUP, or a change of the config file): re-read and check
//! the whole `agent.toml`; a config that fails to load, or that changes a key
//! which needs a restart, is refused with every reason logged and the old
//! config keeps running. A good one is applied by the run loop without losing
//! a measurement: the spool and the hash chain carry on, the open window keeps
//! its accumulators, and only the pollers of links whose settings or devices
//! changed are restarted ([`LinkSet`]). What happens to devices added, removed
//! or changed mid-window is in docs/operations.md ("Reloading the config").
//!
//! Every link runs with its own shutdown handle and its own metrics registry,
//! gathered into the agent's `/metrics` by [`LinkSet`]'s collector, so a
//! restarted link registers its metrics afresh and a removed link's metrics
//! disappear with it.

use crate::clock::Clock;
use crate::config::{AgentConfig, DeviceConfig, LinkConfig};
use crate::sample::SampleBatch;
use crate::shutdown::Coordinator;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntCounterVec, IntGauge, Opts, Registry};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a stopping link may take before its task is aborted.
const LINK_STOP: Duration = Duration::from_secs(5);

/// The keys a reload cannot change (they shape the spool, the chain, the
/// windows or the listening socket). Returns one line per changed key.
pub fn needs_restart(old: &AgentConfig, new: &AgentConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |changed: bool, key: &str| {
        if changed {
            out.push(format!(
                "{key} changed; it cannot change on reload: restart the agent to apply it"
            ));
        }
    };
    check(old.agent.id != new.agent.id, "[agent] id");
    check(
        old.agent.enterprise != new.agent.enterprise,
        "[agent] enterprise",
    );
    check(old.agent.data_dir != new.agent.data_dir, "[agent] data_dir");
    check(
        old.agent.window_secs != new.agent.window_secs,
        "[agent] window_secs",
    );
    check(old.agent.industry != new.agent.industry, "[agent] industry");
    check(
        old.agent.profiles_dir != new.agent.profiles_dir,
        "[agent] profiles_dir",
    );
    check(old.clock != new.clock, "[clock]");
    check(old.http != new.http, "[http]");
    check(old.spool != new.spool, "[spool]");
    check(old.aggregator != new.aggregator, "[aggregator]");
    check(old.influxdb != new.influxdb, "[influxdb]");
    out
}

/// Loads `path` and checks it against the running config: the new config,
/// or every reason it is refused (load errors with their positions, keys
/// that need a restart).
pub fn load_checked(path: &Path, running: &AgentConfig) -> Result<AgentConfig, String> {
    let new = AgentConfig::load(path).map_err(|e| e.to_string())?;
    let why = needs_restart(running, &new);
    if why.is_empty() {
        Ok(new)
    } else {
        Err(why
            .iter()
            .map(|w| format!("{}: {w}", path.display()))
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// What changed between two configs' devices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Same id, different settings (link, unit, tags, thresholds, inventory…).
    pub changed: Vec<String>,
}

impl DeviceChanges {
    pub fn between(old: &AgentConfig, new: &AgentConfig) -> DeviceChanges {
        let o: BTreeMap<&str, &DeviceConfig> = old.devices.iter().map(|d| (d.id(), d)).collect();
        let n: BTreeMap<&str, &DeviceConfig> = new.devices.iter().map(|d| (d.id(), d)).collect();
        let mut c = DeviceChanges::default();
        for (id, d) in &n {
            match o.get(id) {
                None => c.added.push((*id).to_owned()),
                Some(prev) if prev != d => c.changed.push((*id).to_owned()),
                Some(_) => {}
            }
        }
        c.removed = o
            .keys()
            .filter(|id| !n.contains_key(*id))
            .map(|id| (*id).to_owned())
            .collect();
        c
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The reload metrics.
#[derive(Debug, Clone)]
pub struct ReloadMetrics {
    /// `shuzhuan_agent_config_reloads_total{result="applied|refused"}`.
    pub reloads: IntCounterVec,
    /// `shuzhuan_agent_config_last_reload_success`: 1 when the last attempt
    /// was applied (or none was made), 0 when it was refused.
    pub last_success: IntGauge,
    /// `shuzhuan_agent_config_last_reload_success_timestamp_seconds`: Unix
    /// time (wall) of the config in force being loaded.
    pub last_success_time: Gauge,
}

impl ReloadMetrics {
    pub fn register(reg: &Registry) -> prometheus::Result<ReloadMetrics> {
        let m = ReloadMetrics {
            reloads: IntCounterVec::new(
                Opts::new(
                    "shuzhuan_agent_config_reloads_total",
                    "Config reload attempts (SIGHUP or file change), by result (applied, refused)",
                ),
                &["result"],
            )?,
            last_success: IntGauge::new(
                "shuzhuan_agent_config_last_reload_success",
                "1 when the last config reload was applied (or none was tried), 0 when it was refused",
            )?,
            last_success_time: Gauge::new(
                "shuzhuan_agent_config_last_reload_success_timestamp_seconds",
                "Unix time the config in force was loaded",
            )?,
        };
        reg.register(Box::new(m.reloads.clone()))?;
        reg.register(Box::new(m.last_success.clone()))?;
        reg.register(Box::new(m.last_success_time.clone()))?;
        for r in ["applied", "refused"] {
            m.reloads.with_label_values(&[r]);
        }
        m.last_success.set(1);
        m.last_success_time.set(wall_secs());
        Ok(m)
    }

    pub fn applied(&self) {
        self.reloads.with_label_values(&["applied"]).inc();
        self.last_success.set(1);
        self.last_success_time.set(wall_secs());
    }

    pub fn refused(&self) {
        self.reloads.with_label_values(&["refused"]).inc();
        self.last_success.set(0);
    }
}

fn wall_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A link's settings and its devices' settings: a link whose spec is
/// unchanged keeps its poller.
#[derive(Debug, Clone, PartialEq)]
struct LinkSpec {
    link: LinkConfig,
    devices: Vec<DeviceConfig>,
    /// The OPC UA client's PKI folder (from `data_dir`).
    pki: Option<PathBuf>,
}

struct RunningLink {
    spec: LinkSpec,
    stop: Coordinator,
    task: JoinHandle<()>,
}

/// The registries of the running links, gathered as one collector.
#[derive(Clone, Default)]
struct LinkRegistries(Arc<Mutex<BTreeMap<String, Registry>>>);

impl Collector for LinkRegistries {
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let regs = self.0.lock().expect("link registries lock");
        regs.values().flat_map(Registry::gather).collect()
    }
}

/// What [`LinkSet::apply`] did, by link id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkChanges {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
    pub kept: Vec<String>,
}

/// The running pollers, one task per link.
pub struct LinkSet {
    running: BTreeMap<String, RunningLink>,
    registries: LinkRegistries,
    clock: Clock,
    tx: mpsc::Sender<SampleBatch>,
}

impl LinkSet {
    /// An empty set whose links' metrics appear in `registry`.
    pub fn new(
        registry: &Registry,
        clock: Clock,
        tx: mpsc::Sender<SampleBatch>,
    ) -> anyhow::Result<LinkSet> {
        let registries = LinkRegistries::default();
        registry.register(Box::new(registries.clone()))?;
        Ok(LinkSet {
            running: BTreeMap::new(),
            registries,
            clock,
            tx,
        })
    }

    fn specs(cfg: &AgentConfig) -> BTreeMap<String, LinkSpec> {
        cfg.links
            .iter()
            .map(|l| {
                let pki = match l {
                    LinkConfig::OpcUa(o) => Some(o.pki_dir_in(&cfg.agent.data_dir)),
                    LinkConfig::Modbus(_) => None,
                };
                let spec = LinkSpec {
                    link: l.clone(),
                    devices: cfg.devices_on(l.id()).into_iter().cloned().collect(),
                    pki,
                };
                (l.id().to_owned(), spec)
            })
            .collect()
    }

    /// Brings the running links in line with `cfg`: stops links that are
    /// gone or changed (waiting for each to finish), starts new and changed
    /// ones, leaves the others polling.
    pub async fn apply(&mut self, cfg: &AgentConfig) -> LinkChanges {
        let want = Self::specs(cfg);
        let mut ch = LinkChanges::default();
        let ids: Vec<String> = self.running.keys().cloned().collect();
        let mut stopping = Vec::new();
        for id in ids {
            let keep = want.get(&id) == Some(&self.running[&id].spec);
            if keep {
                ch.kept.push(id);
                continue;
            }
            let r = self.running.remove(&id).expect("a running link");
            stopping.push((id.clone(), r));
            self.registries
                .0
                .lock()
                .expect("link registries lock")
                .remove(&id);
            if want.contains_key(&id) {
                ch.restarted.push(id);
            } else {
                ch.stopped.push(id);
            }
        }
        // All at once, so many changed links take one link's stop time.
        stop_all(stopping).await;
        let opcua: BTreeMap<String, _> = cfg
            .opcua_links()
            .into_iter()
            .map(|(l, d)| (l.id.clone(), (l, d)))
            .collect();
        for (id, spec) in want {
            if self.running.contains_key(&id) {
                continue;
            }
            if !ch.restarted.contains(&id) {
                ch.started.push(id.clone());
            }
            let registry = Registry::new();
            self.registries
                .0
                .lock()
                .expect("link registries lock")
                .insert(id.clone(), registry.clone());
            let stop = Coordinator::new();
            let handle = stop.handle();
            let (clock, tx) = (self.clock, self.tx.clone());
            let task = match &spec.link {
                LinkConfig::Modbus(m) => {
                    let (m, devices) = (m.clone(), spec.devices.clone());
                    tokio::spawn(async move {
                        crate::sources::modbus::run_link(m, devices, clock, tx, &registry, handle)
                            .await;
                    })
                }
                LinkConfig::OpcUa(_) => {
                    let (link, devices) = opcua.get(&id).cloned().expect("an OPC UA link");
                    tokio::spawn(async move {
                        crate::sources::opcua::run_link(
                            link, devices, clock, tx, &registry, handle,
                        )
                        .await;
                    })
                }
            };
            self.running.insert(id, RunningLink { spec, stop, task });
        }
        ch
    }

    /// Ids of the running links.
    pub fn ids(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }

    /// Stops every link (each flushes what it has and ends).
    pub async fn shutdown(mut self) {
        stop_all(std::mem::take(&mut self.running).into_iter().collect()).await;
    }
}

async fn stop_all(links: Vec<(String, RunningLink)>) {
    let mut set = tokio::task::JoinSet::new();
    for (id, r) in links {
        set.spawn(async move { stop_link(&id, r).await });
    }
    while set.join_next().await.is_some() {}
}

async fn stop_link(id: &str, r: RunningLink) {
    let RunningLink { stop, mut task, .. } = r;
    if tokio::time::timeout(LINK_STOP, stop.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(link = id, "link did not stop within 5 s; aborted");
        task.abort();
    }
    // Reap the task (finished or aborted).
    let _ = tokio::time::timeout(LINK_STOP, &mut task).await;
}

/// Fingerprint of a file: modification time and length, or `None` when it
/// cannot be read.
fn stat(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Watches `path` by polling its modification time and size every `every`
/// (no inotify: works on any filesystem, including bind mounts in
/// containers); a change that holds still for one more interval (so a file
/// being written is not read half-way) sends a reload request. Ends when the
/// receiver is gone.
pub async fn watch_file(path: PathBuf, every: Duration, tx: mpsc::Sender<Trigger>) {
    let mut seen = stat(&path);
    let mut pending: Option<Option<(std::time::SystemTime, u64)>> = None;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if tx.is_closed() {
            return;
        }
        let now = stat(&path);
        match pending {
            Some(p) if p == now => {
                pending = None;
                seen = now;
                if tx.send(Trigger::FileChanged).await.is_err() {
                    return;
                }
            }
            _ if now != seen => pending = Some(now),
            _ => pending = None,
        }
    }
}

/// Why a reload was asked for (named in the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Sighup,
    FileChanged,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Sighup => "SIGHUP",
            Trigger::FileChanged => "file change",
        }
    }
}

/// The reload requests of the `run` command: SIGHUP and, every `every`, a
/// look at the config file. The SIGHUP handler is installed before this
/// returns (a SIGHUP arriving earlier would end the process). Call it from
/// within the runtime.
pub fn triggers(path: &Path, every: Duration) -> mpsc::Receiver<Trigger> {
    let (tx, rx) = mpsc::channel(4);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        if tx.send(Trigger::Sighup).await.is_err() {
                            return;
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: reload by file change only");
            }
        }
    }
    tokio::spawn(watch_file(path.to_path_buf(), every, tx));
    rx
}

/// Device ids of a config, as a set.
pub fn device_ids(cfg: &AgentConfig) -> BTreeSet<String> {
    cfg.devices.iter().map(|d| d.id().to_owned()).collect()
}

#[cfg(test)]
mod tests;
