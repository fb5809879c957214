//! Reading agent.toml: the document is parsed once into spanned values, then
//! every section, link and device is deserialized on its own, so one bad
//! entry does not hide the problems of the others. Cross-references (links,
//! profiles, key processes, meters) are checked after all entries are read.

use super::tags;
use super::*;
use serde::de::DeserializeOwned;
use shuzhuan_common::inventory::{DeviceKind, IndustryType};
use shuzhuan_common::profile::Protocol;
use shuzhuan_common::tomlpos;
use std::collections::BTreeSet;
use std::ops::Range;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

/// Collects located problems for one file.
pub(super) struct Ctx<'t> {
    pub file: String,
    pub text: &'t str,
    pub errors: Vec<Located>,
}

impl<'t> Ctx<'t> {
    pub fn err(&mut self, span: Option<Range<usize>>, msg: impl Into<String>) {
        let e = tomlpos::locate(&self.file, self.text, span, msg);
        self.errors.push(e);
    }

    /// Deserializes one spanned value, recording a failure at its position.
    pub fn de<T: DeserializeOwned>(&mut self, v: &Spanned<DeValue<'t>>, what: &str) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(v.clone())) {
            Ok(t) => Some(t),
            Err(e) => {
                let msg = e
                    .message()
                    .lines()
                    .next()
                    .unwrap_or("invalid value")
                    .to_owned();
                let span = e.span().or_else(|| Some(v.span()));
                self.err(span, format!("{what}: {msg}"));
                None
            }
        }
    }
}

/// The value of `key` in a spanned table, if present.
pub(super) fn get<'a, 't>(table: &'a DeTable<'t>, key: &str) -> Option<&'a Spanned<DeValue<'t>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

/// A copy of `table` without `keys`, as a spanned value.
fn without<'t>(v: &Spanned<DeValue<'t>>, keys: &[&str]) -> Spanned<DeValue<'t>> {
    match v.get_ref() {
        DeValue::Table(t) => {
            let mut t = t.clone();
            for k in keys {
                t.remove(*k);
            }
            Spanned::new(v.span(), DeValue::Table(t))
        }
        _ => v.clone(),
    }
}

fn str_of<'a>(v: Option<&'a Spanned<DeValue<'_>>>) -> Option<&'a str> {
    v.and_then(|v| v.get_ref().as_str())
}

fn span_of(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    get(table, key).map(|v| v.span())
}

pub(super) fn load(path: &Path) -> Result<AgentConfig, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => from_text(path, &text),
        Err(e) => Err(ConfigErrors(vec![Located {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read the agent config: {e}"),
        }])),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    id: String,
    enterprise: String,
    data_dir: PathBuf,
    #[serde(default = "default_window_secs")]
    window_secs: u32,
    #[serde(default)]
    profiles_dir: Option<PathBuf>,
    #[serde(default = "default_industry")]
    industry: IndustryType,
}

fn default_industry() -> IndustryType {
    IndustryType::Discrete
}

fn default_window_secs() -> u32 {
    900
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default = "default_listen")]
    listen: String,
}

fn default_listen() -> String {
    "127.0.0.1:9100".to_owned()
}

macro_rules! modbus_link {
    ($name:ident { $($field:ident : $ty:ty $(= $default:expr)?),* $(,)? }) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            id: String,
            $(
                $(#[serde(default = $default)])?
                $field: $ty,
            )*
            #[serde(default = "default_modbus_timeout_ms")]
            timeout_ms: u64,
            #[serde(default)]
            pause_ms: u64,
            #[serde(default = "default_backoff_initial_ms")]
            backoff_initial_ms: u64,
            #[serde(default = "default_backoff_max_ms")]
            backoff_max_ms: u64,
            #[serde(default)]
            max_registers_per_read: Option<u16>,
        }
    };
}

modbus_link!(RawTcp { address: String });
modbus_link!(RawRtu {
    port: String,
    baud: u32 = "default_baud",
    parity: Parity = "Parity::default",
    stop_bits: u8 = "one_u8",
    data_bits: u8 = "eight_u8",
});
modbus_link!(RawRtuOverTcp {
    address: String,
    baud: u32 = "default_baud",
});

