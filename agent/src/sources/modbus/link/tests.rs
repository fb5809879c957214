//! Link task tests with scripted peers and paused time: exception splitting
//! and learned bad ranges, reconnect backoff, timeouts of an absent unit.

use super::*;
use crate::config::{ModbusTransport, WhenFull};
use crate::shutdown::Coordinator;
use shuzhuan_common::inventory::{Device, DeviceKind};
use shuzhuan_common::profile::{TagRole, WordOrder};
use std::io;
use std::sync::Mutex;

/// A device in memory: holding registers, a set of addresses that answer
/// exception 02, units that never answer, and a log of requests.
#[derive(Default)]
struct Peer {
    regs: BTreeMap<u16, u16>,
    illegal: Vec<u16>,
    silent_units: Vec<u8>,
    log: Vec<(u8, u16, u16)>,
    connects: Vec<Instant>,
    refuse_connects: usize,
}

#[derive(Clone, Default)]
struct Scripted(Arc<Mutex<Peer>>);

struct ScriptedConn(Arc<Mutex<Peer>>);

impl Transport for ScriptedConn {
    fn read(
        &mut self,
        unit: u8,
        _table: Table,
        start: u16,
        count: u16,
    ) -> super::super::client::BoxFuture<'_, Result<Vec<u16>, ReadError>> {
        Box::pin(async move {
            let silent = {
                let mut p = self.0.lock().unwrap();
                p.log.push((unit, start, count));
                p.silent_units.contains(&unit)
            };
            if silent {
                std::future::pending::<()>().await;
            }
            let p = self.0.lock().unwrap();
            let end = start + count - 1;
            if p.illegal.iter().any(|a| (start..=end).contains(a)) {
                return Err(ReadError::Exception(2));
            }
            Ok((start..=end)
                .map(|a| p.regs.get(&a).copied().unwrap_or(0))
                .collect())
        })
    }
}

impl Connector for Scripted {
    fn connect(&self) -> super::super::client::BoxFuture<'_, io::Result<Box<dyn Transport>>> {
        Box::pin(async move {
            let mut p = self.0.lock().unwrap();
            p.connects.push(Instant::now());
            if p.refuse_connects > 0 {
                p.refuse_connects -= 1;
                return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
            }
            Ok(Box::new(ScriptedConn(self.0.clone())) as Box<dyn Transport>)
        })
    }

    fn reconnect_after_timeout(&self) -> bool {
        true
    }
}

fn tag(name: &str, address: u16, data_type: DataType) -> ModbusTag {
    ModbusTag {
        name: name.into(),
        role: TagRole::Custom,
        table: Table::Holding,
        address,
        data_type,
        order: WordOrder::ABCD,
        bit: None,
        len: None,
        scale: 1.0,
        offset: 0.0,
        unit: None,
        carrier: None,
        group: None,
    }
}

fn device(id: &str, unit: u8, tags: Vec<ModbusTag>) -> DeviceConfig {
    DeviceConfig {
        inventory: Device {
            id: id.into(),
            name: id.into(),
            kind: DeviceKind::Other,
            production: true,
            declared_digital: true,
            declared_networked: true,
            declared_nc: false,
            key_process: None,
            original_value_cny: None,
        },
        link: Some("l".into()),
        unit: Some(unit),
        root: None,
        profile: None,
        poll_interval_ms: 1000,
        groups: BTreeMap::new(),
        meters: Vec::new(),
        power_thresholds_kw: None,
        max_registers_per_read: None,
        forbidden: Vec::new(),
        tags: DeviceTags::Modbus(tags.into()),
    }
}

fn link() -> ModbusLinkConfig {
    let _ = WhenFull::DropOldest;
    ModbusLinkConfig {
        id: "l".into(),
        transport: ModbusTransport::Tcp {
            address: "127.0.0.1:1".into(),
        },
        timeout_ms: 200,
        pause_ms: 0,
        backoff_initial_ms: 500,
        backoff_max_ms: 8_000,
        max_registers_per_read: None,
    }
}

