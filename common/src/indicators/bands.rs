//! Questionnaire scoring bands (INDICATORS.md §1): a rate falls into a band
//! `(previous upper, upper]` and earns that band's score, out of the
//! indicator's weight. The bands come from `config/scoring/bands.toml`.

use super::Rate;
use serde::{Deserialize, Serialize};

/// One band: values above the previous band's `upper` up to and including
/// this `upper` (the first band starts at 0 inclusive) score `score`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// Upper bound as a fraction in [0, 1].
    pub upper: f64,
    pub score: f64,
}

/// The bands of one questionnaire indicator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandScale {
    pub id: String,
    pub zh: String,
    pub en: String,
    pub weight: f64,
    #[serde(rename = "band")]
    pub bands: Vec<Band>,
}

/// Where a value landed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandScore {
    pub score: f64,
    pub weight: f64,
    /// Index of the band in the scale.
    pub band: usize,
    /// The band's bounds: `lower` exclusive (`None` for the first band, which
    /// includes 0), `upper` inclusive.
    pub lower: Option<f64>,
    pub upper: f64,
}

impl BandScale {
    /// What is wrong with the scale, as (band index or `None` for the scale,
    /// message).
    pub fn problems(&self) -> Vec<(Option<usize>, String)> {
        let mut out = Vec::new();
        if !(self.weight.is_finite() && self.weight > 0.0) {
            out.push((None, format!("weight {} must be positive", self.weight)));
        }
        if self.bands.is_empty() {
            out.push((None, "a scale needs at least one band".to_owned()));
        }
        let mut prev_upper = f64::NEG_INFINITY;
        let mut prev_score = f64::NEG_INFINITY;
        for (i, b) in self.bands.iter().enumerate() {
            if !(0.0..=1.0).contains(&b.upper) {
                out.push((
                    Some(i),
                    format!("upper {} must be a fraction in [0, 1]", b.upper),
                ));
            }
            if b.upper <= prev_upper {
                out.push((
                    Some(i),
                    format!("upper {} must exceed the previous band's", b.upper),
                ));
            }
            if !(b.score >= 0.0 && b.score <= self.weight) {
                out.push((
                    Some(i),
                    format!("score {} must be in [0, {}]", b.score, self.weight),
                ));
            }
            if b.score < prev_score {
                out.push((
                    Some(i),
                    format!("score {} is below the previous band's", b.score),
                ));
            }
            prev_upper = b.upper;
            prev_score = b.score;
        }
        if let Some(last) = self.bands.last() {
            if last.upper != 1.0 {
                out.push((
                    Some(self.bands.len() - 1),
                    format!("the last band must end at 1.0, not {}", last.upper),
                ));
            }
        }
        out
    }

    /// Scores a fraction in [0, 1]; `None` outside it.
    pub fn score(&self, value: f64) -> Option<BandScore> {
        if !(0.0..=1.0).contains(&value) {
            return None;
        }
        let mut lower = None;
        for (i, b) in self.bands.iter().enumerate() {
            if value <= b.upper {
                return Some(BandScore {
                    score: b.score,
                    weight: self.weight,
                    band: i,
                    lower,
                    upper: b.upper,
                });
            }
            lower = Some(b.upper);
        }
        None
    }

    /// Scores a rate; `None` when it is insufficient data.
    pub fn score_rate(&self, rate: &Rate) -> Option<BandScore> {
        rate.value().and_then(|v| self.score(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::Insufficient;

    /// The 2024 SME questionnaire's digitization bands (weight 6).
    fn sme() -> BandScale {
        let b = |upper, score| Band { upper, score };
        BandScale {
            id: "equipment_digitization".into(),
            zh: "生产设备数字化率".into(),
            en: "equipment digitization rate".into(),
            weight: 6.0,
            bands: vec![
                b(0.10, 0.0),
                b(0.20, 1.5),
                b(0.40, 3.0),
                b(0.60, 4.5),
                b(1.0, 6.0),
            ],
        }
    }

    #[test]
    fn bounds_are_upper_inclusive() {
        let s = sme();
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        assert_eq!(s.score(0.0).unwrap().score, 0.0);
        assert_eq!(s.score(0.10).unwrap().score, 0.0); // ≤ 10% → 0
        assert_eq!(s.score(0.1001).unwrap().score, 1.5); // (10, 20] → 1.5
        assert_eq!(s.score(0.40).unwrap().score, 3.0);
        // the 40-device enterprise: 23 / 40 = 57.5% → (40, 60] → 4.5
        let r = s.score_rate(&Rate::of_counts(23, 40)).unwrap();
        assert_eq!(
            (r.score, r.band, r.lower, r.upper),
            (4.5, 3, Some(0.40), 0.60)
        );
        assert_eq!(s.score(1.0).unwrap().score, 6.0);
        assert_eq!(s.score(1.01), None);
        assert_eq!(
            s.score_rate(&Rate::insufficient(Insufficient::NoData)),
            None
        );
    }

    #[test]
    fn broken_scales_are_described() {
        let mut s = sme();
        s.bands[2].upper = 0.15; // not increasing
        s.bands[4].upper = 0.9; // does not end at 1
        s.bands[1].score = 7.0; // above the weight, and band 2 then scores less
        let p = s.problems();
        let at: Vec<_> = p.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, vec![Some(1), Some(2), Some(2), Some(4)], "{p:?}");
    }
}