fn default_modbus_timeout_ms() -> u64 {
    1000
}
fn default_backoff_initial_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_baud() -> u32 {
    9600
}
fn one_u8() -> u8 {
    1
}
fn eight_u8() -> u8 {
    8
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    id: String,
    name: String,
    kind: DeviceKind,
    production: bool,
    #[serde(default)]
    declared_digital: bool,
    #[serde(default)]
    declared_networked: bool,
    #[serde(default)]
    declared_nc: bool,
    #[serde(default)]
    key_process: Option<String>,
    #[serde(default)]
    original_value_cny: Option<f64>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    unit: Option<u8>,
    #[serde(default)]
    root: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default = "default_poll_ms")]
    poll_interval_ms: u64,
    #[serde(default)]
    groups: BTreeMap<String, u64>,
    #[serde(default)]
    meters: Vec<String>,
    #[serde(default)]
    power_thresholds_kw: Option<PowerThresholds>,
    #[serde(default)]
    max_registers_per_read: Option<u16>,
    #[serde(default)]
    forbidden: Vec<ForbiddenRange>,
}

fn default_poll_ms() -> u64 {
    1000
}

const SECTIONS: &[&str] = &[
    "agent",
    "clock",
    "aggregator",
    "http",
    "spool",
    "influxdb",
    "links",
    "devices",
    "key_processes",
];

const LINK_KINDS: &str = "modbus_tcp, modbus_rtu, modbus_rtu_over_tcp, opcua";

/// The register limit of one Modbus read of registers and of bits.
pub(super) const MAX_REGISTERS: u16 = 125;

