//! Model tests with hand-made sample sequences, and a proptest that state
//! seconds always add up to the window.

use super::*;
use crate::sample::{Sample, Value};
use proptest::prelude::*;
use std::sync::Arc;

fn sample(role: TagRole, ts: i64, v: Value) -> Sample {
    Sample {
        tag: Arc::from(format!("{role:?}")),
        role,
        carrier: None,
        ts_ms: ts,
        value: Some(v),
        quality: Quality::Good,
    }
}

fn plc(ts: i64, run: bool, auto: bool, alarm: bool, kw: f64, kwh: f64, parts: f64) -> SampleBatch {
    SampleBatch {
        device: Arc::from("m1"),
        ts_ms: ts,
        reachable: true,
        samples: vec![
            sample(TagRole::RunSignal, ts, Value::Bool(run)),
            sample(TagRole::AutoMode, ts, Value::Bool(auto)),
            sample(TagRole::Alarm, ts, Value::Bool(alarm)),
            sample(TagRole::ActivePower, ts, Value::Number(kw)),
            sample(TagRole::EnergyCounter, ts, Value::Number(kwh)),
            sample(TagRole::PartCounter, ts, Value::Number(parts)),
        ],
    }
}

fn down(ts: i64) -> SampleBatch {
    SampleBatch {
        device: Arc::from("m1"),
        ts_ms: ts,
        reachable: false,
        samples: vec![],
    }
}

const W: i64 = 900_000;

#[test]
fn plc_bits_give_states_energy_and_parts() {
    let mut m = DeviceModel::new(DeviceParams::new("m1", 1000));
    m.start_at(0);
    let mut kwh = 1000.0;
    let mut parts = 10.0;
    for s in 0..900 {
        let t = s * 1000;
        // 0-300 s productive, 300-600 standby, 600-700 alarm, 700-900 unreachable.
        let b = match s {
            0..300 => plc(t, true, true, false, 10.0, kwh, parts),
            300..600 => plc(t, false, true, false, 1.0, kwh, parts),
            600..700 => plc(t, false, true, true, 0.8, kwh, parts),
            _ => down(t),
        };
        m.feed(&b);
        if s < 300 {
            kwh += 10.0 / 3600.0;
            if s % 30 == 29 {
                parts += 1.0;
            }
        }
    }
    let w = m.seal(0, W, false);
    w.validate(900).unwrap();
    assert_eq!(w.state_seconds.get(DeviceState::Productive), 300);
    assert_eq!(w.state_seconds.get(DeviceState::Standby), 300);
    assert_eq!(w.state_seconds.get(DeviceState::UnscheduledDown), 100);
    assert_eq!(w.state_seconds.get(DeviceState::Disconnected), 200);
    assert_eq!(w.state_seconds.get(DeviceState::NonScheduled), 0);
    assert_eq!(w.nc_seconds, 300);
    assert_eq!(w.parts, Some(10));
    assert_eq!(w.energy.len(), 1);
    assert!((w.energy[0].quantity - 300.0 * 10.0 / 3600.0).abs() < 1e-6);
    assert_eq!(w.samples_expected, 900);
    assert_eq!(w.samples_received, 700);
}

#[test]
fn silence_becomes_disconnected_after_the_hold() {
    let mut m = DeviceModel::new(DeviceParams::new("m1", 1000));
    m.start_at(0);
    m.feed(&plc(0, true, true, false, 10.0, 0.0, 0.0));
    // No more batches: 3 s held, the rest disconnected.
    let w = m.seal(0, W, false);
    assert_eq!(w.state_seconds.get(DeviceState::Productive), 3);
    assert_eq!(w.state_seconds.get(DeviceState::Disconnected), 897);
}

