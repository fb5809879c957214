//! The indicator engine: every formula of INDICATORS.md sections 1 to 4 as a
//! pure function (enterprise rates, roll-ups, energy and carbon, green-factory
//! scoring, questionnaire bands, progress against the plan's targets and the
//! land, water and waste ratios).
//!
//! Two rules hold everywhere: a ratio that cannot be formed is
//! [`Rate::InsufficientData`] with its reason, never NaN or a silent 0; and a
//! physical quantity travels with its unit and period ([`Amount`]).
//! Thresholds and coefficients are parameters that come from `config/`
//! through [`crate::reference`], never literals here.

pub mod bands;
pub mod energy;
pub mod green;
pub mod rates;
pub mod rollup;
pub mod targets;

use serde::{Deserialize, Serialize};
use std::fmt;

/// A ratio in [0, 1] with its parts, or the reason it could not be formed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Rate {
    /// `value = num / den`, with `0 <= num <= den` and `den > 0`.
    Value { num: f64, den: f64, value: f64 },
    /// Nothing to divide: see the reason.
    InsufficientData { reason: Insufficient },
}

/// Why a figure could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Insufficient {
    /// The denominator is zero: no production equipment, no key process, no
    /// enterprise, no output …
    ZeroDenominator,
    /// Reports cover too little of the assessment window to judge.
    LowCoverage { coverage: f64, required: f64 },
    /// Nothing was declared or measured for this enterprise.
    NoData,
    /// The inputs are not a ratio (negative, not finite, or a part larger
    /// than its whole); a data error upstream, shown rather than hidden.
    InvalidInput,
}

impl fmt::Display for Insufficient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Insufficient::ZeroDenominator => f.write_str("insufficient data: nothing to count"),
            Insufficient::LowCoverage { coverage, required } => write!(
                f,
                "insufficient data: reports cover {:.1}% of the window, {:.1}% required",
                coverage * 100.0,
                required * 100.0
            ),
            Insufficient::NoData => f.write_str("insufficient data: nothing declared or measured"),
            Insufficient::InvalidInput => f.write_str("insufficient data: inconsistent inputs"),
        }
    }
}

impl Rate {
    /// `num / den`; [`Insufficient::ZeroDenominator`] when `den` is 0 and
    /// [`Insufficient::InvalidInput`] when the inputs are not a part of a whole.
    pub fn ratio(num: f64, den: f64) -> Rate {
        if !num.is_finite() || !den.is_finite() || num < 0.0 || den < 0.0 {
            return Rate::insufficient(Insufficient::InvalidInput);
        }
        if den == 0.0 {
            return Rate::insufficient(Insufficient::ZeroDenominator);
        }
        if num > den {
            return Rate::insufficient(Insufficient::InvalidInput);
        }
        Rate::Value {
            num,
            den,
            value: num / den,
        }
    }

    /// A ratio of two counts.
    pub fn of_counts(num: u64, den: u64) -> Rate {
        Rate::ratio(num as f64, den as f64)
    }

    pub fn insufficient(reason: Insufficient) -> Rate {
        Rate::InsufficientData { reason }
    }

    /// The value in [0, 1], if there is one.
    pub fn value(&self) -> Option<f64> {
        match self {
            Rate::Value { value, .. } => Some(*value),
            Rate::InsufficientData { .. } => None,
        }
    }

    /// Numerator and denominator, if there is a value.
    pub fn parts(&self) -> Option<(f64, f64)> {
        match self {
            Rate::Value { num, den, .. } => Some((*num, *den)),
            Rate::InsufficientData { .. } => None,
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Value { num, den, value } => write!(f, "{:.1}% ({num}/{den})", value * 100.0),
            Rate::InsufficientData { reason } => reason.fmt(f),
        }
    }
}

/// A stretch of time a quantity refers to: Unix seconds, `start` inclusive,
/// `end` exclusive.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Period {
    pub start: i64,
    pub end: i64,
}

impl Period {
    pub fn new(start: i64, end: i64) -> Period {
        Period { start, end }
    }
    /// Length in seconds, 0 for an empty or reversed period.
    pub fn seconds(&self) -> u64 {
        u64::try_from(self.end - self.start).unwrap_or(0)
    }
}

/// A physical quantity: value, unit as spelled in `config/` (`kgce`,
/// `kgCO2`, `kgce/t` …) and the period it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Amount {
    pub value: f64,
    pub unit: String,
    pub period: Period,
}

impl Amount {
    pub fn new(value: f64, unit: impl Into<String>, period: Period) -> Amount {
        Amount {
            value,
            unit: unit.into(),
            period,
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.value, self.unit)
    }
}

/// Declared (questionnaire, inventory flags) or measured (agent data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    Declared,
    Measured,
}

/// Sums floats in a fixed order (ascending by total order), so that a sum
/// over enterprises does not depend on the order they were listed in.
pub(crate) fn order_free_sum(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.into_iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_refuses_what_is_not_a_ratio() {
        assert_eq!(
            Rate::ratio(1.0, 0.0),
            Rate::insufficient(Insufficient::ZeroDenominator)
        );
        assert_eq!(
            Rate::ratio(0.0, 0.0),
            Rate::insufficient(Insufficient::ZeroDenominator)
        );
        assert_eq!(
            Rate::ratio(3.0, 2.0),
            Rate::insufficient(Insufficient::InvalidInput)
        );
        assert_eq!(
            Rate::ratio(-1.0, 2.0),
            Rate::insufficient(Insufficient::InvalidInput)
        );
        assert_eq!(
            Rate::ratio(f64::NAN, 2.0),
            Rate::insufficient(Insufficient::InvalidInput)
        );
        // 23 / 40 = 0.575
        assert_eq!(Rate::of_counts(23, 40).value(), Some(0.575));
    }

    #[test]
    fn rate_serializes_with_a_status_tag() {
        let v = serde_json::to_value(Rate::of_counts(1, 4)).unwrap();
        assert_eq!(v["status"], "value");
        assert_eq!(v["value"], 0.25);
        let v = serde_json::to_value(Rate::insufficient(Insufficient::LowCoverage {
            coverage: 0.5,
            required: 0.8,
        }))
        .unwrap();
        assert_eq!(v["status"], "insufficient_data");
        assert_eq!(v["reason"]["kind"], "low_coverage");
    }

    #[test]
    fn period_length_is_never_negative() {
        assert_eq!(Period::new(10, 70).seconds(), 60);
        assert_eq!(Period::new(70, 10).seconds(), 0);
    }
}
