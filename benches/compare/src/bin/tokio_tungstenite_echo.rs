//! Echo server on tokio-tungstenite, as in its own `echo-server` example:
//! the read half forwarded into the write half, text and binary only.
//! `forward` feeds each message and flushes when no more input is ready, so
//! pipelined echoes leave in batches. Pings are answered and a close is
//! answered by tungstenite itself. With `--tls-cert PEM --tls-key PEM` it
//! serves wss:// (tokio-rustls, see the library).

use futures_util::{future, StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite};

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|m| future::ready(m.is_text() || m.is_binary()))
        .forward(write)
        .await;
}

fn main() {
    let args = compare_peers::Args::parse();
    compare_peers::serve_maybe_tls(args, echo, echo);
}
