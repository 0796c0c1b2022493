//! A chat room on wsreactor's public API: a WebSocket at `/chat/{room}`
//! (`?name=alice`), where every line a member sends reaches everyone in the
//! room, joins and leaves included.
//!
//! ```text
//! cargo run --release --example chat -- 127.0.0.1:8090
//! ```
//!
//! Each room is a topic of the broker: a member is subscribed to it before
//! its 101 goes out, and what it says is published to it, so a room spans
//! every worker thread (and, with a broker across nodes, every node).

use std::net::SocketAddr;
use wsreactor::app::{Accept, App, Conn, Handler, Message, Refusal, Reply, Upgrade};
use wsreactor::protocol::http::Status;
use wsreactor::protocol::CloseCode;
use wsreactor::pubsub::valid_channel;
use wsreactor::reactor::settings::Settings;
use wsreactor::reactor::Builder;

/// Who a connection is, kept with it.
struct Member {
    topic: String,
    name: String,
}

/// The chat rooms.
struct Chat;

impl Chat {
    /// Say `line` to everyone in the member's room.
    fn say(conn: &mut Conn<'_, Member>, line: &str) {
        let topic = conn.data().topic.clone();
        if let Err(e) = conn.publish(&topic, Message::Text(line)) {
            conn.send_text(&format!("not said: {e}"));
        }
    }
}

impl Handler for Chat {
    type Data = Member;

    fn open(&self, upgrade: &Upgrade<'_, '_>) -> Result<Accept<Member>, Refusal> {
        let room = upgrade.rest();
        let topic = format!("chat.{room}");
        if !valid_channel(&topic) {
            return Err(Refusal::new(
                Status::BAD_REQUEST,
                "room names are letters, digits and _ . : -",
            ));
        }
        let name = upgrade
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("name=")))
            .filter(|n| !n.is_empty() && n.len() <= 32 && n.bytes().all(|b| b.is_ascii_alphanumeric()))
            .unwrap_or("anonymous")
            .to_string();
        let member = Member {
            topic: topic.clone(),
            name,
        };
        Ok(Accept::new().subscribe(&topic).data(member))
    }

    fn opened(&self, conn: &mut Conn<'_, Member>) {
        let line = format!("* {} joined", conn.data().name);
        Chat::say(conn, &line);
    }

    fn message(&self, conn: &mut Conn<'_, Member>, message: Message<'_>) -> Reply {
        match message {
            Message::Text(text) => {
                let line = format!("{}: {text}", conn.data().name);
                Chat::say(conn, &line);
            }
            Message::Binary(_) => conn.close(CloseCode::UNSUPPORTED_DATA, "this room speaks text"),
        }
        Reply::Done
    }

    fn close(&self, conn: &mut Conn<'_, Member>, _code: Option<CloseCode>) {
        let line = format!("* {} left", conn.data().name);
        Chat::say(conn, &line);
    }
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let app = App::new().websocket("/chat/", Chat);
    let server = Builder::new(Settings::default()).app(app).threads(2).start(addr)?;
    println!("chat on ws://{}/chat/{{room}}?name=you", server.local_addr());
    server.join()
}
