//! The request planner: which reads cover a device's wanted registers of one
//! table at the least cost.
//!
//! Wanted items (tags, as inclusive register ranges) that overlap are merged
//! into atoms (a tag is always read whole). A read covers a run of
//! consecutive atoms, from the first one's start to the last one's end, so
//! every plan is a partition of the sorted atoms into runs; the cheapest
//! partition is found exactly by dynamic programming over the run ends, in
//! O(atoms²): `best[j] = min over i of best[i] + fixed + per_unit × span(i..j)`,
//! over runs that fit the request limit and contain no forbidden register.
//! The test below checks it against an exhaustive search that makes no such
//! assumption.

use crate::config::{ModbusLinkConfig, ModbusTransport, Parity};
use shuzhuan_common::profile::Table;

/// Cost of a read on a link, in nanoseconds of wire time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostModel {
    /// Per request: request frame, response header and CRC, line silences (RTU)
    /// or the round trip (TCP).
    pub fixed_ns: u64,
    /// Per register of a response.
    pub per_register_ns: u64,
    /// Per coil or discrete input of a response.
    pub per_bit_ns: u64,
}

impl CostModel {
    /// A serial line: 8 request bytes, 5 response overhead bytes and two
    /// 3.5-character silences per request (20 characters), 2 characters per
    /// register. At any baud rate a gap of up to 10 registers is cheaper to
    /// read through than to pay a second request.
    pub fn serial(baud: u32, bits_per_char: u32) -> CostModel {
        let char_ns = u64::from(bits_per_char) * 1_000_000_000 / u64::from(baud.max(1));
        CostModel {
            fixed_ns: 20 * char_ns,
            per_register_ns: 2 * char_ns,
            per_bit_ns: char_ns.div_ceil(8),
        }
    }

    /// Modbus TCP on a LAN: a request costs about a millisecond of round trip
    /// and device turnaround, a register about 10 µs of device and wire time,
    /// so gaps of up to 100 registers are read through.
    pub fn tcp() -> CostModel {
        CostModel {
            fixed_ns: 1_000_000,
            per_register_ns: 10_000,
            per_bit_ns: 1_250,
        }
    }

    /// The model of a configured link.
    pub fn for_link(cfg: &ModbusLinkConfig) -> CostModel {
        match &cfg.transport {
            ModbusTransport::Tcp { .. } => CostModel::tcp(),
            ModbusTransport::Rtu {
                baud,
                parity,
                stop_bits,
                data_bits,
                ..
            } => {
                let bits = 1
                    + u32::from(*data_bits)
                    + u32::from(*stop_bits)
                    + u32::from(*parity != Parity::None);
                CostModel::serial(*baud, bits)
            }
            ModbusTransport::RtuOverTcp { baud, .. } => CostModel::serial(*baud, 11),
        }
    }

    /// Cost of one read of `span` units of `table`.
    pub fn request(&self, table: Table, span: u32) -> u64 {
        let unit = if table.is_bits() {
            self.per_bit_ns
        } else {
            self.per_register_ns
        };
        self.fixed_ns + unit * u64::from(span)
    }
}

/// Largest read: 125 registers (function 03/04) or 2000 bits (01/02).
pub fn protocol_limit(table: Table) -> u16 {
    if table.is_bits() {
        2000
    } else {
        125
    }
}

/// An inclusive register range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Range {
    pub start: u16,
    pub end: u16,
}

impl Range {
    pub fn len(&self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, other: &Range) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// A planned read and the items it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub range: Range,
    /// Indices into the planner's `items`.
    pub items: Vec<usize>,
}

/// The planner's answer for one table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub reads: Vec<Read>,
    /// Items no read may serve (wider than the limit, or on a forbidden register).
    pub unplannable: Vec<usize>,
}

impl Plan {
    /// Total cost under `cost`.
    pub fn cost(&self, cost: &CostModel, table: Table) -> u64 {
        self.reads
            .iter()
            .map(|r| cost.request(table, r.range.len()))
            .sum()
    }
}

