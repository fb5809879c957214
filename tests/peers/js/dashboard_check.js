// Opens dashboard pages in a real headless Chromium over the DevTools
// Protocol and reports, per page, what a person and a reviewer would check:
// console errors and uncaught exceptions, every request the page made (so
// the test can refuse any that leaves 127.0.0.1), the raw figures the page
// shows (elements with data-key/data-value), whether each chart has its
// numbers in text or a table beside it, and a full-page screenshot.
//
// Usage: NODE_PATH=tests/peers/node/node_modules node dashboard_check.js \
//          CHROMIUM OUT_DIR LOGIN_URL PAGE_URL...
// Prints one JSON object: {"pages": [{url, name, status, console_errors,
// exceptions, requests, failed_requests, values, text_len, screenshot}]}.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawn } = require("child_process");
const CDP = require("chrome-remote-interface");

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function devtoolsPort(profile, deadlineMs) {
  const file = path.join(profile, "DevToolsActivePort");
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (fs.existsSync(file)) {
      const port = Number(fs.readFileSync(file, "utf8").split("\n")[0]);
      if (port > 0) return port;
    }
    await sleep(100);
  }
  throw new Error("chromium did not open its DevTools port");
}

async function main() {
  const [chromium, outDir, loginUrl, ...pages] = process.argv.slice(2);
  if (!chromium || !outDir || !loginUrl || pages.length === 0) {
    throw new Error("usage: dashboard_check.js CHROMIUM OUT_DIR LOGIN_URL PAGE_URL...");
  }
  fs.mkdirSync(outDir, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "sz-chromium-"));
  const browser = spawn(
    chromium,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--hide-scrollbars",
      "--window-size=1440,1000",
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      `--user-data-dir=${profile}`,
      "about:blank",
    ],
    { stdio: "ignore" }
  );
  let client;
  try {
    const port = await devtoolsPort(profile, 30000);
    client = await CDP({ host: "127.0.0.1", port });
    const { Page, Runtime, Network, Log } = client;
    let cur = null;
    Runtime.consoleAPICalled((e) => {
      if (cur && (e.type === "error" || e.type === "assert")) {
        cur.console_errors.push(e.args.map((a) => a.value ?? a.description ?? "").join(" "));
      }
    });
    Runtime.exceptionThrown((e) => {
      if (cur) cur.exceptions.push(e.exceptionDetails.text + " " + (e.exceptionDetails.exception?.description ?? ""));
    });
    Log.entryAdded(({ entry }) => {
      if (cur && entry.level === "error") cur.console_errors.push(`${entry.source}: ${entry.text} ${entry.url ?? ""}`);
    });
    Network.requestWillBeSent((e) => {
      if (cur) cur.requests.push(e.request.url);
    });
    Network.responseReceived((e) => {
      if (cur && e.type === "Document") cur.status = e.response.status;
      if (cur && e.response.status >= 400) cur.failed_requests.push(`${e.response.status} ${e.response.url}`);
    });
    Network.loadingFailed((e) => {
      if (cur && !e.canceled) cur.failed_requests.push(`${e.errorText} ${e.requestId}`);
    });
    await Promise.all([Page.enable(), Runtime.enable(), Network.enable(), Log.enable()]);

    async function visit(url) {
      const loaded = Page.loadEventFired();
      await Page.navigate({ url });
      await Promise.race([loaded, sleep(30000).then(() => { throw new Error(`timeout loading ${url}`); })]);
      await sleep(300); // late console messages
    }

    const out = { pages: [] };
    cur = { url: loginUrl, name: "login", status: null, console_errors: [], exceptions: [], requests: [], failed_requests: [] };
    await visit(loginUrl);
    out.login = cur;
    for (const [i, url] of pages.entries()) {
      const name = `page-${i}-` + (new URL(url).pathname.replace(/[^a-zA-Z0-9]+/g, "_").replace(/^_|_$/g, "") || "overview");
      cur = { url, name, status: null, console_errors: [], exceptions: [], requests: [], failed_requests: [] };
      await visit(url);
      const { result } = await Runtime.evaluate({
        expression:
          "JSON.stringify({values: Object.fromEntries([...document.querySelectorAll('[data-key]')].map(e => [e.dataset.key, e.dataset.value ?? e.textContent.trim()])), text_len: document.body.innerText.length, title: document.title, lang: document.documentElement.lang, charts: [...document.querySelectorAll('svg')].map(svg => { const after = (el) => { for (let n = el.nextElementSibling; n && !/^H[1-3]$/.test(n.tagName); n = n.nextElementSibling) { if (n.tagName === 'TABLE' || n.querySelector('table')) return true; } return false; }; return {label: svg.getAttribute('aria-label') || '', numbers_in_text: /\\d+(\\.\\d+)?\\s*%/.test(svg.textContent), table_near: after(svg) || (!!svg.parentElement && after(svg.parentElement))}; })})",
        returnByValue: true,
      });
      Object.assign(cur, JSON.parse(result.value));
      const shot = await Page.captureScreenshot({ format: "png", captureBeyondViewport: true });
      cur.screenshot = path.join(outDir, `${cur.name}.png`);
      fs.writeFileSync(cur.screenshot, Buffer.from(shot.data, "base64"));
      out.pages.push(cur);
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  } finally {
    if (client) await client.close().catch(() => {});
    const exited = new Promise((r) => browser.once("exit", r));
    browser.kill("SIGKILL");
    await Promise.race([exited, sleep(5000)]);
    fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
}

main().catch((e) => {
  process.stderr.write(`dashboard_check: ${e.stack || e}\n`);
  process.exit(1);
});
