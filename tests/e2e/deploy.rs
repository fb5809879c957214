//! End-to-end tests of `deploy/`: the systemd units pass `systemd-analyze`,
//! the install script installs into a clean root and refuses a bad config,
//! the compose stack, Dockerfiles, Grafana provisioning and dashboards are
//! valid, every metric a dashboard or alert queries exists in the code, and
//! the Prometheus config and rules pass `promtool` (including its rule tests).
//!
//! No Docker engine or Grafana runs here, so those files are checked by the
//! tools that do exist (docker-compose's schema, promtool) and by parsing.

use shuzhuan_tests::repo_root;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The agent's Debian package (deploy/deb/build.sh): built, inspected, installed.
mod deb;

/// Runs a tool, failing the test with the fix when it is not installed.
fn run(cmd: &mut Command) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.output().unwrap_or_else(|e| {
        panic!("cannot run `{program}` ({e}): install it with `bash tests/peers/install.sh`")
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn deploy() -> PathBuf {
    repo_root().join("deploy")
}

/// The systemd unit folder of this machine, copied into test roots so that
/// `systemd-analyze --root` finds `sysinit.target` and friends.
fn system_units() -> PathBuf {
    ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("sysinit.target").exists())
        .expect("no systemd unit folder with sysinit.target: install the `systemd` package")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Makes `root` a place where `systemd-analyze --root=root` can load units:
/// the machine's own system units under `root/usr/lib/systemd/system`.
fn give_root_system_units(root: &Path) {
    let dst = root.join("usr/lib/systemd/system");
    if !dst.join("sysinit.target").exists() {
        copy_dir(&system_units(), &dst);
    }
}

/// `systemd-analyze verify --root` of units in `root/etc/systemd/system`;
/// systemd prints unknown keys and bad values as warnings with status 0, so
/// any output at all fails too.
fn assert_units_verify(root: &Path, units: &[&str]) {
    let paths: Vec<PathBuf> = units
        .iter()
        .map(|u| root.join("etc/systemd/system").join(u))
        .collect();
    let out = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(&paths));
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify {units:?}: {}",
        show(&out)
    );
}

/// `systemd-analyze verify` insists that every `Exec*=` program exists in
/// the root; the package's own binary is really there, anything else the
/// unit runs (`/bin/kill` for `ExecReload=`) gets an executable stub.
pub(crate) fn stub_other_executables(root: &Path, unit: &Path) {
    for line in read(unit).lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !key.starts_with("Exec") {
            continue;
        }
        let program = value
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_start_matches(['-', '@', ':', '+', '!']);
        let Some(rel) = program.strip_prefix('/') else {
            continue;
        };
        let path = root.join(rel);
        if !path.exists() {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

/// The stub trick: `systemd-analyze verify` checks that ExecStart's binary
/// exists and is executable, so a temporary root holds a stub at the unit's
/// path (`/usr/bin/...`) and the machine's system units.
#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let root = tempfile::tempdir().unwrap();
    give_root_system_units(root.path());
    let units = ["shuzhuan-agent.service", "shuzhuan-aggregator.service"];
    for unit in units {
        let bin = unit.trim_end_matches(".service");
        let stub = root.path().join("usr/bin").join(bin);
        fs::create_dir_all(stub.parent().unwrap()).unwrap();
        fs::write(&stub, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
        let dst = root.path().join("etc/systemd/system").join(unit);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(deploy().join("systemd").join(unit), &dst).unwrap();
        stub_other_executables(root.path(), &dst);
    }
    assert_units_verify(root.path(), &units);

    // The check has teeth: a misspelt directive fails it.
    let unit = root
        .path()
        .join("etc/systemd/system/shuzhuan-agent.service");
    fs::write(
        &unit,
        read(&unit).replace("ProtectHome=yes", "ProtectHom=yes"),
    )
    .unwrap();
    let out = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg(&unit));
    assert!(
        text(&out.stderr).contains("ProtectHom"),
        "a typo went unnoticed: {}",
        show(&out)
    );
}

/// The directives of one `[Service]` key, in order.
fn directive<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .collect()
}

