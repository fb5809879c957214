//! The register image of one simulated device: its profile's tags filled
//! with the device's values at request time, encoded with the shared codec
//! (`shuzhuan_common::profile::encode_registers`), answering read requests
//! with data or the exception a real device would send.

use super::frame::{bits_response, exception, registers_response, Request};
use shuzhuan_common::profile::{encode_registers, DataType, Profile, Table, TagRole};

/// Values of a device at one instant, in base units: kW, kWh, counts, 0/1.
pub trait Values {
    fn value(&self, role: TagRole) -> Option<f64>;
}

/// Modbus exception codes the simulator sends.
pub const ILLEGAL_FUNCTION: u8 = 0x01;
pub const ILLEGAL_DATA_ADDRESS: u8 = 0x02;
pub const ILLEGAL_DATA_VALUE: u8 = 0x03;

/// Converts a base-unit value to the tag's unit (`W`, `Wh`, `MWh` …).
fn to_tag_unit(value: f64, unit: Option<&str>) -> f64 {
    match unit {
        Some("W") | Some("Wh") => value * 1000.0,
        Some("MW") | Some("MWh") => value / 1000.0,
        _ => value,
    }
}

fn table_of(function: u8) -> Option<Table> {
    match function {
        1 => Some(Table::Coil),
        2 => Some(Table::Discrete),
        3 => Some(Table::Holding),
        4 => Some(Table::Input),
        _ => None,
    }
}

/// Answers `req` for a device with `profile`: the response PDU.
pub fn answer(profile: &Profile, req: Request, values: &dyn Values) -> Vec<u8> {
    let Some(table) = table_of(req.function) else {
        return exception(req.function, ILLEGAL_FUNCTION);
    };
    let max = if table.is_bits() {
        2000
    } else {
        profile.max_registers_per_read.unwrap_or(125).min(125)
    };
    if req.quantity == 0 || req.quantity > max {
        return exception(req.function, ILLEGAL_DATA_VALUE);
    }
    let start = u32::from(req.address);
    let end = start + u32::from(req.quantity);
    let tags: Vec<_> = profile.modbus.iter().filter(|t| t.table == table).collect();
    // Registers between tags read as zero; outside the device's span, or in a
    // forbidden range, the device refuses the whole read.
    let lo = tags.iter().map(|t| u32::from(t.address)).min();
    let hi = tags
        .iter()
        .map(|t| u32::from(t.address) + u32::from(t.width()))
        .max();
    let inside = matches!((lo, hi), (Some(lo), Some(hi)) if start >= lo && end <= hi);
    let forbidden = profile
        .forbidden
        .iter()
        .any(|f| f.table == table && u32::from(f.start) < end && u32::from(f.end) >= start);
    if !inside || forbidden {
        return exception(req.function, ILLEGAL_DATA_ADDRESS);
    }
    if table.is_bits() {
        let mut bits = vec![false; usize::from(req.quantity)];
        for t in tags {
            let a = u32::from(t.address);
            if (start..end).contains(&a) {
                bits[(a - start) as usize] = values.value(t.role).unwrap_or(0.0) != 0.0;
            }
        }
        return bits_response(req.function, &bits);
    }
    let mut words = vec![0u16; usize::from(req.quantity)];
    for t in tags {
        let a = u32::from(t.address);
        let w = u32::from(t.width());
        if a + w <= start || a >= end {
            continue;
        }
        let value = values.value(t.role).unwrap_or(0.0);
        let raw = (to_tag_unit(value, t.unit.as_deref()) - t.offset) / t.scale;
        let regs = match t.data_type {
            DataType::Bit => vec![u16::from(raw != 0.0) << t.bit.unwrap_or(0).min(15)],
            DataType::String => vec![0; w as usize],
            dt => encode_registers(dt, t.order, raw),
        };
        for (i, r) in regs.iter().enumerate() {
            let addr = a + i as u32;
            if (start..end).contains(&addr) {
                // Bits of one status word are ORed together.
                words[(addr - start) as usize] |= r;
            }
        }
    }
    registers_response(req.function, &words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shuzhuan_common::profile::decode_registers;
    use std::collections::BTreeMap;
    use std::path::Path;

    struct Fixed(BTreeMap<TagRole, f64>);
    impl Values for Fixed {
        fn value(&self, role: TagRole) -> Option<f64> {
            self.0.get(&role).copied()
        }
    }

    fn profiles() -> BTreeMap<String, Profile> {
        crate::profiles::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles"))
            .unwrap()
    }

    fn words(pdu: &[u8]) -> Vec<u16> {
        pdu[2..]
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn every_modbus_profile_round_trips_through_the_codec() {
        let v = Fixed(BTreeMap::from([
            (TagRole::ActivePower, 12.5),
            (TagRole::EnergyCounter, 12345.6),
            (TagRole::EnergyExport, 7.0),
            (TagRole::RunSignal, 1.0),
            (TagRole::AutoMode, 0.0),
            (TagRole::Alarm, 1.0),
            (TagRole::PartCounter, 70000.0),
        ]));
        for p in profiles().values().filter(|p| !p.modbus.is_empty()) {
            for t in &p.modbus {
                let req = Request {
                    function: if t.table == Table::Input { 4 } else { 3 },
                    address: t.address,
                    quantity: t.width(),
                };
                let pdu = answer(p, req, &v);
                assert_eq!(pdu[0], req.function, "{} {}: {pdu:?}", p.id, t.name);
                let raw = decode_registers(t.data_type, t.order, t.bit, &words(&pdu))
                    .unwrap()
                    .as_f64()
                    .unwrap();
                let eng = raw * t.scale + t.offset;
                let want = to_tag_unit(v.value(t.role).unwrap_or(0.0), t.unit.as_deref());
                assert!(
                    (eng - want).abs() <= want.abs() * 1e-6 + 0.05,
                    "{} {}: {eng} vs {want}",
                    p.id,
                    t.name
                );
            }
        }
    }

    #[test]
    fn out_of_span_and_oversized_reads_get_exceptions() {
        let p = &profiles()["eastron-sdm630"];
        let v = Fixed(BTreeMap::new());
        assert_eq!(
            answer(
                p,
                Request {
                    function: 4,
                    address: 0x0000,
                    quantity: 2
                },
                &v
            ),
            vec![0x84, 2]
        );
        assert_eq!(
            answer(
                p,
                Request {
                    function: 4,
                    address: 0x0034,
                    quantity: 81
                },
                &v
            ),
            vec![0x84, 3]
        );
        assert_eq!(
            answer(
                p,
                Request {
                    function: 3,
                    address: 0x0034,
                    quantity: 2
                },
                &v
            ),
            vec![0x83, 2]
        );
        assert_eq!(
            answer(
                p,
                Request {
                    function: 6,
                    address: 0,
                    quantity: 0
                },
                &v
            ),
            vec![0x86, 1]
        );
        // A read across the gap between power and energy is served, the gap as zeros.
        let pdu = answer(
            p,
            Request {
                function: 4,
                address: 0x0034,
                quantity: 0x18,
            },
            &v,
        );
        assert_eq!(pdu[1], 0x30);
    }
}
