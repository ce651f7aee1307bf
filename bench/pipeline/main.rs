//! Pipeline throughput: deliveries/s from "deliveries created" to "all sent" against the local
//! webhook fake, on SQLite and on PostgreSQL, beside apalis's raw drain rate of no-op jobs on the
//! same backend in the same run. Run it with `bench/pipeline/run.sh [N]`.
//!
//! Each delivery is a real one: its own issue, one transaction creating the delivery and its
//! rendering, a Deliver job, a lease, `sending` committed, an HTTP POST to the fake, then the
//! attempt row and `sent` in one transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::jobs::worker::{WaitEnd, WaitFor, WorkerOptions, run_until_settled};
use herald::jobs::{Pipeline, publish};
use herald::render::engine::RenderedChannel;
use herald::render::{BodyRendering, Rendering};
use herald::sandbox::webhook::WebhookFake;
use herald::store::{StoreUrl, Trigger};
use sqlx::Connection as _;

const PG_ADMIN: &str = "postgres://root@127.0.0.1:5432/postgres";

struct Row {
    backend: &'static str,
    n: usize,
    herald: Duration,
    noop: Duration,
}

async fn run_one(backend: &'static str, url: &str, dir: &std::path::Path, fake: &WebhookFake, n: usize, conc: usize) -> anyhow::Result<Row> {
    let cfg_path = dir.join("herald.toml");
    std::fs::write(&cfg_path, format!("[store]\nurl = \"{url}\"\n\n[channels.hook]\ntype = \"webhook\"\nurl = \"{}\"\n", fake.url()))?;
    let cfg = Arc::new(herald::config::load(&cfg_path).map_err(|e| anyhow::anyhow!("{e}"))?);
    let p = Arc::new(Pipeline::open(cfg).await?);
    let t = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let r = vec![RenderedChannel {
            channel: "hook".into(),
            kind: "webhook".into(),
            rendering: Rendering::Body(BodyRendering { body: serde_json::json!({ "issue": i, "title": format!("Bench issue {i}") }) }),
        }];
        ids.extend(publish::create_and_push(&p, &format!("bench-{i}"), "v1", &r, Trigger::Schedule, None).await?);
    }
    let created = t.elapsed();
    let opts = WorkerOptions { concurrency: conc, poll: Duration::from_millis(100), ..WorkerOptions::default() };
    let end = run_until_settled(p.clone(), opts, WaitFor::Deliveries(ids.clone()), Some(Duration::from_secs(600))).await?;
    let herald = t.elapsed();
    anyhow::ensure!(end == WaitEnd::Settled, "{backend}: not settled: {end:?}");
    let sent = p.store.list_deliveries(None, &[]).await?.iter().filter(|d| d.state == "sent").count();
    anyhow::ensure!(sent == n, "{backend}: {sent} of {n} sent");
    eprintln!("{backend}: created {n} deliveries in {created:?}; all sent after {herald:?}");
    p.close().await;
    let url = StoreUrl::parse(url, dir)?;
    let noop = herald::jobs::bench::noop_drain(&url, n, conc, Duration::from_millis(100)).await?;
    Ok(Row { backend, n, herald, noop })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(300);
    let conc: usize = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(4);
    let fake = WebhookFake::start().await?;
    let mut rows = Vec::new();

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/herald.db", dir.path().display());
    rows.push(run_one("sqlite", &url, dir.path(), &fake, n, conc).await?);

    let name = format!("herald_bench_{}", uuid::Uuid::new_v4().simple());
    match sqlx::PgConnection::connect(PG_ADMIN).await {
        Ok(mut c) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut c).await?;
            let dir = tempfile::tempdir()?;
            let res = run_one("postgres", &format!("postgres://root@127.0.0.1:5432/{name}"), dir.path(), &fake, n, conc).await;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut c).await?;
            rows.push(res?);
        }
        Err(e) => eprintln!("postgres: skipped ({e})"),
    }

    println!("backend    n     herald publish→sent (deliveries/s)   apalis no-op drain (jobs/s)   ratio");
    for r in &rows {
        let h = r.n as f64 / r.herald.as_secs_f64();
        let a = r.n as f64 / r.noop.as_secs_f64();
        println!("{:<10} {:<5} {:>8.1}  ({:>7.2}s)                 {:>8.1}  ({:>7.2}s)          {:.2}", r.backend, r.n, h, r.herald.as_secs_f64(), a, r.noop.as_secs_f64(), h / a);
    }
    println!("(concurrency {conc}, poll 100 ms, {} build; the fake accepted {} bodies)", if cfg!(debug_assertions) { "debug" } else { "release" }, fake.accepted().len());
    Ok(())
}
