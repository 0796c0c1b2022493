//! An example of `examples/`, run as a program and stopped by its pid.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The example's binary: cargo builds it beside the test for `cargo test`
/// (all targets); `cargo test --test X` alone does not, so it is built
/// here then, with the test's profile.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        let mut build = Command::new(env!("CARGO"));
        // The profile's directory is its name, but for `dev`'s (`debug`).
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(name) => name,
        };
        build.args(["build", "--example", name, "--profile", profile]);
        assert!(build.status().unwrap().success(), "cargo build --example {name}");
    }
    path
}

/// A running example, stopped (by its pid) when dropped.
pub struct Example {
    child: Child,
    /// Where it listens, from the first line it prints (`... on
    /// ws://ADDR/...` or `http://ADDR/...`).
    pub addr: SocketAddr,
}

impl Example {
    /// Start example `name` on a free loopback port.
    pub fn start(name: &str) -> Example {
        let mut child = Command::new(binary(name))
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the example is built with the tests");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Example {
            addr: addr.parse().unwrap(),
            child,
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
