//! `herald credentials [--json]`: each channel's credential source, account, scopes and
//! expiry. Never a secret: the table and the JSON come from the store's clear columns and the
//! config's non-secret keys only, so this command needs no key.
//!
//! `--json` prints an array of objects: `channel`, `type`, `source`, `account`, `scopes`,
//! `expires_at` (RFC 3339 or null), `days_left`, `status` (`ok`, `expiring`, `expired`,
//! `needs_auth`, `missing`), `note`.

use super::status::open_store;
use super::{ExitStatus, Globals};
use crate::cli::CredentialsArgs;
use crate::credentials::view;

/// Run `herald credentials`.
pub async fn run(g: &Globals, args: CredentialsArgs) -> anyhow::Result<ExitStatus> {
    let cfg = g.load_config()?;
    let store = open_store(&cfg).await?;
    let views = view::views(&cfg, &store, crate::store::now_ms()).await?;
    store.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else if views.is_empty() {
        println!("No channel holds a credential (email, webhook and exec channels keep theirs in the config).");
    } else {
        print!("{}", view::table(&views));
    }
    Ok(ExitStatus::Success)
}