pub(super) fn from_text(path: &Path, text: &str) -> Result<AgentConfig, ConfigErrors> {
    let file = path.display().to_string();
    let base = path.parent().unwrap_or(Path::new("."));
    let mut cx = Ctx {
        file,
        text,
        errors: Vec::new(),
    };
    let (doc, parse_errors) = DeTable::parse_recoverable(text);
    if !parse_errors.is_empty() {
        for e in parse_errors {
            let msg = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_owned();
            cx.err(e.span(), msg);
        }
        return Err(ConfigErrors(cx.errors));
    }
    let doc = doc.into_inner();
    for (k, _) in doc.iter() {
        let name: &str = k.get_ref().as_ref();
        if !SECTIONS.contains(&name) {
            cx.err(
                Some(k.span()),
                format!(
                    "unknown section `{name}`; known sections: {}",
                    SECTIONS.join(", ")
                ),
            );
        }
    }

    // [agent]
    let agent = match get(&doc, "agent") {
        None => {
            cx.err(None, "missing section [agent] (id, enterprise, data_dir)");
            None
        }
        Some(v) => cx.de::<RawAgent>(v, "[agent]").map(|a| {
            let t = v.get_ref().as_table().expect("a table deserialized");
            if a.id.trim().is_empty() {
                cx.err(span_of(t, "id"), "[agent] id must not be empty");
            }
            if a.window_secs == 0 || 86_400 % a.window_secs != 0 {
                cx.err(
                    span_of(t, "window_secs"),
                    format!(
                        "[agent] window_secs = {} must divide a day (86400 s); hint: 900 is a quarter hour",
                        a.window_secs
                    ),
                );
            }
            let enterprise = match CreditCode::parse(a.enterprise.trim()) {
                Ok(c) => Some(c),
                Err(e) => {
                    cx.err(
                        span_of(t, "enterprise"),
                        format!("[agent] enterprise: {e}; hint: the 18-character unified social credit code (GB 32100) on the business licence"),
                    );
                    None
                }
            };
            (a, enterprise, t.clone())
        }),
    };

    let clock = get(&doc, "clock").and_then(|v| {
        let c = cx.de::<ClockSection>(v, "[clock]")?;
        if !(c.scale.is_finite() && c.scale > 0.0) {
            cx.err(Some(v.span()), "[clock] scale must be a positive number");
        }
        Some(c)
    });
    let aggregator = get(&doc, "aggregator").and_then(|v| {
        let a = cx.de::<AggregatorSection>(v, "[aggregator]")?;
        if !(a.url.starts_with("http://") || a.url.starts_with("https://")) {
            let t = v.get_ref().as_table().expect("table");
            cx.err(
                span_of(t, "url"),
                format!(
                    "[aggregator] url `{}` is not an http:// or https:// URL",
                    a.url
                ),
            );
        }
        let t = v.get_ref().as_table().expect("table");
        if a.url.starts_with("https://") && a.ca_file.is_none() {
            cx.err(
                span_of(t, "url"),
                format!("[aggregator] url `{}` is https but ca_file is missing; hint: ca_file = \"ca.pem\", the PEM file of the CA that signed the aggregator's certificate", a.url),
            );
        }
        if a.client_cert_file.is_some() != a.client_key_file.is_some() {
            cx.err(
                span_of(t, "client_cert_file").or(span_of(t, "client_key_file")),
                "[aggregator] client_cert_file and client_key_file go together: set both or neither",
            );
        }
        // The PEM files are read now so that check-config finds a bad one.
        if let Some(ca) = &a.ca_file {
            if let Err(e) = crate::ship::tls::load_roots(&base.join(ca)) {
                cx.err(span_of(t, "ca_file"), e);
            }
        }
        if let (Some(c), Some(k)) = (&a.client_cert_file, &a.client_key_file) {
            if let Err(e) = crate::ship::tls::load_certs(&base.join(c), "[aggregator] client_cert_file") {
                cx.err(span_of(t, "client_cert_file"), e);
            }
            if let Err(e) = crate::ship::tls::load_key(&base.join(k), "[aggregator] client_key_file") {
                cx.err(span_of(t, "client_key_file"), e);
            }
        }
        Some(AggregatorSection {
            ca_file: a.ca_file.map(|p| base.join(p)),
            client_cert_file: a.client_cert_file.map(|p| base.join(p)),
            client_key_file: a.client_key_file.map(|p| base.join(p)),
            ..a
        })
    });
    let http = match get(&doc, "http") {
        None => Some(HttpSection {
            listen: default_listen().parse().expect("valid default"),
        }),
        Some(v) => cx.de::<RawHttp>(v, "[http]").and_then(|h| match h.listen.parse() {
            Ok(listen) => Some(HttpSection { listen }),
            Err(_) => {
                let t = v.get_ref().as_table().expect("table");
                cx.err(
                    span_of(t, "listen"),
                    format!("[http] listen `{}` is not an ip:port socket address; hint: \"127.0.0.1:9100\"", h.listen),
                );
                None
            }
        }),
    };
    let spool = match get(&doc, "spool") {
        None => Some(SpoolSection::default()),
        Some(v) => cx.de::<SpoolSection>(v, "[spool]"),
    };
    let influxdb = get(&doc, "influxdb").and_then(|v| super::influx::section(&mut cx, v, base));
    let key_processes: Vec<KeyProcess> = entries(&mut cx, &doc, "key_processes")
        .into_iter()
        .filter_map(|v| cx.de::<KeyProcess>(&v, "[[key_processes]]"))
        .collect();
    dup_ids(
        &mut cx,
        &doc,
        "key_processes",
        key_processes.iter().map(|k| k.id.as_str()),
    );

    // [[links]]
    let mut links: Vec<LinkConfig> = Vec::new();
    for v in entries(&mut cx, &doc, "links") {
        if let Some(l) = link(&mut cx, &v) {
            links.push(l);
        }
    }
    dup_ids(&mut cx, &doc, "links", links.iter().map(LinkConfig::id));

    // Profiles.
    let data_dir = agent.as_ref().map(|(a, _, _)| base.join(&a.data_dir));
    let wants_profiles = get(&doc, "devices")
        .and_then(|d| d.get_ref().as_array())
        .is_some_and(|a| a.iter().any(|d| d.get_ref().get("profile").is_some()));
    let (profiles_dir, all_profiles) = profiles(
        &mut cx,
        base,
        agent.as_ref().and_then(|(a, _, t)| {
            a.profiles_dir
                .as_ref()
                .map(|p| (base.join(p), span_of(t, "profiles_dir")))
        }),
        wants_profiles,
    );

    // [[devices]]
    let device_values = entries(&mut cx, &doc, "devices");
    let mut devices = Vec::new();
    let mut shared = SharedTags::default();
    let mut device_tables = Vec::new();
    let mut raw_ids: Vec<String> = Vec::new();
    let mut units: BTreeSet<(String, u8)> = BTreeSet::new();
    for v in &device_values {
        let Some(t) = v.get_ref().as_table() else {
            continue;
        };
        let Some(raw) = cx.de::<RawDevice>(&without(v, &["tags"]), "[[devices]]") else {
            continue;
        };
        raw_ids.push(raw.id.clone());
        if let (Some(l), Some(u)) = (&raw.link, raw.unit) {
            let modbus = links
                .iter()
                .any(|x| x.id() == l && matches!(x, LinkConfig::Modbus(_)));
            if modbus && !units.insert((l.clone(), u)) {
                cx.err(
                    span_of(t, "unit"),
                    format!(
                        "device `{}`: unit {u} on link `{l}` is already used by another device",
                        raw.id
                    ),
                );
            }
        }
        if let Some(d) = device(
            &mut cx,
            raw,
            t,
            v.span(),
            &links,
            &all_profiles,
            &profiles_dir,
        ) {
            let mut d = d;
            shared.share(&mut d);
            devices.push(d);
            device_tables.push(t.clone());
        }
    }
    dup_ids(&mut cx, &doc, "devices", raw_ids.iter().map(String::as_str));
    let all_ids: BTreeSet<String> = device_values
        .iter()
        .filter_map(|v| v.get_ref().get("id").and_then(|i| i.get_ref().as_str()))
        .map(str::to_owned)
        .collect();
    cross_check(&mut cx, &devices, &device_tables, &key_processes, &all_ids);

    let used: BTreeSet<&str> = devices
        .iter()
        .filter(|d| d.link.is_some())
        .filter_map(|d| d.profile.as_deref())
        .collect();
    let profiles: BTreeMap<String, Profile> = all_profiles
        .iter()
        .filter(|(id, _)| used.contains(id.as_str()))
        .map(|(id, p)| (id.clone(), p.clone()))
        .collect();

    if !cx.errors.is_empty() {
        cx.errors
            .sort_by_key(|e| (e.file != cx.file, e.line, e.column));
        return Err(ConfigErrors(cx.errors));
    }
    let (agent, enterprise, _) = agent.expect("no errors means [agent] was read");
    let enterprise = enterprise.expect("no errors means the credit code is valid");
    Ok(AgentConfig {
        path: path.to_path_buf(),
        agent: AgentSection {
            id: agent.id,
            enterprise,
            data_dir: data_dir.expect("agent read"),
            window_secs: agent.window_secs,
            profiles_dir,
            industry: agent.industry,
        },
        clock,
        aggregator,
        http: http.expect("no errors"),
        spool: spool.expect("no errors"),
        influxdb,
        links,
        devices,
        key_processes,
        profiles,
    })
}

