//! Roll-ups of enterprise rates to a county, an industry chain or the city
//! (INDICATORS.md §2): the mean of enterprise values is the headline (the
//! official style), the pooled ratio (Σ numerators / Σ denominators) is shown
//! beside it, and the counts say how many enterprises have measured data,
//! only declared data, or nothing.
//!
//! Sums are taken in sorted order, so the result does not depend on the
//! order enterprises are listed in, bit for bit.

use super::{order_free_sum, Insufficient, Rate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One enterprise's rate on both bases (`None`: nothing on that basis).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct EnterpriseRate {
    pub measured: Option<Rate>,
    pub declared: Option<Rate>,
}

impl EnterpriseRate {
    fn measured_value(&self) -> Option<Rate> {
        self.measured.filter(|r| r.value().is_some())
    }
    fn declared_value(&self) -> Option<Rate> {
        self.declared.filter(|r| r.value().is_some())
    }
}

/// Which basis a roll-up uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollUpBasis {
    /// Only measured values.
    Measured,
    /// Only declared values.
    Declared,
    /// The measured value where there is one, else the declared value.
    MeasuredElseDeclared,
}

/// A region's figure for one indicator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RollUp {
    pub basis: RollUpBasis,
    /// Headline: mean of enterprise values (`num` = Σ values, `den` = number
    /// of enterprises with a value).
    pub mean: Rate,
    /// Pooled: Σ numerators / Σ denominators over the same enterprises.
    pub pooled: Rate,
    /// Enterprises in the group.
    pub enterprises: u64,
    /// With a measured value.
    pub measured: u64,
    /// Without a measured value but with a declared one.
    pub declared_only: u64,
    /// With neither.
    pub missing: u64,
}

/// Rolls `items` up on `basis`.
pub fn roll_up(items: &[EnterpriseRate], basis: RollUpBasis) -> RollUp {
    let (mut measured, mut declared_only, mut missing) = (0u64, 0u64, 0u64);
    let (mut values, mut nums, mut dens) = (Vec::new(), Vec::new(), Vec::new());
    for e in items {
        let (m, d) = (e.measured_value(), e.declared_value());
        match (m, d) {
            (Some(_), _) => measured += 1,
            (None, Some(_)) => declared_only += 1,
            (None, None) => missing += 1,
        }
        let chosen = match basis {
            RollUpBasis::Measured => m,
            RollUpBasis::Declared => d,
            RollUpBasis::MeasuredElseDeclared => m.or(d),
        };
        if let Some(Rate::Value { num, den, value }) = chosen {
            values.push(value);
            nums.push(num);
            dens.push(den);
        }
    }
    let k = values.len();
    let (mean, pooled) = if k == 0 {
        let r = Rate::insufficient(Insufficient::NoData);
        (r, r)
    } else {
        let sum_values = order_free_sum(values);
        let (sum_num, sum_den) = (order_free_sum(nums), order_free_sum(dens));
        // Each num ≤ den, but the two sums round separately: keep the pooled
        // numerator from exceeding its denominator by a rounding step.
        (
            Rate::ratio(sum_values.min(k as f64), k as f64),
            Rate::ratio(sum_num.min(sum_den), sum_den),
        )
    };
    RollUp {
        basis,
        mean,
        pooled,
        enterprises: items.len() as u64,
        measured,
        declared_only,
        missing,
    }
}

