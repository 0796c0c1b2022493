//! How the reactor holds handlers of every type: each [`Handler`] behind
//! one object-safe trait, its per-connection data as `dyn Any`. The
//! downcasts live here, once, and always succeed (a connection's data was
//! made by its own handler's `open`); no handler ever sees them.

use super::websocket::{Accept, Conn, ConnId, Handler, Message, Refusal, Reply, Topic, Upgrade};
use crate::protocol::{CloseCode, MessageKind};
use std::any::Any;

/// A connection's handler data, type-erased.
pub(crate) type UserData = Box<dyn Any + Send>;

/// What the session lends a handler: the connection's side of a [`Conn`].
pub(crate) trait Link {
    fn id(&self) -> ConnId;
    fn send(&mut self, kind: MessageKind, payload: &[u8]);
    fn publish(&mut self, topic: &str, kind: MessageKind, payload: &[u8]);
    fn close(&mut self, code: CloseCode, reason: &str);
}

/// An accepted upgrade, its data erased.
pub(crate) struct Accepted {
    pub(crate) protocol: Option<String>,
    pub(crate) topic: Option<Topic>,
    pub(crate) data: UserData,
}

/// A [`Handler`] of any data type.
pub(crate) trait AnyHandler: Send + Sync {
    fn open(&self, upgrade: &Upgrade<'_, '_>) -> Result<Accepted, Refusal>;
    fn opened(&self, link: &mut dyn Link, data: &mut UserData);
    fn message(&self, link: &mut dyn Link, data: &mut UserData, kind: MessageKind, payload: &[u8]) -> Reply;
    fn drain(&self, link: &mut dyn Link, data: &mut UserData);
    fn close(&self, link: &mut dyn Link, data: &mut UserData, code: Option<CloseCode>);
}

impl<H: Handler> AnyHandler for H {
    fn open(&self, upgrade: &Upgrade<'_, '_>) -> Result<Accepted, Refusal> {
        let Accept { protocol, topic, data } = Handler::open(self, upgrade)?;
        Ok(Accepted {
            protocol,
            topic,
            data: Box::new(data),
        })
    }

    fn opened(&self, link: &mut dyn Link, data: &mut UserData) {
        if let Some(mut conn) = conn::<H::Data>(link, data) {
            Handler::opened(self, &mut conn);
        }
    }

    #[inline]
    fn message(&self, link: &mut dyn Link, data: &mut UserData, kind: MessageKind, payload: &[u8]) -> Reply {
        // The protocol checked a text message's UTF-8 (RFC 6455 §8.1); one
        // that is not would have closed the connection with 1007.
        let (Some(mut conn), Some(message)) = (conn::<H::Data>(link, data), Message::new(kind, payload)) else {
            return Reply::Done;
        };
        Handler::message(self, &mut conn, message)
    }

    fn drain(&self, link: &mut dyn Link, data: &mut UserData) {
        if let Some(mut conn) = conn::<H::Data>(link, data) {
            Handler::drain(self, &mut conn);
        }
    }

    fn close(&self, link: &mut dyn Link, data: &mut UserData, code: Option<CloseCode>) {
        if let Some(mut conn) = conn::<H::Data>(link, data) {
            Handler::close(self, &mut conn, code);
        }
    }
}

/// The typed view of a connection; `None` only if its data is of another
/// handler's type, which the session never lets happen.
#[inline]
fn conn<'a, D: 'static>(link: &'a mut dyn Link, data: &'a mut UserData) -> Option<Conn<'a, D>> {
    let data = data.downcast_mut::<D>();
    debug_assert!(data.is_some(), "a connection's data is its handler's type");
    Some(Conn { link, data: data? })
}
