//! How the reactor holds handlers of every type: each [`Handler`] and
//! [`HttpHandler`] behind
//! one object-safe trait, its per-connection data as `dyn Any`. The
//! downcasts live here, once, and always succeed (a connection's data was
//! made by its own handler's `open` or `request`); no handler ever sees
//! them.

use super::http::{Context, Delivery, HttpHandler, Next, Request, Response, Wake};
use super::websocket::{Accept, Conn, Handler, Link, Message as WsMessage, Refusal, Reply, Topic, Upgrade};
use crate::protocol::http::Status;
use crate::protocol::{CloseCode, MessageKind};
use crate::pubsub::{Answer, Found, HubError, Message, Receipt};
use std::any::Any;
use std::sync::Arc;

/// A connection's handler data, type-erased.
pub(crate) type UserData = Box<dyn Any + Send>;

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
    fn expired(&self, link: &mut dyn Link, data: &mut UserData, topic: &str);
    fn subscribed(&self, link: &mut dyn Link, data: &mut UserData, topic: &str, result: Result<(), HubError>);
    fn published(&self, link: &mut dyn Link, data: &mut UserData, result: Result<Receipt, HubError>);
    fn found(&self, link: &mut dyn Link, data: &mut UserData, result: Result<Found, HubError>);
    fn signal(&self, link: &mut dyn Link, data: &mut UserData, payload: &[u8]);
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
        let (Some(mut conn), Some(message)) = (conn::<H::Data>(link, data), WsMessage::new(kind, payload)) else {
            return Reply::Done;
        };
        Handler::message(self, &mut conn, message)
    }

    fn drain(&self, link: &mut dyn Link, data: &mut UserData) {
        if let Some(mut conn) = conn::<H::Data>(link, data) {
            Handler::drain(self, &mut conn);
        }
    }

    fn expired(&self, link: &mut dyn Link, data: &mut UserData, topic: &str) {
        if let Some(mut conn) = conn::<H::Data>(link, data) {
            Handler::expired(self, &mut conn, topic);
        }
    }

    fn subscribed(&self, link: &mut dyn Link, data: &mut UserData, topic: &str, result: Result<(), HubError>) {
        if let Some(mut conn) = conn::<H::Data>(link, data) {
            Handler::subscribed(self, &mut conn, topic, result);
        }
    }

    fn published(&self, link: &mut dyn Link, data: &mut UserData, result: Result<Receipt, HubError>) {
        if let Some(mut conn) = conn::<H::Data>(link, data) {
            Handler::published(self, &mut conn, result);
        }
    }

    fn found(&self, link: &mut dyn Link, data: &mut UserData, result: Result<Found, HubError>) {
        if let Some(mut conn) = conn::<H::Data>(link, data) {
            Handler::found(self, &mut conn, result);
        }
    }

    #[inline]
    fn signal(&self, link: &mut dyn Link, data: &mut UserData, payload: &[u8]) {
        if let Some(mut conn) = conn::<H::Data>(link, data) {
            Handler::signal(self, &mut conn, payload);
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

/// A step's outcome, its data erased.
pub(crate) type AnyNext = Next<UserData>;

/// An [`HttpHandler`] of any data type.
pub(crate) trait AnyHttpHandler: Send + Sync {
    fn request(&self, request: &Request<'_, '_>, cx: &mut Context<'_>) -> AnyNext;
    fn body(&self, data: UserData, body: &[u8], cx: &mut Context<'_>) -> AnyNext;
    fn answer(&self, data: UserData, answer: Answer, cx: &mut Context<'_>) -> AnyNext;
    fn deliver(&self, data: &mut UserData, message: &Arc<Message>, cx: &mut Context<'_>) -> Delivery;
    fn wake(&self, data: UserData, wake: Wake, cx: &mut Context<'_>) -> AnyNext;
    fn heartbeat(&self, data: &mut UserData, cx: &mut Context<'_>);
    fn expired(&self, data: &mut UserData, cx: &mut Context<'_>);
    fn signal(&self, data: &mut UserData, payload: &[u8], cx: &mut Context<'_>) -> Delivery;
}

/// The data back as its handler's type; `None` only if it is another
/// handler's, which the session never lets happen.
fn typed<D: 'static>(data: UserData) -> Option<D> {
    let data = data.downcast::<D>().ok();
    debug_assert!(data.is_some(), "a request's data is its handler's type");
    data.map(|d| *d)
}

fn typed_mut<D: 'static>(data: &mut UserData) -> Option<&mut D> {
    let data = data.downcast_mut::<D>();
    debug_assert!(data.is_some(), "a request's data is its handler's type");
    data
}

fn erase<D: Send + 'static>(next: Next<D>) -> AnyNext {
    match next {
        Next::Respond(r) => Next::Respond(r),
        Next::ReadBody { data, limit } => Next::ReadBody {
            data: Box::new(data),
            limit,
        },
        Next::Ask { data, request } => Next::Ask {
            data: Box::new(data),
            request,
        },
        Next::Park {
            data,
            subscription,
            wait,
            expires,
        } => Next::Park {
            data: Box::new(data),
            subscription,
            wait,
            expires,
        },
        Next::Stream {
            data,
            subscription,
            head,
            heartbeat,
            expires,
        } => Next::Stream {
            data: Box::new(data),
            subscription,
            head,
            heartbeat,
            expires,
        },
    }
}

/// What a step whose data was lost answers (never, see [`typed`]).
fn lost() -> AnyNext {
    Next::Respond(Response::refuse(Status::INTERNAL_ERROR, "the request's state was lost"))
}

impl<H: HttpHandler> AnyHttpHandler for H {
    fn request(&self, request: &Request<'_, '_>, cx: &mut Context<'_>) -> AnyNext {
        erase(HttpHandler::request(self, request, cx))
    }

    fn body(&self, data: UserData, body: &[u8], cx: &mut Context<'_>) -> AnyNext {
        match typed::<H::Data>(data) {
            Some(data) => erase(HttpHandler::body(self, data, body, cx)),
            None => lost(),
        }
    }

    fn answer(&self, data: UserData, answer: Answer, cx: &mut Context<'_>) -> AnyNext {
        match typed::<H::Data>(data) {
            Some(data) => erase(HttpHandler::answer(self, data, answer, cx)),
            None => {
                if let Answer::Subscribed(Ok((sub, _))) = answer {
                    cx.unsubscribe(sub);
                }
                lost()
            }
        }
    }

    fn deliver(&self, data: &mut UserData, message: &Arc<Message>, cx: &mut Context<'_>) -> Delivery {
        match typed_mut::<H::Data>(data) {
            Some(data) => HttpHandler::deliver(self, data, message, cx),
            None => Delivery::End,
        }
    }

    fn wake(&self, data: UserData, wake: Wake, cx: &mut Context<'_>) -> AnyNext {
        match typed::<H::Data>(data) {
            Some(data) => erase(HttpHandler::wake(self, data, wake, cx)),
            None => lost(),
        }
    }

    fn heartbeat(&self, data: &mut UserData, cx: &mut Context<'_>) {
        if let Some(data) = typed_mut::<H::Data>(data) {
            HttpHandler::heartbeat(self, data, cx);
        }
    }

    fn expired(&self, data: &mut UserData, cx: &mut Context<'_>) {
        if let Some(data) = typed_mut::<H::Data>(data) {
            HttpHandler::expired(self, data, cx);
        }
    }

    fn signal(&self, data: &mut UserData, payload: &[u8], cx: &mut Context<'_>) -> Delivery {
        match typed_mut::<H::Data>(data) {
            Some(data) => HttpHandler::signal(self, data, payload, cx),
            None => Delivery::Skipped,
        }
    }
}
