//! docs/operating.md's nginx in front of the server, run as written: the
//! block goes in an `http { }` of a configuration of the test's own, with
//! only what a test machine cannot share swapped (the port, the
//! certificate's files, the server's address). Through it, over TLS: the
//! readiness check, a WebSocket upgrade, and an event stream that is not
//! held back. Needs nginx (tests/run-all.sh installs nginx-light).

use crate::common::services::{free_port, until, Proc, TempDir};
use crate::common::{certs, settings, Server};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const NGINX: &str = "/usr/sbin/nginx";

/// nginx's master process, stopped with SIGTERM when dropped: it stops its
/// workers first (a SIGKILL would leave them running).
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child, by its pid.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn snippet() -> String {
    let doc = include_str!("../../docs/operating.md");
    let section = doc.split("\n### At a proxy\n").nth(1).expect("the section");
    let block = section.split("```nginx\n").nth(1).expect("its nginx block");
    block[..block.find("```").unwrap()].to_owned()
}

/// `curl -sk` with `args`: its output.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").arg("-sk").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_documented_proxy_carries_websockets_and_streams_over_tls() {
    assert!(
        std::path::Path::new(NGINX).exists(),
        "{NGINX} is missing: apt-get install -y nginx-light (tests/run-all.sh does)"
    );
    let server = Server::start(settings());
    let dir = TempDir::new("nginx-documented");
    let made = certs::make(&dir.0, "proxy");
    let port = free_port();
    let block = snippet();
    let swapped = block
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace(
            "/etc/letsencrypt/live/push.example.com/fullchain.pem",
            made.cert.to_str().unwrap(),
        )
        .replace(
            "/etc/letsencrypt/live/push.example.com/privkey.pem",
            made.key.to_str().unwrap(),
        )
        .replace("http://127.0.0.1:9001", &format!("http://{}", server.addr));
    for (was, what) in [
        ("listen 443 ssl;", "the port"),
        ("privkey.pem", "the key"),
        ("127.0.0.1:9001", "the upstream"),
    ] {
        assert!(
            block.contains(was) && !swapped.contains(was),
            "the block's {what} changed: update this test"
        );
    }
    let prefix = dir.0.display().to_string();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {prefix}/body;\n proxy_temp_path {prefix}/proxy;\n\
         fastcgi_temp_path {prefix}/fastcgi;\n uwsgi_temp_path {prefix}/uwsgi;\n scgi_temp_path {prefix}/scgi;\n\
         {swapped}\n}}\n"
    );
    let conf_path = dir.0.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let nginx = Nginx(
        Command::new(NGINX)
            .args(["-p", &prefix, "-c"])
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("https://127.0.0.1:{port}");
    until("nginx up", Duration::from_secs(10), || {
        curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/readyz")]) == "200"
    });
    // A WebSocket upgrade through it.
    let upgrade = curl(&[
        "--http1.1",
        "-i",
        "--max-time",
        "2",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        &format!("{base}/ws/news"),
    ]);
    assert!(upgrade.starts_with("HTTP/1.1 101 "), "{upgrade}");
    assert!(upgrade.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{upgrade}");
    // An event stream, each message through as it is published.
    let mut stream = Proc(
        Command::new("curl")
            .args(["-skN", &format!("{base}/sse/news")])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(stream.0.stdout.take().unwrap()).lines();
    until("the stream open", Duration::from_secs(10), || {
        let mut c = crate::common::Client::connect(server.addr);
        crate::common::publish(&mut c, "news", "through nginx")["subscribers"].as_u64() == Some(1)
    });
    let data = lines.find_map(|l| l.ok().filter(|l| l.starts_with("data:")));
    assert_eq!(data.as_deref(), Some("data: through nginx"));
    drop(stream);
    drop(nginx);
}
