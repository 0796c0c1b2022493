//! permessage-deflate (RFC 7692) over real sockets.
//!
//! - Against an independent implementation: `tests/deflate_client.py`, the
//!   Python `websockets` client (PyPI), negotiates compression with the
//!   in-process server and checks that messages of 0 B to 1 MiB are echoed
//!   exactly, compressed from `min_size` on, in each context-takeover mode.
//!   It runs in the virtualenv `target/test-venv`, which [`venv_python`]
//!   creates when it is missing (`tests/run-all.sh` creates it beforehand);
//!   if that fails, the tests fail: they never pass without having run.
//! - Over the raw client of `tests/common`, with payloads compressed here by
//!   flate2: a decompression bomb closes with 1009 without the server's
//!   memory growing by the bomb's size, corrupt data closes with 1007, and
//!   RSV1 without a negotiated extension closes with 1002.

mod common;

use common::venv::{run_bounded, venv_python};
use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::path::Path;
use std::process::Command;
use std::sync::RwLock;
use std::time::Duration;
use wsreactor::reactor::settings::Settings;

const MIB: usize = 1 << 20;

/// The bomb test measures this process's RSS, which every in-process server
/// shares: it takes the lock for writing, the other tests for reading.
static MEMORY: RwLock<()> = RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    MEMORY.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    MEMORY.write().unwrap_or_else(|e| e.into_inner())
}

