//! The agent's clock: wall time, or a scaled simulated time for dry runs and
//! the demo, where a simulated day passes in minutes.
//!
//! Scaled time is `sim_epoch_ms + (wall_ms - real_epoch_ms) × scale`. The
//! simulator uses the same formula with the same three numbers (it writes
//! them into the agent configs it generates), so both sides agree on "now"
//! without talking to each other.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Maps wall time to the agent's time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// Simulated milliseconds per wall millisecond (1.0 for real time).
    pub scale: f64,
    /// Agent time at `real_epoch_ms`.
    pub sim_epoch_ms: i64,
    /// Wall time at which agent time was `sim_epoch_ms`.
    pub real_epoch_ms: i64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::real()
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Clock {
    /// Real time.
    pub fn real() -> Clock {
        Clock {
            scale: 1.0,
            sim_epoch_ms: 0,
            real_epoch_ms: 0,
        }
    }

    /// Scaled time anchored at the given instants.
    pub fn scaled(scale: f64, sim_epoch_ms: i64, real_epoch_ms: i64) -> Clock {
        Clock {
            scale,
            sim_epoch_ms,
            real_epoch_ms,
        }
    }

    /// Agent time for a given wall time.
    pub fn at_wall(&self, wall_ms: i64) -> i64 {
        if self.scale == 1.0 && self.sim_epoch_ms == self.real_epoch_ms {
            return wall_ms;
        }
        self.sim_epoch_ms + ((wall_ms - self.real_epoch_ms) as f64 * self.scale) as i64
    }

    /// Agent time now.
    pub fn now_ms(&self) -> i64 {
        self.at_wall(wall_ms())
    }

    /// The wall duration that corresponds to `sim` of agent time (used to
    /// sleep: a 1 s poll at scale 60 sleeps about 16.7 ms).
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
    fn scaled_time_runs_faster() {
        let c = Clock::scaled(60.0, 1_700_000_000_000, 1_000);
        assert_eq!(c.at_wall(1_000), 1_700_000_000_000);
        assert_eq!(c.at_wall(2_000), 1_700_000_060_000);
        assert_eq!(
            c.wall_duration(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn real_time_is_identity() {
        assert_eq!(Clock::real().at_wall(123_456), 123_456);
    }
}
