//! Device profiles and tag definitions: how a device's signals are found on
//! the wire (Modbus table, address, data type, byte and word order, scale) or
//! in an OPC UA address space (NodeId or browse path), and what each signal
//! means to Shuzhuan (its role).
//!
//! Profiles live in `config/profiles/*.toml` with their source and vintage;
//! agent configs use them by name and may override single tags. The same
//! schema serves the simulator, which serves these registers, and the agent,
//! which reads them.

use serde::{Deserialize, Serialize};

/// What a tag means to the device model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagRole {
    /// PLC run bit: the machine is cycling.
    RunSignal,
    /// PLC auto bit / NC mode: running under automatic control.
    AutoMode,
    /// Alarm bit: the machine is in fault.
    Alarm,
    /// Spindle rotating (CNC).
    Spindle,
    /// Cumulative good-part counter.
    PartCounter,
    /// Instantaneous active power.
    ActivePower,
    /// Cumulative imported energy counter for `carrier`.
    EnergyCounter,
    /// Cumulative exported energy counter.
    EnergyExport,
    /// OPC UA MachineTool `OperationMode` (Manual=0, Automatic=1, …).
    OperationMode,
    /// OPC UA MachineTool channel `ChannelState` (Active=0, Interrupted=1, Reset=2).
    ChannelState,
    /// OPC UA MachineTool channel `ChannelMode` (Automatic=0, MdaMdi=1, JogManual=2, …).
    ChannelMode,
    /// OPC UA program state machine `CurrentState` (Running, Ended, Interrupted, Aborted).
    ProgramState,
    /// OPC 40001-1 `MachineryItemState` (NotAvailable, OutOfService, NotExecuting, Executing).
    MachineryItemState,
    /// Recorded and exported, not interpreted.
    Custom,
}

/// The four Modbus tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Function 01 / 05 / 15.
    Coil,
    /// Function 02.
    Discrete,
    /// Function 04.
    Input,
    /// Function 03 / 06 / 16.
    Holding,
}

impl Table {
    /// Whether the table holds single bits (coils, discrete inputs).
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::Discrete)
    }
}

/// Data type of a Modbus tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// A coil or discrete input.
    Bool,
    /// One bit (0 = least significant) of a 16-bit register; see `bit`.
    Bit,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// ASCII text, two characters per register, `len` registers.
    String,
}

impl DataType {
    /// Registers (or bits, for `Bool`) one value occupies; `string_len` is the
    /// register count of a string.
    pub fn width(self, string_len: u16) -> u16 {
        match self {
            DataType::Bool | DataType::Bit | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
            DataType::String => string_len.max(1),
        }
    }
}

/// Byte and word order of a multi-register value, named by where the bytes
/// of the big-endian value `A B C D` land: `ABCD` is big-endian with the high
/// word first, `CDAB` swaps words, `BADC` swaps bytes within words, `DCBA`
/// is fully little-endian. For 64-bit values the same rule applies to the
/// four words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum WordOrder {
    #[default]
    ABCD,
    CDAB,
    BADC,
    DCBA,
}

/// Where a Modbus tag lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusTag {
    pub name: String,
    pub role: TagRole,
    pub table: Table,
    /// PDU address (0-based), as in the device manual's hex column.
    pub address: u16,
    #[serde(rename = "type")]
    pub data_type: DataType,
    #[serde(default)]
    pub order: WordOrder,
    /// Bit index for `type = "bit"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit: Option<u8>,
    /// Register count for `type = "string"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u16>,
    /// Engineering value = raw × scale + offset.
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    /// Unit of the engineering value (`kW`, `kWh`, `W`, `count` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Energy carrier for energy counters (`electricity` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// Poll group: tags with the same group share a poll interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

fn one() -> f64 {
    1.0
}

impl ModbusTag {
    /// Registers (or bits) the tag occupies.
    pub fn width(&self) -> u16 {
        self.data_type.width(self.len.unwrap_or(1))
    }
}

