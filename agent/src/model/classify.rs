//! State classification of one poll cycle: controller signals first (OPC UA
//! MachineTool channel state and mode, spindle, program state, machinery
//! item state; PLC run/auto/alarm bits), else active power against
//! thresholds with hysteresis.

use crate::sample::{SampleBatch, Value};
use shuzhuan_common::profile::TagRole;
use shuzhuan_common::state::DeviceState;

/// Power thresholds (kW) for power-based classification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerThresholds {
    /// At or below: off (non-scheduled).
    pub off: f64,
    /// At or above: running (productive); between: standby.
    pub running: f64,
    /// Relative band around each threshold a reading must cross to leave
    /// the current state (0.1 = 10 %).
    pub hysteresis: f64,
}

impl Default for PowerThresholds {
    fn default() -> Self {
        PowerThresholds {
            off: 0.2,
            running: 2.0,
            hysteresis: 0.1,
        }
    }
}

/// The good controller and power readings of one batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    pub run: Option<bool>,
    pub auto: Option<bool>,
    pub alarm: Option<bool>,
    pub spindle: Option<bool>,
    pub operation_mode: Option<i64>,
    pub channel_state: Option<i64>,
    pub channel_mode: Option<i64>,
    pub program: Option<String>,
    pub item_state: Option<String>,
    pub power_kw: Option<f64>,
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => Some(*n != 0.0),
        Value::Text(_) => None,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    v.as_f64().map(|x| x.round() as i64)
}

fn item_name(v: &Value) -> Option<String> {
    match v {
        Value::Text(t) => Some(t.clone()),
        Value::Number(n) => Some(
            match n.round() as i64 {
                0 => "NotAvailable",
                1 => "OutOfService",
                2 => "NotExecuting",
                3 => "Executing",
                _ => return None,
            }
            .to_owned(),
        ),
        Value::Bool(_) => None,
    }
}

impl Signals {
    /// Extracts the good readings of a batch by tag role.
    pub fn of(batch: &SampleBatch) -> Signals {
        let mut s = Signals::default();
        for x in &batch.samples {
            if !x.quality.is_good() && x.quality != crate::sample::Quality::Uncertain {
                continue;
            }
            let Some(v) = &x.value else { continue };
            match x.role {
                TagRole::RunSignal => s.run = as_bool(v),
                TagRole::AutoMode => s.auto = as_bool(v),
                TagRole::Alarm => s.alarm = as_bool(v),
                TagRole::Spindle => s.spindle = as_bool(v),
                TagRole::OperationMode => s.operation_mode = as_int(v),
                TagRole::ChannelState => s.channel_state = as_int(v),
                TagRole::ChannelMode => s.channel_mode = as_int(v),
                TagRole::ProgramState => {
                    s.program = match v {
                        Value::Text(t) => Some(t.clone()),
                        _ => None,
                    }
                }
                TagRole::MachineryItemState => s.item_state = item_name(v),
                TagRole::ActivePower => s.power_kw = v.as_f64().filter(|p| p.is_finite()),
                _ => {}
            }
        }
        s
    }

    fn has_controller(&self) -> bool {
        self.run.is_some()
            || self.alarm.is_some()
            || self.channel_state.is_some()
            || self.program.is_some()
            || self.item_state.is_some()
    }

    /// Automatic / NC operation, when the controller says.
    pub fn nc(&self) -> bool {
        self.auto == Some(true) || self.operation_mode == Some(1) || self.channel_mode == Some(0)
    }
}

/// Classifies one batch. `prev` is the state in force (for hysteresis).
/// Returns `None` when the batch carries nothing to classify from.
pub fn classify(s: &Signals, prev: DeviceState, th: &PowerThresholds) -> Option<DeviceState> {
    use DeviceState::*;
    if s.has_controller() {
        let program = s.program.as_deref();
        let item = s.item_state.as_deref();
        if s.alarm == Some(true)
            || s.channel_state == Some(1)
            || matches!(program, Some("Interrupted" | "Aborted"))
        {
            return Some(UnscheduledDown);
        }
        if s.run == Some(true) || program == Some("Running") || item == Some("Executing") {
            return Some(Productive);
        }
        if item == Some("NotAvailable") {
            return Some(NonScheduled);
        }
        let manual = s.operation_mode == Some(0) || s.channel_mode == Some(2);
        if s.spindle == Some(true) || (manual && item == Some("NotExecuting")) {
            return Some(Engineering);
        }
        if item == Some("OutOfService") {
            return Some(ScheduledDown);
        }
        if s.auto == Some(true) || item == Some("NotExecuting") {
            return Some(Standby);
        }
        // PLC with run/auto/alarm all clear: off or setup, by power.
        return Some(match s.power_kw {
            Some(p) if p > th.off => Engineering,
            _ => NonScheduled,
        });
    }
    let p = s.power_kw?;
    let up = 1.0 + th.hysteresis;
    let down = 1.0 - th.hysteresis;
    // Thresholds move away from the current state, so a reading hovering
    // at a threshold does not flap.
    let (off, run) = match prev {
        NonScheduled => (th.off * up, th.running * up),
        Productive => (th.off * down, th.running * down),
        _ => (th.off * down, th.running * up),
    };
    Some(if p <= off {
        NonScheduled
    } else if p >= run {
        Productive
    } else {
        Standby
    })
}
