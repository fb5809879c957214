//! Read queries the dashboard needs beyond the JSON API's, built only on the
//! store's public [`Store`] trait: reports are read back through
//! `raw_report` (the signed payloads), found by binary search over an
//! agent's sequence numbers since windows advance with `seq`.

use crate::store::{AgentRecord, Period, Store, StoreError};
use shuzhuan_common::report::Report;
use std::collections::{BTreeMap, BTreeSet};

/// Reads and parses one stored report.
pub fn report(store: &dyn Store, agent_id: &str, seq: u64) -> Result<Option<Report>, StoreError> {
    let Some((payload, _sig)) = store.raw_report(agent_id, seq)? else {
        return Ok(None);
    };
    serde_json::from_slice(&payload)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("report {agent_id}/{seq}: {e}")))
}

/// How current an agent's data is.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    pub agent_id: String,
    pub enterprise: String,
    pub revoked: bool,
    pub head_seq: Option<u64>,
    /// End of the newest window received (Unix seconds).
    pub last_window_end: Option<i64>,
}

impl Freshness {
    /// Seconds since the newest window ended; `None` without any report.
    pub fn age(&self, now: i64) -> Option<i64> {
        self.last_window_end.map(|t| (now - t).max(0))
    }
}

/// Freshness of every agent whose enterprise passes `visible`.
pub fn freshness(
    store: &dyn Store,
    visible: &dyn Fn(&str) -> bool,
) -> Result<Vec<Freshness>, StoreError> {
    let mut out = Vec::new();
    for a in store.agents()? {
        if !visible(&a.enterprise) {
            continue;
        }
        let last = match a.head_seq {
            Some(seq) => report(store, &a.agent_id, seq)?.map(|r| r.window_end),
            None => None,
        };
        out.push(Freshness {
            agent_id: a.agent_id,
            enterprise: a.enterprise,
            revoked: a.revoked_at.is_some(),
            head_seq: a.head_seq,
            last_window_end: last,
        });
    }
    Ok(out)
}

/// The first seq whose window ends after `t` (binary search; windows advance with seq).
fn first_after(store: &dyn Store, agent: &str, head: u64, t: i64) -> Result<u64, StoreError> {
    let (mut lo, mut hi) = (1u64, head + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match report(store, agent, mid)? {
            Some(r) if r.window_end <= t => lo = mid + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// An agent's reports whose windows start in `[from, to)`.
pub fn reports_between(
    store: &dyn Store,
    agent: &AgentRecord,
    from: i64,
    to: i64,
) -> Result<Vec<Report>, StoreError> {
    let Some(head) = agent.head_seq else {
        return Ok(Vec::new());
    };
    let mut seq = first_after(store, &agent.agent_id, head, from)?;
    let mut out = Vec::new();
    while seq <= head {
        let Some(r) = report(store, &agent.agent_id, seq)? else {
            break;
        };
        if r.window_start >= to {
            break;
        }
        if r.window_start >= from {
            out.push(r);
        }
        seq += 1;
    }
    Ok(out)
}

/// Energy per (carrier, unit) per month for the enterprises in `members`
/// (all when `None`): consumed and exported.
pub type CarrierSeries = BTreeMap<(String, String), Vec<Option<(f64, f64)>>>;

/// Monthly energy of `months` per carrier; a month with no row for any
/// member is `None` (no data), not 0.
pub fn monthly_energy(
    store: &dyn Store,
    months: &[Period],
    members: Option<&BTreeSet<String>>,
) -> Result<CarrierSeries, StoreError> {
    let mut out: CarrierSeries = BTreeMap::new();
    let mut per_month = Vec::new();
    for m in months {
        let mut sums: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
        for e in store.period_energy(&m.key())? {
            if members.is_some_and(|s| !s.contains(&e.enterprise)) {
                continue;
            }
            let slot = sums.entry((e.carrier, e.unit)).or_default();
            slot.0 += e.quantity;
            slot.1 += e.exported;
        }
        per_month.push(sums);
    }
    let keys: BTreeSet<(String, String)> =
        per_month.iter().flat_map(|m| m.keys().cloned()).collect();
    for k in keys {
        out.insert(
            k.clone(),
            per_month.iter().map(|m| m.get(&k).copied()).collect(),
        );
    }
    Ok(out)
}

/// The `n` months ending with `last`, oldest first.
pub fn months_back(last: Period, n: usize) -> Vec<Period> {
    let (mut y, mut m) = match last {
        Period::Month(y, m) => (y, m),
        Period::Quarter(y, q) => (y, q * 3),
        Period::Year(y) => (y, 12),
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Period::Month(y, m));
        if m == 1 {
            y -= 1;
            m = 12;
        } else {
            m -= 1;
        }
    }
    out.reverse();
    out
}

/// The month before `p` (a month).
pub fn previous_month(p: Period) -> Period {
    months_back(p, 2)[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_wrap_years() {
        let m = months_back(Period::Month(2026, 2), 3);
        assert_eq!(
            m.iter().map(Period::key).collect::<Vec<_>>(),
            ["2025-12", "2026-01", "2026-02"]
        );
        assert_eq!(previous_month(Period::Month(2026, 1)).key(), "2025-12");
    }
}