fn start(
    peer: &Scripted,
    devices: Vec<DeviceConfig>,
) -> (
    mpsc::Receiver<SampleBatch>,
    Coordinator,
    prometheus::Registry,
) {
    let (tx, rx) = mpsc::channel(64);
    let coord = Coordinator::new();
    let handle = coord.handle();
    let registry = prometheus::Registry::new();
    let metrics = LinkMetrics::register(&registry, "l");
    let peer = peer.clone();
    tokio::spawn(async move {
        run_with(&peer, &link(), devices, Clock::real(), tx, metrics, handle).await;
    });
    (rx, coord, registry)
}

fn quality(b: &SampleBatch, tag: &str) -> Quality {
    b.samples
        .iter()
        .find(|s| &*s.tag == tag)
        .unwrap()
        .quality
        .clone()
}

#[tokio::test(start_paused = true)]
async fn an_illegal_register_fails_only_its_own_tag_and_is_planned_around() {
    let peer = Scripted::default();
    {
        let mut p = peer.0.lock().unwrap();
        p.regs.insert(0, 7);
        p.regs.insert(2, 8);
        p.regs.insert(4, 9);
        p.illegal = vec![2];
    }
    let tags = vec![
        tag("a", 0, DataType::U16),
        tag("b", 2, DataType::U16),
        tag("c", 4, DataType::U16),
    ];
    let (mut rx, coord, _r) = start(&peer, vec![device("d", 1, tags)]);
    let b = rx.recv().await.unwrap();
    assert_eq!(quality(&b, "a"), Quality::Good);
    assert_eq!(quality(&b, "b"), Quality::Bad("illegal_address"));
    assert_eq!(quality(&b, "c"), Quality::Good);
    assert_eq!(b.samples[2].value, Some(Value::Number(9.0)));
    assert!(b.reachable);
    // First poll: the merged read, then the halves, down to the bad one.
    let first: Vec<_> = peer.0.lock().unwrap().log.drain(..).collect();
    assert_eq!(first[0], (1, 0, 5));
    // Next poll: the bad register is not asked for, its neighbours are read
    // without crossing it.
    let b = rx.recv().await.unwrap();
    assert_eq!(quality(&b, "b"), Quality::Bad("illegal_address"));
    assert_eq!(quality(&b, "a"), Quality::Good);
    let second: Vec<_> = peer.0.lock().unwrap().log.drain(..).collect();
    assert_eq!(second, vec![(1, 0, 1), (1, 4, 1)]);
    coord.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reconnects_with_capped_exponential_backoff_and_jitter() {
    let peer = Scripted::default();
    peer.0.lock().unwrap().refuse_connects = 7;
    peer.0.lock().unwrap().regs.insert(0, 1);
    let t0 = Instant::now();
    let (mut rx, coord, _r) = start(
        &peer,
        vec![device("d", 1, vec![tag("a", 0, DataType::U16)])],
    );
    // While the link is down every poll still yields a batch, all disconnected.
    let b = rx.recv().await.unwrap();
    assert!(!b.reachable);
    assert_eq!(quality(&b, "a"), Quality::Bad("disconnected"));
    loop {
        let b = rx.recv().await.unwrap();
        if b.reachable {
            break;
        }
    }
    let connects = peer.0.lock().unwrap().connects.clone();
    assert_eq!(connects.len(), 8, "7 refused, then connected");
    assert_eq!(connects[0], t0);
    for k in 1..connects.len() {
        let gap = connects[k] - connects[k - 1];
        let nominal =
            Duration::from_millis(500 * (1u64 << (k - 1))).min(Duration::from_millis(8_000));
        assert!(
            gap >= nominal / 2 && gap <= nominal + Duration::from_millis(1),
            "attempt {k}: waited {gap:?}, nominal {nominal:?}"
        );
    }
    coord.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_absent_unit_times_out_without_stalling_the_others() {
    let peer = Scripted::default();
    {
        let mut p = peer.0.lock().unwrap();
        p.regs.insert(0, 42);
        p.silent_units = vec![9];
    }
    let (mut rx, coord, registry) = start(
        &peer,
        vec![
            device("ghost", 9, vec![tag("a", 0, DataType::U16)]),
            device("real", 1, vec![tag("a", 0, DataType::U16)]),
        ],
    );
    for _ in 0..3 {
        let ghost = rx.recv().await.unwrap();
        assert_eq!(&*ghost.device, "ghost");
        assert_eq!(quality(&ghost, "a"), Quality::Bad("timeout"));
        let real = rx.recv().await.unwrap();
        assert_eq!(&*real.device, "real");
        assert_eq!(real.samples[0].value, Some(Value::Number(42.0)));
    }
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains("shuzhuan_agent_read_errors_total{device=\"ghost\",link=\"l\"} 3"),
        "{text}"
    );
    coord.shutdown().await;
}

#[test]
fn backoff_doubles_up_to_the_cap_within_jitter_bounds() {
    let (i, m) = (Duration::from_millis(500), Duration::from_secs(30));
    assert_eq!(backoff(0, i, m, 1.0), i);
    assert_eq!(backoff(0, i, m, 0.0), i / 2);
    assert_eq!(backoff(3, i, m, 1.0), Duration::from_secs(4));
    assert_eq!(backoff(40, i, m, 1.0), m);
    assert_eq!(backoff(u32::MAX, i, m, 0.0), m / 2);
}

#[test]
fn decoding_applies_scale_offset_and_refuses_non_finite() {
    let mut t = tag("p", 0, DataType::I16);
    t.scale = 0.1;
    t.offset = 1.0;
    assert_eq!(decode_tag(&t, &[0xFFF6]), Ok(Value::Number(0.0)));
    let f = tag("f", 0, DataType::F32);
    assert_eq!(decode_tag(&f, &[0x7FC0, 0]), Err("not_finite"));
    let mut b = tag("b", 0, DataType::Bit);
    b.bit = Some(2);
    assert_eq!(decode_tag(&b, &[4]), Ok(Value::Bool(true)));
    let mut s = tag("s", 0, DataType::String);
    s.len = Some(2);
    assert_eq!(
        decode_tag(&s, &[0x4142, 0x4300]),
        Ok(Value::Text("ABC".into()))
    );
}

proptest::proptest! {
    /// The fuzz target's property (agent/fuzz/fuzz_targets/modbus_decode.rs)
    /// on the stable toolchain: any registers decode to a finite number, a
    /// bool, text or a bounded reason, never a panic.
    #[test]
    fn decoding_any_registers_never_panics(
        ty in 0usize..11,
        order in 0usize..4,
        bit in proptest::prelude::any::<u8>(),
        scale in -16.0f64..16.0,
        words in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..8),
    ) {
        let types = [DataType::Bool, DataType::Bit, DataType::U16, DataType::I16, DataType::U32,
            DataType::I32, DataType::U64, DataType::I64, DataType::F32, DataType::F64, DataType::String];
        let orders = [WordOrder::ABCD, WordOrder::CDAB, WordOrder::BADC, WordOrder::DCBA];
        let mut t = tag("f", 0, types[ty]);
        t.order = orders[order];
        t.bit = Some(bit);
        t.len = Some(words.len().max(1) as u16);
        t.scale = scale;
        let width = usize::from(t.width()).min(words.len());
        match decode_tag(&t, &words[..width]) {
            Ok(Value::Number(x)) => proptest::prop_assert!(x.is_finite()),
            Ok(_) => {}
            Err(why) => proptest::prop_assert!(["decode", "not_finite"].contains(&why)),
        }
    }
}
