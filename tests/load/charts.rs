//! The load tool's charts as a reader of a report sees them: each made by
//! the binary from a real short run, rendered to PNG by headless Chromium
//! under `target/charts/` (to look at), and checked for their wording and
//! for tick labels written as a person writes numbers. `load compare`'s
//! run is also where its line per run and its note on a reused server's
//! memory are checked, as an operator would meet them: stderr not a
//! terminal, the server the same for every run.

use crate::common::chromium;
use crate::Serve;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `target/charts/`, beside the test's temporary directory.
fn charts_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let dir = target.join("charts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `wsreactor load ARGS`, stdout and stderr captured (not terminals).
fn wsreactor_load(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .arg("load")
        .args(args)
        .env("RUST_LOG", "off")
        .env_remove("WSREACTOR_PUBLISH_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wsreactor load {args:?}: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The texts of an SVG, in order.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            t.split_once('>')?
                .1
                .split_once("</text>")
                .map(|(s, _)| s.trim().to_owned())
        })
        .collect()
}

/// A tick label that a person would not write: `12000.0`, `0.50`, `90.0%`
/// (a zero ending the decimals), or `12000` (thousands not grouped).
fn clumsy_number(label: &str) -> bool {
    let bare = label.trim_end_matches(['%', 'k', 'M']);
    let numeric = !bare.is_empty()
        && bare
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == '.');
    if !numeric {
        return false;
    }
    match bare.split_once('.') {
        Some((_, decimals)) => decimals.ends_with('0'),
        None => !bare.contains(',') && bare.trim_start_matches('-').len() > 4,
    }
}

/// Render `svg` to `NAME.png` beside it, of its own size; check the image
/// is one (a PNG of that size) with something drawn in it.
fn render(svg: &Path) -> PathBuf {
    let text = std::fs::read_to_string(svg).unwrap();
    let dim = |name: &str| -> u32 {
        let at = text.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        text[at..].split('"').next().unwrap().parse().unwrap()
    };
    let (w, h) = (dim("width"), dim("height"));
    let png = svg.with_extension("png");
    chromium::screenshot(svg, &png, (w, h));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", png.display());
    // IHDR: the width and height, big-endian, from byte 16.
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), (w, h), "{}", png.display());
    // A white page compresses to a few hundred bytes; lines, markers and
    // text do not.
    assert!(bytes.len() > 8 << 10, "{}: {} bytes", png.display(), bytes.len());
    png
}

/// What every chart must and must not say.
fn check_chart(svg: &Path, wording: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(svg).unwrap();
    let labels = texts(&text);
    for w in wording {
        assert!(
            labels.iter().any(|l| l.contains(w)),
            "{}: no {w:?} in {labels:?}",
            svg.display()
        );
    }
    for wrong in ["deliverys", "echos", "round trips per second", "cycless"] {
        assert!(!text.contains(wrong), "{}: {wrong:?}", svg.display());
    }
    let clumsy: Vec<&String> = labels.iter().filter(|l| clumsy_number(l)).collect();
    assert!(clumsy.is_empty(), "{}: tick labels {clumsy:?}", svg.display());
    labels
}

#[test]
fn a_tick_label_is_clumsy_as_a_person_would_say() {
    for clumsy in ["12000.0", "0.50", "90.0%", "12000", "2.0"] {
        assert!(clumsy_number(clumsy), "{clumsy}");
    }
    for fine in [
        "12,000",
        "0.5",
        "99.9%",
        "0",
        "250",
        "1.2M",
        "-1,500",
        "echoes per second",
        "127.0.0.1:80",
    ] {
        assert!(!clumsy_number(fine), "{fine}");
    }
}

#[test]
fn the_charts_render_in_chromium_with_their_wording_and_ticks() {
    let dir = charts_dir();
    let server = Serve::start(&[]);
    let ws = format!("ws://{}/", server.addr);

    // Echo: the latency by percentile, and the run over time.
    let echo = dir.join("echo.svg");
    let out = wsreactor_load(&[
        "--url",
        &ws,
        "--connections",
        "4",
        "--duration",
        "2s",
        "--rate",
        "400",
        "--quiet",
        "--plot",
        echo.to_str().unwrap(),
    ]);
    let echo_over_time = dir.join("echo-over-time.svg");
    assert!(String::from_utf8_lossy(&out.stderr).contains("echo-over-time.svg"));
    let labels = check_chart(&echo, &["latency by percentile", "round trip from schedule", "99%"]);
    assert!(labels.iter().any(|l| l == "90%"), "{labels:?}");
    check_chart(
        &echo_over_time,
        &[
            "echoes per second",
            "round trip p50",
            "round trip p99",
            "open connections",
        ],
    );

    // Subscribe: deliveries, the plural the issue found built as "deliverys".
    let sub = dir.join("subscribe.svg");
    wsreactor_load(&[
        "--url",
        &server.url("charts"),
        "--mode",
        "subscribe",
        "--connections",
        "10",
        "--rate",
        "50",
        "--duration",
        "2s",
        "--quiet",
        "--plot",
        sub.to_str().unwrap(),
    ]);
    let sub_over_time = dir.join("subscribe-over-time.svg");
    check_chart(&sub, &["delivery from schedule"]);
    check_chart(&sub_over_time, &["deliveries per second", "delivery p50"]);
    drop(server);

    // Compare, on a server of its own that every run reuses.
    let server = Serve::start(&[]);
    let http = format!("http://{}/", server.addr);
    let pid = server.child.id().to_string();
    let compare = dir.join("compare.svg");
    let out = wsreactor_load(&[
        "compare",
        "--url",
        &http,
        "--channel",
        "charts",
        "--connections",
        "10",
        "--connect-rate",
        "0",
        "--rate",
        "40",
        "--size",
        "64",
        "--duration",
        "1s",
        "--poll-interval",
        "100ms",
        "--rounds",
        "1",
        "--transports",
        "poll,ws",
        "--timeout",
        "5s",
        "--server-pid",
        &pid,
        "--plot",
        compare.to_str().unwrap(),
    ]);
    drop(server);
    check_chart(&compare, &["the transports compared", "poll", "ws", "server to client"]);

    // A line per run on stderr though it is no terminal, each begun when
    // its run starts and ended with its figures.
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (n, transport) in [(1, "poll"), (2, "ws")] {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("round 1/1, run {n}/2: {transport} ... done in ")))
            .unwrap_or_else(|| panic!("no line for run {n}:\n{stderr}"));
        assert!(line.contains(" deliveries/s, p99 ") && line.ends_with(" ms"), "{line}");
    }
    // The second run's server had served the first: its memory per
    // subscriber is no figure, and the table says why.
    let table = String::from_utf8_lossy(&out.stdout);
    let ws_row = table.lines().find(|l| l.starts_with("ws ")).unwrap();
    assert!(ws_row.contains(" n/a*"), "{table}");
    assert!(!ws_row.split_whitespace().any(|cell| cell == "0*"), "{table}");
    assert!(table.contains("the server process was reused in "), "{table}");

    for svg in [&echo, &echo_over_time, &sub, &sub_over_time, &compare] {
        let png = render(svg);
        eprintln!("{}", png.display());
    }
}
