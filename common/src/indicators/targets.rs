//! Progress against the plan's yearly targets: value, target, gap, and
//! whether the value is on track at a point of the year. The plan's counts
//! are cumulative, so a year's count is compared with that year's
//! cumulative target.

use super::{Insufficient, Rate};
use serde::{Deserialize, Serialize};

/// Where a figure stands against its target for a year.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub year: u16,
    pub value: f64,
    /// The year-end target.
    pub target: f64,
    /// `target − value`: positive is still to go, zero or negative is met.
    pub gap: f64,
    /// What the value should be by now: the previous year's target plus the
    /// elapsed share of the year's increment (the year-end target when there
    /// is no previous year to start from).
    pub milestone: f64,
    /// `value ≥ milestone`.
    pub on_track: bool,
    /// `value ≥ target`.
    pub met: bool,
}

impl Progress {
    /// `value` in `year` against `target`, `previous` being the preceding
    /// year's target (for cumulative counts) and `elapsed` the share of the
    /// year gone by, in [0, 1] (the caller reads the clock, not this crate).
    pub fn against(
        year: u16,
        value: f64,
        target: f64,
        previous: Option<f64>,
        elapsed: f64,
    ) -> Progress {
        let elapsed = if elapsed.is_finite() {
            elapsed.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let milestone = match previous {
            Some(p) => p + (target - p) * elapsed,
            None => target,
        };
        Progress {
            year,
            value,
            target,
            gap: target - value,
            milestone,
            on_track: value >= milestone,
            met: value >= target,
        }
    }
}

/// Progress of a cumulative count (recognitions granted up to now).
pub fn count_progress(
    year: u16,
    count: u64,
    target: f64,
    previous: Option<f64>,
    elapsed: f64,
) -> Progress {
    Progress::against(year, count as f64, target, previous, elapsed)
}

/// Progress of a rate (a fraction) against a fractional target. The plan
/// sets its headline rates for 2025 only, so there is no intermediate
/// milestone: on track means at or above the target already.
pub fn rate_progress(year: u16, rate: &Rate, target: f64) -> Result<Progress, Insufficient> {
    match rate {
        Rate::Value { value, .. } => Ok(Progress::against(year, *value, target, None, 1.0)),
        Rate::InsufficientData { reason } => Err(*reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_count_mid_year() {
        // smart workshops: 2023 target 34, 2024 target 37; 36 by the end of
        // June 2024 (elapsed 0.5): milestone 34 + 3 × 0.5 = 35.5 → on track
        let p = count_progress(2024, 36, 37.0, Some(34.0), 0.5);
        assert_eq!(
            (p.milestone, p.gap, p.on_track, p.met),
            (35.5, 1.0, true, false)
        );
        // 35 by then is behind
        assert!(!count_progress(2024, 35, 37.0, Some(34.0), 0.5).on_track);
        // at year end 37 meets it, 38 exceeds it (negative gap)
        let p = count_progress(2024, 38, 37.0, Some(34.0), 1.0);
        assert_eq!((p.gap, p.on_track, p.met), (-1.0, true, true));
    }

    #[test]
    fn first_year_has_no_ramp() {
        // 2023: no earlier target, so the milestone is the target itself
        let p = count_progress(2023, 20, 22.0, None, 0.3);
        assert_eq!((p.milestone, p.on_track), (22.0, false));
    }

    #[test]
    fn rate_against_its_2025_target() {
        // 23 / 40 = 57.5% against 54%: met, 3.5 points ahead
        let p = rate_progress(2025, &Rate::of_counts(23, 40), 0.54).unwrap();
        assert!(p.met && p.on_track);
        assert!((p.gap + 0.035).abs() < 1e-12, "{}", p.gap);
        // key-process NC: 1 / 3 = 33.3% against 58%: behind by 24.7 points
        let p = rate_progress(2025, &Rate::of_counts(1, 3), 0.58).unwrap();
        assert!(!p.on_track && (p.gap - (0.58 - 1.0 / 3.0)).abs() < 1e-12);
        assert_eq!(
            rate_progress(2025, &Rate::insufficient(Insufficient::NoData), 0.58),
            Err(Insufficient::NoData)
        );
    }

    #[test]
    fn elapsed_is_clamped() {
        assert_eq!(
            Progress::against(2024, 0.0, 10.0, Some(0.0), 7.0).milestone,
            10.0
        );
        assert_eq!(
            Progress::against(2024, 0.0, 10.0, Some(0.0), -1.0).milestone,
            0.0
        );
        assert_eq!(
            Progress::against(2024, 0.0, 10.0, Some(0.0), f64::NAN).milestone,
            10.0
        );
    }
}
