//! Device states: the SEMI E10 / ISO 22400 time categories plus
//! `Disconnected`, which is a state of its own and never folded into "off".

use serde::{Deserialize, Serialize};

/// What a device was doing during a stretch of time.
///
/// The first six follow SEMI E10's equipment states; `Disconnected` means the
/// agent had no good data for the device, so nothing is known about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Running production (E10 productive).
    Productive,
    /// Powered and ready but not producing (E10 standby, "idle").
    Standby,
    /// Setup, program proving, manual or jog work (E10 engineering).
    Engineering,
    /// Planned maintenance (E10 scheduled downtime).
    ScheduledDown,
    /// Alarm, breakdown, interrupted program (E10 unscheduled downtime).
    UnscheduledDown,
    /// Switched off or not scheduled to work (E10 non-scheduled time).
    NonScheduled,
    /// No good data from the device: its state is unknown.
    Disconnected,
}

impl DeviceState {
    /// Every state, in a fixed order used for tables and encodings.
    pub const ALL: [DeviceState; 7] = [
        DeviceState::Productive,
        DeviceState::Standby,
        DeviceState::Engineering,
        DeviceState::ScheduledDown,
        DeviceState::UnscheduledDown,
        DeviceState::NonScheduled,
        DeviceState::Disconnected,
    ];

    /// Stable machine name, as used on the wire and in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Productive => "productive",
            DeviceState::Standby => "standby",
            DeviceState::Engineering => "engineering",
            DeviceState::ScheduledDown => "scheduled_down",
            DeviceState::UnscheduledDown => "unscheduled_down",
            DeviceState::NonScheduled => "non_scheduled",
            DeviceState::Disconnected => "disconnected",
        }
    }

    /// Chinese label used on the bureau's pages.
    pub fn label_zh(self) -> &'static str {
        match self {
            DeviceState::Productive => "生产",
            DeviceState::Standby => "待机",
            DeviceState::Engineering => "调试",
            DeviceState::ScheduledDown => "计划停机",
            DeviceState::UnscheduledDown => "故障停机",
            DeviceState::NonScheduled => "关机",
            DeviceState::Disconnected => "离线",
        }
    }

    /// Position in [`DeviceState::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the device was known to be available for work (the ISO 22400
    /// planned busy time excludes non-scheduled time and, being unknown,
    /// disconnected time).
    pub fn is_known(self) -> bool {
        self != DeviceState::Disconnected
    }
}

/// Seconds spent in each state during one window, indexed by
/// [`DeviceState::index`]. Serialized as a map from state name to seconds so
/// the wire format stays readable and order-independent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateSeconds(pub [u32; 7]);

impl StateSeconds {
    pub fn get(&self, s: DeviceState) -> u32 {
        self.0[s.index()]
    }
    pub fn add(&mut self, s: DeviceState, secs: u32) {
        self.0[s.index()] = self.0[s.index()].saturating_add(secs);
    }
    pub fn total(&self) -> u64 {
        self.0.iter().map(|&s| u64::from(s)).sum()
    }
    /// Seconds in states other than `Disconnected`.
    pub fn known(&self) -> u64 {
        self.total() - u64::from(self.get(DeviceState::Disconnected))
    }
    pub fn merge(&mut self, other: &StateSeconds) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.saturating_add(b);
        }
    }
}

impl Serialize for StateSeconds {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let nonzero = self.0.iter().filter(|&&v| v != 0).count();
        let mut map = ser.serialize_map(Some(nonzero))?;
        for s in DeviceState::ALL {
            let v = self.get(s);
            if v != 0 {
                map.serialize_entry(s.as_str(), &v)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for StateSeconds {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<DeviceState, u32>::deserialize(de)?;
        let mut out = StateSeconds::default();
        for (k, v) in map {
            out.0[k.index()] = v;
        }
        Ok(out)
    }
}
