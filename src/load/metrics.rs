//! `--metrics-bind ADDR`: the running load's own figures on a Prometheus
//! endpoint (`GET /metrics`), so that a soak test can be watched in
//! Grafana while it runs, as k6's output is.
//!
//! The run's main loop renders the page once a second ([`Figures`]); a
//! thread of its own answers the scrapes, one at a time, each bounded in
//! size and time, and ends with the run.

use super::server_usage::Usage;
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest request head read from a scraper.
const MAX_REQUEST: usize = 8192;
/// How long a scraper may take to send its request or read the page.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

/// The figures of one moment of the run.
#[derive(Debug, Clone, Default)]
pub struct Figures<'a> {
    /// `ramp`, `run` or `closing`.
    pub phase: &'a str,
    /// Connections asked for.
    pub target: usize,
    /// Connections open now.
    pub open: usize,
    /// Messages received so far (echoes, deliveries).
    pub received: u64,
    /// Errors counted so far.
    pub errors: u64,
    /// Received per second over the last second.
    pub per_second: f64,
    /// The server's CPU time and memory (`--server-pid`), and its open
    /// descriptors.
    pub server: Option<(Usage, Option<u64>)>,
}

/// The page for `figures` and every latency so far (µs).
pub fn page(f: &Figures<'_>, latency: &Histogram<u64>) -> String {
    let mut s = String::new();
    let (gauge, counter) = ("gauge", "counter");
    let mut metrics = vec![
        (
            "connections_target",
            gauge,
            "Connections the run asked for.",
            f.target.to_string(),
        ),
        ("connections_open", gauge, "Connections open now.", f.open.to_string()),
        (
            "received_total",
            counter,
            "Messages received (echoes, deliveries).",
            f.received.to_string(),
        ),
        (
            "errors_total",
            counter,
            "Errors counted, of every kind.",
            f.errors.to_string(),
        ),
        (
            "received_per_second",
            gauge,
            "Messages received per second over the last second.",
            format!("{:.1}", f.per_second),
        ),
    ];
    if let Some((usage, fds)) = &f.server {
        let cpu = format!("{:.3}", usage.cpu.as_secs_f64());
        metrics.push((
            "server_cpu_seconds_total",
            counter,
            "The server's CPU time (--server-pid).",
            cpu,
        ));
        let rss = usage.rss.to_string();
        metrics.push((
            "server_resident_bytes",
            gauge,
            "The server's resident memory (--server-pid).",
            rss,
        ));
        if let Some(fds) = fds {
            let help = "The server's open file descriptors (--server-pid).";
            metrics.push(("server_open_fds", gauge, help, fds.to_string()));
        }
    }
    for (name, kind, help, value) in metrics {
        let name = format!("wsreactor_load_{name}");
        let _ = write!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    }
    let _ = writeln!(s, "# HELP wsreactor_load_phase The run's phase.");
    let _ = writeln!(s, "# TYPE wsreactor_load_phase gauge");
    for phase in ["ramp", "run", "closing"] {
        let _ = writeln!(
            s,
            "wsreactor_load_phase{{phase=\"{phase}\"}} {}",
            u8::from(phase == f.phase)
        );
    }
    let name = "wsreactor_load_latency_seconds";
    let _ = writeln!(
        s,
        "# HELP {name} Round trips or deliveries, from the time each was due (or sent, unpaced)."
    );
    let _ = writeln!(s, "# TYPE {name} histogram");
    for le in BUCKETS {
        let below = latency.count_between(0, (le * 1e6) as u64);
        let _ = writeln!(s, "{name}_bucket{{le=\"{le}\"}} {below}");
    }
    let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {}", latency.len());
    let sum: f64 = latency
        .iter_recorded()
        .map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64)
        .sum();
    let _ = writeln!(s, "{name}_sum {:.6}", sum / 1e6);
    let _ = writeln!(s, "{name}_count {}", latency.len());
    s
}

/// Open descriptors of process `pid`, from `/proc`.
pub fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The endpoint: its thread and the page it serves.
pub struct Exporter {
    page: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Exporter {
    /// Listen on `addr` and serve an empty page until the first update.
    pub fn start(addr: SocketAddr) -> io::Result<Exporter> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let page = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, st) = (page.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("load-metrics".into())
            .spawn(move || serve(&listener, &p, &st))?;
        Ok(Exporter {
            page,
            stop,
            thread: Some(thread),
            addr,
        })
    }

