//! Deltas of cumulative counters (energy, parts) that survive rollover,
//! reset and meter replacement without a negative or giant jump: such steps
//! are flagged, not guessed.

use shuzhuan_common::summary::QualityFlag;

/// Counter maxima a register can wrap at (16/32-bit raw, decimal displays).
const WRAPS: [f64; 6] = [65_536.0, 4_294_967_296.0, 1e6, 1e7, 1e8, 1e9];

/// Tracks one counter.
#[derive(Debug, Clone, Default)]
pub struct Counter {
    last: Option<(i64, f64)>,
}

impl Counter {
    /// Feeds a reading at `ts_ms`. `max_rate_per_s` bounds a plausible
    /// increase. Returns the delta to count and a flag when something was odd.
    pub fn update(
        &mut self,
        ts_ms: i64,
        value: f64,
        max_rate_per_s: f64,
    ) -> (f64, Option<QualityFlag>) {
        if !value.is_finite() {
            return (0.0, Some(QualityFlag::CounterImplausible));
        }
        let prev = self.last.replace((ts_ms, value));
        let Some((t0, v0)) = prev else {
            return (0.0, None);
        };
        let dt = ((ts_ms - t0) as f64 / 1000.0).max(1.0);
        // Allow a generous margin (10×) and at least one unit so slow
        // counters (parts) are not flagged by rounding.
        let limit = (max_rate_per_s * dt * 10.0).max(1.0);
        let d = value - v0;
        if d >= 0.0 {
            if d > limit {
                return (0.0, Some(QualityFlag::CounterImplausible));
            }
            return (d, None);
        }
        // Backwards: a wrap at a known maximum when it explains a plausible delta.
        for w in WRAPS {
            if v0 < w && value < w {
                let wrapped = w - v0 + value;
                if wrapped >= 0.0 && wrapped <= limit && v0 > 0.5 * w {
                    return (wrapped, Some(QualityFlag::CounterRollover));
                }
            }
        }
        (0.0, Some(QualityFlag::CounterReset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_rollover_reset_and_jump() {
        let mut c = Counter::default();
        assert_eq!(c.update(0, 100.0, 1.0), (0.0, None));
        assert_eq!(c.update(1000, 100.5, 1.0), (0.5, None));
        // 16-bit wrap.
        let mut w = Counter::default();
        w.update(0, 65_530.0, 1.0);
        let (d, f) = w.update(10_000, 4.0, 1.0);
        assert_eq!(d, 10.0);
        assert_eq!(f, Some(QualityFlag::CounterRollover));
        // Reset to zero (meter replaced): nothing counted, flagged.
        assert_eq!(
            c.update(2000, 3.0, 1.0),
            (0.0, Some(QualityFlag::CounterReset))
        );
        // Afterwards counting resumes from the new base.
        assert_eq!(c.update(3000, 3.25, 1.0), (0.25, None));
        // A giant jump is dropped.
        assert_eq!(
            c.update(4000, 1e6, 1.0),
            (0.0, Some(QualityFlag::CounterImplausible))
        );
        assert_eq!(c.update(5000, 1e6 + 0.5, 1.0), (0.5, None));
    }
}
