//! The simulator's scaled clock. It uses the agent's formula
//! (`agent/src/clock.rs`): `sim_ms = sim_epoch_ms + (wall_ms - real_epoch_ms) × scale`,
//! and writes the same three numbers into the agent configs it generates so
//! both sides agree on "now" without talking to each other.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Maps wall time to simulated time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimClock {
    /// Simulated milliseconds per wall millisecond.
    pub scale: f64,
    /// Simulated time at `real_epoch_ms`.
    pub sim_epoch_ms: i64,
    /// Wall time at which simulated time was `sim_epoch_ms`.
    pub real_epoch_ms: i64,
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl SimClock {
    /// A clock that starts now at `sim_epoch_ms` and runs `scale` times faster than the wall.
    pub fn starting_now(scale: f64, sim_epoch_ms: i64) -> SimClock {
        SimClock {
            scale,
            sim_epoch_ms,
            real_epoch_ms: wall_ms(),
        }
    }

    /// Simulated time for a wall time (the agent's formula, truncated the same way).
    pub fn at_wall(&self, wall_ms: i64) -> i64 {
        if self.scale == 1.0 && self.sim_epoch_ms == self.real_epoch_ms {
            return wall_ms;
        }
        self.sim_epoch_ms + ((wall_ms - self.real_epoch_ms) as f64 * self.scale) as i64
    }

    /// Simulated time now.
    pub fn now_ms(&self) -> i64 {
        self.at_wall(wall_ms())
    }

    /// Wall time at which simulated time reaches `sim_ms`.
    pub fn wall_at(&self, sim_ms: i64) -> i64 {
        if self.scale <= 0.0 {
            return sim_ms;
        }
        self.real_epoch_ms + ((sim_ms - self.sim_epoch_ms) as f64 / self.scale).ceil() as i64
    }

    /// Wall duration of a simulated duration.
    pub fn wall_duration(&self, sim: Duration) -> Duration {
        if self.scale <= 0.0 {
            return sim;
        }
        Duration::from_secs_f64(sim.as_secs_f64() / self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_agents_formula_and_inverts() {
        let c = SimClock {
            scale: 60.0,
            sim_epoch_ms: 1_700_000_000_000,
            real_epoch_ms: 1_000,
        };
        assert_eq!(c.at_wall(1_000), 1_700_000_000_000);
        assert_eq!(c.at_wall(2_000), 1_700_000_060_000);
        let w = c.wall_at(1_700_000_090_000);
        assert!(c.at_wall(w) >= 1_700_000_090_000 && c.at_wall(w - 1) < 1_700_000_090_000);
        assert_eq!(
            c.wall_duration(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
    }
}
