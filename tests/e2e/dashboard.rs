//! End-to-end tests: dashboard. The `demo` subcommand runs a small city
//! (simulated plants, gateways enrolled and shipping signed reports over
//! HTTP, the real ingest path); headless Chromium opens the dashboard; the
//! figures on the page equal the JSON API's; the English switch works; no
//! page refers to another host; roles hold; the bulletin's XLSX parses in
//! openpyxl with its county table.

use shuzhuan_tests::{artifacts, free_port, python, repo_root, wait_for_port, Proc};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn aggregator_binary() -> PathBuf {
    let p = repo_root().join("target/debug/shuzhuan-aggregator");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p shuzhuan-aggregator`",
        p.display()
    );
    p
}

/// GET with a bearer token or a cookie; returns status and body.
fn get(port: u16, path: &str, auth: &str) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, buf[split + 4..].to_vec())
}

fn data_value(html: &str, key: &str) -> Option<String> {
    let needle = format!("data-key=\"{key}\" data-value=\"");
    let at = html.find(&needle)? + needle.len();
    Some(html[at..].split('"').next()?.to_owned())
}

fn chromium_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            url,
        ])
        .stderr(Stdio::null())
        .output()
        .expect("chromium runs (bash tests/peers/install.sh)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn demo_dashboard_shows_measured_data_equal_to_the_api() {
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let mut child = Proc::spawn(
        Command::new(aggregator_binary())
            .current_dir(repo_root())
            .args([
                "demo",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--plants",
                "5",
                "--scale",
                "20000",
                "--run-for",
                "120",
                "--data-dir",
            ])
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    assert!(wait_for_port(port, 60), "demo did not listen");
    let mut banner = String::new();
    let mut stdout = child.0.stdout.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !banner.contains("Ctrl-C") && Instant::now() < deadline {
        let mut b = [0u8; 4096];
        let n = stdout.read(&mut b).unwrap();
        banner.push_str(&String::from_utf8_lossy(&b[..n]));
    }
    let token = |what: &str| {
        banner
            .lines()
            .find(|l| l.contains(what))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or_else(|| panic!("no {what} in {banner}"))
            .to_owned()
    };
    let (bureau, county, ent) = (
        token("bureau token"),
        token("county token"),
        token("enterprise token"),
    );
    let cookie = format!("Cookie: sz_token={bureau}");
    // Wait until measured data shows on the overview.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut page = String::new();
    while Instant::now() < deadline {
        page = String::from_utf8_lossy(&get(port, "/", &cookie).1).to_string();
        if data_value(&page, "city.digitization.measured.mean").is_some_and(|v| !v.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let shown: f64 = data_value(&page, "city.digitization.measured.mean")
        .unwrap()
        .parse()
        .expect("measured digitization rate on the overview");
    let year = page
        .split("<small>")
        .nth(1)
        .and_then(|s| s.get(..4))
        .unwrap()
        .to_owned();
    let (st, api) = get(
        port,
        &format!("/api/v1/indicators?period={year}&level=city"),
        &format!("Authorization: Bearer {bureau}"),
    );
    assert_eq!(st, 200);
    let api: serde_json::Value = serde_json::from_slice(&api).unwrap();
    let from_api = api["indicators"]["digitization"]["measured"]["mean"]
        .as_f64()
        .unwrap();
    // The roll-up may tick between the two reads: same within a window's worth.
    assert!(
        (shown - from_api).abs() < 0.05,
        "page {shown}, API {from_api}"
    );

    // A real browser: Chinese labels, the English switch, no other host.
    let dom = chromium_dom(&format!("http://127.0.0.1:{port}/login?token={bureau}"));
    std::fs::write(artifacts().join("dashboard-overview.html"), &dom).ok();
    for label in [
        "生产设备数字化率",
        "关键工序数控化率",
        "数字化研发设计工具普及率",
        "智能车间",
    ] {
        assert!(dom.contains(label), "{label} missing from the overview");
    }
    let (_, en_page) = get(port, "/?lang=en", &cookie);
    let en_page = String::from_utf8_lossy(&en_page);
    assert!(en_page.contains("Production equipment digitization rate"));
    for p in [&page, &dom, &en_page.to_string()] {
        for url in p
            .match_indices("http")
            .map(|(i, _)| &p[i..(i + 30).min(p.len())])
        {
            assert!(
                url.starts_with("http://127.0.0.1") || url.starts_with("https://example.invalid"),
                "page refers to another host: {url}"
            );
        }
    }

    // Roles: a county user sees its county only, an enterprise user its enterprise only.
    let (st, _) = get(port, "/bulletin", &format!("Cookie: sz_token={county}"));
    assert_eq!(st, 403);
    let (st, _) = get(port, "/chains", &format!("Cookie: sz_token={ent}"));
    assert_eq!(st, 403);
    let (st, body) = get(port, "/", &format!("Cookie: sz_token={ent}"));
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&body).contains("示范制造企业01"));
    let (st, _) = get(port, "/", "X-None: 1");
    assert_eq!(st, 401);

    // The bulletin's workbook.
    let (st, xlsx) = get(port, "/bulletin.xlsx", &cookie);
    assert_eq!(st, 200);
    let file = data.path().join("bulletin.xlsx");
    std::fs::write(&file, &xlsx).unwrap();
    let out = Command::new(python())
        .args([
            "-c",
            "import sys, openpyxl\nwb = openpyxl.load_workbook(sys.argv[1])\nws = wb.worksheets[0]\nprint(wb.sheetnames[0], ws.max_row - 2, ws.cell(1, 2).value)",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("县区 counties"), "{text}");
    let rows: usize = text.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(rows >= 5, "county table has {rows} rows: {text}");
}