/// Identical tag lists of devices, kept once (see [`DeviceTags`]): per
/// profile and tag count, up to [`SharedTags::PER_KEY`] distinct lists are
/// compared against, which bounds the cost for plants where every device
/// overrides its profile differently.
#[derive(Default)]
struct SharedTags {
    modbus: TagPool<ModbusTag>,
    opcua: TagPool<OpcUaTag>,
}

/// Distinct tag lists by (profile, number of tags).
type TagPool<T> = BTreeMap<(Option<String>, usize), Vec<Arc<[T]>>>;

impl SharedTags {
    const PER_KEY: usize = 8;

    fn share(&mut self, d: &mut DeviceConfig) {
        fn one<T: PartialEq>(pool: &mut Vec<Arc<[T]>>, tags: &mut Arc<[T]>) {
            match pool.iter().find(|p| p[..] == tags[..]) {
                Some(p) => *tags = p.clone(),
                None if pool.len() < SharedTags::PER_KEY => pool.push(tags.clone()),
                None => {}
            }
        }
        let key = (d.profile.clone(), d.tags.len());
        match &mut d.tags {
            DeviceTags::None => {}
            DeviceTags::Modbus(t) => one(self.modbus.entry(key).or_default(), t),
            DeviceTags::OpcUa(t) => one(self.opcua.entry(key).or_default(), t),
        }
    }
}

