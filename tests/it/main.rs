//! The single integration-test binary. One module per area.

/// Run a test body `async fn name(db: TestDb)` once on SQLite and once on PostgreSQL
/// (`TestDb` from the pipeline tests must be in scope where it is used).
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::TestDb::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::TestDb::postgres().await).await
            }
        }
    };
}

mod util;

mod accounts;
mod bluesky;
mod bounces;
mod chaos;
mod cli;
mod config;
mod count;
mod discord;
mod daemon;
mod devto;
mod hashnode;
mod email;
mod exec;
mod ghost;
mod hostile;
mod linkedin;
mod mastodon;
mod pipeline;
mod redact;
mod postmark_batches;
mod preview;
mod render;
mod sandbox;
mod serve;
mod slack;
mod status;
mod substack;
mod telegram;
mod threads;
mod webhook;
mod wordpress;
mod x;
