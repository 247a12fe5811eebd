//! connect-appliance: hosted OAuth connect links, callbacks and an encrypted token vault in one
//! binary. `main.rs` only parses the command line; everything else starts here.

pub mod app;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod connections;
pub mod error;
pub mod http;
pub mod metrics;
pub mod oauth;
pub mod sandbox;
pub mod server;
pub mod sessions;
pub mod state;
pub mod vault;
pub mod webhooks;