/// The elements of an array of tables (`[[name]]`), each a table.
fn entries<'t>(cx: &mut Ctx<'t>, doc: &DeTable<'t>, name: &str) -> Vec<Spanned<DeValue<'t>>> {
    match get(doc, name) {
        None => Vec::new(),
        Some(v) => match v.get_ref().as_array() {
            Some(a) => a
                .iter()
                .filter(|e| {
                    let ok = e.get_ref().is_table();
                    if !ok {
                        cx.err(
                            Some(e.span()),
                            format!("each `{name}` entry must be a table"),
                        );
                    }
                    ok
                })
                .cloned()
                .collect(),
            None => {
                cx.err(
                    Some(v.span()),
                    format!("`{name}` must be an array of tables: write [[{name}]]"),
                );
                Vec::new()
            }
        },
    }
}

/// Reports ids that appear twice in `[[section]]`, at the second occurrence.
fn dup_ids<'a>(
    cx: &mut Ctx<'_>,
    doc: &DeTable<'_>,
    section: &str,
    ids: impl Iterator<Item = &'a str>,
) {
    let ids: Vec<&str> = ids.collect();
    let mut seen = BTreeSet::new();
    let spans: Vec<Range<usize>> = get(doc, section)
        .and_then(|v| v.get_ref().as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| e.get_ref().as_table().and_then(|t| span_of(t, "id")))
                .collect()
        })
        .unwrap_or_default();
    for id in ids {
        if !seen.insert(id) {
            // The span of the last entry with this id.
            let span = get(doc, section)
                .and_then(|v| v.get_ref().as_array())
                .and_then(|a| {
                    a.iter()
                        .filter_map(|e| e.get_ref().as_table())
                        .filter(|t| str_of(get(t, "id")) == Some(id))
                        .filter_map(|t| span_of(t, "id"))
                        .next_back()
                })
                .or_else(|| spans.first().cloned());
            cx.err(
                span,
                format!("[[{section}]] id `{id}` is used twice; ids must be unique"),
            );
        }
    }
}

fn link<'t>(cx: &mut Ctx<'t>, v: &Spanned<DeValue<'t>>) -> Option<LinkConfig> {
    let t = v.get_ref().as_table()?;
    let kind = get(t, "kind");
    let Some(kind_name) = str_of(kind) else {
        cx.err(
            kind.map(|k| k.span()).or(Some(v.span())),
            format!("[[links]] entry needs `kind`, one of {LINK_KINDS}"),
        );
        return None;
    };
    let body = without(v, &["kind"]);
    let what = format!("[[links]] `{}`", str_of(get(t, "id")).unwrap_or("(no id)"));
    let common = |cx: &mut Ctx<'t>,
                  id: String,
                  transport: ModbusTransport,
                  timeout_ms: u64,
                  pause_ms: u64,
                  backoff: (u64, u64),
                  max: Option<u16>| {
        if timeout_ms == 0 {
            cx.err(
                span_of(t, "timeout_ms"),
                format!("{what}: timeout_ms must be above 0"),
            );
        }
        if backoff.0 == 0 || backoff.1 < backoff.0 {
            cx.err(
                span_of(t, "backoff_max_ms").or(span_of(t, "backoff_initial_ms")),
                format!("{what}: backoff_initial_ms must be above 0 and at most backoff_max_ms"),
            );
        }
        if let Some(m) = max {
            if m == 0 || m > MAX_REGISTERS {
                cx.err(
                    span_of(t, "max_registers_per_read"),
                    format!("{what}: max_registers_per_read = {m} must be 1..={MAX_REGISTERS} (the Modbus limit of one read)"),
                );
            }
        }
        LinkConfig::Modbus(ModbusLinkConfig {
            id,
            transport,
            timeout_ms,
            pause_ms,
            backoff_initial_ms: backoff.0,
            backoff_max_ms: backoff.1,
            max_registers_per_read: max,
        })
    };
    match kind_name {
        "modbus_tcp" => {
            let r: RawTcp = cx.de(&body, &what)?;
            check_host_port(cx, t, &what, &r.address);
            Some(common(
                cx,
                r.id,
                ModbusTransport::Tcp { address: r.address },
                r.timeout_ms,
                r.pause_ms,
                (r.backoff_initial_ms, r.backoff_max_ms),
                r.max_registers_per_read,
            ))
        }
        "modbus_rtu_over_tcp" => {
            let r: RawRtuOverTcp = cx.de(&body, &what)?;
            check_host_port(cx, t, &what, &r.address);
            check_baud(cx, t, &what, r.baud);
            Some(common(
                cx,
                r.id,
                ModbusTransport::RtuOverTcp {
                    address: r.address,
                    baud: r.baud,
                },
                r.timeout_ms,
                r.pause_ms,
                (r.backoff_initial_ms, r.backoff_max_ms),
                r.max_registers_per_read,
            ))
        }
        "modbus_rtu" => {
            let r: RawRtu = cx.de(&body, &what)?;
            check_baud(cx, t, &what, r.baud);
            if !matches!(r.stop_bits, 1 | 2) {
                cx.err(
                    span_of(t, "stop_bits"),
                    format!("{what}: stop_bits must be 1 or 2"),
                );
            }
            if !matches!(r.data_bits, 7 | 8) {
                cx.err(
                    span_of(t, "data_bits"),
                    format!("{what}: data_bits must be 7 or 8 (Modbus RTU uses 8)"),
                );
            }
            if r.port.trim().is_empty() {
                cx.err(
                    span_of(t, "port"),
                    format!("{what}: port must name a serial device, e.g. \"/dev/ttyUSB0\""),
                );
            }
            Some(common(
                cx,
                r.id,
                ModbusTransport::Rtu {
                    port: r.port,
                    baud: r.baud,
                    parity: r.parity,
                    stop_bits: r.stop_bits,
                    data_bits: r.data_bits,
                },
                r.timeout_ms,
                r.pause_ms,
                (r.backoff_initial_ms, r.backoff_max_ms),
                r.max_registers_per_read,
            ))
        }
        "opcua" => {
            let o: OpcUaLinkConfig = cx.de(&body, &what)?;
            if let Err(e) = o.validate() {
                cx.err(Some(v.span()), e.to_string());
            }
            Some(LinkConfig::OpcUa(o))
        }
        other => {
            cx.err(
                kind.map(|k| k.span()),
                format!("{what}: unknown kind `{other}`; known kinds: {LINK_KINDS}"),
            );
            None
        }
    }
}

