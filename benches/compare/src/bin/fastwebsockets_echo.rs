//! Echo server on fastwebsockets with the hyper upgrade, as in its own
//! `echo_server` example: a `FragmentCollector` (whole messages, UTF-8
//! checked), every text or binary message written back. fastwebsockets
//! answers pings and close frames itself (`auto_pong`, `auto_close`).
//! With `--tls-cert PEM --tls-key PEM` it serves wss:// (tokio-rustls, see
//! the library): hyper reads the upgrade request from the TLS stream.

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn upgrade(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        let _ = echo(fut).await;
    });
    Ok(response)
}

async fn serve_http<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S) {
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service_fn(upgrade))
        .with_upgrades()
        .await;
}

fn main() {
    let args = compare_peers::Args::parse();
    compare_peers::serve_maybe_tls(args, serve_http, serve_http);
}
