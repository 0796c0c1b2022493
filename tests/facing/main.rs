//! Facing the internet (issue 15): subscriber tokens, origins and CORS in
//! a real browser, and per-address limits, over real sockets. One test
//! binary, so that CI links it once.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod cors;
mod documented_tokens;
mod nginx_documented;
mod per_ip;
