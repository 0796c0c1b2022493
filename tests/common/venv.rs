//! The Python virtualenv `target/test-venv`, with the `websockets`
//! client (tests/requirements-deflate.txt), for the tests that use a
//! Python peer; and running a command with a time bound.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Run `cmd` to completion within `within`, killing it if it takes longer.
/// Returns (success, stdout, stderr).
pub fn run_bounded(cmd: &mut Command, within: Duration) -> (bool, String, String) {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    match status {
        Some(status) => (status.success(), out, err),
        None => (
            false,
            out,
            format!("{err}\n[killed: still running after {within:?}: {what}]"),
        ),
    }
}

/// The Python of `target/test-venv`, with `websockets` installed.
///
/// Creates the virtualenv if it is missing (`python3 -m venv`, then pip with
/// `tests/requirements-deflate.txt`), under an exclusive `flock` on
/// `target/test-venv.lock` so that concurrent test processes do it once. A
/// marker file, written last, says the install completed. Panics, with how
/// to fix it, if the virtualenv cannot be made.
pub fn venv_python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON.get_or_init(make_venv).clone().unwrap_or_else(|e| panic!("{e}"))
}

fn make_venv() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let requirements = root.join("tests/requirements-deflate.txt");
    let venv = root.join("target/test-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".wsreactor-deflate-requirements");
    let wanted = std::fs::read_to_string(&requirements).map_err(|e| format!("{}: {e}", requirements.display()))?;
    let fix = "the permessage-deflate interop tests need the Python `websockets` client in target/test-venv; \
               create it with: python3 -m venv target/test-venv && \
               target/test-venv/bin/pip install -r tests/requirements-deflate.txt \
               (tests/run-all.sh does this)";

    std::fs::create_dir_all(root.join("target")).map_err(|e| e.to_string())?;
    let lock = File::create(root.join("target/test-venv.lock")).map_err(|e| e.to_string())?;
    // SAFETY: flock on a descriptor we own; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "flock target/test-venv.lock: {}",
            std::io::Error::last_os_error()
        ));
    }
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && python.exists() {
        return Ok(python);
    }
    eprintln!(
        "deflate tests: setting up {} (python3 -m venv, pip install websockets)",
        venv.display()
    );
    if !python.exists() {
        let (ok, out, err) = run_bounded(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            Duration::from_secs(300),
        );
        if !ok {
            return Err(format!(
                "python3 -m venv {} failed:\n{out}\n{err}\n{fix}",
                venv.display()
            ));
        }
    }
    let (ok, out, err) = run_bounded(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
        Duration::from_secs(600),
    );
    if !ok {
        return Err(format!(
            "pip install -r {} failed:\n{out}\n{err}\n{fix}",
            requirements.display()
        ));
    }
    let (ok, out, err) = run_bounded(
        Command::new(&python).args(["-c", "import websockets.sync.client"]),
        Duration::from_secs(60),
    );
    if !ok {
        return Err(format!(
            "websockets does not import after pip install:\n{out}\n{err}\n{fix}"
        ));
    }
    std::fs::write(&marker, wanted).map_err(|e| e.to_string())?;
    Ok(python)
}
