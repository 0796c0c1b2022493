//! The built binary refuses a bad configuration file the way a person and a
//! script need: exit status 2, and one message on stderr naming the file and
//! the key, with no panic.
//!
//! Every case here fails before the server binds, so nothing listens.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Write `text` to a file named for the test, under cargo's scratch dir for
/// integration tests, so parallel tests never share a file.
fn config_file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn serve_with(path: &PathBuf) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["serve", "--config"])
        .arg(path)
        .env("RUST_LOG", "off")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

/// Run `serve` on a file holding `text`; check it exits 2 without a panic
/// and that stderr names the file; return stderr.
fn refused(name: &str, text: &str) -> String {
    let path = config_file(name, text);
    let out = serve_with(&path);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "no file in {stderr}");
    stderr
}

#[test]
fn unknown_key_exits_2_naming_key_and_file() {
    let stderr = refused("unknown-key", "[limits]\nmax_frame = 1\n");
    assert!(stderr.contains("`limits.max_frame`"), "{stderr}");
}

#[test]
fn wrong_type_exits_2_naming_key_and_file() {
    let stderr = refused("wrong-type", "[server]\nthreads = \"four\"\n");
    assert!(stderr.contains("`server.threads`"), "{stderr}");
}

#[test]
fn out_of_range_value_exits_2_naming_key_and_file() {
    let stderr = refused("out-of-range", "[limits]\nread_buffer_size = 10\n");
    assert!(stderr.contains("`limits.read_buffer_size`"), "{stderr}");
}

#[test]
fn missing_file_exits_2_naming_it() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-does-not-exist.toml");
    let out = serve_with(&path);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("cli-does-not-exist.toml"), "{stderr}");
}

#[test]
fn a_bad_broker_flag_exits_2_naming_the_flag_and_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["serve", "--broker", "memcached://127.0.0.1:11211"])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("--broker") && stderr.contains("`pubsub.broker`"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_redis_keeps_the_server_from_starting() {
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["serve", "--bind", "127.0.0.1:0", "--broker"])
        .arg(format!("redis://127.0.0.1:{port}/0"))
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_ne!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}