#[test]
fn cnc_signals_classify() {
    let th = PowerThresholds::default();
    let mut s = Signals {
        program: Some("Running".into()),
        operation_mode: Some(1),
        channel_state: Some(0),
        channel_mode: Some(0),
        spindle: Some(true),
        item_state: Some("Executing".into()),
        ..Signals::default()
    };
    assert_eq!(
        classify(&s, DeviceState::Standby, &th),
        Some(DeviceState::Productive)
    );
    assert!(s.nc());
    s.program = Some("Interrupted".into());
    s.channel_state = Some(1);
    s.item_state = Some("OutOfService".into());
    assert_eq!(
        classify(&s, DeviceState::Standby, &th),
        Some(DeviceState::UnscheduledDown)
    );
    // Setup: manual, spindle turning, program ended.
    let e = Signals {
        program: Some("Ended".into()),
        operation_mode: Some(0),
        channel_state: Some(0),
        channel_mode: Some(2),
        spindle: Some(true),
        item_state: Some("NotExecuting".into()),
        ..Signals::default()
    };
    assert_eq!(
        classify(&e, DeviceState::Standby, &th),
        Some(DeviceState::Engineering)
    );
    let off = Signals {
        program: Some("Ended".into()),
        operation_mode: Some(0),
        channel_state: Some(2),
        channel_mode: Some(2),
        spindle: Some(false),
        item_state: Some("NotAvailable".into()),
        ..Signals::default()
    };
    assert_eq!(
        classify(&off, DeviceState::Standby, &th),
        Some(DeviceState::NonScheduled)
    );
    let maint = Signals {
        item_state: Some("OutOfService".into()),
        channel_state: Some(2),
        ..off.clone()
    };
    assert_eq!(
        classify(&maint, DeviceState::Standby, &th),
        Some(DeviceState::ScheduledDown)
    );
    let idle = Signals {
        operation_mode: Some(1),
        channel_mode: Some(0),
        item_state: Some("NotExecuting".into()),
        ..off
    };
    assert_eq!(
        classify(&idle, DeviceState::Productive, &th),
        Some(DeviceState::Standby)
    );
}

#[test]
fn power_hysteresis_and_dwell() {
    let th = PowerThresholds::default();
    let p = |kw| Signals {
        power_kw: Some(kw),
        ..Signals::default()
    };
    // Hovering just under the running threshold keeps running.
    assert_eq!(
        classify(&p(1.9), DeviceState::Productive, &th),
        Some(DeviceState::Productive)
    );
    assert_eq!(
        classify(&p(1.9), DeviceState::Standby, &th),
        Some(DeviceState::Standby)
    );
    assert_eq!(
        classify(&p(2.1), DeviceState::Standby, &th),
        Some(DeviceState::Standby)
    );
    assert_eq!(
        classify(&p(2.3), DeviceState::Standby, &th),
        Some(DeviceState::Productive)
    );
    assert_eq!(
        classify(&p(0.1), DeviceState::Standby, &th),
        Some(DeviceState::NonScheduled)
    );

    let mut params = DeviceParams::new("m1", 1000);
    params.min_dwell_ms = 5000;
    let mut m = DeviceModel::new(params);
    m.start_at(0);
    let batch = |t: i64, kw: f64| SampleBatch {
        device: Arc::from("m1"),
        ts_ms: t,
        reachable: true,
        samples: vec![sample(TagRole::ActivePower, t, Value::Number(kw))],
    };
    for s in 0..100 {
        // A 3 s spike is ignored; a lasting change is taken after 5 s.
        let kw = if (20..23).contains(&s) || s >= 50 {
            10.0
        } else {
            1.0
        };
        m.feed(&batch(s * 1000, kw));
    }
    let w = m.seal(0, 100_000, false);
    assert_eq!(w.state_seconds.get(DeviceState::Standby), 55);
    assert_eq!(w.state_seconds.get(DeviceState::Productive), 45);
    assert!(w.flags.contains(&QualityFlag::PowerIntegrated));
    assert_eq!(w.energy[0].method, EnergyMethod::PowerIntegration);
}

