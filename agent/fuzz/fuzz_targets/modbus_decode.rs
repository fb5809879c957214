//! Fuzz target: a Modbus response's registers (bytes from a device) decoded
//! as any tag (type, byte and word order, bit, string length, scale). Decoding
//! must never panic; a value is either a finite number, a bool, text, or a
//! bounded error reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shuzhuan_agent::sample::Value;
use shuzhuan_agent::sources::modbus::decode_tag;
use shuzhuan_common::profile::{DataType, ModbusTag, Table, TagRole, WordOrder};

const TYPES: [DataType; 11] = [
    DataType::Bool,
    DataType::Bit,
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::U64,
    DataType::I64,
    DataType::F32,
    DataType::F64,
    DataType::String,
];
const ORDERS: [WordOrder; 4] = [
    WordOrder::ABCD,
    WordOrder::CDAB,
    WordOrder::BADC,
    WordOrder::DCBA,
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let data_type = TYPES[usize::from(data[0]) % TYPES.len()];
    let order = ORDERS[usize::from(data[1]) % ORDERS.len()];
    let bit = data[2];
    let scale = f64::from(i8::from_le_bytes([data[3]])) / 8.0;
    let words: Vec<u16> = data[4..]
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    let tag = ModbusTag {
        name: "f".into(),
        role: TagRole::Custom,
        table: if data_type == DataType::Bool {
            Table::Coil
        } else {
            Table::Holding
        },
        address: 0,
        data_type,
        order,
        bit: Some(bit),
        len: Some(words.len().max(1) as u16),
        scale,
        offset: 0.0,
        unit: None,
        carrier: None,
        group: None,
    };
    let width = usize::from(tag.width()).min(words.len());
    match decode_tag(&tag, &words[..width]) {
        Ok(Value::Number(x)) => assert!(x.is_finite()),
        Ok(_) => {}
        Err(why) => assert!(["decode", "not_finite"].contains(&why)),
    }
});
