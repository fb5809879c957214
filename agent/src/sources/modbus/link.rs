//! The task of one Modbus link: one connection shared by every unit on it,
//! one request at a time (with an optional pause between requests), each
//! device polled at its interval (per tag group), one [`SampleBatch`] per
//! device per poll.
//!
//! Failure isolation: an illegal-address (02) or illegal-value (03)
//! exception on a merged read splits the read in halves and re-reads them,
//! down to single atoms (overlapping tags); an atom that still fails is
//! remembered as a bad range, kept out of later plans (so its neighbours are
//! read in one request again) and retried alone every [`RELEARN_EVERY`]
//! polls. Other exceptions mark the read's tags bad with their reason. A
//! timeout marks the tags `timeout` and skips the device's remaining reads
//! this poll (an absent unit costs one timeout, not one per read); over TCP
//! it also drops the connection, since a late answer would be taken for the
//! next request. A broken connection marks everything `disconnected` and is
//! re-dialled with capped exponential backoff and jitter.

use super::client::{exception_reason, Connector, ReadError, Transport};
use super::metrics::LinkMetrics;
use super::plan::{self, CostModel, Range};
use crate::clock::Clock;
use crate::config::{DeviceConfig, DeviceTags, ModbusLinkConfig};
use crate::sample::{Quality, Sample, SampleBatch, Value};
use crate::shutdown::Shutdown;
use shuzhuan_common::profile::{
    decode_registers, DataType, ForbiddenRange, ModbusTag, RawValue, Table,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Polls after which a learned bad range is tried again.
pub const RELEARN_EVERY: u32 = 100;

/// Delay before reconnect attempt `attempt` (0-based): `initial × 2^attempt`
/// capped at `max`, scaled by `jitter` in `[0.5, 1.0]`.
pub fn backoff(attempt: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(30));
    let d = initial.saturating_mul(factor).min(max);
    d.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A small xorshift generator for jitter (no cryptographic use).
struct Jitter(u64);

impl Jitter {
    fn new(seed: &str) -> Self {
        let mut h: u64 = 0x9E37_79B9_7F4A_7C15 ^ crate::clock::wall_ms() as u64;
        for b in seed.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
        Jitter(h | 1)
    }

    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Tags that overlap, read and failed together.
#[derive(Debug, Clone)]
struct Atom {
    range: Range,
    tags: Vec<usize>,
}

#[derive(Debug, Clone)]
struct PlannedRead {
    table: Table,
    atoms: Vec<Atom>,
}

/// Tags sharing a poll interval. The tag list and the plan are shared
/// with every device of the link that has the same tags, limits and
/// forbidden ranges (planned once, not once per device); a device that
/// learns a bad range gets a plan of its own.
struct Class {
    period: Duration,
    next: Instant,
    tags: Arc<[usize]>,
    reads: Arc<[PlannedRead]>,
    /// Tags no read can serve, with the reason.
    refused: Arc<[(usize, &'static str)]>,
    polls: u32,
}

struct Dev {
    id: Arc<str>,
    unit: u8,
    /// Shared with every device of the config that has the same tags.
    tags: Arc<[ModbusTag]>,
    /// Per tag: the name and carrier every sample carries (shared like `tags`).
    names: Arc<[Arc<str>]>,
    carriers: Arc<[Option<Arc<str>>]>,
    limit: u16,
    forbidden: Vec<ForbiddenRange>,
    /// Ranges that answered illegal address on their own.
    learned: Vec<(Table, Range)>,
    classes: Vec<Class>,
}

impl Dev {
    /// Takes the device's tags (shared, not copied: at 50 tags a device they
    /// are the bulk of a link's memory). A device with the same tag list as
    /// one of `earlier` shares its per-tag names and carriers too.
    fn new(
        mut d: DeviceConfig,
        clock: &Clock,
        cost: &CostModel,
        start: Instant,
        earlier: &[Dev],
    ) -> Option<Dev> {
        let DeviceTags::Modbus(tags) = std::mem::replace(&mut d.tags, DeviceTags::None) else {
            return None;
        };
        let mut by_interval: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, t) in tags.iter().enumerate() {
            by_interval
                .entry(d.interval_of(t.group.as_deref()))
                .or_default()
                .push(i);
        }
        let same = earlier.iter().find(|e| Arc::ptr_eq(&e.tags, &tags));
        let names = match same {
            Some(e) => e.names.clone(),
            None => tags.iter().map(|t| Arc::from(t.name.as_str())).collect(),
        };
        let carriers = match same {
            Some(e) => e.carriers.clone(),
            None => tags
                .iter()
                .map(|t| {
                    t.carrier
                        .as_deref()
                        .map(Arc::from)
                        .or_else(|| is_energy(t).then(|| Arc::from("electricity")))
                })
                .collect(),
        };
        let mut dev = Dev {
            id: Arc::from(d.id()),
            unit: d.unit.unwrap_or(1),
            names,
            carriers,
            tags,
            limit: d.max_registers_per_read.unwrap_or(125),
            forbidden: d.forbidden.clone(),
            learned: Vec::new(),
            classes: by_interval
                .into_iter()
                .map(|(ms, tags)| Class {
                    period: clock.wall_duration(Duration::from_millis(ms.max(1))),
                    next: start,
                    tags: tags.into(),
                    reads: Arc::from([]),
                    refused: Arc::from([]),
                    polls: 0,
                })
                .collect(),
        };
        // The same tags, request limit, forbidden ranges and classes as an
        // earlier device (which has learned nothing yet: all are new) plan
        // the same reads.
        let twin = same.filter(|e| {
            e.limit == dev.limit
                && e.forbidden == dev.forbidden
                && e.learned.is_empty()
                && e.classes.len() == dev.classes.len()
                && e.classes
                    .iter()
                    .zip(&dev.classes)
                    .all(|(a, b)| a.tags == b.tags)
        });
        match twin {
            Some(e) => {
                for (c, ec) in dev.classes.iter_mut().zip(&e.classes) {
                    c.tags = ec.tags.clone();
                    c.reads = ec.reads.clone();
                    c.refused = ec.refused.clone();
                }
            }
            None => {
                for c in 0..dev.classes.len() {
                    dev.replan(c, cost);
                }
            }
        }
        Some(dev)
    }

    /// Plans the reads of class `c` per table, around forbidden and learned-bad ranges.
    fn replan(&mut self, c: usize, cost: &CostModel) {
        let mut reads = Vec::new();
        let mut refused = Vec::new();
        for table in [Table::Coil, Table::Discrete, Table::Input, Table::Holding] {
            let idx: Vec<usize> = self.classes[c]
                .tags
                .iter()
                .copied()
                .filter(|&i| self.tags[i].table == table)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let range = |i: usize| Range {
                start: self.tags[i].address,
                end: self.tags[i]
                    .address
                    .saturating_add(self.tags[i].width().saturating_sub(1)),
            };
            let learned: Vec<Range> = self
                .learned
                .iter()
                .filter(|(t, _)| *t == table)
                .map(|(_, r)| *r)
                .collect();
            // Tags inside a learned-bad range are not asked for until the relearn.
            let (bad, wanted): (Vec<usize>, Vec<usize>) = idx
                .into_iter()
                .partition(|&i| learned.iter().any(|l| l.overlaps(&range(i))));
            refused.extend(bad.into_iter().map(|i| (i, "illegal_address")));
            let mut forbidden: Vec<Range> = self
                .forbidden
                .iter()
                .filter(|f| f.table == table)
                .map(|f| Range {
                    start: f.start,
                    end: f.end,
                })
                .collect();
            forbidden.extend(learned);
            let items: Vec<Range> = wanted.iter().map(|&i| range(i)).collect();
            let limit = if table.is_bits() {
                plan::protocol_limit(table)
            } else {
                self.limit
            };
            let p = plan::plan(table, &items, limit, &forbidden, cost);
            refused.extend(p.unplannable.iter().map(|&k| (wanted[k], "unplannable")));
            for read in p.reads {
                let mut atoms: Vec<Atom> = Vec::new();
                let mut members: Vec<usize> = read.items.iter().map(|&k| wanted[k]).collect();
                members.sort_by_key(|&i| (range(i).start, range(i).end));
                for i in members {
                    let r = range(i);
                    match atoms.last_mut() {
                        Some(a) if r.start <= a.range.end => {
                            a.range.end = a.range.end.max(r.end);
                            a.tags.push(i);
                        }
                        _ => atoms.push(Atom {
                            range: r,
                            tags: vec![i],
                        }),
                    }
                }
                reads.push(PlannedRead { table, atoms });
            }
        }
        let class = &mut self.classes[c];
        class.reads = reads.into();
        class.refused = refused.into();
    }
}

fn is_energy(t: &ModbusTag) -> bool {
    matches!(
        t.role,
        shuzhuan_common::profile::TagRole::EnergyCounter
            | shuzhuan_common::profile::TagRole::EnergyExport
    )
}

/// Decodes one tag's registers (bits as 0/1 words for coils and discrete
/// inputs) into its engineering value.
pub fn decode_tag(tag: &ModbusTag, words: &[u16]) -> Result<Value, &'static str> {
    if tag.data_type == DataType::Bool {
        return match words.first() {
            Some(w) => Ok(Value::Bool(*w != 0)),
            None => Err("decode"),
        };
    }
    match decode_registers(tag.data_type, tag.order, tag.bit, words) {
        Ok(RawValue::Bool(b)) => Ok(Value::Bool(b)),
        Ok(RawValue::Text(t)) => Ok(Value::Text(t)),
        Ok(v) => {
            let x = v.as_f64().ok_or("decode")? * tag.scale + tag.offset;
            if x.is_finite() {
                Ok(Value::Number(x))
            } else {
                Err("not_finite")
            }
        }
        Err(_) => Err("decode"),
    }
}

/// How a device poll left the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Fine { answered: bool },
    TimedOut { answered: bool },
    Broken,
}

/// Runs one Modbus link until shutdown.
pub async fn run_link(
    cfg: ModbusLinkConfig,
    devices: Vec<DeviceConfig>,
    clock: Clock,
    tx: mpsc::Sender<SampleBatch>,
    registry: &prometheus::Registry,
    shutdown: Shutdown,
) {
    let metrics = LinkMetrics::register(registry, &cfg.id);
    let connector = super::client::LinkConnector::new(&cfg);
    run_with(&connector, &cfg, devices, clock, tx, metrics, shutdown).await;
}

/// [`run_link`] with any connector (tests use scripted peers).
pub(crate) async fn run_with(
    connector: &dyn Connector,
    cfg: &ModbusLinkConfig,
    devices: Vec<DeviceConfig>,
    clock: Clock,
    tx: mpsc::Sender<SampleBatch>,
    metrics: LinkMetrics,
    mut shutdown: Shutdown,
) {
    let cost = CostModel::for_link(cfg);
    let start = Instant::now();
    let mut devs: Vec<Dev> = Vec::with_capacity(devices.len());
    for d in devices {
        if let Some(dev) = Dev::new(d, &clock, &cost, start, &devs) {
            devs.push(dev);
        }
    }
    if devs.is_empty() {
        tracing::info!(link = %cfg.id, "modbus link has no devices with tags; idle");
        shutdown.recv().await;
        return;
    }
    let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
    let pause = Duration::from_millis(cfg.pause_ms);
    let initial = Duration::from_millis(cfg.backoff_initial_ms.max(1));
    let max = Duration::from_millis(cfg.backoff_max_ms.max(cfg.backoff_initial_ms).max(1));
    let mut jitter = Jitter::new(&cfg.id);
    let mut conn: Option<Box<dyn Transport>> = None;
    let mut next_attempt = start;
    let mut attempt: u32 = 0;
    metrics.up.set(0);
    macro_rules! try_connect {
        () => {
            if conn.is_none() && Instant::now() >= next_attempt {
                match tokio::time::timeout(timeout, connector.connect()).await {
                    Ok(Ok(c)) => {
                        tracing::info!(link = %cfg.id, "modbus link connected");
                        conn = Some(c);
                    }
                    failed => {
                        let why = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "connect timed out".to_owned(),
                        };
                        metrics.up.set(0);
                        metrics.error("connect");
                        let delay = backoff(attempt, initial, max, jitter.next());
                        tracing::warn!(link = %cfg.id, error = %why, retry_in_ms = delay.as_millis() as u64, "modbus link down");
                        next_attempt = Instant::now() + delay;
                        attempt = attempt.saturating_add(1);
                    }
                }
            }
        };
    }
    loop {
        let mut wake = devs
            .iter()
            .flat_map(|d| d.classes.iter().map(|c| c.next))
            .min()
            .expect("devices have classes");
        if conn.is_none() {
            wake = wake.min(next_attempt);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = shutdown.recv() => return,
        }
        try_connect!();
        let now = Instant::now();
        for dev in devs.iter_mut() {
            let due: Vec<usize> = (0..dev.classes.len())
                .filter(|&c| dev.classes[c].next <= now)
                .collect();
            if due.is_empty() {
                continue;
            }
            for &c in &due {
                let class = &mut dev.classes[c];
                class.next += class.period;
                if class.next <= now {
                    // Behind (a slow link or a long stall): skip missed polls.
                    class.next = now + class.period;
                }
                class.polls = class.polls.wrapping_add(1);
                if class.polls % RELEARN_EVERY == 0 && !dev.learned.is_empty() {
                    let tables: Vec<Table> =
                        class.tags.iter().map(|&i| dev.tags[i].table).collect();
                    dev.learned.retain(|(t, _)| !tables.contains(t));
                    dev.replan(c, &cost);
                }
            }
            let ts = clock.now_ms();
            let mut results: Vec<Option<(i64, Result<Value, &'static str>)>> =
                vec![None; dev.tags.len()];
            let mut fallback = "disconnected";
            try_connect!();
            if let Some(c) = conn.as_mut() {
                let after = poll_device(
                    c.as_mut(),
                    dev,
                    &due,
                    &clock,
                    timeout,
                    pause,
                    &metrics,
                    &mut results,
                    &cost,
                )
                .await;
                match after {
                    After::Fine { answered } | After::TimedOut { answered } => {
                        if answered {
                            attempt = 0;
                            metrics.up.set(1);
                        }
                        if matches!(after, After::TimedOut { .. }) {
                            fallback = "timeout";
                            if connector.reconnect_after_timeout() {
                                conn = None;
                                next_attempt = Instant::now();
                            }
                        }
                    }
                    After::Broken => {
                        metrics.up.set(0);
                        conn = None;
                        let delay = if attempt == 0 {
                            Duration::ZERO
                        } else {
                            backoff(attempt, initial, max, jitter.next())
                        };
                        next_attempt = Instant::now() + delay;
                        attempt = attempt.saturating_add(1);
                        tracing::warn!(link = %cfg.id, device = %dev.id, "modbus connection lost; reconnecting");
                    }
                }
            }
            let mut samples =
                Vec::with_capacity(due.iter().map(|&c| dev.classes[c].tags.len()).sum());
            let mut reachable = false;
            let mut bad = 0u64;
            for &c in &due {
                for &i in dev.classes[c].tags.iter() {
                    let (t, r) = results[i].take().unwrap_or((ts, Err(fallback)));
                    let tag = &dev.tags[i];
                    let (value, quality) = match r {
                        Ok(v) => {
                            reachable = true;
                            (Some(v), Quality::Good)
                        }
                        Err(why) => {
                            if why != "disconnected" {
                                bad += 1;
                            }
                            (None, Quality::Bad(why))
                        }
                    };
                    samples.push(Sample {
                        tag: dev.names[i].clone(),
                        role: tag.role,
                        carrier: dev.carriers[i].clone(),
                        ts_ms: t,
                        value,
                        quality,
                    });
                }
            }
            if bad > 0 {
                metrics.read_errors.inc_by(&[&*dev.id], bad as f64);
            }
            if reachable {
                metrics.last_good.set(&[&*dev.id], ts as f64 / 1000.0);
            }
            let batch = SampleBatch {
                device: dev.id.clone(),
                ts_ms: ts,
                reachable,
                samples,
            };
            // A full channel must not keep the task from shutting down.
            tokio::select! {
                sent = tx.send(batch) => if sent.is_err() { return },
                _ = shutdown.recv() => return,
            }
        }
    }
}

/// Reads the due classes of one device, splitting reads on address
/// exceptions. Fills `results` for every tag it has an answer for.
#[allow(clippy::too_many_arguments)]
async fn poll_device(
    conn: &mut dyn Transport,
    dev: &mut Dev,
    due: &[usize],
    clock: &Clock,
    timeout: Duration,
    pause: Duration,
    metrics: &LinkMetrics,
    results: &mut [Option<(i64, Result<Value, &'static str>)>],
    cost: &CostModel,
) -> After {
    let mut answered = false;
    let mut first = true;
    let mut learned_in: Vec<usize> = Vec::new();

    for &c in due {
        for &(i, why) in dev.classes[c].refused.iter() {
            results[i] = Some((clock.now_ms(), Err(why)));
        }
        // Reads still to do, as (planned read, span of its atoms): a split
        // read is two spans of the same plan, nothing is copied per poll.
        let mut stack: Vec<(usize, std::ops::Range<usize>)> = (0..dev.classes[c].reads.len())
            .rev()
            .map(|r| (r, 0..dev.classes[c].reads[r].atoms.len()))
            .collect();
        while let Some((r, span)) = stack.pop() {
            let table = dev.classes[c].reads[r].table;
            let atoms = &dev.classes[c].reads[r].atoms[span.clone()];
            if !first && !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            first = false;
            let range = Range {
                start: atoms[0].range.start,
                end: atoms[atoms.len() - 1].range.end,
            };
            let count = range.len() as u16;
            metrics.requests.inc(&[&*dev.id]);
            let sent = Instant::now();
            let outcome =
                tokio::time::timeout(timeout, conn.read(dev.unit, table, range.start, count)).await;
            let at = clock.now_ms();
            let mark = |results: &mut [Option<(i64, Result<Value, &'static str>)>],
                        atoms: &[Atom],
                        why: &'static str| {
                for a in atoms {
                    for &i in &a.tags {
                        results[i] = Some((at, Err(why)));
                    }
                }
            };
            match outcome {
                Ok(Ok(words)) => {
                    metrics.rtt.observe(sent.elapsed().as_secs_f64());
                    answered = true;
                    for a in atoms {
                        for &i in &a.tags {
                            let tag = &dev.tags[i];
                            let off = usize::from(tag.address - range.start);
                            let w = usize::from(tag.width());
                            let v = match words.get(off..off + w) {
                                Some(slice) => decode_tag(tag, slice),
                                None => Err("decode"),
                            };
                            results[i] = Some((at, v));
                        }
                    }
                }
                Ok(Err(ReadError::Exception(code))) => {
                    metrics.rtt.observe(sent.elapsed().as_secs_f64());
                    answered = true;
                    let why = exception_reason(code);
                    metrics.error(why);
                    if matches!(code, 2 | 3) && atoms.len() > 1 {
                        let mid = span.start + atoms.len() / 2;
                        stack.push((r, mid..span.end));
                        stack.push((r, span.start..mid));
                        continue;
                    }
                    if code == 2 && atoms.len() == 1 {
                        let bad = atoms[0].range;
                        dev.learned.push((table, bad));
                        if !learned_in.contains(&c) {
                            learned_in.push(c);
                        }
                    }
                    mark(results, atoms, why);
                }
                Ok(Err(ReadError::Mismatch(e))) => {
                    tracing::warn!(device = %dev.id, error = %e, "modbus response does not match the request");
                    metrics.error("mismatch");
                    mark(results, atoms, "mismatch");
                    return After::Broken;
                }
                Ok(Err(ReadError::Disconnected(e))) => {
                    tracing::warn!(device = %dev.id, error = %e, "modbus connection failed");
                    metrics.error("disconnected");
                    return After::Broken;
                }
                Err(_) => {
                    metrics.error("timeout");
                    mark(results, atoms, "timeout");
                    return After::TimedOut { answered };
                }
            }
        }
    }
    if !learned_in.is_empty() {
        // The bad range is now known: plan its neighbours around it.
        for k in 0..dev.classes.len() {
            dev.replan(k, cost);
        }
    }
    After::Fine { answered }
}

#[cfg(test)]
mod tests;