/// Where an OPC UA tag lives: a NodeId, or a browse path of BrowseNames from
/// the device's root node (each step optionally `nsu=<uri>;Name`, so the
/// namespace index may differ between servers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaTag {
    pub name: String,
    pub role: TagRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Slash-separated BrowseNames, e.g. `Monitoring/MachineTool/OperationMode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browse_path: Option<String>,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
}

/// Which protocol a profile speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Modbus,
    Opcua,
}

/// Where a profile's facts come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The document the register map or node set was taken from.
    pub source: String,
    /// Edition or date of that document.
    pub vintage: String,
    /// How far the facts were checked: `src`, `sec` or `unverified` (see INDICATORS.md).
    pub confidence: String,
}

/// A device profile file: `config/profiles/<id>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub protocol: Protocol,
    pub provenance: Provenance,
    /// Largest read this device accepts, in registers (lower than the
    /// protocol's 125 for some meters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_registers_per_read: Option<u16>,
    /// Address ranges that must never be read (inclusive, PDU addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbidden: Vec<ForbiddenRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modbus: Vec<ModbusTag>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opcua: Vec<OpcUaTag>,
}

/// Registers a device must never be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForbiddenRange {
    pub table: Table,
    pub start: u16,
    pub end: u16,
}

/// Why registers could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("expected {want} registers, got {got}")]
    Length { want: usize, got: usize },
    #[error("bit index {0} is outside a 16-bit register")]
    BitIndex(u8),
    #[error("type `{0:?}` is read from bits, not registers")]
    NotRegisters(DataType),
}

/// A decoded raw value, before scale and offset.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Bool(bool),
    Int(i128),
    Float(f64),
    Text(String),
}

impl RawValue {
    /// The numeric value (booleans as 0/1); `None` for text.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            RawValue::Bool(b) => Some(f64::from(u8::from(*b))),
            RawValue::Int(i) => Some(*i as f64),
            RawValue::Float(f) => Some(*f),
            RawValue::Text(_) => None,
        }
    }
}

/// Byte `i` of the big-endian order `A B C D …` of a value held in `regs`
/// in word and byte order `order` (`i < 2 × regs.len()`). Decoding reads
/// the bytes in place: no copy of the registers per tag and poll.
fn be_byte(regs: &[u16], order: WordOrder, i: usize) -> u8 {
    let w = if matches!(order, WordOrder::CDAB | WordOrder::DCBA) {
        regs[regs.len() - 1 - i / 2]
    } else {
        regs[i / 2]
    };
    let high_first = !matches!(order, WordOrder::BADC | WordOrder::DCBA);
    if (i % 2 == 0) == high_first {
        (w >> 8) as u8
    } else {
        w as u8
    }
}

/// The first `N` big-endian bytes of a value of at least `N / 2` registers.
fn be_array<const N: usize>(regs: &[u16], order: WordOrder) -> [u8; N] {
    std::array::from_fn(|i| be_byte(regs, order, i))
}

/// The inverse of [`be_byte`]: registers in `order` from big-endian bytes.
fn from_be_bytes(bytes: &[u8], order: WordOrder) -> Vec<u16> {
    let swap_bytes = matches!(order, WordOrder::BADC | WordOrder::DCBA);
    let mut words: Vec<u16> = bytes
        .chunks(2)
        .map(|c| {
            let pair = [c[0], *c.get(1).unwrap_or(&0)];
            if swap_bytes {
                u16::from_le_bytes(pair)
            } else {
                u16::from_be_bytes(pair)
            }
        })
        .collect();
    if matches!(order, WordOrder::CDAB | WordOrder::DCBA) {
        words.reverse();
    }
    words
}

/// Decodes the registers of one tag (exactly `tag.width()` of them).
pub fn decode_registers(
    data_type: DataType,
    order: WordOrder,
    bit: Option<u8>,
    regs: &[u16],
) -> Result<RawValue, DecodeError> {
    let want = usize::from(data_type.width(regs.len() as u16));
    if data_type != DataType::String && regs.len() != want {
        return Err(DecodeError::Length {
            want,
            got: regs.len(),
        });
    }
    if regs.is_empty() {
        return Err(DecodeError::Length { want: 1, got: 0 });
    }
    Ok(match data_type {
        DataType::Bool => return Err(DecodeError::NotRegisters(data_type)),
        DataType::Bit => {
            let i = bit.unwrap_or(0);
            if i > 15 {
                return Err(DecodeError::BitIndex(i));
            }
            RawValue::Bool(regs[0] >> i & 1 == 1)
        }
        DataType::U16 => RawValue::Int(i128::from(u16::from_be_bytes(be_array(regs, order)))),
        DataType::I16 => RawValue::Int(i128::from(i16::from_be_bytes(be_array(regs, order)))),
        DataType::U32 => RawValue::Int(i128::from(u32::from_be_bytes(be_array(regs, order)))),
        DataType::I32 => RawValue::Int(i128::from(i32::from_be_bytes(be_array(regs, order)))),
        DataType::F32 => RawValue::Float(f64::from(f32::from_be_bytes(be_array(regs, order)))),
        DataType::U64 => RawValue::Int(i128::from(u64::from_be_bytes(be_array(regs, order)))),
        DataType::I64 => RawValue::Int(i128::from(i64::from_be_bytes(be_array(regs, order)))),
        DataType::F64 => RawValue::Float(f64::from_be_bytes(be_array(regs, order))),
        DataType::String => {
            let text: String = (0..regs.len() * 2)
                .map(|i| be_byte(regs, order, i))
                .take_while(|&c| c != 0)
                .map(|c| {
                    if c.is_ascii() && !c.is_ascii_control() {
                        c as char
                    } else {
                        '\u{FFFD}'
                    }
                })
                .collect();
            let kept = text.trim_end().len();
            let mut text = text;
            text.truncate(kept);
            RawValue::Text(text)
        }
    })
}