#[test]
fn partial_first_window_and_counter_reset_flagged() {
    let mut m = DeviceModel::new(DeviceParams::new("m1", 1000));
    m.start_at(300_000);
    for s in 300..900 {
        let kwh = if s < 600 {
            5000.0 + s as f64 * 0.01
        } else {
            (s - 600) as f64 * 0.01
        };
        m.feed(&plc(s * 1000, true, true, false, 36.0, kwh, 0.0));
    }
    let w = m.seal(0, W, false);
    w.validate(900).unwrap();
    assert_eq!(w.state_seconds.get(DeviceState::Disconnected), 300);
    assert!(w.flags.contains(&QualityFlag::PartialWindow));
    assert!(w.flags.contains(&QualityFlag::CounterReset));
    // 599 steps of 0.01 minus the reset step.
    assert!(
        (w.energy[0].quantity - 5.98).abs() < 1e-6,
        "{}",
        w.energy[0].quantity
    );
    assert_eq!(w.samples_expected, 600);
}

#[test]
fn windows_align_to_wall_clock() {
    assert_eq!(
        window_of(1_764_547_250_123, 900),
        (1_764_547_200_000, 1_764_548_100_000)
    );
    assert_eq!(window_of(-1, 900), (-900_000, 0));
}

proptest! {
    #[test]
    fn state_seconds_always_add_up(
        events in proptest::collection::vec((0i64..5000, 0u8..6, 0.0f64..20.0), 0..80),
        start in 0i64..W,
        dwell in 0i64..10_000,
    ) {
        let mut p = DeviceParams::new("m1", 1000);
        p.min_dwell_ms = dwell;
        let mut m = DeviceModel::new(p);
        m.start_at(start);
        let mut t = start;
        for (dt, kind, kw) in events {
            t += dt * 37;
            if t >= 2 * W { break; }
            if t >= W {
                let w = m.seal(0, W, false);
                prop_assert_eq!(w.state_seconds.total(), 900);
                prop_assert!(w.validate(900).is_ok());
                t = t.max(W);
            }
            let b = match kind {
                0 => down(t),
                1 => plc(t, true, kind % 2 == 0, false, kw, kw, 0.0),
                2 => plc(t, false, true, true, kw, kw, 0.0),
                _ => SampleBatch { device: Arc::from("m1"), ts_ms: t, reachable: true,
                    samples: vec![sample(TagRole::ActivePower, t, Value::Number(kw))] },
            };
            m.feed(&b);
        }
        let (s, e) = if t >= W { (W, 2 * W) } else { (0, W) };
        let w = m.seal(s, e, true);
        prop_assert_eq!(w.state_seconds.total(), 900);
        prop_assert!(w.validate(900).is_ok());
    }
}

/// An agent stopping mid-window accounts time up to the stop, leaves the
/// rest unknown (disconnected) and expects only the polls due before it.
#[test]
fn a_stop_mid_window_expects_only_the_polls_before_it() {
    let mut m = DeviceModel::new(DeviceParams::new("m1", 1000));
    m.start_at(0);
    for s in 0..400i64 {
        m.feed(&plc(s * 1000, true, true, false, 10.0, 0.0, 0.0));
    }
    let w = m.seal_until(0, W, 400_000, false);
    w.validate(900).unwrap();
    assert_eq!(w.state_seconds.get(DeviceState::Productive), 400);
    assert_eq!(w.state_seconds.get(DeviceState::Disconnected), 500);
    assert_eq!(w.samples_expected, 400);
    assert_eq!(w.samples_received, 400);
    assert!(w.flags.contains(&QualityFlag::PartialWindow));
    // The same polls sealed at the window's end: the remainder is expected.
    let mut whole = DeviceModel::new(DeviceParams::new("m1", 1000));
    whole.start_at(0);
    for s in 0..400i64 {
        whole.feed(&plc(s * 1000, true, true, false, 10.0, 0.0, 0.0));
    }
    let w = whole.seal(0, W, true);
    assert_eq!(w.samples_expected, 900);
    // A stop outside the window is clamped to it.
    let mut late = DeviceModel::new(DeviceParams::new("m1", 1000));
    late.start_at(0);
    late.feed(&plc(0, true, true, false, 10.0, 0.0, 0.0));
    let w = late.seal_until(0, W, 2 * W, false);
    assert_eq!(w.samples_expected, 900);
}
