//! docs/operating.md's token minting, run as written: its Python (PyJWT,
//! from target/test-venv) and its JavaScript (under Node) print the token
//! they make, and the token opens `/poll/private-alice` on a server with
//! the snippets' secret, where no token gets `403`, as the document says.

use crate::common::venv::{run_bounded, venv_python};
use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use wsreactor::auth::Auth;
use wsreactor::reactor::settings::Settings;

/// The code block of `lang` in the section "Subscriber tokens".
fn snippet(lang: &str) -> String {
    let doc = include_str!("../../docs/operating.md");
    let section = doc.split("\n## Subscriber tokens\n").nth(1).expect("the section");
    let section = section.split("\n## ").next().unwrap();
    let block = section
        .split(&format!("```{lang}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("its {lang} block"));
    block[..block.find("```").unwrap()].to_owned()
}

/// The `SECRET` the snippet names.
fn secret_of(code: &str) -> String {
    let line = code.lines().find(|l| l.contains("SECRET = ")).expect("a SECRET");
    line.split('"').nth(1).expect("a quoted secret").to_owned()
}

/// The status of a long poll of `private-alice` with `token`, if any.
fn poll_status(server: &Server, token: Option<&str>) -> u16 {
    let bearer = token.map(|t| format!("Authorization: Bearer {t}"));
    let headers: Vec<&str> = bearer.iter().map(String::as_str).collect();
    Client::connect(server.addr)
        .request("GET", "/poll/private-alice?since=0&wait=0", &headers, b"")
        .status
}

fn token_from(cmd: &mut Command) -> String {
    let (ok, out, err) = run_bounded(cmd, Duration::from_secs(30));
    assert!(ok, "{cmd:?}:\n{out}\n{err}");
    let token = out.trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token:?}");
    token
}

#[test]
fn the_documented_tokens_open_a_private_channel() {
    let (python, js) = (snippet("python"), snippet("js"));
    let secret = secret_of(&python);
    assert_eq!(secret, secret_of(&js), "the two snippets' secrets differ");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("documented-tokens");
    std::fs::create_dir_all(&dir).unwrap();
    let (py_file, js_file) = (dir.join("mint.py"), dir.join("mint.mjs"));
    std::fs::write(&py_file, format!("{python}\nprint(token)\n")).unwrap();
    std::fs::write(&js_file, format!("{js}\nconsole.log(token);\n")).unwrap();
    let from_python = token_from(Command::new(venv_python()).arg(&py_file));
    let from_js = token_from(Command::new("node").arg(&js_file).current_dir(Path::new(&dir)));
    let server = Server::start(Settings {
        auth: Auth::new(vec!["private-*".into()], secret.as_bytes()),
        ..settings()
    });
    assert_eq!(poll_status(&server, None), 403, "no token");
    for token in [&from_python, &from_js] {
        let status = poll_status(&server, Some(token));
        assert!(status == 200 || status == 204, "the token {token} got {status}");
    }
}
