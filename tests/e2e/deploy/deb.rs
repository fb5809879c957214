//! The agent's Debian package, built by `deploy/deb/build.sh` (dpkg-deb, from
//! `[package.metadata.deb]` in agent/Cargo.toml): its files and conffiles,
//! Depends against Debian's own `dpkg-shlibdeps`, the maintainer scripts run
//! by a real `dpkg` installing into a temporary root (user, folders, modes,
//! never a started service), `check-config` on the installed default config,
//! an upgrade that keeps a local edit and the spool, and a purge that keeps
//! the spool. The architecture follows `--target`; the binary must match it.

use super::{agent_binary, give_root_system_units, read, run, show, text};
use shuzhuan_tests::repo_root;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn build(binary: &Path, out: &Path, extra: &[&str]) -> Output {
    run(Command::new("sh")
        .arg(repo_root().join("deploy/deb/build.sh"))
        .arg("--binary")
        .arg(binary)
        .arg("--out")
        .arg(out)
        .args(["--compress", "none"])
        .args(extra))
}

/// Builds the package; returns the `.deb` path the script printed.
fn build_ok(binary: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let o = build(binary, out, extra);
    assert!(o.status.success(), "deploy/deb/build.sh: {}", show(&o));
    let deb = PathBuf::from(text(&o.stdout).trim());
    assert!(
        deb.is_file(),
        "no package at {}: {}",
        deb.display(),
        show(&o)
    );
    deb
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let o = run(Command::new("dpkg-deb").args(args).arg(deb));
    assert!(o.status.success(), "dpkg-deb {args:?}: {}", show(&o));
    text(&o.stdout)
}

/// `dpkg` on a temporary root: the maintainer scripts run without chroot
/// (the root has no shell) and see the root in `DPKG_ROOT`; Depends are not
/// installed there, so they are forced; the machine's path filters (Docker
/// images drop /usr/share/doc) are overridden.
fn dpkg(root: &Path, args: &[&str]) -> Output {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
            "--path-include=*",
        ])
        .args(args))
}

fn empty_dpkg_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let admin = root.path().join("var/lib/dpkg");
    fs::create_dir_all(admin.join("updates")).unwrap();
    fs::create_dir_all(admin.join("info")).unwrap();
    fs::write(admin.join("status"), "").unwrap();
    root
}

fn field(control: &str, name: &str) -> String {
    control
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("control has no {name}:\n{control}"))
        .to_owned()
}

fn mode(path: &Path) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

