//! A device's tags: the profile's, with `[[devices.tags]]` entries merged in
//! by name (an entry naming a profile tag changes only the keys it gives;
//! any other entry is a new tag with the full schema), then checked.

use super::load::Ctx;
use serde::Deserialize;
use shuzhuan_common::profile::{DataType, ForbiddenRange, ModbusTag, OpcUaTag, Profile, Table};
use std::collections::BTreeSet;
use std::ops::Range;
use toml::de::{DeValue, ValueDeserializer};
use toml::Spanned;

/// Merges an override table into a profile tag, keeping the profile's keys
/// the override does not give.
fn merge<T: serde::Serialize + serde::de::DeserializeOwned>(
    cx: &mut Ctx<'_>,
    what: &str,
    base: &T,
    over: &Spanned<DeValue<'_>>,
) -> Option<T> {
    let mut table = match toml::Value::try_from(base) {
        Ok(toml::Value::Table(t)) => t,
        _ => return None,
    };
    let over_table = match toml::Table::deserialize(ValueDeserializer::from(over.clone())) {
        Ok(t) => t,
        Err(e) => {
            cx.err(
                e.span().or(Some(over.span())),
                format!("{what}: {}", e.message()),
            );
            return None;
        }
    };
    for (k, v) in over_table {
        table.insert(k, v);
    }
    match T::deserialize(toml::Value::Table(table)) {
        Ok(t) => Some(t),
        Err(e) => {
            let msg = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid tag")
                .to_owned();
            // Point at the first key that fails on its own.
            let span = over
                .get_ref()
                .as_table()
                .and_then(|t| {
                    t.iter()
                        .find(|(k, v)| {
                            let mut one = match toml::Value::try_from(base) {
                                Ok(toml::Value::Table(b)) => b,
                                _ => return false,
                            };
                            match toml::Value::deserialize(ValueDeserializer::from((*v).clone())) {
                                Ok(val) => {
                                    one.insert(k.get_ref().to_string(), val);
                                    T::deserialize(toml::Value::Table(one)).is_err()
                                }
                                Err(_) => true,
                            }
                        })
                        .map(|(_, v)| v.span())
                })
                .or(Some(over.span()));
            cx.err(span, format!("{what}: {msg}"));
            None
        }
    }
}

fn tag_name<'a>(v: &'a Spanned<DeValue<'_>>) -> Option<&'a str> {
    v.get_ref().get("name").and_then(|n| n.get_ref().as_str())
}

/// Resolves and checks the Modbus tags of one device.
#[allow(clippy::too_many_arguments)]
pub(super) fn modbus<'t>(
    cx: &mut Ctx<'t>,
    what: &str,
    profile: Option<&Profile>,
    overrides: &[Spanned<DeValue<'t>>],
    forbidden: &[ForbiddenRange],
    max_registers: u16,
    profile_span: Option<Range<usize>>,
) -> Vec<ModbusTag> {
    // (tag, span of its entry in agent.toml or None for a profile tag, decimal address span)
    let mut tags: Vec<(ModbusTag, Option<Range<usize>>)> = profile
        .map(|p| p.modbus.iter().map(|t| (t.clone(), None)).collect())
        .unwrap_or_default();
    for o in overrides {
        let Some(name) = tag_name(o) else {
            cx.err(
                Some(o.span()),
                format!("{what}: [[devices.tags]] entry needs `name`"),
            );
            continue;
        };
        let twhat = format!("{what} tag `{name}`");
        let at = o
            .get_ref()
            .get("address")
            .map(|a| a.span())
            .or(Some(o.span()));
        let decimal = o
            .get_ref()
            .get("address")
            .and_then(|a| a.get_ref().as_integer())
            .is_some_and(|i| i.radix() == 10);
        let merged = match tags.iter().position(|(t, _)| t.name == name) {
            Some(i) => merge(cx, &twhat, &tags[i].0, o).map(|t| (i, t)),
            None => cx.de::<ModbusTag>(o, &twhat).map(|t| (usize::MAX, t)),
        };
        let Some((i, tag)) = merged else { continue };
        if decimal {
            if let Some(hint) = register_notation(&tag) {
                cx.err(at.clone(), format!("{twhat}: {hint}"));
                continue;
            }
        }
        if i == usize::MAX {
            tags.push((tag, at));
        } else {
            tags[i] = (tag, at);
        }
    }
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(tags.len());
    for (tag, span) in tags {
        let twhat = format!("{what} tag `{}`", tag.name);
        let (span, twhat) = match span {
            Some(s) => (Some(s), twhat),
            None => (
                profile_span.clone(),
                format!(
                    "{twhat} (from profile `{}`)",
                    profile.map_or("", |p| p.id.as_str())
                ),
            ),
        };
        if !names.insert(tag.name.clone()) {
            cx.err(span.clone(), format!("{twhat}: the name is used twice"));
            continue;
        }
        let mut problems = check_modbus(&tag, max_registers);
        let end = u32::from(tag.address) + u32::from(tag.width()) - 1;
        for f in forbidden.iter().filter(|f| f.table == tag.table) {
            if u32::from(f.start) <= end && u32::from(tag.address) <= u32::from(f.end) {
                problems.push(format!(
                    "registers {}..={} overlap the forbidden range {}..={} of the {:?} table",
                    tag.address, end, f.start, f.end, f.table
                ));
            }
        }
        if problems.is_empty() {
            out.push(tag);
        } else {
            for p in problems {
                cx.err(span.clone(), format!("{twhat}: {p}"));
            }
        }
    }
    out
}

