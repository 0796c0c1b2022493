//! The README's "The load tool in one minute", run as written: the server
//! it starts is one of this test's own on a free port in place of
//! 127.0.0.1:9001, `wsreactor` is this build, and each load command must
//! exit 0 and write what it says it writes.

use crate::Serve;
use std::process::Command;

/// The section's shell block: its commands, continuation lines joined.
fn commands() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("\n## The load tool in one minute\n")
        .nth(1)
        .expect("the README's load quick start");
    let block = section.split("```sh\n").nth(1).expect("its shell block");
    let block = &block[..block.find("```").expect("the block's end")];
    block.replace("\\\n", " ").lines().map(str::to_owned).collect()
}

#[test]
fn the_load_quick_start_works_as_written() {
    let commands = commands();
    assert_eq!(
        commands.len(),
        3,
        "the section's commands changed: update this test: {commands:?}"
    );
    assert_eq!(commands[0], "wsreactor serve &", "the first starts the server");
    let server = Serve::start(&[]);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("readme-load");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_wsreactor")).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    for command in &commands[1..] {
        let command = command.replace("127.0.0.1:9001", &server.addr.to_string());
        let out = Command::new("bash")
            .args(["-c", &command])
            .env("PATH", &path)
            .current_dir(&dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{command}: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("verdict      passed"), "{command}:\n{stdout}");
    }
    // What the first says it writes.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("echo.json")).unwrap()).unwrap();
    assert_eq!(json["connections"]["opened"], 200);
    assert!(std::fs::read_to_string(dir.join("echo.svg")).unwrap().contains("<svg"));
}
