//! A headless Chromium driven over the Chrome DevTools Protocol (a
//! WebSocket, spoken with `tungstenite`): `Target.createTarget` +
//! `Target.attachToTarget` (flattened session), then `Runtime.evaluate`.
//! Everything is on 127.0.0.1 and every wait is bounded; Chromium's process
//! group is killed when the value is dropped, passed or failed.
//!
//! Needs Debian's `chromium` (`/usr/bin/chromium`); `tests/run-all.sh`
//! installs it. Without it a test fails rather than passing silently.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium's start, up to its "DevTools listening" line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A headless Chromium in a process group of its own, with a fresh profile;
/// dropping it kills the group and removes the profile.
pub struct Chromium {
    child: Child,
    profile: PathBuf,
    /// `ws://127.0.0.1:PORT/devtools/browser/ID`
    pub devtools_url: String,
}

impl Chromium {
    pub fn launch() -> Chromium {
        let profile = fresh_profile("browser");
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own group, so that the renderer and helper processes go with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {CHROMIUM}: {e}"));
        // A thread reads stderr to its end (a full pipe would stall Chromium),
        // handing over the DevTools URL and keeping the rest for a failure message.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let url = line
                    .strip_prefix("DevTools listening on ")
                    .map(|u| u.trim().to_string());
                if tx.send((line, url)).is_err() {
                    break;
                }
            }
        });
        let mut chromium = Chromium {
            child,
            profile,
            devtools_url: String::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((_, Some(url))) => {
                    chromium.devtools_url = url;
                    return chromium;
                }
                Ok((line, None)) => seen.push(line),
                Err(_) => panic!(
                    "Chromium printed no \"DevTools listening on\" line within {START_TIMEOUT:?} \
                     (exit status: {:?}); its stderr:\n{}",
                    chromium.child.try_wait().ok().flatten(),
                    seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The group's id is the browser's pid (process_group(0)).
        let pgid = self.child.id() as libc::pid_t;
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A DevTools Protocol client attached to one page (a flattened session).
pub struct Cdp {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    session: Option<String>,
    /// What `wait_for` shows of the page when it gives up.
    pub state: &'static str,
}

impl Cdp {
    pub fn connect(devtools_url: &str) -> Cdp {
        let hostport = devtools_url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("unexpected DevTools URL {devtools_url}"));
        let stream = TcpStream::connect(hostport).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let (ws, _) = tungstenite::client(devtools_url, stream)
            .unwrap_or_else(|e| panic!("DevTools WebSocket handshake with {devtools_url}: {e}"));
        Cdp {
            ws,
            next_id: 1,
            session: None,
            state: "document.body.innerText",
        }
    }

    /// Send one command and wait for its answer, skipping events.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            command["sessionId"] = json!(session);
        }
        self.ws.send(Message::text(command.to_string())).unwrap();
        loop {
            let msg = self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("DevTools: no answer to {method}: {e}"));
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] != json!(id) {
                continue;
            }
            if let Some(err) = v.get("error") {
                panic!("DevTools {method} failed: {err}");
            }
            return v["result"].clone();
        }
    }

    /// Open a new page and attach to it.
    pub fn open_page(devtools_url: &str) -> Cdp {
        let mut cdp = Cdp::connect(devtools_url);
        let target = cdp.call("Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = cdp.call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        cdp
    }

    /// Evaluate `expr` in the page and return its value (promises awaited).
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("the page threw evaluating `{expr}`: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Evaluate `expr` every 50 ms until it is truthy; return that value.
    /// After `within`, fail naming `what` and showing the page's state.
    pub fn wait_for(&mut self, what: &str, expr: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.eval(expr);
            let truthy = !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let state = self.eval(self.state).as_str().unwrap_or("?").to_string();
                panic!("{what}: not seen within {within:?}; the page:\n{state}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// How long a one-shot [`screenshot`] may take.
const SCREENSHOT_TIMEOUT: Duration = Duration::from_secs(90);

/// Render `file` (an SVG or a page) to a `size` PNG at `png` with a
/// one-shot headless Chromium (`--screenshot`), in a process group of its
/// own that is killed if it takes longer than [`SCREENSHOT_TIMEOUT`].
pub fn screenshot(file: &Path, png: &Path, size: (u32, u32)) {
    let profile = fresh_profile("screenshot");
    let log = profile.join("stderr.log");
    let _ = std::fs::remove_file(png);
    let file = file.canonicalize().unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(format!("file://{}", file.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {CHROMIUM}: {e}"));
    let deadline = Instant::now() + SCREENSHOT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The renderer and helpers too, finished or not.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
    let _ = child.wait();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        status.is_some_and(|s| s.success()) && png.exists(),
        "Chromium made no screenshot of {} (status {status:?}, within {SCREENSHOT_TIMEOUT:?}); its stderr:\n{stderr}",
        file.display()
    );
}

/// Chromium, which must be there (a test that renders with a real
/// browser fails rather than skips), and a profile directory of the
/// test's own for it.
fn fresh_profile(what: &str) -> PathBuf {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: this test drives a real headless browser; \
         install it with `apt-get install -y chromium` (tests/run-all.sh does)"
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let profile =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{what}-profile-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&profile).unwrap();
    profile
}