fn id_of(file: &Path, name: &str) -> u32 {
    read(file)
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {}", file.display()))
        .split(':')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn debian_package_builds_installs_upgrades_and_purges() {
    // dpkg changes owners in the temporary root; CI runs the suite as root.
    let me = run(Command::new("id").arg("-u"));
    assert_eq!(
        text(&me.stdout).trim(),
        "0",
        "installing the package into a temporary root needs root (dpkg --root)"
    );
    let binary = agent_binary();
    let out = tempfile::tempdir().unwrap();
    let deb = build_ok(&binary, out.path(), &[]);

    // The control file: the machine's architecture, glibc and libgcc from
    // the binary, systemd for the unit and sysusers.
    let host = run(Command::new("dpkg").arg("--print-architecture"));
    let host = text(&host.stdout).trim().to_owned();
    let info = dpkg_deb(&["--info"], &deb);
    let control = dpkg_deb(&["--field"], &deb);
    assert_eq!(field(&control, "Package"), "shuzhuan-agent");
    assert_eq!(field(&control, "Architecture"), host);
    let depends = field(&control, "Depends");
    assert!(
        depends.starts_with("libc6 (>= 2.") && depends.ends_with(", systemd"),
        "{depends}"
    );
    for script in ["postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "no {script}:\n{info}");
    }

    // Every expected path, and exactly the files under /etc as conffiles.
    let listing = dpkg_deb(&["--contents"], &deb);
    let paths: BTreeSet<String> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| {
            let p = l.split_whitespace().last().unwrap();
            p.trim_start_matches('.').to_owned()
        })
        .collect();
    let mut want: BTreeSet<String> = [
        "/usr/bin/shuzhuan-agent",
        "/lib/systemd/system/shuzhuan-agent.service",
        "/usr/lib/sysusers.d/shuzhuan-agent.conf",
        "/usr/lib/tmpfiles.d/shuzhuan-agent.conf",
        "/etc/shuzhuan-agent/agent.toml",
        "/etc/shuzhuan-agent/scoring/measurement.toml",
        "/usr/share/doc/shuzhuan-agent/copyright",
        "/usr/share/doc/shuzhuan-agent/changelog.gz",
        "/usr/share/doc/shuzhuan-agent/examples/agent.toml",
        "/usr/share/doc/shuzhuan-agent/operations.md",
    ]
    .map(str::to_owned)
    .into();
    let profiles: Vec<String> = fs::read_dir(repo_root().join("config/profiles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!profiles.is_empty());
    for p in &profiles {
        want.insert(format!("/etc/shuzhuan-agent/profiles/{p}"));
    }
    assert_eq!(paths, want, "package contents:\n{listing}");
    let ctrl = tempfile::tempdir().unwrap();
    let o = run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(ctrl.path()));
    assert!(o.status.success(), "{}", show(&o));
    let conffiles: BTreeSet<String> = read(&ctrl.path().join("conffiles"))
        .lines()
        .map(str::to_owned)
        .collect();
    let etc: BTreeSet<String> = want
        .iter()
        .filter(|p| p.starts_with("/etc/"))
        .cloned()
        .collect();
    assert_eq!(conffiles, etc, "conffiles");
    // The maintainer scripts are valid sh, never enable or start the agent,
    // and stop it only on removal.
    for script in ["postinst", "prerm", "postrm"] {
        let path = ctrl.path().join(script);
        let o = run(Command::new("sh").arg("-n").arg(&path));
        assert!(o.status.success(), "{script}: {}", show(&o));
        let body = read(&path);
        assert!(!body.contains("#DEBHELPER#"), "{script}");
        let code: Vec<&str> = body
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#') && !l.starts_with("echo "))
            .collect();
        for never in [" enable ", "invoke start", "systemctl start", " restart "] {
            assert!(
                !code.iter().any(|l| l.contains(never)),
                "{script} runs `{never}`:\n{body}"
            );
        }
    }
    assert!(read(&ctrl.path().join("postinst")).contains("try-restart shuzhuan-agent.service"));
    assert!(read(&ctrl.path().join("prerm")).contains(r#"if [ "$1" = remove ]"#));

    // Install into an empty root with dpkg itself: the postinst makes the
    // user (in dialout) and the folders there, owners and modes as
    // deploy/install-agent.sh leaves them.
    let root = empty_dpkg_root();
    let r = root.path();
    let o = dpkg(r, &["--install", deb.to_str().unwrap()]);
    assert!(o.status.success(), "dpkg --install: {}", show(&o));
    assert!(
        text(&o.stderr).contains("installed, not started"),
        "{}",
        show(&o)
    );
    let uid = id_of(&r.join("etc/passwd"), "shuzhuan-agent");
    let gid = id_of(&r.join("etc/group"), "shuzhuan-agent");
    assert_ne!(uid, 0);
    assert!(
        read(&r.join("etc/group"))
            .lines()
            .any(|l| l.starts_with("dialout:") && l.ends_with("shuzhuan-agent")),
        "the agent's user is not in dialout"
    );
    for (path, want) in [
        ("usr/bin/shuzhuan-agent", (0o755, 0, 0)),
        ("lib/systemd/system/shuzhuan-agent.service", (0o644, 0, 0)),
        ("etc/shuzhuan-agent", (0o750, 0, gid)),
        ("etc/shuzhuan-agent/agent.toml", (0o640, 0, gid)),
        ("etc/shuzhuan-agent/profiles", (0o750, 0, gid)),
        (
            "etc/shuzhuan-agent/scoring/measurement.toml",
            (0o640, 0, gid),
        ),
        ("var/lib/shuzhuan-agent", (0o750, uid, gid)),
    ] {
        assert_eq!(mode(&r.join(path)), want, "{path} (mode, uid, gid)");
    }
    assert_eq!(
        read(&r.join("lib/systemd/system/shuzhuan-agent.service")),
        read(&repo_root().join("deploy/systemd/shuzhuan-agent.service"))
    );
    // Nothing enabled it.
    assert!(!r
        .join("etc/systemd/system/multi-user.target.wants")
        .exists());

    // Depends as Debian's own tool computes it from the shipped binary.
    let installed = r.join("usr/bin/shuzhuan-agent");
    let shl = tempfile::tempdir().unwrap();
    fs::create_dir(shl.path().join("debian")).unwrap();
    fs::write(
        shl.path().join("debian/control"),
        "Source: shuzhuan\n\nPackage: shuzhuan-agent\nArchitecture: any\n",
    )
    .unwrap();
    let o = run(Command::new("dpkg-shlibdeps")
        .current_dir(shl.path())
        .arg("-O")
        .arg(&installed));
    assert!(o.status.success(), "dpkg-shlibdeps: {}", show(&o));
    let shlibs = text(&o.stdout);
    let shlibs = shlibs
        .trim()
        .strip_prefix("shlibs:Depends=")
        .unwrap_or_else(|| panic!("{shlibs}"));
    assert_eq!(depends, format!("{shlibs}, systemd"));

    // The installed binary accepts the installed default config (its
    // profiles and thresholds are found beside it), and the unit verifies
    // against the installed binary.
    let cfg = r.join("etc/shuzhuan-agent/agent.toml");
    let o = run(Command::new(&installed)
        .arg("check-config")
        .arg("--config")
        .arg(&cfg));
    assert!(o.status.success(), "check-config: {}", show(&o));
    assert!(text(&o.stdout).contains("config ok"), "{}", show(&o));
    give_root_system_units(r);
    super::stub_other_executables(r, &r.join("lib/systemd/system/shuzhuan-agent.service"));
    let o = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.display()))
        .arg(r.join("lib/systemd/system/shuzhuan-agent.service")));
    assert!(
        o.status.success() && o.stderr.is_empty() && o.stdout.is_empty(),
        "systemd-analyze verify: {}",
        show(&o)
    );

    // An upgrade keeps a local edit of a conffile and the spool, and the
    // postinst gives the config back to the agent's group.
    let spooled = r.join("var/lib/shuzhuan-agent/spool-sentinel");
    fs::write(&spooled, "waiting report").unwrap();
    let edited = read(&cfg) + "# edited on the gateway\n";
    fs::write(&cfg, &edited).unwrap();
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o600)).unwrap();
    let o = dpkg(r, &["--force-confold", "--install", deb.to_str().unwrap()]);
    assert!(o.status.success(), "dpkg upgrade: {}", show(&o));
    assert!(
        !text(&o.stderr).contains("installed, not started"),
        "an upgrade is not a first install: {}",
        show(&o)
    );
    assert_eq!(read(&cfg), edited, "the upgrade replaced the edited config");
    assert_eq!(mode(&cfg), (0o640, 0, gid));
    assert_eq!(read(&spooled), "waiting report");

    // Purge: the package's files and conffiles go, an enablement made by
    // hand goes, the spool and key folder stays.
    let wants = r.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        "/lib/systemd/system/shuzhuan-agent.service",
        wants.join("shuzhuan-agent.service"),
    )
    .unwrap();
    let o = dpkg(r, &["--purge", "shuzhuan-agent"]);
    assert!(o.status.success(), "dpkg --purge: {}", show(&o));
    for gone in [
        "usr/bin/shuzhuan-agent",
        "etc/shuzhuan-agent/agent.toml",
        "lib/systemd/system/shuzhuan-agent.service",
        "etc/systemd/system/multi-user.target.wants/shuzhuan-agent.service",
    ] {
        assert!(
            fs::symlink_metadata(r.join(gone)).is_err(),
            "{gone} left after purge"
        );
    }
    assert_eq!(read(&spooled), "waiting report", "purge deleted the spool");
}