#[test]
fn systemd_units_are_hardened() {
    let root = tempfile::tempdir().unwrap();
    give_root_system_units(root.path());
    for (unit, user, state) in [
        (
            "shuzhuan-agent.service",
            "shuzhuan-agent",
            "/var/lib/shuzhuan-agent",
        ),
        (
            "shuzhuan-aggregator.service",
            "shuzhuan-aggregator",
            "/var/lib/shuzhuan-aggregator",
        ),
    ] {
        let src = deploy().join("systemd").join(unit);
        let body = read(&src);
        let dst = root.path().join("etc/systemd/system").join(unit);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(&src, &dst).unwrap();

        // systemd's own exposure score (0 best, 10 worst); 2.5 is well
        // inside its "OK" band, which a unit without the sandbox misses.
        let out = run(Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=25", "--no-pager"])
            .arg(format!("--root={}", root.path().display()))
            .arg(unit));
        assert!(
            out.status.success(),
            "{unit} exposure above 2.5: {}",
            show(&out)
        );

        for (key, want) in [
            ("User", user),
            ("ProtectSystem", "strict"),
            ("NoNewPrivileges", "yes"),
            ("PrivateTmp", "yes"),
            ("ProtectHome", "yes"),
            ("CapabilityBoundingSet", ""),
            ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
            ("Restart", "on-failure"),
            ("KillSignal", "SIGTERM"),
            ("ReadWritePaths", state),
        ] {
            assert_eq!(directive(&body, key), [want], "{unit}: {key}=");
        }
        assert!(
            directive(&body, "SystemCallFilter").contains(&"@system-service"),
            "{unit}"
        );
        assert_eq!(
            directive(&body, "TimeoutStopSec").len(),
            1,
            "{unit}: TimeoutStopSec="
        );
        assert!(
            directive(&body, "DynamicUser").is_empty()
                && directive(&body, "AmbientCapabilities") == [""]
        );
    }
    // Serial ports for Modbus RTU, nothing else.
    let agent = read(&deploy().join("systemd/shuzhuan-agent.service"));
    assert_eq!(directive(&agent, "DevicePolicy"), ["closed"]);
    assert_eq!(
        directive(&agent, "DeviceAllow"),
        ["char-ttyS rw", "char-ttyUSB rw", "char-ttyACM rw"]
    );
}

/// The watchdog needs the agent to speak sd_notify; the unit must not claim
/// Type=notify or WatchdogSec before the agent does, or systemd would kill it.
#[test]
fn agent_unit_type_matches_sd_notify_support() {
    let src = repo_root().join("agent/src");
    let notifies = grep_tree(&src, "NOTIFY_SOCKET");
    let unit = read(&deploy().join("systemd/shuzhuan-agent.service"));
    if notifies {
        assert_eq!(
            directive(&unit, "Type"),
            ["notify"],
            "the agent speaks sd_notify: use it"
        );
        assert_eq!(directive(&unit, "WatchdogSec").len(), 1);
    } else {
        assert_eq!(directive(&unit, "Type"), ["exec"]);
        assert!(
            directive(&unit, "WatchdogSec").is_empty(),
            "WatchdogSec without sd_notify kills the agent"
        );
    }
}

/// Whether any `.rs` file under `dir` contains `needle`.
fn grep_tree(dir: &Path, needle: &str) -> bool {
    rust_sources(dir).iter().any(|f| read(f).contains(needle))
}

fn rust_sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// The workspace's debug `shuzhuan-agent`, built when missing. The e2e test
/// binary lives in `target/debug/deps/`, so the agent is two folders up.
fn agent_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/debug/deps");
    let bin = debug.join("shuzhuan-agent");
    if !bin.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = run(Command::new(cargo).current_dir(repo_root()).args([
            "build",
            "-p",
            "shuzhuan-agent",
            "--bin",
            "shuzhuan-agent",
        ]));
        assert!(
            out.status.success(),
            "cargo build -p shuzhuan-agent: {}",
            show(&out)
        );
    }
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

