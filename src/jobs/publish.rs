//! The Publish job: re-render the stored issue version and, in one transaction of Herald's
//! store, store the renderings and create one delivery per channel; then push the Deliver jobs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::queue::new_job_id;
use super::{Pipeline, PublishJob};
use crate::issue::Issue;
use crate::render::engine::{RenderError, RenderedChannel, render_channels};
use crate::store::{IssueStored, NewDelivery, Trigger};

/// What a Publish run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Deliveries created (ids); empty when every key already existed.
    Created(Vec<i64>),
    /// The stored issue could not be rendered now; recorded on the issue row.
    Failed(String),
    /// No such stored version.
    Missing,
}

/// The idempotency key of a Publish job: `publish:{slug}:{version}`.
pub fn publish_key(slug: &str, version: &str) -> String {
    format!("publish:{slug}:{version}")
}

/// Store the issue version (its source text) and push its Publish job. A new version's job
/// is keyed `publish:{slug}:{version}`, so a second trigger of it adds no job; publishing a
/// stored version to more channels pushes an unkeyed job (the step is idempotent).
pub async fn enqueue(p: &Pipeline, issue: &Issue, source: &str, channels: &[String]) -> anyhow::Result<()> {
    let path = issue.path.to_string_lossy();
    let stored = p.store.insert_issue(&issue.meta.slug, &issue.version, &path, &issue.meta.title, source, channels).await?;
    let job = PublishJob::V1 { issue: issue.meta.slug.clone(), version: issue.version.clone() };
    match stored {
        IssueStored::New | IssueStored::Pending => p.queue.push_publish(job, Some(&publish_key(&issue.meta.slug, &issue.version))).await,
        IssueStored::Widened => p.queue.push_publish(job, None).await,
        IssueStored::Unchanged => Ok(()),
    }
}

/// Run a Publish job.
pub async fn run(p: &Pipeline, slug: &str, version: &str) -> anyhow::Result<PublishOutcome> {
    let Some(row) = p.store.get_issue(slug, version).await? else {
        tracing::warn!(issue = slug, version, "Publish job for an issue version that is not stored.");
        return Ok(PublishOutcome::Missing);
    };
    if row.published_at.is_some() {
        // Already fanned out; the deliveries carry on by themselves. Still safe to go on (the
        // keys dedupe), but there is nothing to add.
        tracing::debug!(issue = slug, version, "Issue version already published.");
    }
    let rendered = match prepare(p, PathBuf::from(&row.path), row.source.clone(), row.channel_filter()).await {
        Ok((_, r)) => r,
        Err(Unprepared::Parse(msg) | Unprepared::Budget(msg)) => {
            p.store.set_publish_error(slug, version, &msg).await?;
            return Ok(PublishOutcome::Failed(msg));
        }
        Err(Unprepared::Render(errs)) => {
            let msg = errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
            tracing::error!(issue = slug, version, error = %msg, "The stored issue no longer renders.");
            p.store.set_publish_error(slug, version, &msg).await?;
            return Ok(PublishOutcome::Failed(msg));
        }
    };
    let ids = create_and_push(p, slug, version, &rendered, Trigger::Schedule, None).await?;
    tracing::info!(issue = slug, version, created = ids.len(), "Issue published.");
    Ok(PublishOutcome::Created(ids))
}

/// Create one delivery per rendering (revision 1, or `revision` when given) in one
/// transaction, then push a Deliver job for each new one. Existing keys are skipped, so
/// running this twice, even concurrently, creates one set. Returns the new delivery ids.
pub async fn create_and_push(
    p: &Pipeline,
    slug: &str,
    version: &str,
    rendered: &[RenderedChannel],
    trigger: Trigger,
    revision: Option<i64>,
) -> anyhow::Result<Vec<i64>> {
    let mut items = Vec::with_capacity(rendered.len());
    for rc in rendered {
        items.push(NewDelivery {
            channel: rc.channel.clone(),
            channel_type: rc.kind.clone(),
            revision: revision.unwrap_or(1),
            rendering_json: serde_json::to_string(&rc.rendering)?,
            content_hash: rc.rendering.content_hash(),
            trigger,
            job_id: new_job_id(),
        });
    }
    let created = p.store.create_deliveries(slug, version, &items).await?;
    for (id, job_id) in &created {
        if let Err(e) = p.queue.push_deliver(*id, job_id, Duration::ZERO).await {
            // The delivery is committed as `queued`; the sweeper pushes its job.
            tracing::warn!(delivery_id = id, error = %format!("{e:#}"), "Could not push the Deliver job; the sweeper will.");
        }
    }
    Ok(created.into_iter().map(|(id, _)| id).collect())
}