/// A minimal ELF64 little-endian header for `machine` (no sections, no
/// dynamic part: a static binary as far as Depends go).
fn elf64_header(machine: u16) -> Vec<u8> {
    let mut h = b"\x7fELF\x02\x01\x01\x00".to_vec();
    h.extend([0u8; 8]);
    h.extend(2u16.to_le_bytes()); // ET_EXEC
    h.extend(machine.to_le_bytes());
    h.extend(1u32.to_le_bytes());
    h.extend([0u8; 24]); // entry, phoff, shoff
    h.extend(0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 0, 64, 0, 0] {
        h.extend(v.to_le_bytes());
    }
    h
}

/// `--target` names the Debian architecture; a binary of another machine is
/// refused with both named. (The real aarch64 cross-build is recorded in
/// docs/operations.md: it needs the cross toolchain, which CI does not have.)
#[test]
fn debian_package_architecture_follows_the_target_and_refuses_a_mismatched_binary() {
    let work = tempfile::tempdir().unwrap();
    let arm = work.path().join("shuzhuan-agent");
    fs::write(&arm, elf64_header(183)).unwrap(); // EM_AARCH64
    let deb = build_ok(
        &arm,
        work.path(),
        &["--target", "aarch64-unknown-linux-gnu", "--no-strip"],
    );
    assert!(deb.to_string_lossy().ends_with("_arm64.deb"), "{deb:?}");
    let control = dpkg_deb(&["--field"], &deb);
    assert_eq!(field(&control, "Architecture"), "arm64");
    assert_eq!(field(&control, "Depends"), "systemd", "a static binary");

    let x86 = work.path().join("x86");
    fs::write(&x86, elf64_header(62)).unwrap(); // EM_X86_64
    let o = build(
        &x86,
        work.path(),
        &["--target", "aarch64-unknown-linux-gnu", "--no-strip"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = text(&o.stderr);
    assert!(
        err.contains("X86-64") && err.contains("AArch64"),
        "{}",
        show(&o)
    );

    let o = build(&arm, work.path(), &["--target", "mips-unknown-linux-gnu"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        text(&o.stderr).contains("mips-unknown-linux-gnu"),
        "{}",
        show(&o)
    );
}