fn check_host_port(cx: &mut Ctx<'_>, t: &DeTable<'_>, what: &str, address: &str) {
    let ok = address
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !ok {
        cx.err(
            span_of(t, "address"),
            format!("{what}: address `{address}` is not host:port; hint: \"192.168.1.10:502\" (502 is the Modbus TCP port)"),
        );
    }
}

fn check_baud(cx: &mut Ctx<'_>, t: &DeTable<'_>, what: &str, baud: u32) {
    if !(300..=921_600).contains(&baud) {
        cx.err(
            span_of(t, "baud"),
            format!("{what}: baud = {baud} is not a serial line speed; hint: 9600, 19200 or 38400"),
        );
    }
}

/// Finds the profiles folder and reads every profile in it.
fn profiles(
    cx: &mut Ctx<'_>,
    base: &Path,
    configured: Option<(PathBuf, Option<Range<usize>>)>,
    needed: bool,
) -> (Option<PathBuf>, BTreeMap<String, Profile>) {
    let dir = match configured {
        Some((dir, span)) => {
            if !dir.is_dir() {
                cx.err(
                    span,
                    format!("[agent] profiles_dir `{}` is not a folder", dir.display()),
                );
                return (None, BTreeMap::new());
            }
            dir
        }
        None => {
            let candidates = [
                base.join("profiles"),
                PathBuf::from("config/profiles"),
                PathBuf::from("/etc/shuzhuan-agent/profiles"),
            ];
            match candidates.iter().find(|d| d.is_dir()) {
                Some(d) => d.clone(),
                None => {
                    if needed {
                        let looked: Vec<String> =
                            candidates.iter().map(|d| d.display().to_string()).collect();
                        cx.err(
                            None,
                            format!(
                                "devices name profiles but no profiles folder was found (looked in {}); hint: set [agent] profiles_dir",
                                looked.join(", ")
                            ),
                        );
                    }
                    return (None, BTreeMap::new());
                }
            }
        }
    };
    let mut out = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for f in files {
        let name = f.display().to_string();
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                cx.errors.push(tomlpos::locate(
                    &name,
                    "",
                    None,
                    format!("cannot read profile: {e}"),
                ));
                continue;
            }
        };
        match tomlpos::parse::<Profile>(&name, &text) {
            Ok(p) => {
                if let Some(prev) = out.insert(p.id.clone(), p) {
                    cx.errors.push(tomlpos::locate(
                        &name,
                        "",
                        None,
                        format!(
                            "profile id `{}` is defined twice in {}",
                            prev.id,
                            dir.display()
                        ),
                    ));
                }
            }
            Err(e) => cx.errors.push(e),
        }
    }
    (Some(dir), out)
}

