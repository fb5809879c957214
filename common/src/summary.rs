//! The per-device window summary: what one device did during one window
//! (seconds per state, energy per meter and carrier, parts, data coverage and
//! quality flags). Reports carry these; roll-ups add them up.

use crate::state::{DeviceState, StateSeconds};
use serde::{Deserialize, Serialize};

/// How an energy quantity was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergyMethod {
    /// Difference of a meter's energy counter (the normal case).
    Counter,
    /// Integral of sampled active power: a labelled fallback when no counter exists.
    PowerIntegration,
}

/// Energy used during a window, from one meter (or tag) and one carrier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyDelta {
    /// The meter or tag the quantity comes from.
    pub meter: String,
    /// Energy carrier id as named in `config/energy/coefficients.toml`
    /// (`electricity`, `natural_gas` …).
    pub carrier: String,
    /// Quantity in the carrier's unit (kWh for electricity, m³ for gas …).
    pub quantity: f64,
    /// The unit, spelled as in the coefficient table, so no number travels without it.
    pub unit: String,
    pub method: EnergyMethod,
    /// Energy exported (fed back to the grid) in the same unit, if metered.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exported: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Something the agent noticed about the data behind a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityFlag {
    /// A counter wrapped past its maximum; the delta was computed across the wrap.
    CounterRollover,
    /// A counter went backwards (reset or meter replaced): the delta before the
    /// reset is lost and not guessed.
    CounterReset,
    /// A counter jumped by more than is physically plausible; the jump was dropped.
    CounterImplausible,
    /// Energy came from power integration, not a counter.
    PowerIntegrated,
    /// The agent started or stopped inside the window.
    PartialWindow,
    /// Some samples were uncertain (source said so).
    Uncertain,
    /// The agent's configuration changed inside the window.
    ConfigChanged,
}

/// One device's summary for one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSummary {
    pub device_id: String,
    /// Seconds per state; they add up to the window's length.
    pub state_seconds: StateSeconds,
    /// Productive seconds during which the controller reported automatic/NC
    /// operation (the measured side of the key-process NC rate).
    #[serde(default)]
    pub nc_seconds: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub energy: Vec<EnergyDelta>,
    /// Good parts counted (counter delta), if the device has a part counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u64>,
    /// Polls (or expected subscription updates) the agent planned in the window.
    pub samples_expected: u32,
    /// Polls that returned good data.
    pub samples_received: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<QualityFlag>,
}

/// Why a summary is not self-consistent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SummaryError {
    #[error("device `{device}`: state seconds add up to {got}, the window is {want} s")]
    StateSecondsMismatch { device: String, got: u64, want: u64 },
    #[error("device `{device}`: {received} samples received but only {expected} expected")]
    TooManySamples {
        device: String,
        received: u32,
        expected: u32,
    },
    #[error("device `{device}`: nc_seconds {nc} exceeds productive seconds {productive}")]
    NcExceedsProductive {
        device: String,
        nc: u32,
        productive: u32,
    },
    #[error(
        "device `{device}` meter `{meter}`: energy quantity {value} is negative or not finite"
    )]
    BadEnergy {
        device: String,
        meter: String,
        value: f64,
    },
}

impl WindowSummary {
    /// A summary for a device the agent knows about but has no data from.
    pub fn disconnected(device_id: impl Into<String>, window_secs: u32, expected: u32) -> Self {
        let mut s = StateSeconds::default();
        s.add(DeviceState::Disconnected, window_secs);
        WindowSummary {
            device_id: device_id.into(),
            state_seconds: s,
            nc_seconds: 0,
            energy: Vec::new(),
            parts: None,
            samples_expected: expected,
            samples_received: 0,
            flags: Vec::new(),
        }
    }

    /// Checks the summary against its window length.
    pub fn validate(&self, window_secs: u64) -> Result<(), SummaryError> {
        let got = self.state_seconds.total();
        if got != window_secs {
            return Err(SummaryError::StateSecondsMismatch {
                device: self.device_id.clone(),
                got,
                want: window_secs,
            });
        }
        if self.samples_received > self.samples_expected {
            return Err(SummaryError::TooManySamples {
                device: self.device_id.clone(),
                received: self.samples_received,
                expected: self.samples_expected,
            });
        }
        let productive = self.state_seconds.get(DeviceState::Productive);
        if self.nc_seconds > productive {
            return Err(SummaryError::NcExceedsProductive {
                device: self.device_id.clone(),
                nc: self.nc_seconds,
                productive,
            });
        }
        for e in &self.energy {
            for v in [e.quantity, e.exported] {
                if !v.is_finite() || v < 0.0 {
                    return Err(SummaryError::BadEnergy {
                        device: self.device_id.clone(),
                        meter: e.meter.clone(),
                        value: v,
                    });
                }
            }
        }
        Ok(())
    }

    /// Data coverage of this window: received / expected (0 when nothing was expected).
    pub fn coverage(&self) -> f64 {
        if self.samples_expected == 0 {
            0.0
        } else {
            f64::from(self.samples_received) / f64::from(self.samples_expected)
        }
    }
}
