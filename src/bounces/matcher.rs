//! A report → the mailing and subscriber it is about: first by a VERP token in the report
//! (verified against the ledger row it names), then by the original message's Message-ID
//! (`<mailinghash.addresshash@domain>`, see `channel/email/compose.rs`), then, for Postmark, by
//! the MessageID Postmark answered the send with (recorded in the ledger).

use crate::channel::email::TokenKey;
use crate::channel::email::compose::short_hash;
use crate::store::Store;

/// What a report was tied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The mailing.
    pub delivery_id: i64,
    /// The address the mailing went to.
    pub email: String,
    /// How: `verp`, `message_id`, `postmark_message_id`.
    pub by: &'static str,
}

/// Ties reports to mailings.
pub struct Matcher<'a> {
    store: &'a Store,
    keys: &'a [TokenKey],
    /// (delivery id, short hash of its key), loaded on first use of a Message-ID.
    mailings: Option<Vec<(i64, String)>>,
}

impl<'a> Matcher<'a> {
    /// A matcher over `store`, verifying VERP tokens with `keys` (every email channel's secret).
    pub fn new(store: &'a Store, keys: &'a [TokenKey]) -> Self {
        Self { store, keys, mailings: None }
    }

    /// The first VERP token that verifies (for `address`, when given). A token made for
    /// another address counts only when it is the report's one token and `strict` is false (a
    /// forwarded address bounces under its final name); a report about several recipients
    /// passes `strict`, so one recipient's token never carries another's bounce.
    pub async fn by_verp(&self, tokens: &[String], address: Option<&str>, strict: bool) -> anyhow::Result<Option<Matched>> {
        for t in tokens {
            let Some(row) = super::verp::row_of(t) else { continue };
            let Some((delivery_id, email)) = self.store.recipient_by_row(row).await? else { continue };
            if address.is_some_and(|a| !a.eq_ignore_ascii_case(&email)) && (strict || tokens.len() > 1) {
                continue;
            }
            if super::verp::verify(self.keys, t, row, &email) {
                return Ok(Some(Matched { delivery_id, email, by: "verp" }));
            }
            tracing::warn!(row, "A bounce carried a VERP token that does not verify; ignored.");
        }
        Ok(None)
    }

    /// The mailing whose Message-ID `message_id` is, if it was sent to `address`.
    pub async fn by_message_id(&mut self, message_id: &str, address: &str) -> anyhow::Result<Option<Matched>> {
        let id = message_id.trim().trim_start_matches('<').trim_end_matches('>');
        let Some((left, _domain)) = id.split_once('@') else { return Ok(None) };
        let Some((mailing_hash, rcpt_hash)) = left.split_once('.') else { return Ok(None) };
        let address = address.trim().to_lowercase();
        if short_hash(&address) != rcpt_hash {
            return Ok(None);
        }
        if self.mailings.is_none() {
            self.mailings = Some(self.store.mailing_keys().await?.into_iter().map(|(id, key)| (id, short_hash(&key))).collect());
        }
        for (delivery_id, h) in self.mailings.as_deref().unwrap_or_default() {
            if h == mailing_hash && self.store.in_mailing(*delivery_id, &address).await? {
                return Ok(Some(Matched { delivery_id: *delivery_id, email: address, by: "message_id" }));
            }
        }
        Ok(None)
    }

    /// The ledger row that recorded Postmark's `MessageID`.
    pub async fn by_postmark_id(&self, message_id: &str, address: &str) -> anyhow::Result<Option<Matched>> {
        Ok(self
            .store
            .recipient_by_reply(message_id)
            .await?
            .filter(|(_, e)| e.eq_ignore_ascii_case(address))
            .map(|(delivery_id, email)| Matched { delivery_id, email, by: "postmark_message_id" }))
    }
}
