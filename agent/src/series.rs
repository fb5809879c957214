//! Compact labelled Prometheus series for the per-device metrics.
//!
//! The `prometheus` crate's vectors (`IntCounterVec`, `GaugeVec`) keep, per
//! label set, a child with its own copy of the metric's descriptor (name,
//! help text, label names) and its label pairs: several hundred bytes in a
//! dozen allocations per series. At 450 devices the agent had about 5,700
//! such series, 2.4 MiB of heap (docs/bench/agent-footprint.md). [`Series`]
//! keeps one number per label set and [`OneOf`] one small index per device,
//! and both build the same metric families only when `/metrics` is scraped,
//! so the text is unchanged: the same names, help texts, types, labels
//! (written in label-name order, as the crate's own vectors write them) and
//! values.

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What a [`Series`] exposes its numbers as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// Separator of the label values in a key of a family with more than one
/// variable label (a label value with a NUL in it is not expected: device,
/// meter and carrier names come from the checked config).
const SEP: &str = "\0";

/// Where a label of the written label pairs comes from.
#[derive(Debug)]
enum Slot {
    /// The i-th variable label.
    Var(usize),
    /// A constant label.
    Const(LabelPair),
}

#[derive(Debug)]
struct Inner {
    desc: Desc,
    kind: Kind,
    /// The labels in the order they are written (by name).
    order: Vec<(String, Slot)>,
    values: Mutex<BTreeMap<Box<str>, f64>>,
}

/// A counter or gauge family keyed by the values of its variable labels
/// (cloning shares it). Register it in a `prometheus::Registry` like any
/// collector.
#[derive(Debug, Clone)]
pub struct Series(Arc<Inner>);

fn label_order(variable: &[&str], constant: &[(&str, &str)]) -> Vec<(String, Slot)> {
    let mut order: Vec<(String, Slot)> = variable
        .iter()
        .enumerate()
        .map(|(i, n)| ((*n).to_owned(), Slot::Var(i)))
        .collect();
    for (k, v) in constant {
        order.push(((*k).to_owned(), Slot::Const(pair(k, v))));
    }
    order.sort_by(|a, b| a.0.cmp(&b.0));
    order
}

fn family(desc: &Desc, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut mf = MetricFamily::default();
    mf.set_name(desc.fq_name.clone());
    mf.set_help(desc.help.clone());
    mf.set_field_type(kind);
    mf.set_metric(metrics);
    mf
}

fn pair(name: &str, value: &str) -> LabelPair {
    let mut p = LabelPair::default();
    p.set_name(name.to_owned());
    p.set_value(value.to_owned());
    p
}

