//! Samples: what sources hand to the device model. Every value carries its
//! timestamp and quality, and every poll cycle of a device arrives as one
//! batch, so the model can count expected and received samples.

use shuzhuan_common::profile::TagRole;
use std::sync::Arc;

/// How far a value can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quality {
    Good,
    /// The source flagged the value as uncertain (OPC UA Uncertain status).
    Uncertain,
    /// No usable value; the reason is bounded text for logs and metrics
    /// labels (`timeout`, `illegal_address`, `decode`, `disconnected` …).
    Bad(&'static str),
}

impl Quality {
    pub fn is_good(&self) -> bool {
        matches!(self, Quality::Good)
    }
}

/// A value read from a tag.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Value {
    /// Numeric view: booleans as 0/1, text as `None`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Number(n) => Some(*n),
            Value::Text(_) => None,
        }
    }
}

/// One tag's reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub tag: Arc<str>,
    pub role: TagRole,
    /// Energy carrier for energy counters.
    pub carrier: Option<Arc<str>>,
    /// Source timestamp when the device gave one, else the agent's read time,
    /// in Unix milliseconds on the agent's clock (see [`crate::clock`]).
    pub ts_ms: i64,
    /// `None` when quality is bad.
    pub value: Option<Value>,
    pub quality: Quality,
}

/// All tags of one device from one poll cycle (or, for OPC UA
/// subscriptions, the device's current values at its reporting interval).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleBatch {
    pub device: Arc<str>,
    /// When the cycle ran, Unix milliseconds on the agent's clock.
    pub ts_ms: i64,
    /// True when the device answered at all during the cycle (some tag good).
    pub reachable: bool,
    pub samples: Vec<Sample>,
}
