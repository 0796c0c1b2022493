//! The `Open` state's input: frames parsed from the read buffer, messages
//! handed to the connection's handler, and echoed when it says so (a large
//! one out of the very buffer it arrived in).

use super::conn::Lend;
use super::{want, Env, Session, State};
use crate::app::Reply;
use crate::protocol::{Event, MessageKind, Payload, Read as FrameRead, WebSocket};
use crate::stats::WorkerStats;
use std::sync::atomic::Ordering::Relaxed;

impl Session {
    /// Open: parse frames and hand messages to the handler (echoing them
    /// when it says so), until input runs out or the peer must read before
    /// we go on.
    pub(super) fn on_frames(&mut self, env: &mut Env<'_>) {
        let State::Open(open) = &mut self.state else {
            return;
        };
        let app = env.app;
        let io = &mut self.io;
        let Some(rbuf) = io.rbuf.as_mut() else {
            return;
        };
        // Where, in the read buffer, an echo built in place begins.
        let mut reply_at = None;
        let mut peer_code = None;
        let mut peer_closed = false;
        while !rbuf.is_empty() && io.out.len() <= env.settings.write_buffer_limit {
            let (buffered, size) = (rbuf.len(), rbuf.size());
            // One owned segment serves the protocol's replies, the
            // handler's sends and the echo.
            let out = io.out.buf(env.pool);
            match open.ws.read(rbuf.filled_mut(), out) {
                Ok(FrameRead::Incomplete { frame_len }) => {
                    io.want = want(frame_len.unwrap_or(0));
                    break;
                }
                Ok(FrameRead::Frame { consumed, event }) => {
                    match event {
                        Some(Event::Message(kind, payload)) => {
                            env.stats.messages_in.fetch_add(1, Relaxed);
                            let lend = Lend {
                                actions: env.actions,
                                me: env.me,
                                now: env.stamp,
                                settings: env.settings,
                                date: env.date,
                            };
                            let (handler, mut view, data) = open.view(out, lend);
                            let reply = app.handler(handler).message(&mut view, data, kind, &payload);
                            let ws = &mut open.ws;
                            if reply == Reply::Echo {
                                match in_place(&payload, consumed, buffered, size) {
                                    Some(len) => {
                                        match ws.echo_in_place(&mut rbuf.filled_mut()[..consumed], kind, len) {
                                            Some(start) => {
                                                env.stats.messages_out.fetch_add(1, Relaxed);
                                                reply_at = Some(start);
                                                break;
                                            }
                                            None => {
                                                echo(ws, kind, &rbuf.filled()[consumed - len..consumed], out, env.stats)
                                            }
                                        }
                                    }
                                    None => echo(ws, kind, &payload, out, env.stats),
                                }
                            }
                        }
                        Some(Event::Close(frame)) => {
                            peer_code = frame.code;
                            peer_closed = true;
                        }
                        _ => {}
                    }
                    rbuf.consume(consumed);
                    io.want = 0;
                }
                Err(e) => {
                    log::debug!("protocol error: {e}");
                    env.stats.count_protocol_error(e.kind());
                    open.ws.fail(&e, out);
                    rbuf.consume(rbuf.len());
                    break;
                }
            }
        }
        // The frame was all the buffer held: the buffer itself is queued,
        // and the next read takes another from the pool.
        if let Some(start) = reply_at {
            if let Some(mut rbuf) = io.rbuf.take() {
                rbuf.consume(start);
                io.out.push_read(rbuf, env.pool);
                io.want = 0;
            }
        }
        if open.ws.is_closed() {
            self.tell_close(peer_code, env);
            // Closed by the peer's close frame, not by a failure (which
            // marks the input done too, while the peer may still send).
            if peer_closed {
                self.enter_closed(env);
            } else {
                self.enter_closing(env);
            }
        }
    }
}

/// Should an echo be built in the read buffer instead of copied out of it?
/// Only for a message that was one frame (its payload is the frame's tail),
/// when that frame is all the buffer holds, and is at least a quarter of the
/// buffer: a queued buffer then pins at most four times the bytes it sends,
/// so `write_buffer_limit` still bounds memory. Short messages are copied,
/// so that the replies to a burst of them leave together in one buffer.
fn in_place(payload: &Payload<'_>, consumed: usize, buffered: usize, size: usize) -> Option<usize> {
    match payload {
        Payload::Borrowed(p) if consumed == buffered && 4 * p.len() >= size => Some(p.len()),
        _ => None,
    }
}

/// The echo endpoint: send each complete message back whole, same type.
fn echo(ws: &mut WebSocket, kind: MessageKind, payload: &[u8], out: &mut Vec<u8>, stats: &WorkerStats) {
    if !ws.close_state().sent {
        ws.send(kind, payload, out);
        stats.messages_out.fetch_add(1, Relaxed);
    }
}