/// Plans the reads of `items` in one table: the cheapest set of reads of at
/// most `limit` units, none touching `forbidden`, that covers every plannable
/// item whole.
pub fn plan(
    table: Table,
    items: &[Range],
    limit: u16,
    forbidden: &[Range],
    cost: &CostModel,
) -> Plan {
    let limit = u32::from(limit.clamp(1, protocol_limit(table)));
    let hits_forbidden = |r: &Range| forbidden.iter().any(|f| f.overlaps(r));
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].start, items[i].end));
    // Atoms: unions of overlapping items.
    let mut atoms: Vec<(Range, Vec<usize>)> = Vec::new();
    for i in order {
        let r = items[i];
        match atoms.last_mut() {
            Some((a, members)) if r.start <= a.end => {
                a.end = a.end.max(r.end);
                members.push(i);
            }
            _ => atoms.push((r, vec![i])),
        }
    }
    let mut out = Plan::default();
    atoms.retain(|(a, members)| {
        let ok = a.len() <= limit && !hits_forbidden(a);
        if !ok {
            out.unplannable.extend(members.iter().copied());
        }
        ok
    });
    let n = atoms.len();
    // best[k]: cheapest cover of atoms[..k]; from[k]: start atom of its last read.
    let mut best = vec![u64::MAX; n + 1];
    let mut from = vec![0usize; n + 1];
    best[0] = 0;
    for j in 0..n {
        let end = atoms[j].0.end;
        for i in (0..=j).rev() {
            let r = Range {
                start: atoms[i].0.start,
                end,
            };
            if r.len() > limit || hits_forbidden(&r) {
                // Runs starting further left only grow.
                break;
            }
            if best[i] == u64::MAX {
                continue;
            }
            let c = best[i] + cost.request(table, r.len());
            if c < best[j + 1] {
                best[j + 1] = c;
                from[j + 1] = i;
            }
        }
    }
    let mut k = n;
    while k > 0 {
        let i = from[k];
        let range = Range {
            start: atoms[i].0.start,
            end: atoms[k - 1].0.end,
        };
        let mut members: Vec<usize> = atoms[i..k]
            .iter()
            .flat_map(|(_, m)| m.iter().copied())
            .collect();
        members.sort_unstable();
        out.reads.push(Read {
            range,
            items: members,
        });
        k = i;
    }
    out.reads.reverse();
    out.unplannable.sort_unstable();
    out
}

/// The naive baseline: one read per item.
pub fn one_per_item(items: &[Range]) -> Plan {
    Plan {
        reads: items
            .iter()
            .enumerate()
            .map(|(i, r)| Read {
                range: *r,
                items: vec![i],
            })
            .collect(),
        unplannable: Vec::new(),
    }
}

