//! From OPC UA DataValues to the agent's values and qualities.

use crate::clock::Clock;
use crate::sample::{Quality, Value};
use opcua::types::{DataValue, Variant};

/// A tag's latest reading as the link knows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reading {
    pub value: Option<Value>,
    pub quality: Quality,
    pub ts_ms: i64,
}

impl Reading {
    pub(crate) fn bad(reason: &'static str, ts_ms: i64) -> Self {
        Reading {
            value: None,
            quality: Quality::Bad(reason),
            ts_ms,
        }
    }
}

/// Numbers, booleans and text; anything else is not a tag value.
fn convert(v: &Variant, scale: f64) -> Result<Value, &'static str> {
    let n = |x: f64| Ok(Value::Number(x * scale));
    match v {
        Variant::Boolean(b) => Ok(Value::Bool(*b)),
        Variant::SByte(x) => n(f64::from(*x)),
        Variant::Byte(x) => n(f64::from(*x)),
        Variant::Int16(x) => n(f64::from(*x)),
        Variant::UInt16(x) => n(f64::from(*x)),
        Variant::Int32(x) => n(f64::from(*x)),
        Variant::UInt32(x) => n(f64::from(*x)),
        Variant::Int64(x) => n(*x as f64),
        Variant::UInt64(x) => n(*x as f64),
        Variant::Float(x) => n(f64::from(*x)),
        Variant::Double(x) => n(*x),
        Variant::String(s) => Ok(Value::Text(s.as_ref().to_owned())),
        Variant::LocalizedText(t) => Ok(Value::Text(t.text.as_ref().to_owned())),
        Variant::Empty => Err("no_value"),
        _ => Err("unsupported_type"),
    }
}

/// The reading of one DataValue: bad status → `Bad(<status name>)`,
/// uncertain → `Uncertain` with its value. The timestamp is the source's
/// (else the server's, else `now_ms`), mapped onto the agent's clock.
pub(crate) fn reading(dv: &DataValue, scale: f64, clock: &Clock, now_ms: i64) -> Reading {
    let ts_ms = dv
        .source_timestamp
        .or(dv.server_timestamp)
        .map(|t| t.as_chrono().timestamp_millis())
        .filter(|ms| *ms > 0)
        .map_or(now_ms, |wall| clock.at_wall(wall));
    let status = dv.status();
    if status.is_bad() {
        return Reading::bad(status.sub_code().name(), ts_ms);
    }
    let Some(v) = dv.value.as_ref() else {
        return Reading::bad("no_value", ts_ms);
    };
    match convert(v, scale) {
        Ok(value) => Reading {
            value: Some(value),
            quality: if status.is_uncertain() {
                Quality::Uncertain
            } else {
                Quality::Good
            },
            ts_ms,
        },
        Err(reason) => Reading::bad(reason, ts_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcua::types::{DateTime, LocalizedText, StatusCode};

    #[test]
    fn values_statuses_and_timestamps() {
        let clock = Clock::real();
        let mut dv = DataValue::new_now(Variant::UInt32(41));
        let r = reading(&dv, 2.0, &clock, 0);
        assert_eq!(r.value, Some(Value::Number(82.0)));
        assert_eq!(r.quality, Quality::Good);
        assert!((r.ts_ms - crate::clock::wall_ms()).abs() < 5_000);

        dv.status = Some(StatusCode::UncertainLastUsableValue);
        assert_eq!(reading(&dv, 1.0, &clock, 0).quality, Quality::Uncertain);
        dv.status = Some(StatusCode::BadNodeIdUnknown);
        let r = reading(&dv, 1.0, &clock, 0);
        assert_eq!(
            (r.value, r.quality),
            (None, Quality::Bad("BadNodeIdUnknown"))
        );

        let text = DataValue::new_now(Variant::from(LocalizedText::new("", "Running")));
        assert_eq!(
            reading(&text, 1.0, &clock, 0).value,
            Some(Value::Text("Running".into()))
        );
        let b = DataValue::value_only(Variant::Boolean(true));
        let r = reading(&b, 10.0, &clock, 77);
        assert_eq!((r.value, r.ts_ms), (Some(Value::Bool(true)), 77));
        let empty = DataValue::value_only(Variant::Empty);
        assert_eq!(
            reading(&empty, 1.0, &clock, 0).quality,
            Quality::Bad("no_value")
        );
    }

    #[test]
    fn source_time_maps_onto_a_scaled_clock() {
        let clock = Clock::scaled(60.0, 1_000_000, 0);
        let mut dv = DataValue::value_only(Variant::Double(1.0));
        dv.source_timestamp = Some(DateTime::from(chrono_ms(2_000)));
        assert_eq!(reading(&dv, 1.0, &clock, 0).ts_ms, 1_000_000 + 120_000);
    }

    fn chrono_ms(ms: i64) -> opcua::types::DateTimeUtc {
        opcua::types::DateTimeUtc::from_timestamp_millis(ms).unwrap()
    }
}