/// Rolls up per group (county, chain …): `items` are (group key, rate).
pub fn roll_up_by<K: Ord + Clone>(
    items: &[(K, EnterpriseRate)],
    basis: RollUpBasis,
) -> BTreeMap<K, RollUp> {
    let mut groups: BTreeMap<K, Vec<EnterpriseRate>> = BTreeMap::new();
    for (k, r) in items {
        groups.entry(k.clone()).or_default().push(*r);
    }
    groups
        .into_iter()
        .map(|(k, v)| (k, roll_up(&v, basis)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn e(measured: Option<(u64, u64)>, declared: Option<(u64, u64)>) -> EnterpriseRate {
        EnterpriseRate {
            measured: measured.map(|(n, d)| Rate::of_counts(n, d)),
            declared: declared.map(|(n, d)| Rate::of_counts(n, d)),
        }
    }

    #[test]
    fn county_of_three_where_mean_and_pooled_differ() {
        // A: 8 of 10 devices digitized (0.8); B: 20 of 100 (0.2); C: 30 of 50 (0.6)
        let county = [
            e(Some((8, 10)), None),
            e(Some((20, 100)), None),
            e(Some((30, 50)), None),
        ];
        let r = roll_up(&county, RollUpBasis::Measured);
        // mean = (0.8 + 0.2 + 0.6) / 3 = 1.6 / 3 = 0.5333…
        let mean = r.mean.value().unwrap();
        assert!((mean - 1.6 / 3.0).abs() < 1e-12, "{mean}");
        // pooled = (8 + 20 + 30) / (10 + 100 + 50) = 58 / 160 = 0.3625:
        // the big, little-digitized enterprise B weighs more
        assert_eq!(r.pooled.parts(), Some((58.0, 160.0)));
        assert_eq!(r.pooled.value(), Some(0.3625));
        assert_eq!(
            (r.enterprises, r.measured, r.declared_only, r.missing),
            (3, 3, 0, 0)
        );
    }

    #[test]
    fn counts_say_where_the_figure_comes_from() {
        let items = [
            e(Some((1, 2)), Some((2, 2))),
            e(None, Some((1, 4))),
            // measured but insufficient: counts as declared-only
            EnterpriseRate {
                measured: Some(Rate::insufficient(Insufficient::ZeroDenominator)),
                declared: Some(Rate::of_counts(3, 4)),
            },
            e(None, None),
        ];
        let m = roll_up(&items, RollUpBasis::Measured);
        assert_eq!((m.measured, m.declared_only, m.missing), (1, 2, 1));
        assert_eq!(m.mean.value(), Some(0.5));
        let d = roll_up(&items, RollUpBasis::Declared);
        // declared: 1.0, 0.25, 0.75 → mean 2.0 / 3; pooled 6 / 10
        assert!((d.mean.value().unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(d.pooled.parts(), Some((6.0, 10.0)));
        let b = roll_up(&items, RollUpBasis::MeasuredElseDeclared);
        // 0.5 (measured), 0.25, 0.75 → mean 0.5; pooled (1 + 1 + 3) / (2 + 4 + 4)
        assert_eq!(b.mean.value(), Some(0.5));
        assert_eq!(b.pooled.parts(), Some((5.0, 10.0)));
    }

    #[test]
    fn nobody_with_data_is_insufficient() {
        let r = roll_up(&[e(None, None)], RollUpBasis::Measured);
        assert_eq!(r.mean, Rate::insufficient(Insufficient::NoData));
        assert_eq!(r.pooled, Rate::insufficient(Insufficient::NoData));
        assert_eq!(roll_up(&[], RollUpBasis::Declared).enterprises, 0);
    }

    #[test]
    fn groups_roll_up_separately() {
        let items = [
            ("xiping", e(Some((1, 2)), None)),
            ("runan", e(Some((1, 4)), None)),
            ("xiping", e(Some((1, 1)), None)),
        ];
        let g = roll_up_by(&items, RollUpBasis::Measured);
        assert_eq!(g["xiping"].mean.value(), Some(0.75));
        assert_eq!(g["runan"].enterprises, 1);
    }

    fn any_rate() -> impl Strategy<Value = Option<(u64, u64)>> {
        prop::option::of((0u64..500, 0u64..500).prop_map(|(a, b)| (a.min(b), a.max(b))))
    }

    fn any_enterprise() -> impl Strategy<Value = EnterpriseRate> {
        (any_rate(), any_rate()).prop_map(|(m, d)| e(m, d))
    }

    fn in_unit(r: &Rate) -> bool {
        match r {
            Rate::Value { num, den, value } => {
                (0.0..=1.0).contains(value) && *num <= *den && *den > 0.0
            }
            Rate::InsufficientData { .. } => true,
        }
    }

    proptest! {
        #[test]
        fn roll_ups_do_not_depend_on_order(
            items in prop::collection::vec(any_enterprise(), 0..30),
            seed in any::<u64>(),
        ) {
            let mut shuffled = items.clone();
            // deterministic Fisher-Yates from the seed
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            for basis in [RollUpBasis::Measured, RollUpBasis::Declared, RollUpBasis::MeasuredElseDeclared] {
                prop_assert_eq!(roll_up(&items, basis), roll_up(&shuffled, basis));
            }
        }

        #[test]
        fn roll_ups_stay_in_the_unit_interval(items in prop::collection::vec(any_enterprise(), 0..30)) {
            let r = roll_up(&items, RollUpBasis::MeasuredElseDeclared);
            prop_assert!(in_unit(&r.mean) && in_unit(&r.pooled));
            prop_assert_eq!(r.measured + r.declared_only + r.missing, items.len() as u64);
        }

        #[test]
        fn mean_equals_pooled_when_denominators_are_equal(
            den in 1u64..1000,
            nums in prop::collection::vec(0u64..1000, 1..30),
        ) {
            let items: Vec<_> = nums.iter().map(|&n| e(Some((n.min(den), den)), None)).collect();
            let r = roll_up(&items, RollUpBasis::Measured);
            let (m, p) = (r.mean.value().unwrap(), r.pooled.value().unwrap());
            prop_assert!((m - p).abs() < 1e-12, "mean {} pooled {}", m, p);
        }
    }
}
