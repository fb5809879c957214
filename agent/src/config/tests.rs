//! Tests of agent.toml loading: the maintained example, every error at once
//! with positions, hints, tag merging and the OPC UA inputs.

use super::*;
use shuzhuan_common::profile::{DataType, Table, WordOrder};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example() -> String {
    std::fs::read_to_string(repo().join("config/examples/agent.toml")).unwrap()
}

/// Loads `text` as if it lived in `config/examples/` (profiles found in config/profiles).
fn load(text: &str) -> Result<AgentConfig, ConfigErrors> {
    let text = text.replace(
        "# profiles_dir = \"profiles\"",
        &format!(
            "profiles_dir = \"{}\"",
            repo().join("config/profiles").display()
        ),
    );
    AgentConfig::from_text(repo().join("config/examples/test.toml"), &text)
}

#[test]
fn the_example_loads_with_resolved_tags() {
    let c = load(&example()).unwrap();
    assert_eq!(c.agent.id, "gw-0001");
    assert_eq!(c.links.len(), 3);
    let press = c.device("press-1").unwrap();
    let DeviceTags::Modbus(tags) = &press.tags else {
        panic!("modbus tags")
    };
    // Five profile tags plus one added; the override kept the profile's keys.
    assert_eq!(tags.len(), 6);
    let power = tags.iter().find(|t| t.name == "power").unwrap();
    assert_eq!(
        (power.table, power.address, power.data_type, power.order),
        (Table::Holding, 4, DataType::F32, WordOrder::ABCD)
    );
    assert_eq!(press.interval_of(Some("slow")), 10_000);
    assert_eq!(press.interval_of(None), 1000);
    let meter = c.device("meter-1").unwrap();
    assert_eq!(meter.max_registers_per_read, Some(80));
    assert!(c.device("grinder-1").unwrap().link.is_none());
    assert_eq!(c.inventory().devices.len(), 4);
    let ua = c.opcua_links();
    assert_eq!(ua.len(), 1);
    assert_eq!(
        ua[0].0.pki_dir.as_deref(),
        Some(Path::new("/var/lib/shuzhuan-agent/pki/opcua"))
    );
    assert_eq!(ua[0].1[0].root, "Machines/cnc-1");
    assert!(!ua[0].1[0].tags.is_empty());
    assert_eq!(c.modbus_links().len(), 2);
    assert_eq!(c.spool.when_full, WhenFull::DropOldest);
    assert!(c.summary().contains("gw-0001"));
}

