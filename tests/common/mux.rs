//! A client of the `wsreactor.mux` subprotocol at `/ws`, over the raw
//! client: commands out, replies matched by id, channel messages kept in
//! the order they came.

use super::{Client, TEXT};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;

/// A multiplexed connection.
pub struct MuxClient {
    pub c: Client,
    /// What came that was not the reply looked for: channel messages,
    /// gaps, notices, in order.
    pub pushed: VecDeque<Value>,
}

impl MuxClient {
    /// Upgrade at `/ws{query}` offering the subprotocol.
    pub fn connect(addr: SocketAddr, query: &str) -> MuxClient {
        let (c, r) = Client::upgrade_at(
            addr,
            &format!("/ws{query}"),
            "Sec-WebSocket-Protocol: wsreactor.mux\r\n",
        );
        assert_eq!(r.header("sec-websocket-protocol"), Some("wsreactor.mux"), "{r:?}");
        MuxClient {
            c,
            pushed: VecDeque::new(),
        }
    }

    /// The next JSON text frame.
    pub fn next(&mut self) -> Value {
        let f = self.c.recv();
        assert_eq!(f.opcode, TEXT, "{f:?}");
        serde_json::from_slice(&f.payload).unwrap()
    }

    /// Send `command` and wait for its reply (`"reply": id`).
    pub fn call(&mut self, command: Value) -> Value {
        let id = command["id"].clone();
        self.c.send(TEXT, command.to_string().as_bytes());
        self.reply(&id)
    }

    /// Read until the reply to `id`, keeping what comes before it.
    pub fn reply(&mut self, id: &Value) -> Value {
        loop {
            let v = self.next();
            if v.get("reply") == Some(id) {
                return v;
            }
            self.pushed.push_back(v);
        }
    }

    /// Subscribe, expecting ok.
    pub fn subscribe(&mut self, id: u64, channel: &str, since: Option<u64>) {
        let mut command = json!({"id": id, "subscribe": channel});
        if let Some(since) = since {
            command["since"] = json!(since);
        }
        let reply = self.call(command);
        assert_eq!(
            (&reply["reply"], &reply["ok"]),
            (&json!(id), &json!(true)),
            "subscribe {channel}: {reply}"
        );
        // With no cursor, the reply gives the one to resume from.
        assert_eq!(reply["last_id"].is_u64(), since.is_none(), "{reply}");
    }

    /// The next channel message (skipping nothing: a gap or notice here
    /// fails), as (channel, id, data).
    pub fn message(&mut self) -> (String, u64, Value) {
        let v = match self.pushed.pop_front() {
            Some(v) => v,
            None => self.next(),
        };
        match (v["channel"].as_str(), v["id"].as_u64()) {
            (Some(channel), Some(id)) => (channel.to_owned(), id, v["data"].clone()),
            _ => panic!("a channel message expected, got {v}"),
        }
    }
}