/// Encodes a numeric value into registers (the simulator's side). Integers
/// are rounded and wrapped to the type's width, as a device's counter would be.
pub fn encode_registers(data_type: DataType, order: WordOrder, value: f64) -> Vec<u16> {
    let bytes: Vec<u8> = match data_type {
        DataType::Bool | DataType::Bit | DataType::U16 => {
            (value.round() as i64 as u16).to_be_bytes().to_vec()
        }
        DataType::I16 => (value.round() as i64 as i16).to_be_bytes().to_vec(),
        DataType::U32 => (value.round() as i64 as u32).to_be_bytes().to_vec(),
        DataType::I32 => (value.round() as i64 as i32).to_be_bytes().to_vec(),
        DataType::F32 => (value as f32).to_be_bytes().to_vec(),
        DataType::U64 => (value.round() as u64).to_be_bytes().to_vec(),
        DataType::I64 => (value.round() as i64).to_be_bytes().to_vec(),
        DataType::F64 => value.to_be_bytes().to_vec(),
        DataType::String => Vec::new(),
    };
    from_be_bytes(&bytes, order)
}

/// Encodes ASCII text into `len` registers (two characters each, zero padded).
pub fn encode_string(text: &str, len: u16) -> Vec<u16> {
    let mut bytes: Vec<u8> = text.bytes().take(usize::from(len) * 2).collect();
    bytes.resize(usize::from(len) * 2, 0);
    from_be_bytes(&bytes, WordOrder::ABCD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn float_orders_match_a_known_value() {
        // 123.456f32 is 0x42F6E979 big-endian.
        let check = |order, regs: [u16; 2]| {
            assert_eq!(
                decode_registers(DataType::F32, order, None, &regs).unwrap(),
                RawValue::Float(f64::from(123.456f32)),
                "{order:?}"
            );
            assert_eq!(
                encode_registers(DataType::F32, order, f64::from(123.456f32)),
                regs.to_vec()
            );
        };
        check(WordOrder::ABCD, [0x42F6, 0xE979]);
        check(WordOrder::CDAB, [0xE979, 0x42F6]);
        check(WordOrder::BADC, [0xF642, 0x79E9]);
        check(WordOrder::DCBA, [0x79E9, 0xF642]);
    }

    #[test]
    fn signed_and_bits() {
        assert_eq!(
            decode_registers(DataType::I16, WordOrder::ABCD, None, &[0xFFFE]).unwrap(),
            RawValue::Int(-2)
        );
        assert_eq!(
            decode_registers(DataType::Bit, WordOrder::ABCD, Some(3), &[0b1000]).unwrap(),
            RawValue::Bool(true)
        );
        assert_eq!(
            decode_registers(DataType::Bit, WordOrder::ABCD, Some(16), &[0]),
            Err(DecodeError::BitIndex(16))
        );
        assert_eq!(
            decode_registers(DataType::U32, WordOrder::ABCD, None, &[1]),
            Err(DecodeError::Length { want: 2, got: 1 })
        );
    }

    #[test]
    fn strings() {
        let regs = encode_string("SDM630", 4);
        assert_eq!(
            decode_registers(DataType::String, WordOrder::ABCD, None, &regs).unwrap(),
            RawValue::Text("SDM630".into())
        );
    }

    fn orders() -> impl Strategy<Value = WordOrder> {
        prop_oneof![
            Just(WordOrder::ABCD),
            Just(WordOrder::CDAB),
            Just(WordOrder::BADC),
            Just(WordOrder::DCBA)
        ]
    }

    proptest! {
        #[test]
        fn integers_round_trip(v in any::<i32>(), w in any::<u64>(), order in orders()) {
            let r = encode_registers(DataType::I32, order, f64::from(v));
            prop_assert_eq!(decode_registers(DataType::I32, order, None, &r).unwrap(), RawValue::Int(i128::from(v)));
            let r = encode_registers(DataType::U64, order, w as f64);
            let back = decode_registers(DataType::U64, order, None, &r).unwrap();
            prop_assert_eq!(back, RawValue::Int(i128::from((w as f64) as u64)));
        }

        #[test]
        fn doubles_round_trip(v in any::<f64>().prop_filter("finite", |v| v.is_finite()), order in orders()) {
            let r = encode_registers(DataType::F64, order, v);
            prop_assert_eq!(decode_registers(DataType::F64, order, None, &r).unwrap(), RawValue::Float(v));
        }

        /// Decoding in place equals decoding a copy put into big-endian
        /// order word by word (the codec before it stopped allocating).
        #[test]
        fn in_place_decoding_equals_the_copying_reference(regs in prop::collection::vec(any::<u16>(), 1..5), order in orders()) {
            let mut words = regs.clone();
            if matches!(order, WordOrder::CDAB | WordOrder::DCBA) {
                words.reverse();
            }
            let swap = matches!(order, WordOrder::BADC | WordOrder::DCBA);
            let b: Vec<u8> = words.iter().flat_map(|w| if swap { w.to_le_bytes() } else { w.to_be_bytes() }).collect();
            let want = |t: DataType| -> Option<RawValue> {
                Some(match t {
                    DataType::U16 if regs.len() == 1 => RawValue::Int(i128::from(u16::from_be_bytes([b[0], b[1]]))),
                    DataType::I16 if regs.len() == 1 => RawValue::Int(i128::from(i16::from_be_bytes([b[0], b[1]]))),
                    DataType::U32 if regs.len() == 2 => RawValue::Int(i128::from(u32::from_be_bytes(b[..4].try_into().unwrap()))),
                    DataType::I32 if regs.len() == 2 => RawValue::Int(i128::from(i32::from_be_bytes(b[..4].try_into().unwrap()))),
                    DataType::F32 if regs.len() == 2 => RawValue::Float(f64::from(f32::from_be_bytes(b[..4].try_into().unwrap()))),
                    DataType::U64 if regs.len() == 4 => RawValue::Int(i128::from(u64::from_be_bytes(b[..8].try_into().unwrap()))),
                    DataType::I64 if regs.len() == 4 => RawValue::Int(i128::from(i64::from_be_bytes(b[..8].try_into().unwrap()))),
                    DataType::F64 if regs.len() == 4 => RawValue::Float(f64::from_be_bytes(b[..8].try_into().unwrap())),
                    DataType::String => RawValue::Text(
                        b.iter()
                            .take_while(|&&c| c != 0)
                            .map(|&c| if c.is_ascii() && !c.is_ascii_control() { c as char } else { '\u{FFFD}' })
                            .collect::<String>()
                            .trim_end()
                            .to_owned(),
                    ),
                    _ => return None,
                })
            };
            for t in [DataType::U16, DataType::I16, DataType::U32, DataType::I32, DataType::U64, DataType::I64, DataType::F32, DataType::F64, DataType::String] {
                if let Some(w) = want(t) {
                    let got = decode_registers(t, order, None, &regs).unwrap();
                    match (&w, &got) {
                        (RawValue::Float(a), RawValue::Float(g)) if a.is_nan() => prop_assert!(g.is_nan()),
                        _ => prop_assert_eq!(&got, &w, "{:?} {:?}", t, order),
                    }
                }
            }
        }

        /// Decoding arbitrary registers never panics.
        #[test]
        fn decoding_garbage_never_panics(regs in prop::collection::vec(any::<u16>(), 0..6), bit in any::<u8>()) {
            for t in [DataType::Bit, DataType::U16, DataType::I16, DataType::U32, DataType::I32, DataType::U64, DataType::I64, DataType::F32, DataType::F64, DataType::String] {
                for o in [WordOrder::ABCD, WordOrder::CDAB, WordOrder::BADC, WordOrder::DCBA] {
                    let _ = decode_registers(t, o, Some(bit), &regs);
                }
            }
        }
    }
}
