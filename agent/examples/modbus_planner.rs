//! Planner benchmark: requests, registers and estimated wire time per poll
//! cycle of the exact DP planner against one request per tag and a greedy
//! gap-fill baseline (gap limits 10 and 50), on every Modbus profile in
//! `config/profiles/` and on a generated 200-tag PLC map; plus an exhaustive
//! check of the planner's cost wherever enumeration is feasible, and the
//! planning time. Run: `cargo run --release -p shuzhuan-agent --example modbus_planner`
//! (results are recorded in docs/bench/modbus.md).

use shuzhuan_agent::sources::modbus::plan::{self, CostModel, Plan, Range};
use shuzhuan_common::profile::{Profile, Table};
use std::io::Write;
use std::time::Instant;

struct Case {
    name: String,
    table: Table,
    items: Vec<Range>,
    limit: u16,
    forbidden: Vec<Range>,
}

fn profile_cases() -> Vec<Case> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("config/profiles")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let p: Profile = toml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for table in [Table::Coil, Table::Discrete, Table::Input, Table::Holding] {
            let items: Vec<Range> = p
                .modbus
                .iter()
                .filter(|t| t.table == table)
                .map(|t| Range {
                    start: t.address,
                    end: t.address + t.width() - 1,
                })
                .collect();
            if items.is_empty() {
                continue;
            }
            out.push(Case {
                name: format!("{} ({:?})", p.id, table),
                table,
                items,
                limit: p.max_registers_per_read.unwrap_or(125),
                forbidden: p
                    .forbidden
                    .iter()
                    .filter(|f| f.table == table)
                    .map(|f| Range {
                        start: f.start,
                        end: f.end,
                    })
                    .collect(),
            });
        }
    }
    out
}

/// A 200-tag PLC map: clusters of tags (status words, counters, analog
/// values) with gaps of varied length, from a fixed seed.
fn plc_map() -> Case {
    let mut s: u64 = 0x5EED_0001;
    let mut rnd = |n: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % n
    };
    let mut items = Vec::new();
    let mut addr: u32 = 0;
    while items.len() < 200 {
        // A cluster of 3..12 tags, then a gap of 1..120 registers.
        let cluster = 3 + rnd(10);
        for _ in 0..cluster {
            let width = [1u32, 1, 2, 2, 4][rnd(5) as usize];
            let gap = rnd(3) as u32;
            addr += gap;
            items.push(Range {
                start: addr as u16,
                end: (addr + width - 1) as u16,
            });
            addr += width;
            if items.len() == 200 {
                break;
            }
        }
        addr += 1 + rnd(120) as u32;
    }
    Case {
        name: "generated PLC map, 200 tags (Holding)".into(),
        table: Table::Holding,
        items,
        limit: 125,
        forbidden: vec![],
    }
}

/// Cheapest partition of the sorted, disjoint atoms into consecutive runs,
/// by enumerating all 2^(n-1) cut sets (feasible for n <= 20).
fn enumerate(case: &Case, cost: &CostModel) -> Option<u64> {
    let mut sorted = case.items.clone();
    sorted.sort();
    let mut atoms: Vec<Range> = Vec::new();
    for r in sorted {
        match atoms.last_mut() {
            Some(a) if r.start <= a.end => a.end = a.end.max(r.end),
            _ => atoms.push(r),
        }
    }
    let n = atoms.len();
    if n == 0 || n > 20 {
        return None;
    }
    let mut best: Option<u64> = None;
    for cuts in 0u32..(1 << (n - 1)) {
        let mut total = 0u64;
        let mut start = 0;
        let mut ok = true;
        for i in 0..n {
            if i == n - 1 || cuts & (1 << i) != 0 {
                let r = Range {
                    start: atoms[start].start,
                    end: atoms[i].end,
                };
                if r.len() > u32::from(case.limit) || case.forbidden.iter().any(|f| f.overlaps(&r))
                {
                    ok = false;
                    break;
                }
                total += cost.request(case.table, r.len());
                start = i + 1;
            }
        }
        if ok {
            best = Some(best.map_or(total, |b| b.min(total)));
        }
    }
    best
}

fn units(p: &Plan) -> u32 {
    p.reads.iter().map(|r| r.range.len()).sum()
}

fn main() {
    let rtu = CostModel::serial(9600, 10);
    let tcp = CostModel::tcp();
    let mut cases = profile_cases();
    cases.push(plc_map());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "| map | tags | planner req / regs / ms@9600 | one per tag | greedy gap 10 | greedy gap 50 | wire-time ratio naive / planner | exhaustive |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let (mut sum_p, mut sum_n) = (0u64, 0u64);
    for c in &cases {
        let p = plan::plan(c.table, &c.items, c.limit, &c.forbidden, &rtu);
        let naive = plan::one_per_item(&c.items);
        let g10 = plan::greedy(&c.items, c.limit, 10, &c.forbidden);
        let g50 = plan::greedy(&c.items, c.limit, 50, &c.forbidden);
        let cell = |x: &Plan| {
            format!(
                "{} / {} / {:.1}",
                x.reads.len(),
                units(x),
                x.cost(&rtu, c.table) as f64 / 1e6
            )
        };
        let pc = p.cost(&rtu, c.table);
        assert!(
            pc <= g10.cost(&rtu, c.table) && pc <= g50.cost(&rtu, c.table),
            "{}: lost to greedy",
            c.name
        );
        let exhaustive = match enumerate(c, &rtu) {
            Some(b) => {
                assert_eq!(b, pc, "{}: planner differs from enumeration", c.name);
                "equal"
            }
            None => "n/a (> 20 atoms)",
        };
        sum_p += pc;
        sum_n += naive.cost(&rtu, c.table);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.2} | {} |",
            c.name,
            c.items.len(),
            cell(&p),
            cell(&naive),
            cell(&g10),
            cell(&g50),
            naive.cost(&rtu, c.table) as f64 / pc as f64,
            exhaustive
        );
    }
    let _ = writeln!(
        out,
        "\nAll maps, 9600 baud 8N1: planner {:.1} ms per cycle, one request per tag {:.1} ms (ratio {:.2}).",
        sum_p as f64 / 1e6,
        sum_n as f64 / 1e6,
        sum_n as f64 / sum_p as f64
    );
    // TCP cost model on the PLC map.
    let c = plc_map();
    let p = plan::plan(c.table, &c.items, c.limit, &c.forbidden, &tcp);
    let _ = writeln!(
        out,
        "PLC map over TCP (1 ms per request, 10 µs per register): planner {} requests / {} registers, one per tag {} requests.",
        p.reads.len(),
        units(&p),
        c.items.len()
    );
    // Planning time.
    let rounds = 2000;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(plan::plan(c.table, &c.items, c.limit, &c.forbidden, &rtu));
    }
    let dp = t.elapsed() / rounds;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(plan::greedy(&c.items, c.limit, 10, &c.forbidden));
    }
    let gr = t.elapsed() / rounds;
    let _ = writeln!(
        out,
        "Planning the 200-tag map: DP {:?}, greedy {:?} (ratio {:.1}); plans are made once per device and after a learned bad range.",
        dp,
        gr,
        dp.as_secs_f64() / gr.as_secs_f64()
    );
}
