//! The server's command line as an operator meets it: `check-config`,
//! `print-config` (whose output is a configuration that changes nothing),
//! the start line, JSON logs, binds by host name and IPv6, completions, the
//! man page, `/metrics`' build info, and the example systemd unit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use wsreactor::config::Config;

const BIN: &str = env!("CARGO_BIN_EXE_wsreactor");

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("operator");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "off")
        .env_remove("WSREACTOR_PUBLISH_TOKEN")
        .env_remove("WSREACTOR_AUTH_SECRET")
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

/// `wsreactor ARGS` until its start line: the child (the caller stops it),
/// the line, the address.
#[allow(clippy::zombie_processes)]
fn start(args: &[&str], env: &[(&str, &str)]) -> (Child, String, SocketAddr, BufReader<std::process::ChildStderr>) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("RUST_LOG", "info").stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.wait();
            panic!("the server exited");
        }
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split(' ').next().unwrap().parse().unwrap();
            return (child, line.clone(), addr, stderr);
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    text
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn check_config_says_ok_or_names_the_key_and_exits_2() {
    let (code, out, _) = run(&["check-config"]);
    assert_eq!((code, out.trim()), (Some(0), "built-in defaults: ok"));
    let bad = tmp("bad.toml");
    std::fs::write(&bad, "[limits]\nmax_frame_size = 3\n").unwrap();
    let (code, _, err) = run(&["check-config", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("bad.toml") && err.contains("limits.max_frame_size"),
        "{err}"
    );
    // What serve checks at start, certificates included.
    let tls = tmp("tls.toml");
    std::fs::write(
        &tls,
        "[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check-config", "--config", tls.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}

#[test]
fn print_config_is_a_configuration_that_changes_nothing() {
    let file = tmp("some.toml");
    let text = "[server]\nthreads = 3\n[timeouts]\nidle = \"90s\"\nrequest = \"20s\"\n[pubsub]\nhistory_size = 7\nbroker = \"local\"\n[http]\nallowed_origins = [\"https://app.example\"]\n[auth]\nprivate_channels = [\"vip-*\"]\n[limits]\nper_ip_connections = 9\ntrusted_proxies = [\"10.0.0.0/8\"]\n";
    std::fs::write(&file, text).unwrap();
    let (code, printed, err) = run(&["print-config", "--config", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let again = Config::from_toml(&printed, "print-config").unwrap();
    assert_eq!(again, Config::load(&file).unwrap());
    // Every section is written out, defaults included.
    for section in [
        "[server]",
        "[limits]",
        "[timeouts]",
        "[deflate]",
        "[pubsub]",
        "[tls]",
        "[http]",
        "[auth]",
    ] {
        assert!(printed.contains(section), "{section} missing:\n{printed}");
    }
    let (_, defaults, _) = run(&["print-config"]);
    assert_eq!(Config::from_toml(&defaults, "print-config").unwrap(), Config::default());
    // Written back to a file, it checks.
    let back = tmp("printed.toml");
    std::fs::write(&back, &printed).unwrap();
    assert_eq!(run(&["check-config", "--config", back.to_str().unwrap()]).0, Some(0));
}

#[test]
fn the_start_line_says_what_started_and_never_the_token() {
    let (child, line, addr, _) = start(
        &["serve", "--bind", "127.0.0.1:0", "--threads", "2"],
        &[("WSREACTOR_PUBLISH_TOKEN", "start-line-secret")],
    );
    stop(child);
    for part in [
        format!("wsreactor {}", env!("CARGO_PKG_VERSION")),
        format!("listening on {addr} with 2 worker thread(s)"),
        "config: built-in defaults".into(),
        "broker: local".into(),
        "publish token: set".into(),
        format!("demo page: http://{addr}/"),
    ] {
        assert!(line.contains(&part), "{part:?} not in {line}");
    }
    assert!(!line.contains("start-line-secret"));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (child, line, addr, mut stderr) = start(&["--log-format", "json", "serve", "--bind", "127.0.0.1:0"], &[]);
    assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200 "));
    stop(child);
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    for l in std::iter::once(line.as_str())
        .chain(rest.lines())
        .filter(|l| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        for key in ["ts", "level", "target", "msg"] {
            assert!(v.get(key).is_some(), "{key} missing: {l}");
        }
    }
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "INFO");
    assert!(v["msg"].as_str().unwrap().starts_with("wsreactor "));
}

#[test]
fn binds_by_host_name_and_on_ipv6() {
    for bind in ["localhost:0", "[::1]:0"] {
        let (child, _, addr, _) = start(&["serve", "--bind", bind, "--threads", "1"], &[]);
        let answer = get(addr, "/healthz");
        stop(child);
        assert!(answer.starts_with("HTTP/1.1 200 "), "{bind}: {answer}");
        assert!(addr.ip().is_loopback(), "{bind}: {addr}");
    }
    let (code, _, err) = run(&["serve", "--bind", "no-such-host.invalid:80"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no-such-host.invalid"), "{err}");
}

#[test]
fn serve_help_shows_the_defaults() {
    let (_, help, _) = run(&["serve", "--help"]);
    for default in ["default 127.0.0.1:9001", "default 0", "default local"] {
        assert!(help.contains(default), "{default} not in:\n{help}");
    }
}

#[test]
fn completions_and_the_man_page_come_from_the_flags() {
    let (code, bash, _) = run(&["completions", "bash"]);
    assert_eq!(code, Some(0));
    assert!(
        bash.contains("_wsreactor") && bash.contains("--max-p99"),
        "{}",
        &bash[..200.min(bash.len())]
    );
    let (code, zsh, _) = run(&["completions", "zsh"]);
    assert!(code == Some(0) && zsh.contains("#compdef wsreactor"));
    let (code, man, _) = run(&["man"]);
    assert_eq!(code, Some(0));
    assert!(
        man.contains(".TH wsreactor 1") && man.contains("check\\-config"),
        "{}",
        &man[..300.min(man.len())]
    );
}

#[test]
fn metrics_carry_the_build_info() {
    let (child, _, addr, _) = start(&["serve", "--bind", "127.0.0.1:0", "--threads", "1"], &[]);
    let page = get(addr, "/metrics");
    let ready = get(addr, "/readyz");
    stop(child);
    let line = format!("wsreactor_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    assert!(page.lines().any(|l| l == line), "{line} not in /metrics");
    assert!(ready.starts_with("HTTP/1.1 200 "), "{ready}");
    // Every family served is in the operators' table.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operating.md")).unwrap();
    let families: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(families.len() > 10, "{page}");
    for name in families {
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} is served but not in docs/operating.md's Metrics"
        );
    }
}

#[test]
fn the_example_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/wsreactor.service")).unwrap();
    assert!(unit.contains("LimitNOFILE=1048576"));
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: the unit was not verified");
        return;
    };
    // The unit names the installed binary; verify it against this build.
    let path = tmp("wsreactor.service");
    std::fs::write(&path, unit.replace("/usr/bin/wsreactor", BIN)).unwrap();
    // --man=no: the man page (`wsreactor man`) is not installed here.
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {err}");
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn the_access_log_has_a_line_per_response_and_websocket_session() {
    let (child, _, addr, mut stderr) = start(
        &["serve", "--bind", "127.0.0.1:0", "--threads", "1", "--access-log"],
        &[],
    );
    assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200 "));
    assert!(get(addr, "/nope?token=s3cret-in-a-query").starts_with("HTTP/1.1 404 "));
    // A WebSocket session, closed by the client with 1000.
    let mut ws = std::net::TcpStream::connect(addr).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        ws,
        "GET /ws/news?since=0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = ws.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 101 "));
    // A masked close frame with code 1000 (RFC 6455 §5.5.1).
    let mask = [1u8, 2, 3, 4];
    let payload = [0x03u8 ^ mask[0], 0xe8 ^ mask[1]];
    ws.write_all(&[0x88, 0x82, mask[0], mask[1], mask[2], mask[3], payload[0], payload[1]])
        .unwrap();
    let _ = ws.read(&mut buf);
    std::thread::sleep(Duration::from_millis(300));
    stop(child);
    let mut log = String::new();
    let _ = stderr.read_to_string(&mut log);
    let access: Vec<&str> = log.lines().filter(|l| l.contains("wsreactor::access")).collect();
    let has = |part: &str| access.iter().any(|l| l.contains(part));
    assert!(has("127.0.0.1:") && has("\"GET /healthz\" 200 3 "), "{log}");
    assert!(has("\"GET /nope\" 404 "), "{log}");
    assert!(has("\"GET /ws/news\" 101 - "), "{log}");
    assert!(has("\"GET /ws/news\" websocket closed by the peer with 1000"), "{log}");
    assert!(!log.contains("s3cret-in-a-query"), "a query reached the log:\n{log}");
    // Off by default.
    let (child, _, addr, mut stderr) = start(&["serve", "--bind", "127.0.0.1:0", "--threads", "1"], &[]);
    get(addr, "/healthz");
    stop(child);
    let mut log = String::new();
    let _ = stderr.read_to_string(&mut log);
    assert!(!log.contains("wsreactor::access"), "{log}");
}