/// The most parsing and rendering one issue for every channel may take in the daemon. Both
/// run on a blocking thread, never on the async runtime, so a hostile file cannot stall the
/// scheduler, the workers or the HTTP side; past the budget the issue is refused.
pub const RENDER_BUDGET: Duration = Duration::from_secs(30);

/// Why an issue could not be parsed and rendered.
enum Unprepared {
    /// The issue does not parse.
    Parse(String),
    /// Channels failed to render or to pass their checks.
    Render(Vec<RenderError>),
    /// Parsing and rendering took longer than [`RENDER_BUDGET`] (or the thread died).
    Budget(String),
}

/// Parse `source` and render it for `channels` (all when empty) off the async runtime,
/// within the pipeline's `render_budget` ([`RENDER_BUDGET`]).
async fn prepare(p: &Pipeline, path: PathBuf, source: String, channels: Vec<String>) -> Result<(Issue, Vec<RenderedChannel>), Unprepared> {
    let config = p.config.clone();
    let shown = path.display().to_string();
    let work = tokio::task::spawn_blocking(move || {
        let issue = crate::issue::parse_str(&path, &source).map_err(|e| Unprepared::Parse(e.to_string()))?;
        let rendered = render_channels(&issue, &config, &channels).map_err(Unprepared::Render)?;
        Ok((issue, rendered))
    });
    let budget = p.render_budget;
    match tokio::time::timeout(budget, work).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(Unprepared::Budget(format!("{shown}: parsing and rendering failed: {e}"))),
        Err(_) => {
            tracing::error!(issue = %shown, budget_ms = budget.as_millis() as u64, "Parsing and rendering the issue ran past its budget; refused.");
            Err(Unprepared::Budget(format!(
                "{shown}: parsing and rendering took more than {}; the issue is refused (hint: split it, or check it with `herald check`)",
                shown_budget(budget)
            )))
        }
    }
}

/// A budget for messages: whole seconds as "30 s", less as milliseconds.
fn shown_budget(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{} s", d.as_secs()) } else { format!("{} ms", d.as_millis()) }
}

/// Why a file could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishFileError {
    /// The issue file or a channel's rendering is bad input: nothing was stored or sent.
    #[error("{0}")]
    Input(String),
    /// The store or the queue failed.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Read, parse and preflight an issue file (every channel must render and pass its checks),
/// then store its version and push its Publish job. Shared by `herald publish` and the
/// scheduler. Returns the parsed issue.
pub async fn publish_file(p: &Pipeline, path: &Path, channels: &[String]) -> Result<Issue, PublishFileError> {
    let path = std::fs::canonicalize(path).map_err(|e| PublishFileError::Input(format!("cannot read the issue {}: {e}", path.display())))?;
    // A regular file of bounded size only: a FIFO or /dev/zero in the issues folder never blocks.
    let source = crate::issue::parse::read_source(&path).map_err(|e| PublishFileError::Input(e.to_string()))?;
    let (issue, rendered) = prepare(p, path, source.clone(), channels.to_vec()).await.map_err(|e| match e {
        Unprepared::Parse(m) | Unprepared::Budget(m) => PublishFileError::Input(m),
        Unprepared::Render(errs) => {
            let lines: Vec<String> = errs.iter().map(|e| format!("  {e}")).collect();
            PublishFileError::Input(format!("preflight failed; nothing was sent:\n{}", lines.join("\n")))
        }
    })?;
    if rendered.is_empty() {
        return Err(PublishFileError::Input("no channel to publish to (every channel is disabled or skipped by the issue)".into()));
    }
    enqueue(p, &issue, &source, channels).await?;
    Ok(issue)
}
