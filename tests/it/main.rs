//! The single integration-test binary. One module per area.

mod util;

mod bluesky;
mod cli;
mod config;
mod count;
mod daemon;
mod email;
mod exec;
mod linkedin;
mod mastodon;
mod pipeline;
mod render;
mod sandbox;
mod substack;
mod threads;
mod webhook;
mod x;