#[allow(clippy::too_many_arguments)]
fn device<'t>(
    cx: &mut Ctx<'t>,
    raw: RawDevice,
    t: &DeTable<'t>,
    span: Range<usize>,
    links: &[LinkConfig],
    profiles: &BTreeMap<String, Profile>,
    profiles_dir: &Option<PathBuf>,
) -> Option<DeviceConfig> {
    let what = format!("device `{}`", raw.id);
    let errors_before = cx.errors.len();
    let mut ok = true;
    if raw.poll_interval_ms == 0 {
        cx.err(
            span_of(t, "poll_interval_ms"),
            format!("{what}: poll_interval_ms must be above 0"),
        );
        ok = false;
    }
    for (g, ms) in &raw.groups {
        if *ms == 0 {
            cx.err(
                span_of(t, "groups"),
                format!("{what}: group `{g}` poll interval must be above 0"),
            );
            ok = false;
        }
    }
    if let Some(p) = &raw.power_thresholds_kw {
        if !(p.off >= 0.0 && p.running > p.off) {
            cx.err(
                span_of(t, "power_thresholds_kw"),
                format!("{what}: power_thresholds_kw needs 0 <= off < running"),
            );
            ok = false;
        }
    }
    let link = match &raw.link {
        None => None,
        Some(l) => match links.iter().find(|x| x.id() == l) {
            Some(x) => Some(x),
            None => {
                let known: Vec<&str> = links.iter().map(LinkConfig::id).collect();
                cx.err(
                    span_of(t, "link"),
                    format!(
                        "{what}: unknown link `{l}`; known links: {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                return None;
            }
        },
    };
    let profile = match &raw.profile {
        None => None,
        Some(p) => match profiles.get(p) {
            Some(x) => Some(x),
            None => {
                let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
                cx.err(
                    span_of(t, "profile"),
                    format!(
                        "{what}: unknown profile `{p}`; known profiles{}: {}",
                        profiles_dir
                            .as_ref()
                            .map(|d| format!(" in {}", d.display()))
                            .unwrap_or_default(),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                return None;
            }
        },
    };
    let tag_values: Vec<Spanned<DeValue<'t>>> = match get(t, "tags") {
        None => Vec::new(),
        Some(v) => match v.get_ref().as_array() {
            Some(a) => a.iter().cloned().collect(),
            None => {
                cx.err(
                    Some(v.span()),
                    format!("{what}: `tags` must be an array of tables: write [[devices.tags]]"),
                );
                return None;
            }
        },
    };
    let mut forbidden = profile.map(|p| p.forbidden.clone()).unwrap_or_default();
    forbidden.extend(raw.forbidden.iter().copied());
    for f in &raw.forbidden {
        if f.end < f.start {
            cx.err(
                span_of(t, "forbidden"),
                format!(
                    "{what}: forbidden range {}..{} ends before it starts",
                    f.start, f.end
                ),
            );
            ok = false;
        }
    }
    let mut max = raw.max_registers_per_read;
    if let Some(m) = max {
        if m == 0 || m > MAX_REGISTERS {
            cx.err(
                span_of(t, "max_registers_per_read"),
                format!("{what}: max_registers_per_read = {m} must be 1..={MAX_REGISTERS}"),
            );
            ok = false;
        }
    }
    for other in [
        profile.and_then(|p| p.max_registers_per_read),
        match link {
            Some(LinkConfig::Modbus(m)) => m.max_registers_per_read,
            _ => None,
        },
    ]
    .into_iter()
    .flatten()
    {
        max = Some(max.map_or(other, |m| m.min(other)));
    }

    let tags = match link {
        None => DeviceTags::None,
        Some(LinkConfig::Modbus(m)) => {
            match raw.unit {
                None => {
                    cx.err(Some(span.clone()), format!("{what}: a device on Modbus link `{}` needs `unit` (the slave/unit id); hint: unit = 1 for a single device", m.id));
                    ok = false;
                }
                Some(u) => {
                    let serial = matches!(
                        m.transport,
                        ModbusTransport::Rtu { .. } | ModbusTransport::RtuOverTcp { .. }
                    );
                    if serial && !(1..=247).contains(&u) {
                        cx.err(span_of(t, "unit"), format!("{what}: unit = {u} is outside 1..=247, the addresses of RTU devices (0 is broadcast)"));
                        ok = false;
                    }
                }
            }
            if let Some(p) = profile {
                if p.protocol != Protocol::Modbus {
                    cx.err(
                        span_of(t, "profile"),
                        format!(
                            "{what}: profile `{}` is an OPC UA profile but link `{}` is {}",
                            p.id,
                            m.id,
                            m.kind()
                        ),
                    );
                    return None;
                }
            }
            let tags = tags::modbus(
                cx,
                &what,
                profile,
                &tag_values,
                &forbidden,
                max.unwrap_or(MAX_REGISTERS),
                span_of(t, "profile"),
            );
            DeviceTags::Modbus(tags.into())
        }
        Some(LinkConfig::OpcUa(o)) => {
            if raw.root.is_none() {
                cx.err(Some(span.clone()), format!("{what}: a device on OPC UA link `{}` needs `root` (a NodeId or a browse path from Objects, e.g. \"Machines/cnc-01\")", o.id));
                ok = false;
            }
            if let Some(p) = profile {
                if p.protocol != Protocol::Opcua {
                    cx.err(
                        span_of(t, "profile"),
                        format!(
                            "{what}: profile `{}` is a Modbus profile but link `{}` is opcua",
                            p.id, o.id
                        ),
                    );
                    return None;
                }
            }
            DeviceTags::OpcUa(tags::opcua(cx, &what, profile, &tag_values).into())
        }
    };
    if link.is_some() && tags.is_empty() && cx.errors.len() == errors_before {
        cx.err(
            Some(span),
            format!("{what}: on a link but has no tags; hint: set `profile` (one of config/profiles) or add [[devices.tags]]"),
        );
        ok = false;
    }
    ok.then_some(DeviceConfig {
        inventory: Device {
            id: raw.id,
            name: raw.name,
            kind: raw.kind,
            production: raw.production,
            declared_digital: raw.declared_digital,
            declared_networked: raw.declared_networked,
            declared_nc: raw.declared_nc,
            key_process: raw.key_process,
            original_value_cny: raw.original_value_cny,
        },
        link: raw.link,
        unit: raw.unit,
        root: raw.root,
        profile: raw.profile,
        poll_interval_ms: raw.poll_interval_ms,
        groups: raw.groups,
        meters: raw.meters,
        power_thresholds_kw: raw.power_thresholds_kw,
        max_registers_per_read: max,
        forbidden,
        tags,
    })
}

/// References between devices, key processes and meters; unit ids per link.
fn cross_check(
    cx: &mut Ctx<'_>,
    devices: &[DeviceConfig],
    tables: &[DeTable<'_>],
    key_processes: &[KeyProcess],
    ids: &BTreeSet<String>,
) {
    for (d, t) in devices.iter().zip(tables) {
        if let Some(kp) = &d.inventory.key_process {
            if !key_processes.iter().any(|k| &k.id == kp) {
                let known: Vec<&str> = key_processes.iter().map(|k| k.id.as_str()).collect();
                cx.err(
                    span_of(t, "key_process"),
                    format!(
                        "device `{}`: unknown key process `{kp}`; declared [[key_processes]]: {}",
                        d.id(),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
        for m in &d.meters {
            if !ids.contains(m) {
                cx.err(
                    span_of(t, "meters"),
                    format!(
                        "device `{}`: meter `{m}` is not a device in this file",
                        d.id()
                    ),
                );
            } else if m == d.id() {
                cx.err(
                    span_of(t, "meters"),
                    format!("device `{}` lists itself as its meter", d.id()),
                );
            }
        }
    }
}