/// A config `check-config` accepts: the maintained example, with the data
/// folder the unit can write to and the device profiles beside it (where
/// the installed config finds them too).
fn good_config(dir: &Path) -> PathBuf {
    let example = repo_root().join("config/examples/agent.toml");
    let body = read(&example);
    assert!(
        body.contains("data_dir"),
        "{} has no data_dir",
        example.display()
    );
    let body: String = body
        .lines()
        .filter(|l| !l.trim_start().starts_with("profiles_dir"))
        .map(|l| {
            if l.trim_start().starts_with("data_dir") {
                "data_dir = \"/var/lib/shuzhuan-agent\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    copy_dir(&repo_root().join("config/profiles"), &dir.join("profiles"));
    let path = dir.join("agent.toml");
    fs::write(&path, body + "\n").unwrap();
    path
}

fn install(root: &Path, binary: &Path, config: Option<&Path>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(deploy().join("install-agent.sh"))
        .arg("--root")
        .arg(root)
        .arg("--binary")
        .arg(binary)
        .arg("--no-reload");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    run(&mut cmd)
}

fn files_under(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(root).unwrap().to_path_buf());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn install_script_installs_into_a_clean_root_and_refuses_a_bad_config() {
    let binary = agent_binary();
    let work = tempfile::tempdir().unwrap();
    let config = good_config(work.path());

    // A bad config: check-config's errors are printed and nothing is installed.
    let bad = work.path().join("bad.toml");
    fs::write(&bad, read(&config) + "\n[agent_typo]\nnot_a_key = 1\n").unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = install(root.path(), &binary, Some(&bad));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.toml:"),
        "check-config's file:line errors are not shown: {}",
        show(&out)
    );
    assert!(stderr.contains("nothing installed"), "{}", show(&out));
    assert!(
        files_under(root.path()).is_empty(),
        "a refused config left files: {:?}",
        files_under(root.path())
    );

    // A good config: binary, unit, sysusers, tmpfiles, config, the user.
    let out = install(root.path(), &binary, Some(&config));
    assert!(out.status.success(), "{}", show(&out));
    let r = root.path();
    for (path, mode) in [
        ("usr/bin/shuzhuan-agent", 0o755),
        ("etc/systemd/system/shuzhuan-agent.service", 0o644),
        ("usr/lib/sysusers.d/shuzhuan-agent.conf", 0o644),
        ("usr/lib/tmpfiles.d/shuzhuan-agent.conf", 0o644),
        ("etc/shuzhuan-agent/agent.toml", 0o640),
        ("etc/shuzhuan-agent", 0o750),
        ("var/lib/shuzhuan-agent", 0o750),
    ] {
        let meta =
            fs::metadata(r.join(path)).unwrap_or_else(|e| panic!("{path} not installed: {e}"));
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{path}");
    }
    assert_eq!(
        fs::read(r.join("usr/bin/shuzhuan-agent")).unwrap(),
        fs::read(&binary).unwrap()
    );
    assert_eq!(
        read(&r.join("etc/shuzhuan-agent/agent.toml")),
        read(&config)
    );
    let passwd = read(&r.join("etc/passwd"));
    let user = passwd
        .lines()
        .find(|l| l.starts_with("shuzhuan-agent:"))
        .unwrap_or_else(|| panic!("no shuzhuan-agent user in the root's /etc/passwd:\n{passwd}"));
    let uid: u32 = user.split(':').nth(2).unwrap().parse().unwrap();
    assert_ne!(uid, 0, "the agent's user must not be root");
    let group = read(&r.join("etc/group"));
    assert!(
        group
            .lines()
            .any(|l| l.starts_with("dialout:") && l.ends_with("shuzhuan-agent")),
        "the agent's user is not in dialout (serial ports):\n{group}"
    );
    let data = fs::metadata(r.join("var/lib/shuzhuan-agent")).unwrap();
    assert_eq!(data.uid(), uid, "data folder owner");
    // The installed unit verifies against the installed, real binary.
    give_root_system_units(r);
    stub_other_executables(r, &r.join("etc/systemd/system/shuzhuan-agent.service"));
    assert_units_verify(r, &["shuzhuan-agent.service"]);

    // An upgrade (no --config) keeps the config and the spool.
    let spooled = r.join("var/lib/shuzhuan-agent/spool-sentinel");
    fs::write(&spooled, b"unshipped").unwrap();
    let out = install(r, &binary, None);
    assert!(out.status.success(), "upgrade: {}", show(&out));
    assert_eq!(fs::read(&spooled).unwrap(), b"unshipped");
    assert_eq!(
        read(&r.join("etc/shuzhuan-agent/agent.toml")),
        read(&config)
    );
}

#[test]
fn install_script_refuses_an_https_config_whose_ca_file_is_missing() {
    let binary = agent_binary();
    let work = tempfile::tempdir().unwrap();
    let good = read(&good_config(work.path()));
    let url = "url = \"http://127.0.0.1:8080\"";
    assert!(good.contains(url), "the example's aggregator url changed");
    let tls = work.path().join("tls.toml");
    fs::write(
        &tls,
        good.replace(
            url,
            "url = \"https://127.0.0.1:8443\"\nca_file = \"missing-ca.pem\"",
        ),
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = install(root.path(), &binary, Some(&tls));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("tls.toml:")
            && stderr.contains("[aggregator] ca_file")
            && stderr.contains("missing-ca.pem"),
        "{}",
        show(&out)
    );
    assert!(files_under(root.path()).is_empty());
}

fn yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

#[test]
fn compose_stack_is_valid() {
    let dir = deploy().join("compose");
    // docker-compose validates the file against the Compose schema and
    // interpolates the variables (a required secret missing is an error).
    let out = run(Command::new("docker-compose").current_dir(&dir).args([
        "--env-file",
        ".env.example",
        "-f",
        "compose.yaml",
        "config",
        "-q",
    ]));
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        show(&out)
    );
    let out = run(Command::new("docker-compose")
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args([
            "--env-file",
            "/dev/null",
            "-f",
            "compose.yaml",
            "config",
            "-q",
        ]));
    assert!(
        !out.status.success(),
        "compose accepted missing secrets: {}",
        show(&out)
    );

    let doc = yaml(&dir.join("compose.yaml"));
    let services = doc["services"].as_mapping().expect("services");
    for name in ["aggregator", "prometheus", "influxdb", "grafana"] {
        assert!(
            services.contains_key(name),
            "compose has no `{name}` service"
        );
    }
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        if let Some(build) = svc.get("build") {
            let context = dir.join(build["context"].as_str().unwrap());
            let dockerfile = context.join(build["dockerfile"].as_str().unwrap());
            assert!(
                dockerfile.exists(),
                "{name}: {} missing",
                dockerfile.display()
            );
        } else {
            let image = svc["image"].as_str().unwrap_or_default();
            assert!(
                image.contains(':') && !image.ends_with(":latest"),
                "{name}: pin the image version, not `{image}`"
            );
        }
        // Bind mounts name files of this repository.
        for v in svc
            .get("volumes")
            .and_then(|v| v.as_sequence())
            .into_iter()
            .flatten()
        {
            let spec = v.as_str().unwrap();
            let src = spec.split(':').next().unwrap();
            if src.starts_with('.') {
                assert!(
                    dir.join(src).exists(),
                    "{name}: bind mount source {src} missing"
                );
            }
        }
        // Only the aggregator is published beyond loopback by default.
        for p in svc
            .get("ports")
            .and_then(|v| v.as_sequence())
            .into_iter()
            .flatten()
        {
            let p = p.as_str().unwrap();
            assert!(
                name == "aggregator" || p.starts_with("127.0.0.1:") || p.contains(":-127.0.0.1:"),
                "{name}: port {p} is published on every address"
            );
        }
    }
    // Grafana reads what deploy/grafana provides, where its provider looks.
    let provider = yaml(&deploy().join("grafana/provisioning/dashboards/shuzhuan.yaml"));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let mounts: Vec<&str> = services["grafana"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with("../grafana/dashboards:") && m.contains(path)),
        "grafana does not mount the dashboards at {path}: {mounts:?}"
    );
    assert!(mounts
        .iter()
        .any(|m| m.starts_with("../grafana/provisioning:/etc/grafana/provisioning")));
}

