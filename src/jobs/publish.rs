//! The Publish job: re-render the stored issue version and, in one transaction of Herald's
//! store, store the renderings and create one delivery per channel; then push the Deliver jobs.

use std::path::Path;
use std::time::Duration;

use super::queue::new_job_id;
use super::{Pipeline, PublishJob};
use crate::issue::Issue;
use crate::render::engine::{RenderedChannel, render_channels};
use crate::store::{NewDelivery, Trigger};

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

/// Store the issue version (its source text) and push its Publish job, keyed so a second
/// trigger of the same version adds no job.
pub async fn enqueue(p: &Pipeline, issue: &Issue, source: &str, channels: &[String]) -> anyhow::Result<()> {
    let path = issue.path.to_string_lossy();
    p.store.insert_issue(&issue.meta.slug, &issue.version, &path, &issue.meta.title, source, channels).await?;
    let job = PublishJob::V1 { issue: issue.meta.slug.clone(), version: issue.version.clone() };
    p.queue.push_publish(job, Some(&publish_key(&issue.meta.slug, &issue.version))).await
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
    let issue = match crate::issue::parse_str(Path::new(&row.path), &row.source) {
        Ok(i) => i,
        Err(e) => {
            let msg = e.to_string();
            p.store.set_publish_error(slug, version, &msg).await?;
            return Ok(PublishOutcome::Failed(msg));
        }
    };
    let rendered = match render_channels(&issue, &p.config, &row.channel_filter()) {
        Ok(r) => r,
        Err(errs) => {
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