/// A hint when a decimal address looks like the 1-based register notation
/// of device manuals (40001 = holding register at PDU address 0).
pub(super) fn register_notation(tag: &ModbusTag) -> Option<String> {
    let (lo, hi, name) = match tag.table {
        Table::Holding => (40_001u16, 49_999u16, "holding"),
        Table::Input => (30_001, 39_999, "input"),
        Table::Discrete => (10_001, 19_999, "discrete input"),
        Table::Coil => return None,
    };
    (lo..=hi).contains(&tag.address).then(|| {
        format!(
            "address {} looks like 1-based register notation ({}x); {name} PDU addresses start at 0, so this is probably address = {}; if the device really uses PDU address {} (as SunSpec maps do), write it in hex: address = {:#06X}",
            tag.address,
            lo / 10_000,
            tag.address - lo,
            tag.address,
            tag.address
        )
    })
}

/// Problems of one Modbus tag on its own.
pub(super) fn check_modbus(tag: &ModbusTag, max_registers: u16) -> Vec<String> {
    let mut p = Vec::new();
    let bits = tag.table.is_bits();
    if bits && tag.data_type != DataType::Bool {
        p.push(format!(
            "type `{:?}` cannot be read from the {:?} table, which holds single bits; hint: type = \"bool\"",
            tag.data_type, tag.table
        ));
    }
    if !bits && tag.data_type == DataType::Bool {
        p.push(format!(
            "type `bool` is for coils and discrete inputs; in the {:?} table use type = \"bit\" with `bit`",
            tag.table
        ));
    }
    if tag.data_type == DataType::Bit {
        match tag.bit {
            None => p.push("type `bit` needs `bit` (0 = least significant)".to_owned()),
            Some(b) if b > 15 => p.push(format!("bit = {b} is outside a 16-bit register (0..=15)")),
            _ => {}
        }
    }
    if tag.data_type == DataType::String && tag.len.is_none_or(|l| l == 0) {
        p.push("type `string` needs `len` (registers, two characters each)".to_owned());
    }
    let end = u32::from(tag.address) + u32::from(tag.width()) - 1;
    if end > 65_535 {
        p.push(format!(
            "address {} + {} registers runs past 65535",
            tag.address,
            tag.width()
        ));
    }
    if !bits && tag.width() > max_registers {
        p.push(format!(
            "{} registers do not fit in one read of at most {max_registers}",
            tag.width()
        ));
    }
    if !tag.scale.is_finite() || !tag.offset.is_finite() {
        p.push("scale and offset must be finite numbers".to_owned());
    }
    p
}

/// Resolves and checks the OPC UA tags of one device.
pub(super) fn opcua<'t>(
    cx: &mut Ctx<'t>,
    what: &str,
    profile: Option<&Profile>,
    overrides: &[Spanned<DeValue<'t>>],
) -> Vec<OpcUaTag> {
    let mut tags: Vec<(OpcUaTag, Option<Range<usize>>)> = profile
        .map(|p| p.opcua.iter().map(|t| (t.clone(), None)).collect())
        .unwrap_or_default();
    for o in overrides {
        let Some(name) = tag_name(o) else {
            cx.err(
                Some(o.span()),
                format!("{what}: [[devices.tags]] entry needs `name`"),
            );
            continue;
        };
        let twhat = format!("{what} tag `{name}`");
        match tags.iter().position(|(t, _)| t.name == name) {
            Some(i) => {
                if let Some(mut t) = merge(cx, &twhat, &tags[i].0, o) {
                    // A new node_id replaces the browse path and vice versa.
                    let has = |k: &str| o.get_ref().get(k).is_some();
                    if has("node_id") && !has("browse_path") {
                        t.browse_path = None;
                    } else if has("browse_path") && !has("node_id") {
                        t.node_id = None;
                    }
                    tags[i] = (t, Some(o.span()));
                }
            }
            None => {
                if let Some(t) = cx.de::<OpcUaTag>(o, &twhat) {
                    tags.push((t, Some(o.span())));
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (t, span) in tags {
        let twhat = format!("{what} tag `{}`", t.name);
        let ok = match (&t.node_id, &t.browse_path) {
            (Some(_), Some(_)) => {
                cx.err(
                    span.clone(),
                    format!("{twhat}: give either node_id or browse_path, not both"),
                );
                false
            }
            (None, None) => {
                cx.err(
                    span.clone(),
                    format!("{twhat}: needs node_id or browse_path"),
                );
                false
            }
            _ => true,
        };
        if !names.insert(t.name.clone()) {
            cx.err(span, format!("{twhat}: the name is used twice"));
            continue;
        }
        if ok {
            out.push(t);
        }
    }
    out
}