#[test]
fn every_error_is_reported_at_once_with_positions() {
    let text = example()
        .replace("MA00000019", "MA00000018")
        .replace("address = 10 ", "address = 40011 ")
        .replace(
            "profile = \"eastron-sdm630\"",
            "profile = \"eastron-sdm63\"",
        )
        .replace("link = \"cnc-ua\"", "link = \"cnc-uaa\"")
        + "\n[agent_typo]\nx = 1\n";
    let errs = load(&text).unwrap_err();
    let all = errs.to_string();
    assert_eq!(errs.0.len(), 5, "{all}");
    assert!(errs.0.iter().all(|e| e.line > 0), "{all}");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let find = |needle: &str| {
        errs.0
            .iter()
            .find(|e| e.message.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {all}"))
    };
    assert_eq!(find("check character").line, line_of("MA00000018"));
    let e = find("1-based register notation");
    assert_eq!(e.line, line_of("address = 40011"));
    assert!(e.message.contains("address = 10"), "{all}");
    let e = find("unknown profile");
    assert!(
        e.message.contains("eastron-sdm630"),
        "lists the known ones: {all}"
    );
    assert!(find("unknown link `cnc-uaa`").message.contains("plc-line"));
    assert_eq!(find("unknown section").line, line_of("[agent_typo]"));
}

#[test]
fn hex_addresses_are_taken_as_meant() {
    let text = example().replace("address = 10 ", "address = 0x9C4B ");
    let c = load(&text).unwrap();
    let DeviceTags::Modbus(tags) = &c.device("press-1").unwrap().tags else {
        panic!()
    };
    assert!(tags.iter().any(|t| t.address == 40011));
}

#[test]
fn duplicates_units_and_kinds() {
    let text = example()
        .replace("id = \"meter-1\"", "id = \"press-1\"")
        .replace("kind = \"modbus_rtu\"", "kind = \"modbus_ascii\"")
        + "\n[[links]]\nid = \"plc-line\"\nkind = \"modbus_tcp\"\naddress = \"nohost\"\n";
    let errs = load(&text).unwrap_err();
    let all = errs.to_string();
    assert!(all.contains("id `press-1` is used twice"), "{all}");
    assert!(all.contains("unknown kind `modbus_ascii`"), "{all}");
    assert!(all.contains("id `plc-line` is used twice"), "{all}");
    assert!(all.contains("is not host:port"), "{all}");
}

#[test]
fn tag_problems_are_named() {
    let text = example().replace(
        "name = \"hydraulic_pressure\"",
        "name = \"hydraulic_pressure\"\nbit = 3",
    ) + "\n[[devices]]\nid = \"m2\"\nname = \"m\"\nkind = \"other\"\nproduction = false\nlink = \"plc-line\"\nunit = 1\n[[devices.tags]]\nname = \"x\"\nrole = \"custom\"\ntable = \"coil\"\naddress = 0\ntype = \"u16\"\n[[devices.tags]]\nname = \"s\"\nrole = \"custom\"\ntable = \"holding\"\naddress = 65535\ntype = \"u32\"\n[[devices.tags]]\nname = \"y\"\nrole = \"custom\"\ntable = \"holding\"\naddress = 9\ntype = \"u16\"\nforbidden = 1\n";
    let errs = load(&text).unwrap_err();
    let all = errs.to_string();
    assert!(
        all.contains("unit 1 on link `plc-line` is already used"),
        "{all}"
    );
    assert!(all.contains("holds single bits"), "{all}");
    assert!(all.contains("runs past 65535"), "{all}");
    assert!(all.contains("unknown field `forbidden`"), "{all}");
}

#[test]
fn a_simulator_generated_config_loads() {
    // The shape `shuzhuan-sim` writes (simulator/src/agentcfg.rs).
    let text = format!(
        r#"[agent]
id = "gw-example-1"
enterprise = "91411700MA00000019"
data_dir = "/tmp/a"
window_secs = 900
profiles_dir = "{}"

[clock]
scale = 60.0
sim_epoch_ms = 1764547200000
real_epoch_ms = 5

[http]
listen = "127.0.0.1:0"

[[links]]
id = "plc-line"
kind = "modbus_tcp"
address = "127.0.0.1:5020"
timeout_ms = 1000

[[links]]
id = "rtu"
kind = "modbus_rtu"
port = "/dev/pts/7"
timeout_ms = 1000

[[links]]
id = "cnc-ua"
kind = "opcua"
endpoint = "opc.tcp://127.0.0.1:4840/"
timeout_ms = 1000

[[devices]]
id = "press-1"
name = "Press 1"
kind = "press"
production = true
declared_digital = true
declared_networked = true
declared_nc = true
key_process = "forming"
link = "plc-line"
unit = 1
profile = "generic-plc"
poll_interval_ms = 1000
meters = ["m"]

[[devices]]
id = "m"
name = "Meter"
kind = "energy_meter"
production = false
declared_digital = true
declared_networked = true
declared_nc = false
link = "rtu"
unit = 2
profile = "chint-dtsu666"
poll_interval_ms = 1000

[[devices]]
id = "cnc-1"
name = "Lathe"
kind = "cnc_machine_tool"
production = true
declared_digital = true
declared_networked = true
declared_nc = true
link = "cnc-ua"
root = "Machines/cnc-1"
profile = "opcua-machinetool-cnc"
poll_interval_ms = 1000

[[key_processes]]
id = "forming"
name = "冲压"
declared_nc = true
"#,
        repo().join("config/profiles").display()
    );
    let c = AgentConfig::from_text("/tmp/gen.toml", &text).unwrap();
    assert_eq!(c.clock().scale, 60.0);
    assert_eq!(c.devices.len(), 3);
    assert!(matches!(
        &c.links[1],
        LinkConfig::Modbus(ModbusLinkConfig {
            transport: ModbusTransport::Rtu { baud: 9600, .. },
            ..
        })
    ));
}