/// The `[[bin]]` names of a workspace crate, from its Cargo.toml.
fn bins_of(krate: &str) -> Vec<String> {
    let manifest: toml::Value =
        toml::from_str(&read(&repo_root().join(krate).join("Cargo.toml"))).unwrap();
    manifest["bin"]
        .as_array()
        .map(|bins| {
            bins.iter()
                .map(|b| b["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn dockerfiles_are_multi_stage_non_root_and_build_workspace_binaries() {
    for (file, dir, krate) in [
        ("agent.Dockerfile", "agent", "shuzhuan-agent"),
        ("aggregator.Dockerfile", "aggregator", "shuzhuan-aggregator"),
        ("simulator.Dockerfile", "simulator", "shuzhuan-simulator"),
    ] {
        let body = read(&deploy().join("docker").join(file));
        // Join continuation lines, drop comments.
        let logical: Vec<String> = body
            .replace("\\\n", " ")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        let stages: Vec<&String> = logical.iter().filter(|l| l.starts_with("FROM ")).collect();
        assert!(stages.len() >= 2, "{file}: not multi-stage");
        let names: Vec<&str> = stages
            .iter()
            .filter_map(|l| l.split(" AS ").nth(1))
            .map(str::trim)
            .collect();
        let last_from = logical
            .iter()
            .rposition(|l| l.starts_with("FROM "))
            .unwrap();
        let runtime = &logical[last_from..];
        let user = runtime
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("USER "))
            .unwrap_or_else(|| panic!("{file}: the runtime stage sets no USER"));
        let user = user.split(':').next().unwrap().trim();
        assert!(user != "root" && user != "0", "{file}: runs as root");
        assert!(
            !runtime[0].contains("rust:"),
            "{file}: the runtime image is the build image"
        );

        let bins = bins_of(dir);
        let build = logical
            .iter()
            .find(|l| l.contains("cargo build"))
            .unwrap_or_else(|| panic!("{file}"));
        assert!(
            build.contains(&format!("-p {krate} ")),
            "{file}: does not build {krate}"
        );
        assert!(
            build.contains("--locked"),
            "{file}: builds without Cargo.lock"
        );
        let entry = runtime
            .iter()
            .find_map(|l| l.strip_prefix("ENTRYPOINT "))
            .expect("ENTRYPOINT");
        assert!(
            bins.iter()
                .any(|b| entry.contains(&format!("/usr/bin/{b}\""))),
            "{file}: ENTRYPOINT {entry} is none of {krate}'s binaries {bins:?}"
        );
        for l in &logical {
            let Some(args) = l.strip_prefix("COPY ") else {
                continue;
            };
            let words: Vec<&str> = args.split_whitespace().collect();
            if let Some(from) = words.iter().find_map(|w| w.strip_prefix("--from=")) {
                assert!(
                    names.contains(&from),
                    "{file}: COPY from unknown stage {from}"
                );
            } else {
                let sources = &words[..words.len() - 1];
                for s in sources
                    .iter()
                    .filter(|s| !s.starts_with("--") && **s != ".")
                {
                    assert!(
                        repo_root().join(s).exists(),
                        "{file}: COPY source {s} is not in the repository"
                    );
                }
            }
        }
        let ignore = read(&deploy().join("docker").join(format!("{file}.dockerignore")));
        assert!(
            ignore.lines().any(|l| l.trim() == "target/"),
            "{file}: the build context would carry target/"
        );
    }
}

/// Every Grafana dashboard: panel id, uid and datasource checks; returns
/// `(dashboard file, PromQL expression)` for each Prometheus query.
fn dashboard_queries() -> Vec<(String, String)> {
    let provisioning = yaml(&deploy().join("grafana/provisioning/datasources/shuzhuan.yaml"));
    let uids: BTreeSet<String> = provisioning["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|d| d["uid"].as_str().unwrap().to_owned())
        .collect();
    let mut queries = Vec::new();
    let mut dashboard_uids = BTreeSet::new();
    let dir = deploy().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "expected the city and agent health dashboards in {}",
        dir.display()
    );
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let d: serde_json::Value =
            serde_json::from_str(&read(&f)).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        assert!(
            dashboard_uids.insert(d["uid"].as_str().unwrap().to_owned()),
            "{name}: duplicate uid"
        );
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: no title"
        );
        let panels = d["panels"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no panels"));
        let mut ids = BTreeSet::new();
        for p in panels {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{name}: duplicate panel id"
            );
            let targets = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}/{title}: no targets"));
            assert!(!targets.is_empty(), "{name}/{title}: no queries");
            for t in targets {
                let ds = t["datasource"]["uid"]
                    .as_str()
                    .or(p["datasource"]["uid"].as_str())
                    .unwrap();
                assert!(
                    uids.contains(ds),
                    "{name}/{title}: datasource {ds} is not provisioned"
                );
                if let Some(expr) = t["expr"].as_str() {
                    queries.push((format!("{name}/{title}"), expr.to_owned()));
                }
            }
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if let Some(q) = v["query"]["query"].as_str() {
                queries.push((
                    format!("{name}/${}", v["name"].as_str().unwrap()),
                    q.to_owned(),
                ));
            }
        }
    }
    queries
}

