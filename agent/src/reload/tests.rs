//! Tests of config reload: what a reload may change, the device and link
//! diffs, the pollers kept and restarted (with their metrics), and the file
//! watcher under paused time.

use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An agent with two Modbus TCP links (nothing listens on them) and the
/// given `[[devices]]` (a `name = [link]` list).
fn config(dir: &Path, extra: &str, devices: &[(&str, &str)]) -> AgentConfig {
    let mut t = format!(
        "[agent]\nid = \"gw\"\nenterprise = \"91411700MA00000019\"\ndata_dir = \"data\"\nprofiles_dir = \"{}\"\n{extra}\n\
         [[links]]\nid = \"a\"\nkind = \"modbus_tcp\"\naddress = \"127.0.0.1:9\"\n\n\
         [[links]]\nid = \"b\"\nkind = \"modbus_tcp\"\naddress = \"127.0.0.1:9\"\n\n",
        repo().join("config/profiles").display()
    );
    for (i, (id, link)) in devices.iter().enumerate() {
        t.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nname = \"{id}\"\nkind = \"press\"\nproduction = true\nlink = \"{link}\"\nunit = {}\nprofile = \"generic-plc\"\n\n",
            i + 1
        ));
    }
    AgentConfig::from_text(dir.join("agent.toml"), &t).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn keys_that_shape_the_spool_and_windows_need_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let a = config(d.path(), "", &[("p1", "a")]);
    assert!(needs_restart(&a, &a).is_empty());
    assert!(needs_restart(&a, &config(d.path(), "", &[("p2", "b")])).is_empty());
    let w = config(d.path(), "window_secs = 60\n", &[("p1", "a")]);
    let why = needs_restart(&a, &w);
    assert_eq!(why.len(), 1, "{why:?}");
    assert!(why[0].contains("[agent] window_secs") && why[0].contains("restart"));
    let h = config(
        d.path(),
        "\n[http]\nlisten = \"127.0.0.1:9999\"\n",
        &[("p1", "a")],
    );
    assert!(needs_restart(&a, &h)[0].contains("[http]"));
}

#[test]
fn a_bad_file_is_refused_with_its_position() {
    let d = tempfile::tempdir().unwrap();
    let a = config(d.path(), "", &[("p1", "a")]);
    let path = d.path().join("agent.toml");
    std::fs::write(&path, "[agent]\nid = 5\n").unwrap();
    let e = load_checked(&path, &a).unwrap_err();
    assert!(e.contains("agent.toml:2"), "{e}");
    std::fs::write(&path, "").unwrap();
    assert!(load_checked(&path, &a).is_err());
    let e = load_checked(&d.path().join("gone.toml"), &a).unwrap_err();
    assert!(e.contains("gone.toml"), "{e}");
}

#[test]
fn device_changes() {
    let d = tempfile::tempdir().unwrap();
    let old = config(d.path(), "", &[("p1", "a"), ("p2", "a"), ("p3", "b")]);
    let new = config(d.path(), "", &[("p1", "a"), ("p2", "b"), ("p4", "b")]);
    let c = DeviceChanges::between(&old, &new);
    assert_eq!(c.added, ["p4"]);
    assert_eq!(c.removed, ["p3"]);
    assert_eq!(c.changed, ["p2"]);
    assert!(DeviceChanges::between(&old, &old).is_empty());
}

/// `link` label values of `shuzhuan_agent_link_up` in `reg`.
fn links_up(reg: &Registry) -> Vec<String> {
    reg.gather()
        .iter()
        .filter(|f| f.name() == "shuzhuan_agent_link_up")
        .flat_map(|f| f.get_metric().iter())
        .flat_map(|m| m.get_label().iter())
        .filter(|l| l.name() == "link")
        .map(|l| l.value().to_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn only_changed_links_restart_and_their_metrics_follow() {
    let d = tempfile::tempdir().unwrap();
    let reg = Registry::new();
    let (tx, _rx) = mpsc::channel(64);
    let mut set = LinkSet::new(&reg, Clock::real(), tx).unwrap();
    let c1 = config(d.path(), "", &[("p1", "a"), ("p2", "b")]);
    let ch = set.apply(&c1).await;
    assert_eq!(ch.started, ["a", "b"]);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(links_up(&reg), ["a", "b"]);

    // Same config: nothing restarts.
    let ch = set.apply(&c1).await;
    assert_eq!(ch.kept, ["a", "b"]);
    assert!(ch.started.is_empty() && ch.restarted.is_empty() && ch.stopped.is_empty());

    // p2 moves to link a: a restarts (its device list changed), so does b
    // (it lost its device); a link without devices still runs idle.
    let c2 = config(d.path(), "", &[("p1", "a"), ("p2", "a")]);
    let ch = set.apply(&c2).await;
    assert_eq!(ch.restarted, ["a", "b"]);
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Restarted links registered afresh: one series each, not a stale one.
    assert_eq!(links_up(&reg), ["a", "b"]);

    // A config without link b (and its devices) stops it and drops its metrics.
    let mut c3 = c2.clone();
    c3.links.retain(|l| l.id() != "b");
    let ch = set.apply(&c3).await;
    assert_eq!(ch.stopped, ["b"]);
    assert_eq!(ch.kept, ["a"]);
    assert_eq!(links_up(&reg), ["a"]);
    assert_eq!(set.ids(), ["a"]);
    set.shutdown().await;
    assert!(links_up(&reg).len() <= 1);
}

#[tokio::test(start_paused = true)]
async fn the_file_watcher_waits_for_a_change_to_settle() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("agent.toml");
    std::fs::write(&path, "one").unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let every = Duration::from_secs(2);
    tokio::spawn(watch_file(path.clone(), every, tx));
    tokio::time::sleep(every * 3).await;
    assert!(rx.try_recv().is_err(), "no change, no reload");

    std::fs::write(&path, "two, longer").unwrap();
    // Seen once (pending), then again unchanged: one request.
    tokio::time::sleep(every).await;
    tokio::time::sleep(every + Duration::from_millis(10)).await;
    assert_eq!(rx.try_recv().ok(), Some(Trigger::FileChanged));
    tokio::time::sleep(every * 3).await;
    assert!(rx.try_recv().is_err(), "one change, one reload");

    // A file that disappears and comes back is a change too.
    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(every * 3).await;
    assert_eq!(rx.try_recv().ok(), Some(Trigger::FileChanged));
    std::fs::write(&path, "three").unwrap();
    tokio::time::sleep(every * 3).await;
    assert_eq!(rx.try_recv().ok(), Some(Trigger::FileChanged));
}

#[test]
fn metrics_start_as_a_success() {
    let reg = Registry::new();
    let m = ReloadMetrics::register(&reg).unwrap();
    assert_eq!(m.last_success.get(), 1);
    m.refused();
    assert_eq!(m.last_success.get(), 0);
    assert_eq!(m.reloads.with_label_values(&["refused"]).get(), 1);
    m.applied();
    assert_eq!(m.last_success.get(), 1);
    assert_eq!(m.reloads.with_label_values(&["applied"]).get(), 1);
}