/// Run `tests/deflate_client.py` against `server`; returns its stdout.
fn python_client(server: &Server, args: &[&str]) -> String {
    let python = venv_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deflate_client.py");
    let url = format!("ws://{}/", server.addr);
    let (ok, out, err) = run_bounded(
        Command::new(python).arg(script).arg(&url).args(args),
        Duration::from_secs(180),
    );
    assert!(
        ok,
        "tests/deflate_client.py {url} {args:?} failed:\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    assert!(out.lines().any(|l| l == "ok"), "{out}");
    out
}

fn deflate_settings(server_no_context_takeover: bool, client_no_context_takeover: bool) -> Settings {
    let mut s = settings();
    s.deflate.server_no_context_takeover = server_no_context_takeover;
    s.deflate.client_no_context_takeover = client_no_context_takeover;
    s
}

/// Interop in one mode: the negotiated header must be `header`.
fn interop(server_nct: bool, client_nct: bool, header: &str) {
    let _shared = shared();
    let s = deflate_settings(server_nct, client_nct);
    let min_size = s.deflate.min_size.to_string();
    let server = Server::start(s);
    // What the server sends is compressed with its context kept or not.
    let mode = if server_nct { "--no-takeover" } else { "--takeover" };
    let out = python_client(&server, &["--expect-extension", header, "--min-size", &min_size, mode]);
    assert!(out.contains(&format!("extensions: {header}\n")), "{out}");
    assert!(out.contains("echoed 1048576: "), "{out}");
}

#[test]
fn python_websockets_no_context_takeover_default() {
    let defaults = Settings::default().deflate;
    assert!(defaults.server_no_context_takeover && defaults.client_no_context_takeover);
    interop(
        true,
        true,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    );
}

#[test]
fn python_websockets_context_takeover() {
    interop(false, false, "permessage-deflate");
}

#[test]
fn python_websockets_server_takeover_client_no_takeover() {
    interop(false, true, "permessage-deflate; client_no_context_takeover");
}

#[test]
fn python_websockets_min_size_zero_compresses_everything() {
    let _shared = shared();
    let mut s = settings();
    s.deflate.min_size = 0;
    let server = Server::start(s);
    python_client(&server, &["--min-size", "0", "--no-takeover"]);
}

// ---------------------------------------------------------------------------
// Raw socket tests: payloads compressed here with flate2 (raw DEFLATE).

const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// Upgrade with `extensions` offered; returns the client and the
/// `Sec-WebSocket-Extensions` of the 101, if any.
fn upgrade_offering(server: &Server, extensions: &str) -> (Client, Option<String>) {
    let mut c = Client::connect(server.addr);
    let req = upgrade_request().replace(
        "\r\n\r\n",
        &format!("\r\nSec-WebSocket-Extensions: {extensions}\r\n\r\n"),
    );
    c.write(req.as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 101, "{r:?}");
    assert_eq!(r.header("sec-websocket-accept"), Some(ACCEPT), "{r:?}");
    let ext = r.header("sec-websocket-extensions").map(str::to_owned);
    (c, ext)
}

/// Raw DEFLATE of `data` as one message (§7.2.1): sync flush, tail removed.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert_eq!(c.total_in() as usize, data.len());
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// Raw DEFLATE of `total` zero bytes, built 64 KiB at a time so the test
/// itself never holds the inflated size.
fn deflate_zeros(total: usize) -> Vec<u8> {
    let zeros = vec![0u8; 64 * 1024];
    let mut c = Compress::new(Compression::best(), false);
    let mut out = Vec::new();
    while (c.total_in() as usize) < total {
        out.reserve(64 * 1024);
        let left = total - c.total_in() as usize;
        c.compress_vec(&zeros[..left.min(zeros.len())], &mut out, FlushCompress::None)
            .unwrap();
    }
    loop {
        out.reserve(64 * 1024);
        c.compress_vec(&[], &mut out, FlushCompress::Sync).unwrap();
        if out.ends_with(&[0, 0, 0xff, 0xff]) {
            break;
        }
    }
    out.truncate(out.len() - 4);
    out
}

/// How many bytes `compressed` inflates to, counted 64 KiB at a time.
fn inflated_size(compressed: &[u8]) -> usize {
    let mut d = Decompress::new(false);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut input = compressed.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut total = 0;
    loop {
        let (in0, out0) = (d.total_in(), d.total_out());
        let status = d
            .decompress(&input[in0 as usize..], &mut chunk, FlushDecompress::Sync)
            .unwrap();
        total += (d.total_out() - out0) as usize;
        if status == Status::StreamEnd || (d.total_in() == in0 && d.total_out() == out0) {
            return total;
        }
    }
}

/// A `kB` line of /proc/self/status, in bytes.
fn proc_status(key: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/self/status"));
    let kb: usize = line[key.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// Reset VmHWM (peak RSS) to the current RSS (proc(5), clear_refs "5").
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A message that inflates to 64 MiB, against max_message_size = 1 MiB:
/// close 1009, and the server (in this process) does not grow by anything
/// near 64 MiB at any moment: both the RSS after and the peak RSS during
/// (VmHWM, reset before) stay within 16 MiB of the RSS before. Once as one
/// frame, once in 16 fragments (each inflating to 4 MiB, past the limit
/// summed over the message, not per frame).
#[test]
fn decompression_bomb_closes_1009_without_ballooning() {
    let _exclusive = exclusive();
    const BOMB: usize = 64 * MIB;
    const ALLOWED_GROWTH: usize = 16 * MIB;
    let bomb = deflate_zeros(BOMB);
    assert!(bomb.len() < 128 * 1024, "bomb is {} bytes compressed", bomb.len());
    assert_eq!(inflated_size(&bomb), BOMB);

    let mut s = settings();
    s.read_limits.max_message_size = MIB;
    let server = Server::start(s);

    // The bomb in one frame, then the same bytes split into 16 fragments.
    let one = encode(true, 0b100, BINARY, Some(MASK), &bomb);
    let step = bomb.len().div_ceil(16);
    let mut fragmented = Vec::new();
    for (i, part) in bomb.chunks(step).enumerate() {
        let last = (i + 1) * step >= bomb.len();
        let (rsv, opcode) = if i == 0 { (0b100, TEXT) } else { (0, CONT) };
        fragmented.extend(encode(last, rsv, opcode, Some(MASK), part));
    }

    for (what, wire) in [("one frame", one), ("16 fragments", fragmented)] {
        let (mut c, ext) = upgrade_offering(&server, OFFER);
        assert!(
            ext.as_deref().unwrap_or("").starts_with("permessage-deflate"),
            "{ext:?}"
        );
        // A small compressed message first, so the connection's buffers
        // and inflater have been used once before the baseline.
        let hello = b"{\"hello\": \"world\", \"padding\": \"................................\"}";
        c.write(&encode(true, 0b100, TEXT, Some(MASK), &deflate(hello)));
        let echo = c.recv();
        assert_eq!((echo.opcode, echo.rsv), (TEXT, 0b100), "{echo:?}");

        let before = proc_status("VmRSS");
        let peak_reset = reset_peak_rss();
        c.write(&wire);
        c.expect_close(1009);
        c.expect_eof();
        let after = proc_status("VmRSS");
        let peak = proc_status("VmHWM");
        eprintln!(
            "bomb ({what}, {} B compressed, {} MiB inflated): RSS {} KiB before, {} KiB after, peak {} KiB{}",
            bomb.len(),
            BOMB / MIB,
            before / 1024,
            after / 1024,
            peak / 1024,
            if peak_reset {
                ""
            } else {
                " (peak not reset: clear_refs not writable)"
            }
        );
        assert!(
            after.saturating_sub(before) < ALLOWED_GROWTH,
            "{what}: RSS grew by {} KiB",
            (after - before) / 1024
        );
        if peak_reset {
            assert!(
                peak.saturating_sub(before) < ALLOWED_GROWTH,
                "{what}: peak RSS {} KiB over the baseline",
                (peak - before) / 1024
            );
        }
    }
    assert!(server.wait_for(|s| &s.protocol_errors, 2, IO_TIMEOUT));
}

/// Send `wire` on a connection that negotiated compression: close `code`.
fn negotiated_fails(wire: &[u8], code: u16) {
    let _shared = shared();
    let server = Server::start(settings());
    let (mut c, ext) = upgrade_offering(&server, OFFER);
    assert!(ext.is_some());
    c.write(wire);
    c.expect_close(code);
    c.expect_eof();
}

#[test]
fn corrupt_compressed_data_closes_1007() {
    // BFINAL=1, BTYPE=11: a reserved block type (RFC 1951 §3.2.3).
    negotiated_fails(&encode(true, 0b100, BINARY, Some(MASK), &[0xff; 16]), 1007);
    // A stored block whose LEN and NLEN disagree.
    negotiated_fails(
        &encode(
            true,
            0b100,
            BINARY,
            Some(MASK),
            &[0x00, 0x05, 0x00, 0x05, 0x00, 1, 2, 3, 4, 5],
        ),
        1007,
    );
    // A back-reference before the start of the window: the second of two
    // messages compressed with context takeover, sent alone.
    let msg = b"{\"event\": \"price_update\", \"symbol\": \"ABC\", \"price\": 101.25}";
    let mut c = Compress::new(Compression::default(), false);
    let mut first = Vec::with_capacity(256);
    c.compress_vec(msg, &mut first, FlushCompress::Sync).unwrap();
    let mut second = Vec::with_capacity(256);
    c.compress_vec(msg, &mut second, FlushCompress::Sync).unwrap();
    second.truncate(second.len() - 4);
    assert!(second.len() < msg.len() / 2, "{second:?}");
    negotiated_fails(&encode(true, 0b100, BINARY, Some(MASK), &second), 1007);
}

#[test]
fn compressed_invalid_utf8_text_closes_1007() {
    negotiated_fails(
        &encode(true, 0b100, TEXT, Some(MASK), &deflate(&[b'a', 0xff, 0xfe, b'b'])),
        1007,
    );
}

#[test]
fn rsv1_on_continuation_or_control_frame_closes_1002() {
    let part = deflate(b"hello hello hello hello");
    let mut wire = encode(false, 0b100, TEXT, Some(MASK), &part[..4]);
    wire.extend(encode(true, 0b100, CONT, Some(MASK), &part[4..]));
    negotiated_fails(&wire, 1002);
    negotiated_fails(&encode(true, 0b100, PING, Some(MASK), b"x"), 1002);
}

#[test]
fn rsv1_without_negotiation_closes_1002() {
    let _shared = shared();
    let wire = encode(true, 0b100, TEXT, Some(MASK), &deflate(b"Hello"));

    // No offer.
    let server = Server::start(settings());
    let mut c = Client::upgrade(server.addr);
    c.write(&wire);
    c.expect_close(1002);
    c.expect_eof();

    // An offer, declined because the server has compression turned off.
    let mut s = settings();
    s.deflate.enabled = false;
    let server = Server::start(s);
    let (mut c, ext) = upgrade_offering(&server, OFFER);
    assert_eq!(ext, None);
    c.write(&wire);
    c.expect_close(1002);
    c.expect_eof();
}
