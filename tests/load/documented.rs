//! The commands of docs/ run as written: each is here word for word (and
//! must be in its document so), with only what cannot be the same on a
//! test machine swapped: the addresses and ports for free loopback ones.
//! tests/docs.rs finds them here and fails on a documented command that
//! no test runs.

use crate::common::certs;
use crate::common::services::{free_port, redis_server, until, Proc, TempDir};
use crate::Serve;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `text` with its runs of white space (and line continuations) as one space.
fn flat(text: &str) -> String {
    text.replace("\\\n", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `command` must be in `doc` as written.
fn documented(doc: &str, command: &str) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
    assert!(
        flat(&text).contains(command),
        "{doc} no longer says `{command}`: update this test"
    );
}

/// `bash -c command` with this build as `wsreactor`, in `dir`.
fn shell(command: &str, dir: &Path) -> Command {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_wsreactor")).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new("bash");
    c.args(["-c", &format!("exec {command}")])
        .env("PATH", path)
        .current_dir(dir);
    c
}

/// Run `command` to its end: it must pass.
fn passes(command: &str, dir: &Path) -> String {
    let out = shell(command, dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command}: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn ready(addr: &str, https: bool) -> bool {
    let url = format!("{}://{addr}/readyz", if https { "https" } else { "http" });
    Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", &url])
        .output()
        .is_ok_and(|o| o.stdout == b"200")
}

#[test]
fn the_load_documents_first_command() {
    const COMMAND: &str = "wsreactor load --url ws://127.0.0.1:9001/ --connections 1000 --connect-rate 1000 \
                           --duration 5s --rate 5000 --json out.json --plot latency.svg";
    let command = flat(COMMAND);
    documented("docs/load.md", &command);
    let server = Serve::start(&[]);
    let dir = TempDir::new("documented-load");
    let out = passes(&command.replace("127.0.0.1:9001", &server.addr.to_string()), &dir.0);
    assert!(out.contains("verdict      passed"), "{out}");
    assert!(dir.0.join("out.json").exists() && dir.0.join("latency.svg").exists());
}

#[test]
fn tls_in_the_server_and_a_load_over_it() {
    const SERVE: &str = "wsreactor serve --bind 0.0.0.0:443 --tls-cert fullchain.pem --tls-key privkey.pem";
    const LOAD: &str =
        "wsreactor load --url wss://127.0.0.1:9443/ --insecure --connections 200 --rate 2000 --duration 5s";
    documented("docs/operating.md", SERVE);
    documented("docs/operating.md", LOAD);
    let dir = TempDir::new("documented-tls");
    let made = certs::make(&dir.0, "doc");
    std::fs::copy(&made.cert, dir.0.join("fullchain.pem")).unwrap();
    std::fs::copy(&made.key, dir.0.join("privkey.pem")).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let _server = Proc(
        shell(&SERVE.replace("0.0.0.0:443", &addr), &dir.0)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    until("the TLS server", Duration::from_secs(10), || ready(&addr, true));
    let out = passes(&LOAD.replace("127.0.0.1:9443", &addr), &dir.0);
    assert!(
        out.contains("200 opened") && out.contains("verdict      passed"),
        "{out}"
    );
}

#[test]
fn two_nodes_on_one_redis() {
    const NODES: [&str; 2] = [
        "wsreactor serve --bind 127.0.0.1:9001 --broker redis://127.0.0.1:6379/0",
        "wsreactor serve --bind 127.0.0.1:9002 --broker redis://127.0.0.1:6379/0",
    ];
    let dir = TempDir::new("documented-redis");
    let redis_port = free_port();
    let _redis = redis_server(redis_port, &dir.0, &[]);
    let mut nodes = Vec::new();
    for (node, port) in NODES.iter().zip(["127.0.0.1:9001", "127.0.0.1:9002"]) {
        documented("docs/operating.md", node);
        let addr = format!("127.0.0.1:{}", free_port());
        let command = node
            .replace(port, &addr)
            .replace("127.0.0.1:6379", &format!("127.0.0.1:{redis_port}"));
        nodes.push(Proc(shell(&command, &dir.0).stderr(Stdio::null()).spawn().unwrap()));
        until("a node on the Redis", Duration::from_secs(10), || ready(&addr, false));
    }
}

/// docs/load.md's commands against one server: each as written, but for
/// the server's address (and its pid where the command finds it with
/// pgrep), in a directory of its own; each must pass.
#[test]
fn the_load_documents_other_commands() {
    const COMMANDS: [&str; 5] = [
        "wsreactor load --url ws://127.0.0.1:9001/ --connections 200 --rate 2000 --duration 5 \
         --max-p99 250ms --min-rate 1000 --json out.json || echo \"failed: $?\"",
        "wsreactor load --mode churn --url ws://127.0.0.1:9001/ --connections 50 --duration 5s \
         --size 20 --text --json churn.json",
        "wsreactor load --mode churn --close-on-open --url ws://127.0.0.1:9001/ws/room-1 --connections 100 --duration 5s",
        "wsreactor load --mode subscribe --url http://127.0.0.1:9001/ --channel c --transport sse \
         --connections 1000 --rate 100 --duration 6s --reconnect-storm 2s --reconnect-jitter 1s",
        "wsreactor load compare --url http://127.0.0.1:9001/ --channel bench --connections 100 \
         --rate 10 --size 64 --duration 3s --rounds 1 --server-pid \"$(pgrep -n wsreactor)\" --plot compare.svg",
    ];
    let server = Serve::start(&[]);
    let pid = server.child.id().to_string();
    for (i, command) in COMMANDS.iter().enumerate() {
        let command = flat(command);
        documented("docs/load.md", &command);
        let dir = TempDir::new(&format!("documented-load-{i}"));
        let here = command
            .replace("127.0.0.1:9001", &server.addr.to_string())
            .replace("$(pgrep -n wsreactor)", &pid);
        let out = passes(&here, &dir.0);
        assert!(!out.contains("failed:"), "{command}:\n{out}");
        if !command.contains(" compare ") {
            assert!(out.contains("verdict      passed"), "{command}:\n{out}");
        }
    }
}
