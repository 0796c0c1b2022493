//! What `wsreactor load` is asked to do, as given (see the module docs of
//! [`crate::load`] for what each knob means), and why a run can fail.

pub use super::feed::{CursorStyle, Transport};
pub use super::scenario::{ReconnectStorm, Scenario, SlowReaders};
use crate::protocol::MessageKind;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What each connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send messages, await each echo, measure the round trip.
    Echo,
    /// Open and hold connections; measure connect and handshake time.
    Connect,
    /// Subscribe to a channel of the push server, publish to it over HTTP
    /// and measure each delivery from the time it was due to be published.
    Subscribe,
    /// New connections back to back on `connections` slots, each doing a
    /// handshake, one echo and a close; measure cycles per second.
    Churn,
}

impl Mode {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Connect => "connect",
            Mode::Subscribe => "subscribe",
            Mode::Churn => "churn",
        }
    }
}

/// What to run. See the module docs for what each knob means.
#[derive(Debug, Clone)]
pub struct Options {
    /// `ws://HOST[:PORT][/PATH]`.
    pub url: String,
    /// What each connection does.
    pub mode: Mode,
    /// Connections to open; in churn mode, cycles in progress at once.
    pub connections: usize,
    /// New connections per second during the ramp; 0 opens all at once.
    pub connect_rate: f64,
    /// Worker threads; 0 for one per core.
    pub threads: usize,
    /// Length of the measurement window.
    pub duration: Duration,
    /// Payload bytes per message.
    pub size: usize,
    /// Text or binary messages.
    pub kind: MessageKind,
    /// Messages per second over all connections (published per second in
    /// subscribe mode, cycles started per second in churn mode); `None`
    /// for a closed loop.
    pub rate: Option<f64>,
    /// Subscribe mode: HTTP connections the publisher posts over.
    pub publishers: usize,
    /// Subscribe mode: do not publish (another process does, with
    /// `publishers` lanes); reconcile with what any subscriber saw.
    pub observe: bool,
    /// Messages in flight per connection at most.
    pub pipeline: usize,
    /// Local addresses to connect from, in turn; empty lets the kernel pick.
    pub source_ips: Vec<IpAddr>,
    /// `wss://`: accept any server certificate (self-signed test ones).
    pub insecure: bool,
    /// Connect, handshake and echo time-out; also bounds the drain.
    pub timeout: Duration,
    /// Draw the live progress line on stderr.
    pub progress: bool,
    /// Headers sent with every opening handshake and publish (`--header`).
    pub headers: Vec<(String, String)>,
    /// Subscribe mode: `Authorization: Bearer` of every publish.
    pub publish_token: Option<String>,
    /// Subscribe mode: how subscribers receive the channel.
    pub transport: Transport,
    /// Subscribe mode: the channel, when the URL is the server's root
    /// (`http://HOST:PORT/`); else it is taken from the URL's path.
    pub channel: Option<String>,
    /// Subscribe mode over WebSocket: each connection subscribes to this
    /// many channels (`CHANNEL.0` ...) on one connection, with the
    /// `wsreactor.mux` subprotocol at `/ws`; `None`: one, at `/ws/CHANNEL`.
    pub channels_per_connection: Option<usize>,
    /// Short polling: time between one poll's start and the next.
    pub poll_interval: Duration,
    /// Polls reuse their connection (off: a new connection per poll).
    pub keep_alive: bool,
    /// Whose poll cursor to follow (wsreactor's `since`, or nchan's).
    pub cursor: CursorStyle,
    /// The server's process: its CPU time and memory go in the report.
    pub server_pid: Option<u32>,
    /// Churn mode: close as soon as the 101 comes, with no message (for
    /// a server that does not echo: a push subscriber at `/ws/CHANNEL`).
    pub close_on_open: bool,
    /// Subscribe mode: slow readers and reconnect storms.
    pub scenario: Scenario,
    /// Serve the run's own figures for Prometheus at this address
    /// (`GET /metrics`) while it runs.
    pub metrics_bind: Option<SocketAddr>,
}

/// A `--header 'Name: value'`: a field name of token characters and a value
/// without line breaks (RFC 9110 §5), so that no header can inject another.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("expected 'Name: value', got {s:?}"))?;
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(format!("{name:?} is not a header name"));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("the value of {name} holds a line break"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

impl Default for Options {
    fn default() -> Self {
        Options {
            url: "ws://127.0.0.1:9001/".into(),
            mode: Mode::Echo,
            connections: 100,
            connect_rate: 1000.0,
            threads: 0,
            duration: Duration::from_secs(10),
            size: 32,
            kind: MessageKind::Binary,
            rate: None,
            publishers: 4,
            observe: false,
            pipeline: 1,
            source_ips: Vec::new(),
            insecure: false,
            timeout: Duration::from_secs(10),
            progress: false,
            headers: Vec::new(),
            publish_token: None,
            transport: Transport::Ws,
            channel: None,
            channels_per_connection: None,
            poll_interval: Duration::from_secs(1),
            keep_alive: true,
            cursor: CursorStyle::Wsreactor,
            server_pid: None,
            close_on_open: false,
            scenario: Scenario::default(),
            metrics_bind: None,
        }
    }
}

/// Why a run could not start or finish.
#[derive(Debug)]
pub enum LoadError {
    /// The options are unusable (a usage error).
    Invalid(String),
    /// The generator itself failed (threads, poll).
    Io(std::io::Error),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Invalid(why) => f.write_str(why),
            LoadError::Io(e) => write!(f, "load generator failed: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<std::io::Error> for LoadError {
    fn from(e: std::io::Error) -> Self {
        LoadError::Io(e)
    }
}
