//! The built binary refuses a bad configuration file the way a person and a
//! script need: exit status 2, and one message on stderr naming the file and
//! the key, with no panic.
//!
//! Every case here fails before the server binds, so nothing listens.

mod operator;

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

#[test]
fn an_empty_publish_token_is_refused_not_taken_for_none() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["serve", "--bind", "127.0.0.1:0", "--publish-token="])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--publish-token") && stderr.contains("pubsub.publish_token"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("WSREACTOR_PUBLISH_TOKEN", "")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("WSREACTOR_PUBLISH_TOKEN"), "{stderr}");
}

#[test]
fn the_publish_token_can_come_from_the_environment_and_is_not_logged() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["serve", "--bind", "127.0.0.1:0", "--threads", "1"])
        .env("WSREACTOR_PUBLISH_TOKEN", "env-s3cret")
        .env("RUST_LOG", "debug")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut line, mut log) = (String::new(), String::new());
    let addr: std::net::SocketAddr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the server exited:\n{log}");
        log.push_str(&line);
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split(' ').next().unwrap().parse().unwrap();
        }
    };
    let post = |auth: &str| -> String {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        write!(
            c,
            "POST /pub/t HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 1\r\nConnection: close\r\n\r\nx"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
    };
    assert!(post("").starts_with("HTTP/1.1 401 "));
    assert!(post("Authorization: Bearer wrong\r\n").starts_with("HTTP/1.1 403 "));
    assert!(post("Authorization: Bearer env-s3cret\r\n").starts_with("HTTP/1.1 200 "));
    let _ = child.kill();
    let _ = child.wait();
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    log.push_str(&rest);
    assert!(!log.contains("env-s3cret"), "the token is in the log:\n{log}");
}

/// `serve` with `args` and the environment `env` (the secrets' variables
/// cleared first); it must refuse with exit 2: its stderr.
fn refused_with(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsreactor"));
    cmd.args(["serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "off");
    for var in [
        "WSREACTOR_AUTH_SECRET",
        "WSREACTOR_PUBLISH_TOKEN",
        "WSREACTOR_REDIS_PASSWORD",
        "WSREACTOR_API_KEY",
    ] {
        cmd.env_remove(var).env_remove(format!("{var}_FILE"));
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_value_from_the_environment_or_a_flag_is_named_in_its_error_not_the_config_file() {
    let file = config_file("origins", "[server]\nthreads = 2\n");
    let file = file.to_str().unwrap();
    let secret_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-origins-secret");
    std::fs::write(&secret_file, "short\n").unwrap();
    let secret_file = secret_file.to_str().unwrap();
    // (flags, environment, what the error must name)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (
            &[],
            &[("WSREACTOR_AUTH_SECRET", "short")],
            "WSREACTOR_AUTH_SECRET: `auth.secret` must be at least 32 bytes",
        ),
        (
            &["--config", file],
            &[("WSREACTOR_AUTH_SECRET_FILE", secret_file)],
            "WSREACTOR_AUTH_SECRET_FILE (",
        ),
        (
            &["--config", file],
            &[("WSREACTOR_PUBLISH_TOKEN", "has a space")],
            "WSREACTOR_PUBLISH_TOKEN: `pubsub.publish_token` must be printable",
        ),
        (
            &["--config", file],
            &[("WSREACTOR_API_KEY", "short")],
            "WSREACTOR_API_KEY: `api.key` must be at least 16 visible ASCII characters",
        ),
        (
            &["--publish-token", "has a space"],
            &[],
            "--publish-token: `pubsub.publish_token`",
        ),
        (
            &["--config", file, "--threads", "100000"],
            &[],
            "--threads: `server.threads` must be at most",
        ),
    ];
    for (args, env, named) in cases {
        let stderr = refused_with(args, env);
        assert!(stderr.contains(named), "{args:?} {env:?}: {stderr}");
        assert!(
            !stderr.contains("built-in defaults") && !stderr.contains(file),
            "{args:?} {env:?}: {stderr}"
        );
    }
    // The file is still named for what it set.
    let bad = config_file("origins-bad", "[auth]\nsecret = \"short\"\n");
    let stderr = refused_with(&["--config", bad.to_str().unwrap()], &[]);
    assert!(
        stderr.contains(&format!("{}: `auth.secret`", bad.display())),
        "{stderr}"
    );
}