/// `shuzhuan_*` metric names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("shuzhuan_") {
        let preceded = rest[..i].chars().last();
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}

fn alert_rules() -> Vec<(String, String)> {
    let doc = yaml(&deploy().join("prometheus/alerts.yml"));
    let mut out = Vec::new();
    for g in doc["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            out.push((
                r["alert"].as_str().unwrap().to_owned(),
                r["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

/// Whether a source file names metric `name`: as one string literal, or as
/// a registry or namespace prefix and the rest (`Registry::new_custom(Some(
/// "shuzhuan_aggregator"))` with `"reports_accepted_total"`).
fn registers(source: &str, name: &str) -> bool {
    let quoted = |s: &str| source.contains(&format!("\"{s}\""));
    quoted(name)
        || name
            .match_indices('_')
            .any(|(i, _)| quoted(&name[..i]) && quoted(&name[i + 1..]))
}

#[test]
fn every_queried_metric_exists_in_the_code() {
    let sources: Vec<String> = ["agent/src", "aggregator/src"]
        .iter()
        .flat_map(|d| rust_sources(&repo_root().join(d)))
        .map(|f| read(&f))
        .collect();
    let mut missing = BTreeSet::new();
    let mut queries = dashboard_queries();
    queries.extend(alert_rules());
    for (whose, expr) in &queries {
        let names = metric_names(expr);
        assert!(
            !names.is_empty() || expr.contains("up{job="),
            "{whose}: `{expr}` queries neither a Shuzhuan metric nor `up`"
        );
        for n in names {
            // Histograms and summaries are registered under their base name.
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(&n);
            if !sources.iter().any(|s| registers(s, base)) {
                missing.insert(format!("{n} (in {whose})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics queried by deploy/ but registered nowhere in agent/src or aggregator/src \
         (docs/dev/contracts.md lists them):\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// Dashboard queries are parsed by Prometheus's own parser: each becomes a
/// recording rule (Grafana's variables replaced by values) for `promtool`.
#[test]
fn dashboard_queries_parse_as_promql() {
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (i, (whose, expr)) in dashboard_queries().iter().enumerate() {
        let expr = if let Some(inner) = expr.strip_prefix("label_values(") {
            // label_values(metric, label): the metric selector is the query.
            inner.rsplit_once(',').unwrap().0.to_owned()
        } else {
            expr.clone()
        };
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$__interval", "1m")
            .replace("$agent", ".*")
            .replace("$aggregation", "mean");
        assert!(
            !expr.contains('$'),
            "{whose}: unknown Grafana variable in `{expr}`"
        );
        rules.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboards.yml");
    fs::write(&file, rules).unwrap();
    let out = run(Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file));
    assert!(out.status.success(), "dashboard PromQL: {}", show(&out));
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool() {
    let dir = deploy().join("prometheus");
    let out =
        run(Command::new("promtool")
            .current_dir(&dir)
            .args(["check", "config", "prometheus.yml"]));
    assert!(
        out.status.success(),
        "promtool check config: {}",
        show(&out)
    );
    let out =
        run(Command::new("promtool")
            .current_dir(&dir)
            .args(["check", "rules", "alerts.yml"]));
    assert!(out.status.success(), "promtool check rules: {}", show(&out));
    // Behaviour: each alert fires on a failing series and not on a healthy one.
    let out =
        run(Command::new("promtool")
            .current_dir(&dir)
            .args(["test", "rules", "alerts_test.yml"]));
    assert!(out.status.success(), "promtool test rules: {}", show(&out));

    // Every alert is explained in the operations guide, and the test file exercises it.
    let guide = read(&repo_root().join("docs/operations.md"));
    let tests = read(&dir.join("alerts_test.yml"));
    for (alert, _) in alert_rules() {
        assert!(
            guide.contains(&format!("`{alert}`")),
            "docs/operations.md does not explain {alert}"
        );
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "alerts_test.yml does not test {alert}"
        );
    }
    // The agents' file_sd targets parse and name an agent_id.
    let targets = yaml(&dir.join("targets/agents.yml"));
    for t in targets.as_sequence().unwrap() {
        assert!(
            t["labels"]["agent_id"].as_str().is_some(),
            "targets/agents.yml: entry without agent_id"
        );
    }
}

/// The Debian package (cargo-deb) ships files that exist.
#[test]
fn debian_package_metadata_names_existing_files() {
    let agent = repo_root().join("agent");
    let manifest: toml::Value = toml::from_str(&read(&agent.join("Cargo.toml"))).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"]
        .as_array()
        .expect("[package.metadata.deb] assets in agent/Cargo.toml");
    let mut shipped = BTreeSet::new();
    for a in assets {
        let a = a.as_array().unwrap();
        let (src, dst) = (a[0].as_str().unwrap(), a[1].as_str().unwrap());
        shipped.insert(dst.to_owned());
        if src.starts_with("target/") {
            assert!(
                bins_of("agent")
                    .iter()
                    .any(|b| src.ends_with(&format!("/{b}"))),
                "{src}"
            );
            continue;
        }
        let src = src.trim_end_matches("/*");
        assert!(agent.join(src).exists(), "deb asset {src} does not exist");
    }
    for want in [
        "usr/lib/sysusers.d/shuzhuan-agent.conf",
        "usr/lib/tmpfiles.d/shuzhuan-agent.conf",
    ] {
        assert!(shipped.contains(want), "the package does not ship {want}");
    }
    let units = deb["systemd-units"]["unit-scripts"]
        .as_str()
        .expect("systemd-units");
    assert!(agent.join(units).join("shuzhuan-agent.service").exists());
    let scripts = deb["maintainer-scripts"]
        .as_str()
        .expect("maintainer-scripts");
    let postinst = read(&agent.join(scripts).join("postinst"));
    assert!(postinst.contains("systemd-sysusers") && postinst.contains("#DEBHELPER#"));
}

// ---------------------------------------------------------------------------
// Backup and restore of the aggregator's store (issue 9).

mod backup {
    use super::{run, show, text};
    use ed25519_dalek::SigningKey;
    use shuzhuan_aggregator::evidence::{self, load_or_create_log_key, EvidenceLog};
    use shuzhuan_aggregator::store::{SqliteStore, Store};
    use shuzhuan_common::credit_code::CreditCode;
    use shuzhuan_common::inventory::IndustryType;
    use shuzhuan_common::merkle::SignedCheckpoint;
    use shuzhuan_common::registry::{DeclaredRates, Enterprise};
    use shuzhuan_common::report::{verifying_key_to_b64, Hash32, Report, SCHEMA_VERSION};
    use shuzhuan_common::state::{DeviceState, StateSeconds};
    use shuzhuan_common::summary::{EnergyDelta, EnergyMethod, WindowSummary};
    use std::io::{Read as _, Write as _};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    const WINDOW: i64 = 900;

    /// The workspace's debug `shuzhuan-aggregator`, built (or brought up to date) by cargo.
    fn aggregator_binary() -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let debug = exe.parent().and_then(Path::parent).unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = run(Command::new(cargo)
            .current_dir(shuzhuan_tests::repo_root())
            .args([
                "build",
                "-p",
                "shuzhuan-aggregator",
                "--bin",
                "shuzhuan-aggregator",
            ]));
        assert!(out.status.success(), "cargo build: {}", show(&out));
        debug.join("shuzhuan-aggregator")
    }

    fn code() -> CreditCode {
        CreditCode::from_body("91411721000000001").unwrap()
    }

    fn agent_key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    struct Server(Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn http(
        addr: SocketAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let mut s = TcpStream::connect(addr).unwrap();
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let t = String::from_utf8_lossy(&resp);
        let status = t.split(' ').nth(1).unwrap().parse().unwrap();
        let json = t.split_once("\r\n\r\n").unwrap().1;
        (status, serde_json::from_str(json).unwrap_or_default())
    }

    /// `n` signed reports from `seq`, one window each, ending before `now`.
    fn batch(now: i64, seq: u64, prev: Hash32, n: u64) -> (String, Hash32) {
        let mut prev = prev;
        let mut out = Vec::new();
        for s in seq..seq + n {
            let start = (now - 2 * 86_400) / WINDOW * WINDOW + s as i64 * WINDOW;
            let mut st = StateSeconds::default();
            st.add(DeviceState::Productive, 600);
            st.add(DeviceState::Standby, 300);
            let r = Report {
                schema: SCHEMA_VERSION,
                agent_id: "gw-1".into(),
                enterprise: code(),
                seq: s,
                prev_hash: prev,
                window_start: start,
                window_end: start + WINDOW,
                created_at: start + WINDOW + 1,
                inventory: None,
                summaries: vec![WindowSummary {
                    device_id: "cnc-01".into(),
                    state_seconds: st,
                    nc_seconds: 600,
                    energy: vec![EnergyDelta {
                        meter: "m-01".into(),
                        carrier: "electricity".into(),
                        quantity: 2.5,
                        unit: "kWh".into(),
                        method: EnergyMethod::Counter,
                        exported: 0.0,
                    }],
                    parts: Some(10),
                    samples_expected: 900,
                    samples_received: 900,
                    flags: vec![],
                }],
            };
            let (signed, h) = r.sign(&agent_key());
            prev = h;
            out.push(signed);
        }
        (serde_json::json!({ "reports": out }).to_string(), prev)
    }

    fn config(dir: &Path, port: u16) -> PathBuf {
        let cfg = dir.join("aggregator.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\npath = \"agg.sqlite\"\n\
                 [evidence]\nlog_key_file = \"log.key\"\norigin = \"shuzhuan.test/backup\"\n"
            ),
        )
        .unwrap();
        cfg
    }

    /// A store with one enterprise and its enrolled agent `gw-1`.
    fn seed(path: &Path, now: i64) {
        let s = SqliteStore::open(path).unwrap();
        crate::fixtures::seed_county_and_chain(&s);
        s.import_registry(
            &[Enterprise {
                credit_code: code(),
                name: "企业1".into(),
                county: "xiping".into(),
                chain: "equipment".into(),
                above_scale: true,
                industry_type: IndustryType::Discrete,
                rd_design_tools: None,
                declared: DeclaredRates::default(),
            }],
            &[],
        )
        .unwrap();
        let hash = shuzhuan_aggregator::enroll::secret_hash("t-1");
        s.create_enrol_token(&hash, &code(), now - 10, now + 3600)
            .unwrap();
        let pk = verifying_key_to_b64(&agent_key().verifying_key());
        s.enroll(&hash, "gw-1", &code(), &pk, now - 5).unwrap();
    }

    #[test]
    fn backup_while_serving_then_restore_keeps_the_evidence_log_verifiable() {
        let bin = aggregator_binary();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let live = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let cfg = config(live.path(), port);
        seed(&live.path().join("agg.sqlite"), now);
        let out = run(Command::new(&bin)
            .args(["token", "create", "--role", "admin", "--config"])
            .arg(&cfg));
        assert!(out.status.success(), "{}", show(&out));
        let admin = text(&out.stdout).trim().to_owned();

        let server = Server(
            Command::new(&bin)
                .args(["serve", "--config"])
                .arg(&cfg)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "aggregator did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut prev = Hash32::GENESIS;
        for i in 0..3 {
            let (body, p) = batch(now, 1 + i * 4, prev, 4);
            prev = p;
            let (s, v) = http(addr, "POST", "/api/v1/reports", None, body.as_bytes());
            assert_eq!(s, 200, "{v}");
        }
        let (s, cp) = http(
            addr,
            "GET",
            "/api/v1/evidence/checkpoint",
            Some(&admin),
            b"",
        );
        assert_eq!(s, 200, "{cp}");
        let signed: SignedCheckpoint =
            serde_json::from_value(cp["signed_checkpoint"].clone()).unwrap();
        let public_key = cp["log_public_key"].as_str().unwrap().to_owned();
        assert_eq!(signed.checkpoint.size, 12);

        // The backup is taken while the server runs.
        let backup_file = live.path().join("backup.sqlite");
        let out = run(Command::new(&bin)
            .args(["backup", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(&backup_file));
        assert!(out.status.success(), "{}", show(&out));
        assert!(
            text(&out.stdout).contains("12 reports, 12 evidence leaves"),
            "{}",
            show(&out)
        );
        // Never overwrites.
        let again = run(Command::new(&bin)
            .args(["backup", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(&backup_file));
        assert!(!again.status.success(), "{}", show(&again));
        // Accepted after the backup: not in it.
        let (body, _) = batch(now, 13, prev, 2);
        let (s, v) = http(addr, "POST", "/api/v1/reports", None, body.as_bytes());
        assert_eq!(s, 200, "{v}");
        drop(server);

        // A fresh machine: the config, the backup and the log key file.
        let fresh = tempfile::tempdir().unwrap();
        let cfg2 = config(fresh.path(), port);
        std::fs::copy(live.path().join("log.key"), fresh.path().join("log.key")).unwrap();
        let garbage = fresh.path().join("garbage.sqlite");
        std::fs::write(&garbage, b"not a database at all").unwrap();
        let bad = run(Command::new(&bin)
            .args(["restore", "--config"])
            .arg(&cfg2)
            .arg("--from")
            .arg(&garbage));
        assert!(!bad.status.success(), "{}", show(&bad));
        assert!(!fresh.path().join("agg.sqlite").exists());
        let out = run(Command::new(&bin)
            .args(["restore", "--config"])
            .arg(&cfg2)
            .arg("--from")
            .arg(&backup_file));
        assert!(out.status.success(), "{}", show(&out));
        // A second restore over the store needs --force.
        let refused = run(Command::new(&bin)
            .args(["restore", "--config"])
            .arg(&cfg2)
            .arg("--from")
            .arg(&backup_file));
        assert!(!refused.status.success(), "{}", show(&refused));
        assert!(
            text(&refused.stderr).contains("--force"),
            "{}",
            show(&refused)
        );

        // The restored log has every leaf the server logged (nothing to
        // backfill), its root matches the checkpoint signed before the
        // backup, and an exported bundle verifies offline.
        let store = SqliteStore::open(&fresh.path().join("agg.sqlite")).unwrap();
        assert_eq!(store.agents().unwrap().len(), 1);
        let key = load_or_create_log_key(&fresh.path().join("log.key")).unwrap();
        let log = EvidenceLog::open(&store, "shuzhuan.test/backup", key).unwrap();
        assert_eq!(log.public_key_b64(), public_key);
        assert_eq!(log.backfill(&store).unwrap(), 0);
        let tree = store.with_read(EvidenceLog::load).unwrap();
        assert_eq!(tree.len(), 12);
        assert_eq!(tree.root(), signed.checkpoint.root_hash);
        let bundle = evidence::export_bundle(&store, &log, &code(), now - 3 * 86_400, now).unwrap();
        let file = fresh.path().join("bundle.json");
        std::fs::write(&file, bundle.to_json()).unwrap();
        let out = run(Command::new(&bin)
            .arg("verify-bundle")
            .arg(&file)
            .args(["--log-key", &public_key]));
        assert!(out.status.success(), "{}", show(&out));
        let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(verdict["reports_accepted"], 12, "{verdict}");
        // The bundle does not verify against another log key.
        let other = verifying_key_to_b64(&SigningKey::from_bytes(&[9; 32]).verifying_key());
        let out = run(Command::new(&bin)
            .arg("verify-bundle")
            .arg(&file)
            .args(["--log-key", &other]));
        assert!(!out.status.success(), "{}", show(&out));
    }
}