impl Series {
    /// A family `name` with `help`, the variable labels `labels` (given in
    /// this order to every call) and the constant labels `constant`.
    pub fn new(
        kind: Kind,
        name: &str,
        help: &str,
        labels: &[&str],
        constant: &[(&str, &str)],
    ) -> prometheus::Result<Series> {
        let order = label_order(labels, constant);
        let desc = Desc::new(
            name.to_owned(),
            help.to_owned(),
            labels.iter().map(|s| (*s).to_owned()).collect(),
            constant
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )?;
        Ok(Series(Arc::new(Inner {
            desc,
            kind,
            order,
            values: Mutex::new(BTreeMap::new()),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Box<str>, f64>> {
        // A panic elsewhere while holding the lock leaves valid numbers.
        self.0.values.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, labels: &[&str], f: impl FnOnce(&mut f64)) {
        debug_assert_eq!(labels.len(), self.0.desc.variable_labels.len());
        let mut m = self.lock();
        if let [one] = labels {
            match m.get_mut(*one) {
                Some(v) => f(v),
                None => {
                    let mut v = 0.0;
                    f(&mut v);
                    m.insert(Box::from(*one), v);
                }
            }
        } else {
            let key = labels.join(SEP);
            f(m.entry(key.into_boxed_str()).or_insert(0.0));
        }
    }

    /// Adds 1 to the series of `labels` (created at 0 first).
    pub fn inc(&self, labels: &[&str]) {
        self.update(labels, |v| *v += 1.0);
    }

    /// Adds `n`.
    pub fn inc_by(&self, labels: &[&str], n: f64) {
        self.update(labels, |v| *v += n);
    }

    /// Sets the series of `labels` to `x`.
    pub fn set(&self, labels: &[&str], x: f64) {
        self.update(labels, |v| *v = x);
    }

    /// Creates the series of `labels` at 0 if it does not exist, so it is
    /// exposed before its first change.
    pub fn touch(&self, labels: &[&str]) {
        self.update(labels, |_| {});
    }

    /// The value of `labels`, if the series exists.
    pub fn get(&self, labels: &[&str]) -> Option<f64> {
        let key = labels.join(SEP);
        self.lock().get(key.as_str()).copied()
    }

    /// Drops the series of `labels`; whether it existed.
    pub fn remove(&self, labels: &[&str]) -> bool {
        let key = labels.join(SEP);
        self.lock().remove(key.as_str()).is_some()
    }
}

impl Collector for Series {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let vars = self.0.desc.variable_labels.len();
        let m = self.lock();
        let metrics = m
            .iter()
            .map(|(key, v)| {
                let values: Vec<&str> = if vars <= 1 {
                    vec![key]
                } else {
                    key.splitn(vars, SEP).collect()
                };
                let labels = self
                    .0
                    .order
                    .iter()
                    .map(|(name, slot)| match slot {
                        Slot::Var(i) => pair(name, values.get(*i).copied().unwrap_or("")),
                        Slot::Const(p) => p.clone(),
                    })
                    .collect();
                let mut metric = proto::Metric::from_label(labels);
                match self.0.kind {
                    Kind::Counter => {
                        let mut c = proto::Counter::default();
                        c.set_value(*v);
                        metric.set_counter(c);
                    }
                    Kind::Gauge => {
                        let mut g = proto::Gauge::default();
                        g.set_value(*v);
                        metric.set_gauge(g);
                    }
                }
                metric
            })
            .collect();
        let kind = match self.0.kind {
            Kind::Counter => MetricType::COUNTER,
            Kind::Gauge => MetricType::GAUGE,
        };
        vec![family(&self.0.desc, kind, metrics)]
    }
}

#[derive(Debug)]
struct OneOfInner {
    desc: Desc,
    /// The name of the key label (written first: it sorts before `value_label`).
    key_label: String,
    value_label: String,
    values: Box<[&'static str]>,
    current: Mutex<BTreeMap<Box<str>, u8>>,
}

/// A gauge family `name{key, value}` that is 1 for the one current value
/// of each key and 0 for every other value of `values` (the device state
/// gauges): one byte per key instead of a series per key and value.
#[derive(Debug, Clone)]
pub struct OneOf(Arc<OneOfInner>);

impl OneOf {
    /// `key_label` must sort before `value_label` by name (labels are
    /// written in name order); `values` has at most 256 entries.
    pub fn new(
        name: &str,
        help: &str,
        key_label: &str,
        value_label: &str,
        values: &[&'static str],
    ) -> prometheus::Result<OneOf> {
        if key_label >= value_label || values.len() > 256 {
            return Err(prometheus::Error::Msg(format!(
                "{name}: label {key_label} must sort before {value_label}, at most 256 values"
            )));
        }
        let desc = Desc::new(
            name.to_owned(),
            help.to_owned(),
            vec![key_label.to_owned(), value_label.to_owned()],
            Default::default(),
        )?;
        Ok(OneOf(Arc::new(OneOfInner {
            desc,
            key_label: key_label.to_owned(),
            value_label: value_label.to_owned(),
            values: values.into(),
            current: Mutex::new(BTreeMap::new()),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Box<str>, u8>> {
        self.0.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `value` (one of `values`) the current one of `key`.
    pub fn set(&self, key: &str, value: &str) {
        let Some(i) = self.0.values.iter().position(|v| *v == value) else {
            debug_assert!(false, "{value} is not one of the values");
            return;
        };
        let i = i as u8;
        let mut m = self.lock();
        match m.get_mut(key) {
            Some(v) => *v = i,
            None => {
                m.insert(Box::from(key), i);
            }
        }
    }

    /// The current value of `key`.
    pub fn get(&self, key: &str) -> Option<&'static str> {
        self.lock().get(key).map(|&i| self.0.values[usize::from(i)])
    }

    /// Drops every series of `key`; whether it had any.
    pub fn remove(&self, key: &str) -> bool {
        self.lock().remove(key).is_some()
    }
}

impl Collector for OneOf {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let m = self.lock();
        let mut metrics = Vec::with_capacity(m.len() * self.0.values.len());
        for (key, &current) in m.iter() {
            for (i, v) in self.0.values.iter().enumerate() {
                let mut metric = proto::Metric::from_label(vec![
                    pair(&self.0.key_label, key),
                    pair(&self.0.value_label, v),
                ]);
                let mut g = proto::Gauge::default();
                g.set_value(if i == usize::from(current) { 1.0 } else { 0.0 });
                metric.set_gauge(g);
                metrics.push(metric);
            }
        }
        vec![family(&self.0.desc, MetricType::GAUGE, metrics)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

    fn text(r: &Registry) -> String {
        TextEncoder::new().encode_to_string(&r.gather()).unwrap()
    }

    /// The same updates through the crate's vectors and through `Series`
    /// give byte-identical text.
    #[test]
    fn series_write_what_the_crate_vectors_write() {
        let (old, new) = (Registry::new(), Registry::new());
        let opts = |n: &str| Opts::new(n, "help \\ with \"quotes\"").const_label("link", "plc-1");
        let c = IntCounterVec::new(opts("x_total"), &["device"]).unwrap();
        let g = GaugeVec::new(
            Opts::new("energy", "per meter"),
            &["device", "meter", "carrier"],
        )
        .unwrap();
        old.register(Box::new(c.clone())).unwrap();
        old.register(Box::new(g.clone())).unwrap();
        let help = "help \\ with \"quotes\"";
        let sc = Series::new(
            Kind::Counter,
            "x_total",
            help,
            &["device"],
            &[("link", "plc-1")],
        )
        .unwrap();
        let sg = Series::new(
            Kind::Gauge,
            "energy",
            "per meter",
            &["device", "meter", "carrier"],
            &[],
        )
        .unwrap();
        new.register(Box::new(sc.clone())).unwrap();
        new.register(Box::new(sg.clone())).unwrap();
        for d in ["m2", "a\"b", "m1", "m10"] {
            c.with_label_values(&[d]).inc();
            sc.inc(&[d]);
        }
        c.with_label_values(&["m1"]).inc_by(41);
        sc.inc_by(&["m1"], 41.0);
        c.with_label_values(&["zero"]);
        sc.touch(&["zero"]);
        g.with_label_values(&["m1", "main", "electricity"])
            .set(12.5);
        sg.set(&["m1", "main", "electricity"], 12.5);
        g.with_label_values(&["m1", "gas", "natural_gas"]).set(0.25);
        sg.set(&["m1", "gas", "natural_gas"], 0.25);
        g.with_label_values(&["m0", "main", "electricity"])
            .set(-1e-9);
        sg.set(&["m0", "main", "electricity"], -1e-9);
        assert_eq!(text(&old), text(&new));
        assert_eq!(sc.get(&["m1"]), Some(42.0));
        c.remove_label_values(&["m2"]).unwrap();
        assert!(sc.remove(&["m2"]));
        assert!(!sc.remove(&["m2"]));
        g.remove_label_values(&["m1", "gas", "natural_gas"])
            .unwrap();
        assert!(sg.remove(&["m1", "gas", "natural_gas"]));
        assert_eq!(text(&old), text(&new));
    }

    #[test]
    fn one_of_writes_what_a_gauge_vec_per_value_writes() {
        const STATES: &[&str] = &["off", "idle", "running"];
        let (old, new) = (Registry::new(), Registry::new());
        let g = GaugeVec::new(Opts::new("state", "1 for the state"), &["device", "state"]).unwrap();
        old.register(Box::new(g.clone())).unwrap();
        let s = OneOf::new("state", "1 for the state", "device", "state", STATES).unwrap();
        new.register(Box::new(s.clone())).unwrap();
        let set_old = |d: &str, v: &str| {
            for x in STATES {
                g.with_label_values(&[d, x])
                    .set(if *x == v { 1.0 } else { 0.0 });
            }
        };
        set_old("m2", "idle");
        s.set("m2", "idle");
        set_old("m1", "off");
        s.set("m1", "off");
        set_old("m1", "running");
        s.set("m1", "running");
        assert_eq!(text(&old), text(&new));
        assert_eq!(s.get("m1"), Some("running"));
        for x in STATES {
            g.remove_label_values(&["m2", x]).unwrap();
        }
        assert!(s.remove("m2"));
        assert_eq!(text(&old), text(&new));
        assert!(OneOf::new("x", "h", "state", "device", STATES).is_err());
    }
}
