//! Reaching connections and topics from any thread.

use super::websocket::{ConnId, Message};
use crate::pubsub::{Command, Inbox, Request};
use std::sync::Arc;

/// Reaches connections and topics from any thread (a clone per thread is
/// cheap). What it sends goes through the workers' inboxes.
#[derive(Clone, Debug)]
pub struct Sender {
    inboxes: Arc<[Inbox]>,
}

impl Sender {
    pub(crate) fn new(inboxes: Arc<[Inbox]>) -> Self {
        Sender { inboxes }
    }

    /// Send a message to connection `to` (dropped if it is gone or closing).
    pub fn send(&self, to: ConnId, message: Message<'_>) {
        if let Some(inbox) = self.inboxes.get(to.worker) {
            inbox.command(Command::Send {
                to,
                kind: message.kind(),
                payload: message.as_bytes().into(),
            });
        }
    }

    /// Publish to `topic` (the worker that carries it out is the first).
    /// A topic that is not a channel name ([`crate::pubsub::valid_channel`])
    /// is dropped and logged: no route could name it.
    pub fn publish(&self, topic: &str, message: Message<'_>) {
        if !crate::pubsub::valid_channel(topic) {
            log::warn!("a publish to {topic:?} dropped: not a channel name");
            return;
        }
        let request = Request::Publish {
            channel: topic.into(),
            kind: message.kind(),
            payload: message.as_bytes().into(),
            idempotency_key: None,
        };
        self.inboxes[0].command(Command::Submit(request));
    }
}
