//! The reactor: worker threads that accept and serve connections.
//!
//! Placeholder on the `config` branch so that `main` compiles; the real
//! reactor is written on its own branch and replaces this file at merge.

use crate::config::Config;

/// Serve connections with `config` until shut down.
///
/// Placeholder: logs the configuration and returns at once.
pub fn serve(config: Config) -> std::io::Result<()> {
    log::info!(
        "reactor placeholder: would listen on {} with {} worker thread(s)",
        config.server.bind,
        config.worker_threads()
    );
    Ok(())
}