/// The greedy baseline: items in address order, a read extended to the next
/// item while the gap is at most `max_gap` units and the read stays within
/// `limit` and off forbidden registers.
pub fn greedy(items: &[Range], limit: u16, max_gap: u16, forbidden: &[Range]) -> Plan {
    let limit = u32::from(limit);
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].start, items[i].end));
    let mut reads: Vec<Read> = Vec::new();
    for i in order {
        let r = items[i];
        if let Some(last) = reads.last_mut() {
            let merged = Range {
                start: last.range.start,
                end: last.range.end.max(r.end),
            };
            let gap = i64::from(r.start) - i64::from(last.range.end) - 1;
            if gap <= i64::from(max_gap)
                && merged.len() <= limit
                && !forbidden.iter().any(|f| f.overlaps(&merged))
            {
                last.range = merged;
                last.items.push(i);
                continue;
            }
        }
        reads.push(Read {
            range: r,
            items: vec![i],
        });
    }
    Plan {
        reads,
        unplannable: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn r(start: u16, end: u16) -> Range {
        Range { start, end }
    }

    /// Exhaustive search: cover the lowest uncovered item with any read that
    /// contains it (any start up to `limit` below it), recursively, memoised
    /// on the set of covered items. No atoms, no consecutive-run assumption.
    fn brute(items: &[Range], limit: u16, forbidden: &[Range], cost: &CostModel) -> Option<u64> {
        fn go(
            covered: u32,
            items: &[Range],
            limit: u32,
            forbidden: &[Range],
            cost: &CostModel,
            memo: &mut HashMap<u32, Option<u64>>,
        ) -> Option<u64> {
            let all = (1u32 << items.len()) - 1;
            if covered == all {
                return Some(0);
            }
            if let Some(v) = memo.get(&covered) {
                return *v;
            }
            let t = (0..items.len())
                .filter(|i| covered & (1 << i) == 0)
                .min_by_key(|&i| (items[i].start, items[i].end))
                .unwrap();
            let it = items[t];
            let mut best: Option<u64> = None;
            let lo = u32::from(it.start).saturating_sub(limit - 1);
            for s in lo..=u32::from(it.start) {
                for e in u32::from(it.end)..s + limit {
                    if e > 65_535 {
                        break;
                    }
                    let rr = r(s as u16, e as u16);
                    if forbidden.iter().any(|f| f.overlaps(&rr)) {
                        continue;
                    }
                    let mut c2 = covered;
                    for (i, x) in items.iter().enumerate() {
                        if rr.contains(x) {
                            c2 |= 1 << i;
                        }
                    }
                    if let Some(rest) = go(c2, items, limit, forbidden, cost, memo) {
                        let total = rest + cost.request(Table::Holding, rr.len());
                        best = Some(best.map_or(total, |b: u64| b.min(total)));
                    }
                }
            }
            memo.insert(covered, best);
            best
        }
        go(
            0,
            items,
            u32::from(limit),
            forbidden,
            cost,
            &mut HashMap::new(),
        )
    }

    fn check_valid(p: &Plan, items: &[Range], limit: u16, forbidden: &[Range]) {
        for rd in &p.reads {
            assert!(rd.range.len() <= u32::from(limit), "{rd:?} over the limit");
            assert!(
                !forbidden.iter().any(|f| f.overlaps(&rd.range)),
                "{rd:?} forbidden"
            );
            for &i in &rd.items {
                assert!(rd.range.contains(&items[i]));
            }
        }
        for i in 0..items.len() {
            assert!(
                p.unplannable.contains(&i) || p.reads.iter().any(|rd| rd.items.contains(&i)),
                "item {i} neither planned nor refused"
            );
        }
    }

    #[test]
    fn rtu_fills_small_gaps_and_splits_large_ones() {
        let cost = CostModel::serial(9600, 11);
        let items = [r(0, 1), r(10, 11), r(40, 41)];
        let p = plan(Table::Input, &items, 125, &[], &cost);
        // Gap 8 is filled, gap 28 is not.
        assert_eq!(
            p.reads.iter().map(|x| x.range).collect::<Vec<_>>(),
            vec![r(0, 11), r(40, 41)]
        );
        let tcp = plan(Table::Input, &items, 125, &[], &CostModel::tcp());
        assert_eq!(tcp.reads.len(), 1);
    }

    #[test]
    fn forbidden_and_limits_are_respected() {
        let cost = CostModel::tcp();
        let items = [r(0, 1), r(10, 11), r(20, 21), r(30, 200)];
        let p = plan(Table::Holding, &items, 125, &[r(5, 5)], &cost);
        check_valid(&p, &items, 125, &[r(5, 5)]);
        assert_eq!(p.unplannable, vec![3]);
        assert_eq!(p.reads.len(), 2);
        // Overlapping items share a read.
        let p = plan(Table::Holding, &[r(0, 0), r(0, 1), r(1, 2)], 2, &[], &cost);
        assert_eq!(p.unplannable, vec![0, 1, 2]);
        let p = plan(Table::Holding, &[r(0, 0), r(0, 1), r(1, 2)], 3, &[], &cost);
        assert_eq!(p.reads.len(), 1);
    }

    fn items_strategy() -> impl Strategy<Value = Vec<Range>> {
        prop::collection::vec((0u16..40, 0u16..4), 1..7)
            .prop_map(|v| v.into_iter().map(|(s, w)| r(s, s + w)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn dp_equals_brute_force(
            items in items_strategy(),
            limit in 1u16..14,
            forbidden in prop::collection::vec((0u16..45, 0u16..3), 0..3),
            fixed in 1u64..50,
            per in 1u64..10,
        ) {
            let forbidden: Vec<Range> = forbidden.into_iter().map(|(s, w)| r(s, s + w)).collect();
            let cost = CostModel { fixed_ns: fixed, per_register_ns: per, per_bit_ns: per };
            let p = plan(Table::Holding, &items, limit, &forbidden, &cost);
            check_valid(&p, &items, limit, &forbidden);
            let plannable: Vec<Range> = (0..items.len())
                .filter(|i| !p.unplannable.contains(i))
                .map(|i| items[i])
                .collect();
            // A refused item really cannot be read whole.
            for &i in &p.unplannable {
                prop_assert!(brute(&[items[i]], limit, &forbidden, &cost).is_none()
                    || items.iter().enumerate().any(|(j, x)| j != i && x.overlaps(&items[i])));
            }
            if p.unplannable.is_empty() {
                prop_assert_eq!(Some(p.cost(&cost, Table::Holding)), brute(&plannable, limit, &forbidden, &cost));
            }
            // Never worse than the baselines when they are valid.
            for gap in [0u16, 10, 50] {
                let g = greedy(&plannable, limit, gap, &forbidden);
                if g.reads.iter().all(|x| x.range.len() <= u32::from(limit)) && p.unplannable.is_empty() {
                    prop_assert!(p.cost(&cost, Table::Holding) <= g.cost(&cost, Table::Holding));
                }
            }
        }
    }
}
