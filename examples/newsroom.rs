//! The standard push server with two routes of our own, on the public API
//! only: a page listing a channel's last messages, and a WebSocket where
//! each reporter files lines to a channel, numbered per reporter.
//!
//! ```text
//! cargo run --release --example newsroom -- 127.0.0.1:8091
//! curl -d 'rain at noon' http://127.0.0.1:8091/pub/weather
//! curl 'http://127.0.0.1:8091/last/weather?n=5'       # the page
//! websocat ws://127.0.0.1:8091/file/weather?name=ann  # a reporter
//! ```
//!
//! Everything `wsreactor serve` has stays: `/ws/{channel}`, `/pub/`,
//! `/poll/`, `/sse/`, `/healthz`, `/metrics`.

use std::net::SocketAddr;
use wsreactor::app::{
    Accept, Conn, Context, Handler, HttpHandler, Message, Next, Refusal, Reply, Request, Response, Upgrade,
};
use wsreactor::protocol::http::Status;
use wsreactor::pubsub::{channel_name, Answer, Request as BrokerRequest};
use wsreactor::push::{self, query_u64};
use wsreactor::reactor::settings::Settings;
use wsreactor::reactor::Builder;

/// `GET /last/{channel}?n=N`: the channel's last N messages (10 by
/// default) as an HTML list, newest last.
struct LastMessages;

/// A page request, between its head and the broker's answer.
struct PageRequest {
    channel: String,
    n: usize,
}

impl HttpHandler for LastMessages {
    type Data = PageRequest;

    fn request(&self, request: &Request<'_, '_>, _: &mut Context<'_>) -> Next<PageRequest> {
        if request.method() != "GET" {
            return Next::Respond(Response::refuse(Status::METHOD_NOT_ALLOWED, "use GET").header("Allow", "GET"));
        }
        let Some(channel) = channel_name(request.rest()) else {
            return Next::Respond(Response::refuse(Status::BAD_REQUEST, "not a channel name"));
        };
        let Ok(n) = query_u64(request.query(), "n") else {
            return Next::Respond(Response::refuse(Status::BAD_REQUEST, "n must be a number"));
        };
        let data = PageRequest {
            channel: channel.into_owned(),
            n: n.map_or(10, |n| n.min(100) as usize),
        };
        // A subscription from the start replays what the history holds;
        // the page takes the replay and gives the subscription back.
        let request = BrokerRequest::subscribe(data.channel.as_str(), Some(0));
        Next::Ask { data, request }
    }

    fn answer(&self, page: PageRequest, answer: Answer, cx: &mut Context<'_>) -> Next<PageRequest> {
        let Answer::Subscribed(Ok((subscription, snapshot))) = answer else {
            return Next::Respond(Response::refuse(Status::SERVICE_UNAVAILABLE, "no history now"));
        };
        cx.unsubscribe(subscription);
        let mut html = format!("<!doctype html>\n<title>{}</title>\n<ol>\n", escape(&page.channel));
        let last = snapshot.replay.len().saturating_sub(page.n);
        for message in &snapshot.replay[last..] {
            let text = String::from_utf8_lossy(message.payload());
            html.push_str(&format!("<li value=\"{}\">{}</li>\n", message.id, escape(&text)));
        }
        html.push_str("</ol>\n");
        Next::Respond(Response::ok("text/html; charset=utf-8", html))
    }
}

/// `/file/{channel}?name=ann`: a reporter's WebSocket. Each text line it
/// sends is published to the channel as `ann #3: ...`; it hears the
/// channel too.
struct Desk;

/// Who a reporter is and how many lines it filed: kept with its connection.
struct Reporter {
    channel: String,
    name: String,
    filed: u32,
}

impl Handler for Desk {
    type Data = Reporter;

    fn open(&self, upgrade: &Upgrade<'_, '_>) -> Result<Accept<Reporter>, Refusal> {
        let channel = channel_name(upgrade.rest())
            .ok_or_else(|| Refusal::new(Status::BAD_REQUEST, "not a channel name"))?
            .into_owned();
        let name = upgrade
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("name=")))
            .filter(|n| !n.is_empty() && n.len() <= 32 && n.bytes().all(|b| b.is_ascii_alphanumeric()))
            .unwrap_or("anon")
            .to_string();
        let reporter = Reporter {
            channel: channel.clone(),
            name,
            filed: 0,
        };
        Ok(Accept::new().subscribe(&channel).data(reporter))
    }

    fn message(&self, conn: &mut Conn<'_, Reporter>, message: Message<'_>) -> Reply {
        let Message::Text(line) = message else {
            conn.send_text("lines are text");
            return Reply::Done;
        };
        let reporter = conn.data();
        reporter.filed += 1;
        let filed = format!("{} #{}: {line}", reporter.name, reporter.filed);
        let channel = reporter.channel.clone();
        if let Err(e) = conn.publish(&channel, Message::Text(&filed)) {
            conn.send_text(&format!("not filed: {e}"));
        }
        Reply::Done
    }
}

/// Text as HTML text.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8091".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let app = push::standard().http("/last/", LastMessages).websocket("/file/", Desk);
    let server = Builder::new(Settings::default()).app(app).start(addr)?;
    println!("newsroom on http://{}/last/{{channel}}", server.local_addr());
    server.join()
}