    /// The page from now on.
    pub fn update(&self, text: String) {
        if let Ok(mut page) = self.page.lock() {
            *page = text;
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, page: &Mutex<String>, stop: &AtomicBool) {
    while !stop.load(Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let text = page.lock().map(|p| p.clone()).unwrap_or_default();
                let _ = answer(stream, &text);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Read one request head and answer it: the page at `GET /metrics`, 404
/// elsewhere, 400 for what is not a request; then close.
fn answer(mut stream: TcpStream, text: &str) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    // One deadline for the whole scrape, however the bytes trickle in.
    let deadline = std::time::Instant::now() + SCRAPE_TIMEOUT;
    let left = || {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        (!left.is_zero())
            .then_some(left)
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    };
    stream.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST {
            return reply(&mut stream, "431 Request Header Fields Too Large", "");
        }
        stream.set_read_timeout(Some(left()?))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    match (words.next(), words.next()) {
        (Some(b"GET"), Some(path)) if path == b"/metrics" || path.starts_with(b"/metrics?") => {
            reply(&mut stream, "200 OK", text)
        }
        (Some(_), Some(_)) => reply(&mut stream, "404 Not Found", "GET /metrics\n"),
        _ => reply(&mut stream, "400 Bad Request", ""),
    }
}

fn reply(stream: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::{histogram, record};

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn the_page_counts_and_buckets_what_the_run_saw() {
        let mut h = histogram();
        for ms in [1, 3, 3, 40, 700] {
            record(&mut h, Duration::from_millis(ms));
        }
        let f = Figures {
            phase: "run",
            target: 10,
            open: 9,
            received: 5,
            errors: 1,
            per_second: 2.5,
            server: Some((
                Usage {
                    cpu: Duration::from_millis(1500),
                    rss: 4096,
                    anon: 2048,
                },
                Some(12),
            )),
        };
        let text = page(&f, &h);
        for line in [
            "wsreactor_load_connections_open 9",
            "wsreactor_load_received_total 5",
            "wsreactor_load_errors_total 1",
            "wsreactor_load_server_resident_bytes 4096",
            "wsreactor_load_server_open_fds 12",
            "wsreactor_load_phase{phase=\"run\"} 1",
            "wsreactor_load_phase{phase=\"ramp\"} 0",
            "wsreactor_load_latency_seconds_bucket{le=\"0.002\"} 1",
            "wsreactor_load_latency_seconds_bucket{le=\"0.005\"} 3",
            "wsreactor_load_latency_seconds_bucket{le=\"0.05\"} 4",
            "wsreactor_load_latency_seconds_bucket{le=\"0.5\"} 4",
            "wsreactor_load_latency_seconds_bucket{le=\"1\"} 5",
            "wsreactor_load_latency_seconds_bucket{le=\"+Inf\"} 5",
            "wsreactor_load_latency_seconds_count 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn the_endpoint_serves_the_latest_page_and_only_at_metrics() {
        let e = Exporter::start("127.0.0.1:0".parse().unwrap()).unwrap();
        e.update("wsreactor_load_received_total 7\n".into());
        let ok = get(e.addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nwsreactor_load_received_total 7\n"), "{ok}");
        assert!(get(e.addr, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(e.addr, "junk\r\n\r\n").starts_with("HTTP/1.1 400"));
        // A head that never ends within the bound (all of it read, so that
        // the close is not a reset).
        let mut long = "GET /metrics HTTP/1.1\r\nX: ".to_owned();
        long.push_str(&"a".repeat(MAX_REQUEST + 800 - long.len()));
        assert!(get(e.addr, &long).starts_with("HTTP/1.1 431"));
        // A scraper that trickles its request is cut off at the deadline,
        // and the next is answered.
        let t0 = std::time::Instant::now();
        let mut slow = TcpStream::connect(e.addr).unwrap();
        for b in b"GET /me" {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(400));
        }
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest);
        assert!(
            t0.elapsed() < SCRAPE_TIMEOUT + Duration::from_millis(1500),
            "{:?}",
            t0.elapsed()
        );
        assert!(get(e.addr, "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        let addr = e.addr;
        drop(e);
        assert!(TcpStream::connect(addr).is_err(), "closed with the run");
    }
}
