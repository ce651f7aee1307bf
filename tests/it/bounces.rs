//! Issue 17: asynchronous bounces, complaints and unsubscribes, one suppression list.

use std::sync::Arc;

use herald::bounces::{Kind, Policy, Report, Source};
use herald::store::bounces::BounceRecorded;
use herald::store::email::SubscriberUpsert;
use herald::store::{Store, StoreUrl};

use crate::pipeline::TestDb;

pub async fn open(db: &TestDb) -> Store {
    Store::open(&StoreUrl::parse(&db.url, db.dir.path()).unwrap()).await.expect("store opens")
}

pub fn addr(i: usize) -> String {
    format!("reader{i}@example.org")
}

pub async fn import(store: &Store, list: &str, range: std::ops::Range<usize>) {
    let rows: Vec<SubscriberUpsert> = range.map(|i| SubscriberUpsert { email: addr(i), name: format!("Reader {i}"), extra_json: "{}".into() }).collect();
    store.upsert_subscribers(list, &rows).await.unwrap();
}

fn report(key: &str, i: usize, kind: Kind) -> Report {
    Report { key: key.into(), email: addr(i), kind, detail: format!("{kind} detail"), delivery_id: None }
}

/// Every suppressed address, as (email, kind, source).
pub async fn suppressed(store: &Store) -> Vec<(String, String, String)> {
    store.suppressions_page("", 10_000).await.unwrap().into_iter().map(|s| (s.email, s.kind, s.source)).collect()
}

mod policy {
    use super::*;

    both!(hard_and_complaints_at_once_soft_after_the_limit_in_the_window);
    async fn hard_and_complaints_at_once_soft_after_the_limit_in_the_window(db: TestDb) {
        let store = open(&db).await;
        import(&store, "all", 0..6).await;
        let p = Policy::default();
        let day = 86_400_000i64;
        let now = herald::store::now_ms();
        assert_eq!(p.apply(&store, Source::Import, &report("h0", 0, Kind::HardBounce)).await.unwrap(), BounceRecorded::Suppressed);
        assert_eq!(p.apply(&store, Source::Import, &report("h0", 0, Kind::HardBounce)).await.unwrap(), BounceRecorded::Duplicate, "one report, applied once");
        assert_eq!(p.apply(&store, Source::PostmarkWebhook, &report("c1", 1, Kind::Complaint)).await.unwrap(), BounceRecorded::Suppressed);
        // Soft: two in the window do not suppress; one 40 days old does not count; the third does.
        assert_eq!(p.apply_at(&store, Source::Imap, &report("s2-old", 2, Kind::SoftBounce), now - 40 * day).await.unwrap(), BounceRecorded::Recorded);
        assert_eq!(p.apply_at(&store, Source::Imap, &report("s2-a", 2, Kind::SoftBounce), now - 2 * day).await.unwrap(), BounceRecorded::Recorded);
        assert_eq!(p.apply_at(&store, Source::Imap, &report("s2-b", 2, Kind::SoftBounce), now - day).await.unwrap(), BounceRecorded::Recorded);
        assert_eq!(p.apply_at(&store, Source::Imap, &report("s2-c", 2, Kind::SoftBounce), now).await.unwrap(), BounceRecorded::Suppressed);
        // Delays never suppress, however many.
        for k in 0..5 {
            assert_eq!(p.apply(&store, Source::Imap, &report(&format!("d3-{k}"), 3, Kind::Delayed)).await.unwrap(), BounceRecorded::Recorded);
        }
        assert_eq!(p.apply(&store, Source::Imap, &report("m4", 4, Kind::MailtoUnsubscribe)).await.unwrap(), BounceRecorded::Suppressed);
        // A configured limit of 1 suppresses on the first soft bounce.
        let strict = Policy { soft_limit: 1, soft_days: 1 };
        assert_eq!(strict.apply(&store, Source::Import, &report("s5", 5, Kind::SoftBounce)).await.unwrap(), BounceRecorded::Suppressed);
        assert_eq!(
            suppressed(&store).await,
            vec![
                (addr(0), "hard_bounce".into(), "import".into()),
                (addr(1), "complaint".into(), "postmark_webhook".into()),
                (addr(2), "soft_bounce".into(), "imap".into()),
                (addr(4), "mailto_unsubscribe".into(), "imap".into()),
                (addr(5), "soft_bounce".into(), "import".into()),
            ]
        );
        let rows = store.suppressions_page("", 100).await.unwrap();
        assert!(rows[0].reason.contains("hard_bounce (import)"), "{:?}", rows[0]);
        // The next mailing skips every suppressed subscriber.
        assert_eq!(store.seed_recipients(99, "all").await.unwrap(), 1, "only reader3 (delays only) is mailed");
        store.close().await;
    }
}

/// A mailing to subscribers 0..n: a delivery row `issue-1/newsletter/r1`, its ledger seeded and
/// every row marked sent (Postmark's MessageID `pm-<i>` as the reply). Returns the delivery id.
pub async fn mailing(store: &Store, n: usize) -> i64 {
    import(store, "all", 0..n).await;
    let now = herald::store::now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO deliveries (issue, version, channel, channel_type, revision, delivery_key, state, created_at, updated_at) \
         VALUES ('issue-1', 'v1', 'newsletter', 'email', 1, 'issue-1/newsletter/r1', 'sent', $1, $1) RETURNING id",
    )
    .bind(now)
    .fetch_one(store.pool())
    .await
    .unwrap();
    store.seed_recipients(id, "all").await.unwrap();
    for i in 0..n {
        sqlx::query("UPDATE recipient_sends SET state = 'sent', smtp_code = 0, smtp_reply = $1 WHERE delivery_id = $2 AND email = $3")
            .bind(format!("pm-{i}"))
            .bind(id)
            .bind(addr(i))
            .execute(store.pool())
            .await
            .unwrap();
    }
    id
}

/// The ledger row of (mailing, address).
pub async fn row(store: &Store, delivery: i64, email: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM recipient_sends WHERE delivery_id = $1 AND email = $2").bind(delivery).bind(email).fetch_one(store.pool()).await.unwrap()
}

pub const SECRET: &str = "bounce-test-secret-0123456789";

pub fn key() -> herald::channel::email::TokenKey {
    herald::channel::email::TokenKey::new(&herald::config::SecretString::new(SECRET))
}

pub fn intake(store: &Store) -> herald::bounces::intake::Intake {
    herald::bounces::intake::Intake { store: store.clone(), policy: Policy::default(), keys: vec![key()], unsubscribe_addresses: vec!["unsubscribe@news.example.com".into()] }
}

/// A DSN (RFC 3464) as a relay would mail it to the Return-Path `to`.
pub fn dsn(to: &str, recipient: &str, action: &str, status: &str, original_id: &str) -> String {
    format!(
        "From: MAILER-DAEMON@relay.example.net\r\nTo: {to}\r\nSubject: Delivery Status Notification\r\nMessage-ID: <dsn-{action}-{recipient}-{status}@relay.example.net>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example.net\r\n\r\n\
         Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\nDiagnostic-Code: smtp; 550 no such user\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@example.com\r\nTo: {recipient}\r\nMessage-ID: {original_id}\r\nSubject: Issue 1\r\n\r\n--B--\r\n"
    )
}

/// An ARF complaint (RFC 5965) whose Original-Mail-From is the message's Return-Path.
pub fn arf(return_path: &str, recipient: &str) -> String {
    format!(
        "From: feedback@isp.example.net\r\nTo: abuse@example.com\r\nSubject: FW: Issue 1\r\nMessage-ID: <arf-{recipient}@isp.example.net>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
         --F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\
         --F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: ISP-FBL/1.0\r\nVersion: 1\r\nOriginal-Mail-From: <{return_path}>\r\nOriginal-Rcpt-To: <{recipient}>\r\n\r\n\
         --F\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@example.com\r\nTo: {recipient}\r\nSubject: Issue 1\r\n\r\n--F--\r\n"
    )
}

/// What a mail client sends for `List-Unsubscribe: <mailto:unsubscribe@news.example.com?subject=unsubscribe>`.
pub fn mailto_unsubscribe(from: &str) -> String {
    format!("From: {from}\r\nTo: unsubscribe@news.example.com\r\nSubject: unsubscribe\r\nMessage-ID: <u-{from}>\r\n\r\n\r\n")
}

/// A delivery-status report with no Status field.
pub fn malformed(to: &str) -> String {
    format!(
        "From: MAILER-DAEMON@relay.example.net\r\nTo: {to}\r\nSubject: failure\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example.net\r\n\r\n\
         Final-Recipient: rfc822; somebody@example.org\r\nAction: failed\r\n\r\n--B--\r\n"
    )
}

mod mail {
    use herald::bounces::intake::Handled;
    use herald::bounces::verp;
    use herald::channel::email::compose::short_hash;

    use super::*;

    both!(dsns_arf_and_mailto_tie_to_their_message_and_apply_once);
    async fn dsns_arf_and_mailto_tie_to_their_message_and_apply_once(db: TestDb) {
        let store = open(&db).await;
        let d = mailing(&store, 8).await;
        let intake = intake(&store);
        let st = &store;
        let rp = move |i: usize| async move { verp::return_path(&key(), row(st, d, &addr(i)).await, &addr(i), "bounces.example.com") };
        let mid = |i: usize| format!("<{}.{}@example.com>", short_hash("issue-1/newsletter/r1"), short_hash(&addr(i)));
        let none = "<unrelated@elsewhere>";
        let mails = vec![
            dsn(&rp(0).await, &addr(0), "failed", "5.1.1", none),  // hard, by VERP
            dsn(&rp(1).await, &addr(1), "failed", "4.2.2", none),  // soft: one is not enough
            dsn(&rp(2).await, &addr(2), "delayed", "4.4.7", none), // delayed: ignored
            dsn("news@example.com", &addr(3), "failed", "5.1.1", &mid(3)), // hard, by Message-ID
            arf(&rp(4).await, &addr(4)),                            // complaint
            mailto_unsubscribe(&addr(5)),
        ];
        let mut kinds = Vec::new();
        for m in &mails {
            match intake.mail(m.as_bytes(), Source::Import).await.unwrap() {
                Handled::Reports { applied, unmatched } if unmatched.is_empty() => kinds.extend(applied.into_iter().map(|(e, k, _)| (e, k.as_str().to_string()))),
                other => panic!("{other:?}\n{m}"),
            }
        }
        assert_eq!(
            kinds,
            vec![
                (addr(0), "hard_bounce".into()),
                (addr(1), "soft_bounce".into()),
                (addr(2), "delayed".into()),
                (addr(3), "hard_bounce".into()),
                (addr(4), "complaint".into()),
                (addr(5), "mailto_unsubscribe".into()),
            ]
        );
        // A malformed report is reported, changes nothing.
        assert!(matches!(intake.mail(malformed(&rp(6).await).as_bytes(), Source::Import).await.unwrap(), Handled::Malformed(m) if m.contains("Status")));
        // A report that names no message of ours (no VERP token, a foreign Message-ID), and one
        // whose VERP token was made for reader 6 but edited to name reader 7's row: not applied.
        assert_eq!(intake.mail(dsn("x@example.com", &addr(7), "failed", "5.1.1", none).as_bytes(), Source::Import).await.unwrap().status(), "unmatched");
        let forged = verp::return_path(&key(), row(&store, d, &addr(7)).await, &addr(6), "bounces.example.com");
        assert_eq!(intake.mail(dsn(&forged, &addr(7), "failed", "5.1.1", none).as_bytes(), Source::Import).await.unwrap().status(), "unmatched");
        let expected = vec![
            (addr(0), "hard_bounce".to_string(), "import".to_string()),
            (addr(3), "hard_bounce".into(), "import".into()),
            (addr(4), "complaint".into(), "import".into()),
            (addr(5), "mailto_unsubscribe".into(), "import".into()),
        ];
        assert_eq!(suppressed(&store).await, expected);
        // The same files again change nothing.
        for m in &mails {
            let Handled::Reports { applied: v, .. } = intake.mail(m.as_bytes(), Source::Import).await.unwrap() else { panic!() };
            assert!(v.iter().all(|(_, _, r)| *r == BounceRecorded::Duplicate), "{v:?}");
        }
        assert_eq!(suppressed(&store).await, expected);
        // `status`: bounced later counts the mailing's bounces and complaints (0, 1, 3, 4).
        assert_eq!(store.bounced_later(d).await.unwrap(), 4);
        store.close().await;
    }
}

/// A DSN about several recipients (one per-recipient group each), mailed to `to`, returning
/// the original message's headers with `original_id`.
pub fn dsn_multi(to: &str, recipients: &[&str], original_id: &str) -> String {
    let groups: String = recipients.iter().map(|r| format!("Final-Recipient: rfc822; {r}\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n")).collect();
    format!(
        "From: MAILER-DAEMON@relay.example.net\r\nTo: {to}\r\nSubject: Delivery Status Notification (Failure)\r\nMessage-ID: <dsn-multi-{}@relay.example.net>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"M\"\r\n\r\n\
         --M\r\nContent-Type: text/plain\r\n\r\nDelivery to the following recipients failed.\r\n\
         --M\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example.net\r\n\r\n{groups}\
         --M\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@example.com\r\nMessage-ID: {original_id}\r\nSubject: Issue 1\r\n\r\n--M--\r\n",
        recipients.len()
    )
}

/// A DSN for reader `i` tied to mailing `issue-1/newsletter/r1` by its original Message-ID.
pub fn dsn_by_message_id(i: usize) -> String {
    let mid = format!("<{}.{}@example.com>", herald::channel::email::compose::short_hash("issue-1/newsletter/r1"), herald::channel::email::compose::short_hash(&addr(i)));
    dsn("news@example.com", &addr(i), "failed", if i.is_multiple_of(3) { "4.2.2" } else { "5.1.1" }, &mid)
}

mod batches {
    use herald::bounces::intake::{Handled, Prepared};
    use herald::bounces::verp;

    use super::*;

    // Issue 17, gap 5: a DSN about three recipients of which one names no message of ours (and
    // one is a subscriber whose address carries no token or Message-ID of its own): the tied
    // ones are applied, the others reported one by one, and a second run applies nothing.
    both!(a_dsn_for_several_recipients_applies_the_tied_ones_and_reports_each_other);
    async fn a_dsn_for_several_recipients_applies_the_tied_ones_and_reports_each_other(db: TestDb) {
        let store = open(&db).await;
        let d = mailing(&store, 8).await;
        let intake = intake(&store);
        // One VERP token (reader 0's), the original Message-ID of reader 2's message.
        let rp0 = verp::return_path(&key(), row(&store, d, &addr(0)).await, &addr(0), "bounces.example.com");
        let mid2 = format!("<{}.{}@example.com>", herald::channel::email::compose::short_hash("issue-1/newsletter/r1"), herald::channel::email::compose::short_hash(&addr(2)));
        let stranger = "stranger@elsewhere.example";
        let raw = dsn_multi(&rp0, &[&addr(0), stranger, &addr(6), &addr(2)], &mid2);
        let h = intake.mail(raw.as_bytes(), Source::Import).await.unwrap();
        assert_eq!(h.status(), "partial", "{h:?}");
        let Handled::Reports { applied, unmatched } = &h else { panic!("{h:?}") };
        assert_eq!(applied, &vec![(addr(0), Kind::HardBounce, BounceRecorded::Suppressed), (addr(2), Kind::HardBounce, BounceRecorded::Suppressed)]);
        let missing: Vec<Option<&str>> = unmatched.iter().map(|u| u.email.as_deref()).collect();
        assert_eq!(missing, vec![Some(stranger), Some(addr(6).as_str())], "reader 6 is not carried by reader 0's token: {unmatched:?}");
        assert!(unmatched.iter().all(|u| u.reason.contains("names no message Herald sent")), "{unmatched:?}");
        let expected = vec![(addr(0), "hard_bounce".to_string(), "import".to_string()), (addr(2), "hard_bounce".into(), "import".into())];
        assert_eq!(suppressed(&store).await, expected);
        assert_eq!(store.bounce_counts().await.unwrap(), vec![("hard_bounce".into(), 2)]);
        // Again: the same outcome, nothing applied twice.
        let again = intake.mail(raw.as_bytes(), Source::Import).await.unwrap();
        let Handled::Reports { applied, unmatched } = &again else { panic!("{again:?}") };
        assert!(applied.iter().all(|(_, _, r)| *r == BounceRecorded::Duplicate) && applied.len() == 2, "{applied:?}");
        assert_eq!(unmatched.len(), 2);
        assert_eq!(suppressed(&store).await, expected);
        assert_eq!(store.bounce_counts().await.unwrap(), vec![("hard_bounce".into(), 2)]);
        store.close().await;
    }

    async fn events(store: &Store) -> (i64, i64) {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bounce_events").fetch_one(store.pool()).await.unwrap();
        let keys: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT event_key) FROM bounce_events").fetch_one(store.pool()).await.unwrap();
        (n, keys)
    }

    // Issue 17, gap 4: reports are committed a batch at a time, all or nothing. A failure in
    // the middle of a batch (a trigger refusing one row: what a crash before the commit
    // leaves) stores none of it; the rerun applies each report exactly once, beside the
    // batch committed before the failure.
    both!(a_batch_commits_all_or_nothing_and_a_rerun_applies_each_report_once);
    async fn a_batch_commits_all_or_nothing_and_a_rerun_applies_each_report_once(db: TestDb) {
        let store = open(&db).await;
        let n = 300;
        mailing(&store, n).await;
        let intake = intake(&store);
        let mut matcher = intake.matcher();
        let mut prepared: Vec<Prepared> = Vec::new();
        for i in 0..n {
            prepared.push(intake.prepare_mail(&mut matcher, dsn_by_message_id(i).as_bytes()).await.unwrap());
        }
        drop(matcher);
        // A first batch committed (a run that crashed after it).
        let first = intake.commit(Source::Import, prepared[..100].to_vec()).await.unwrap();
        assert!(first.iter().all(Handled::fully_applied));
        assert_eq!(events(&store).await, (100, 100));
        let suppressed_before = suppressed(&store).await;
        // The whole list again, failing at reader 150: nothing of the batch is stored.
        let postgres = db.url.starts_with("postgres");
        if postgres {
            sqlx::query("CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN IF NEW.email = 'reader150@example.org' THEN RAISE EXCEPTION 'simulated crash'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
                .execute(store.pool())
                .await
                .unwrap();
            sqlx::query("CREATE TRIGGER boom BEFORE INSERT ON bounce_events FOR EACH ROW EXECUTE FUNCTION boom()").execute(store.pool()).await.unwrap();
        } else {
            sqlx::query("CREATE TRIGGER boom BEFORE INSERT ON bounce_events WHEN NEW.email = 'reader150@example.org' BEGIN SELECT RAISE(ABORT, 'simulated crash'); END")
                .execute(store.pool())
                .await
                .unwrap();
        }
        let e = intake.commit(Source::Import, prepared.clone()).await.unwrap_err();
        assert!(format!("{e:#}").contains("simulated crash"), "{e:#}");
        assert_eq!(events(&store).await, (100, 100), "the failed batch stored nothing: 101..150 were not committed one by one");
        assert_eq!(suppressed(&store).await, suppressed_before);
        sqlx::query(if postgres { "DROP TRIGGER boom ON bounce_events" } else { "DROP TRIGGER boom" }).execute(store.pool()).await.unwrap();
        // The rerun: the first 100 change nothing, the other 200 are applied, each once.
        let rerun = intake.commit(Source::Import, prepared.clone()).await.unwrap();
        let dup = |h: &Handled| matches!(h, Handled::Reports { applied, .. } if applied.iter().all(|(_, _, r)| *r == BounceRecorded::Duplicate));
        assert_eq!(rerun.iter().filter(|h| dup(h)).count(), 100);
        assert_eq!(events(&store).await, (n as i64, n as i64), "one row per report");
        // Hard bounces (i % 3 != 0) suppress; one soft bounce each suppresses nothing.
        assert_eq!(suppressed(&store).await.len(), (0..n).filter(|i| !i.is_multiple_of(3)).count());
        let again = intake.commit(Source::Import, prepared).await.unwrap();
        assert!(again.iter().all(dup));
        assert_eq!(events(&store).await, (n as i64, n as i64));
        store.close().await;
    }
}

mod postmark_webhook {
    use herald::bounces::postmark::{BOUNCE_TYPES, kind_of};
    use herald::bounces::webhook::{WebhookState, postmark_routes};
    use herald::config::SecretString;

    use super::*;

    fn bounce(id: usize, ty: &str, email: &str, message_id: &str) -> serde_json::Value {
        // The shape of Postmark's documented Bounce webhook.
        serde_json::json!({
            "RecordType": if ty == "SpamComplaint" { "SpamComplaint" } else { "Bounce" },
            "MessageStream": "outbound", "ID": 4_000_000 + id, "Type": ty, "TypeCode": 1,
            "Name": ty, "Tag": "", "MessageID": message_id, "Metadata": {}, "ServerID": 23,
            "Description": "The server was unable to deliver your message", "Details": "smtp;550 5.1.1 unknown",
            "Email": email, "From": "news@example.com", "BouncedAt": "2026-12-06T10:00:00Z",
            "DumpAvailable": true, "Inactive": false, "CanActivate": true, "Subject": "Issue 1",
        })
    }

    both!(every_documented_type_and_a_wrong_secret);
    async fn every_documented_type_and_a_wrong_secret(db: TestDb) {
        let store = open(&db).await;
        let n = BOUNCE_TYPES.len() + 3;
        let d = mailing(&store, n).await;
        let state = WebhookState::new(Arc::new(intake(&store)), "postmark".into(), Some(SecretString::new("webhook-pass-0123")), Some(SecretString::new("pathsecret0123456789"))).unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, postmark_routes(state)).await.unwrap() });
        let http = herald::channel::http::client();

        // A wrong or missing secret: 401, nothing changed.
        let hard = bounce(0, "HardBounce", &addr(0), "pm-0");
        for req in [
            http.post(format!("{base}/webhooks/postmark")).json(&hard),
            http.post(format!("{base}/webhooks/postmark")).basic_auth("postmark", Some("wrong")).json(&hard),
            http.post(format!("{base}/webhooks/postmark/wrongsecret0123456")).basic_auth("postmark", Some("webhook-pass-0123")).json(&hard),
            http.post(format!("{base}/webhooks/postmark/pathsecret0123456789")).json(&hard),
        ] {
            assert_eq!(req.send().await.unwrap().status(), 401);
        }
        assert!(suppressed(&store).await.is_empty());
        assert_eq!(store.bounce_counts().await.unwrap(), vec![]);

        // Every documented type, as Postmark posts it.
        let mut expected = Vec::new();
        for (i, ty) in BOUNCE_TYPES.iter().enumerate() {
            let r = http.post(format!("{base}/webhooks/postmark")).basic_auth("postmark", Some("webhook-pass-0123")).json(&bounce(i, ty, &addr(i), &format!("pm-{i}"))).send().await.unwrap();
            assert_eq!(r.status(), 200, "{ty}");
            let k = kind_of(ty).unwrap();
            if matches!(k, Kind::HardBounce | Kind::Complaint | Kind::Unsubscribe) {
                expected.push((addr(i), k.as_str().to_string(), "postmark_webhook".to_string()));
            }
        }
        // SubscriptionChange: suppressed by the recipient; a reactivation lifts nothing.
        let i = BOUNCE_TYPES.len();
        let change = |email: String, suppress: bool| {
            serde_json::json!({"RecordType": "SubscriptionChange", "MessageID": "pm-x", "ServerID": 23, "MessageStream": "outbound",
                "ChangedAt": "2026-12-06T10:00:00Z", "Recipient": email, "Origin": "Recipient", "SuppressSending": suppress,
                "SuppressionReason": if suppress { serde_json::json!("ManualSuppression") } else { serde_json::Value::Null }, "Tag": "", "Metadata": {}})
        };
        for body in [change(addr(i), true), change(addr(0), false)] {
            assert_eq!(http.post(format!("{base}/webhooks/postmark/pathsecret0123456789")).basic_auth("postmark", Some("webhook-pass-0123")).json(&body).send().await.unwrap().status(), 200);
        }
        expected.push((addr(i), "unsubscribe".into(), "postmark_webhook".into()));
        // A record type Herald does not take: 200 (Postmark stops retrying), nothing changed.
        let open_event = serde_json::json!({"RecordType": "Open", "MessageID": "pm-1", "Recipient": addr(i + 1)});
        assert_eq!(http.post(format!("{base}/webhooks/postmark")).basic_auth("postmark", Some("webhook-pass-0123")).json(&open_event).send().await.unwrap().status(), 200);
        // Not a Postmark record: 400.
        assert_eq!(http.post(format!("{base}/webhooks/postmark")).basic_auth("postmark", Some("webhook-pass-0123")).body("{}").send().await.unwrap().status(), 400);
        expected.sort();
        assert_eq!(suppressed(&store).await, expected);
        // A retried webhook changes nothing; soft bounces of one address suppress at the third.
        assert_eq!(http.post(format!("{base}/webhooks/postmark")).basic_auth("postmark", Some("webhook-pass-0123")).json(&hard).send().await.unwrap().status(), 200);
        let soft_addr = addr(i + 2);
        for k in 0..3 {
            let b = bounce(100 + k, "SoftBounce", &soft_addr, "pm-none");
            assert_eq!(http.post(format!("{base}/webhooks/postmark")).basic_auth("postmark", Some("webhook-pass-0123")).json(&b).send().await.unwrap().status(), 200);
            assert_eq!(suppressed(&store).await.iter().any(|(e, _, _)| *e == soft_addr), k == 2, "after {} soft bounces", k + 1);
        }
        // Tied to the mailing by Postmark's MessageID.
        assert!(store.bounced_later(d).await.unwrap() > 0);
        // The next mailing skips every suppressed subscriber.
        let mailed = store.seed_recipients(d + 1000, "all").await.unwrap() as usize;
        assert_eq!(mailed, n - expected.len() - 1);
        store.close().await;
    }
}

/// A real IMAP server: Debian's dovecot (`dovecot-imapd`, installed by `.ci/run`), started on a
/// free loopback port with its own config, Maildir and passwd-file user under a temp dir.
mod imap {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command};

    use herald::bounces::imap::{ImapSettings, poll};
    use herald::config::SecretString;

    use super::*;

    struct Dovecot {
        child: Child,
        port: u16,
        /// The implicit-TLS (IMAPS) port, when started with a certificate.
        tls_port: Option<u16>,
        maildir: PathBuf,
        _dir: tempfile::TempDir,
    }

    /// How to start the server.
    #[derive(Default)]
    struct Options<'a> {
        /// `imap_capability`: what the server advertises (Dovecot's own list when `None`).
        capability: Option<&'a str>,
        /// (certificate chain PEM, key PEM) for an IMAPS listener.
        tls: Option<(&'a Path, &'a Path)>,
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    impl Drop for Dovecot {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn binary() -> PathBuf {
        ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"].iter().map(PathBuf::from).find(|p| p.exists()).expect("dovecot is installed (apt-get install dovecot-imapd; .ci/run does)")
    }

    fn start() -> Dovecot {
        start_with(Options::default())
    }

    fn start_with(o: Options<'_>) -> Dovecot {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        let tls_port = o.tls.map(|_| free_port());
        let (me, _) = ids(None);
        // Dovecot never gives mail to uid 0: as root (CI), the mail user is the package's
        // `dovecot` system user, and the folders are its own.
        let (uid, gid) = if me == 0 { ids(Some("dovecot")) } else { ids(None) };
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap().trim().to_string();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["run", "state", "mail", "home", "mail/bounces", "mail/bounces/new", "mail/bounces/cur", "mail/bounces/tmp"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        for sub in ["mail", "home", "mail/bounces", "mail/bounces/new", "mail/bounces/cur", "mail/bounces/tmp"] {
            std::os::unix::fs::chown(d.join(sub), Some(uid), Some(gid)).unwrap();
        }
        // passwd-file: user:{PLAIN}password:uid:gid::home
        std::fs::write(d.join("passwd"), format!("bounces:{{PLAIN}}imap-test-pass:{uid}:{gid}::{}\n", d.join("home").display())).unwrap();
        let login_user = if me == 0 { "dovenull".to_string() } else { user.clone() };
        let conf = format!(
            r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
{capability}
auth_mechanisms = plain login
first_valid_uid = 0
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
mail_location = maildir:{d}/mail/%u
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = {d}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
"#,
            d = d.display(),
            ssl = match o.tls {
                Some((cert, key)) => format!("ssl = yes\nssl_cert = <{}\nssl_key = <{}", cert.display(), key.display()),
                None => "ssl = no".into(),
            },
            capability = o.capability.map(|c| format!("imap_capability = {c}")).unwrap_or_default(),
            imaps = tls_port.unwrap_or(0),
            group = String::from_utf8(Command::new("id").arg("-gn").output().unwrap().stdout).unwrap().trim(),
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        let child = Command::new(binary()).arg("-F").arg("-c").arg(d.join("dovecot.conf")).spawn().expect("dovecot starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "dovecot did not listen: {}", std::fs::read_to_string(d.join("dovecot.log")).unwrap_or_default());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if let Some(p) = tls_port {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(std::time::Instant::now() < deadline, "dovecot did not listen on IMAPS: {}", std::fs::read_to_string(d.join("dovecot.log")).unwrap_or_default());
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        let maildir = d.join("mail/bounces");
        Dovecot { child, port, tls_port, maildir, _dir: dir }
    }

    /// (uid, gid) of `user`, or of the current user.
    fn ids(user: Option<&str>) -> (u32, u32) {
        let id = |flag: &str| {
            let mut c = Command::new("id");
            c.arg(flag);
            if let Some(u) = user {
                c.arg(u);
            }
            String::from_utf8(c.output().unwrap().stdout).unwrap().trim().parse().expect("id answers")
        };
        (id("-u"), id("-g"))
    }

    /// Deliver a message as an MDA would: into Maildir `new/`.
    fn drop_mail(maildir: &Path, n: usize, raw: &str) {
        let name = format!("{}.M{n}P1.herald-test", 1_700_000_000 + n);
        std::fs::write(maildir.join("tmp").join(&name), raw).unwrap();
        std::fs::rename(maildir.join("tmp").join(&name), maildir.join("new").join(&name)).unwrap();
    }

    fn messages(maildir: &Path) -> usize {
        ["new", "cur"].iter().map(|s| std::fs::read_dir(maildir.join(s)).unwrap().count()).sum()
    }

    both!(one_poll_applies_every_report_a_second_changes_nothing);
    async fn one_poll_applies_every_report_a_second_changes_nothing(db: TestDb) {
        let dovecot = start();
        let store = open(&db).await;
        let d = mailing(&store, 8).await;
        let intake = intake(&store);
        let rp = |i: usize| {
            let st = store.clone();
            async move { herald::bounces::verp::return_path(&key(), row(&st, d, &addr(i)).await, &addr(i), "bounces.example.com") }
        };
        let none = "<unrelated@elsewhere>";
        let mails = [
            dsn(&rp(0).await, &addr(0), "failed", "5.1.1", none),
            dsn(&rp(1).await, &addr(1), "failed", "4.2.2", none),
            dsn(&rp(2).await, &addr(2), "delayed", "4.4.7", none),
            arf(&rp(3).await, &addr(3)),
            mailto_unsubscribe(&addr(4)),
            malformed(&rp(5).await),
        ];
        for (n, m) in mails.iter().enumerate() {
            drop_mail(&dovecot.maildir, n, m);
        }
        let settings = ImapSettings::parse(&format!("imap://127.0.0.1:{}", dovecot.port), "bounces", SecretString::new("imap-test-pass"), "INBOX", None).unwrap();
        let first = poll(&settings, &intake).await.unwrap();
        assert_eq!((first.read, first.applied, first.kept), (6, 5, 1), "{first:?}");
        let expected = vec![
            (addr(0), "hard_bounce".to_string(), "imap".to_string()),
            (addr(3), "complaint".into(), "imap".into()),
            (addr(4), "mailto_unsubscribe".into(), "imap".into()),
        ];
        assert_eq!(suppressed(&store).await, expected);
        let events = store.bounce_counts().await.unwrap();
        assert_eq!(events, vec![("complaint".into(), 1), ("delayed".into(), 1), ("hard_bounce".into(), 1), ("mailto_unsubscribe".into(), 1), ("soft_bounce".into(), 1)]);
        // The second poll reads nothing and changes nothing; every message, the malformed
        // report included, is still in the mailbox (flag mode).
        let second = poll(&settings, &intake).await.unwrap();
        assert_eq!(second, Default::default());
        assert_eq!(suppressed(&store).await, expected);
        assert_eq!(store.bounce_counts().await.unwrap(), events);
        assert_eq!(messages(&dovecot.maildir), 6, "nothing deleted; the malformed report is kept");
        // A wrong password is an error that names no secret.
        let bad = ImapSettings::parse(&format!("imap://127.0.0.1:{}", dovecot.port), "bounces", SecretString::new("wrong-pass-xyz"), "INBOX", None).unwrap();
        let e = format!("{:#}", poll(&bad, &intake).await.unwrap_err());
        assert!(!e.contains("wrong-pass-xyz") && !e.contains("imap-test-pass"), "{e}");
        // Plain IMAP beyond loopback is refused.
        assert!(ImapSettings::parse("imap://mail.example.com", "u", SecretString::new("p"), "INBOX", None).is_err());
        // The next mailing skips the suppressed subscribers (0, 3, 4).
        assert_eq!(store.seed_recipients(d + 1000, "all").await.unwrap(), 5);
        store.close().await;
    }

    /// Maildir file names of `folder` (`""`: the inbox) of the test user, both `new/` and `cur/`.
    fn files(maildir: &Path, folder: &str) -> Vec<String> {
        let base = if folder.is_empty() { maildir.to_path_buf() } else { maildir.join(format!(".{folder}")) };
        let mut out: Vec<String> = ["new", "cur"].iter().filter_map(|s| std::fs::read_dir(base.join(s)).ok()).flatten().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        out.sort();
        out
    }

    /// The Maildir flags of a file name (`…:2,FLAGS`): upper case are IMAP system flags
    /// (`S` \Seen, `T` \Deleted), lower case the folder's keywords.
    fn flags(name: &str) -> &str {
        name.split_once(":2,").map(|(_, f)| f).unwrap_or("")
    }

    /// The test's mailbox: reports of every kind, a malformed one, and a DSN for two
    /// recipients of which one is a stranger. Returns (mails, expected suppressions).
    async fn reports(store: &Store, d: i64) -> (Vec<String>, Vec<(String, String, String)>) {
        let rp = |i: usize| {
            let st = store.clone();
            async move { herald::bounces::verp::return_path(&key(), row(&st, d, &addr(i)).await, &addr(i), "bounces.example.com") }
        };
        let none = "<unrelated@elsewhere>";
        let mails = vec![
            dsn(&rp(0).await, &addr(0), "failed", "5.1.1", none),
            dsn(&rp(1).await, &addr(1), "failed", "4.2.2", none),
            dsn(&rp(2).await, &addr(2), "delayed", "4.4.7", none),
            arf(&rp(3).await, &addr(3)),
            mailto_unsubscribe(&addr(4)),
            malformed(&rp(5).await),
            dsn_multi(&rp(6).await, &[&addr(6), "stranger@elsewhere.example"], none),
        ];
        let expected = vec![
            (addr(0), "hard_bounce".to_string(), "imap".to_string()),
            (addr(3), "complaint".into(), "imap".into()),
            (addr(4), "mailto_unsubscribe".into(), "imap".into()),
            (addr(6), "hard_bounce".into(), "imap".into()),
        ];
        (mails, expected)
    }

    // Issue 17, gap 1: with `imap_done_mailbox`, handled mail is moved there and not flagged;
    // the malformed and the partly matched reports stay in the inbox; a second poll changes
    // nothing. Once with `MOVE` (RFC 6851, Dovecot's default), once with a server that
    // advertises only `UIDPLUS` (`UID COPY` + `\Deleted` + `UID EXPUNGE`), once with neither
    // (`EXPUNGE`).
    both!(move_mode_moves_what_was_handled_and_keeps_the_rest);
    async fn move_mode_moves_what_was_handled_and_keeps_the_rest(db: TestDb) {
        for capability in [None, Some("IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE UIDPLUS"), Some("IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE")] {
            let dovecot = start_with(Options { capability, ..Default::default() });
            let store = open(&db).await;
            sqlx::query("DELETE FROM bounce_events").execute(store.pool()).await.unwrap();
            sqlx::query("DELETE FROM suppressions").execute(store.pool()).await.unwrap();
            let d = match sqlx::query_scalar::<_, i64>("SELECT id FROM deliveries").fetch_optional(store.pool()).await.unwrap() {
                Some(d) => d,
                None => mailing(&store, 8).await,
            };
            let intake = intake(&store);
            let (mails, expected) = reports(&store, d).await;
            for (n, m) in mails.iter().enumerate() {
                drop_mail(&dovecot.maildir, n, m);
            }
            let settings = ImapSettings::parse(&format!("imap://127.0.0.1:{}", dovecot.port), "bounces", SecretString::new("imap-test-pass"), "INBOX", Some("Done")).unwrap();
            let first = poll(&settings, &intake).await.unwrap();
            assert_eq!((first.read, first.applied, first.kept, first.partial), (7, 5, 2, 1), "{capability:?}: {first:?}");
            assert_eq!(suppressed(&store).await, expected, "{capability:?}");
            let inbox = files(&dovecot.maildir, "");
            let done = files(&dovecot.maildir, "Done");
            assert_eq!(inbox.len(), 2, "{capability:?}: the malformed and the partly matched reports stay: {inbox:?}");
            assert_eq!(done.len(), 5, "{capability:?}: {done:?}");
            assert!(done.iter().all(|f| flags(f).is_empty()), "{capability:?}: moved, not flagged: {done:?}");
            assert!(inbox.iter().all(|f| !flags(f).contains('T')), "{capability:?}: nothing kept is marked deleted: {inbox:?}");
            let events = store.bounce_counts().await.unwrap();
            // A second poll reads nothing and changes nothing.
            let second = poll(&settings, &intake).await.unwrap();
            assert_eq!(second, Default::default(), "{capability:?}");
            assert_eq!(files(&dovecot.maildir, ""), inbox, "{capability:?}");
            assert_eq!(files(&dovecot.maildir, "Done"), done, "{capability:?}");
            assert_eq!(suppressed(&store).await, expected);
            assert_eq!(store.bounce_counts().await.unwrap(), events);
            store.close().await;
        }
    }

    /// Runs `openssl` (the test's own tool, not the code under test) in `dir`.
    fn openssl(dir: &Path, args: &[&str]) {
        let o = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed");
        assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// A CA, a certificate for 127.0.0.1 signed by it, and a second CA that signed nothing.
    fn certificates(dir: &Path) {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for ca in ["ca", "other-ca"] {
            let mut a = vec!["req", "-x509"];
            a.extend(ec);
            let (key, pem, subj) = (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN=Herald test {ca}"));
            a.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
            openssl(dir, &a);
        }
        let mut a = vec!["req"];
        a.extend(ec);
        a.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
        openssl(dir, &a);
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n").unwrap();
        openssl(dir, &["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"]);
    }

    // Issue 17, gap 2: TLS for real. Dovecot serves IMAPS with a certificate from a test CA.
    // (a) Trusting that CA (`imap_ca_file`), a poll over TLS works; (b) a certificate not
    // signed by the CA Herald trusts (another CA, or the web PKI roots) is refused with an
    // error that says so, and nothing is read or changed; (c) plain IMAP beyond loopback is
    // refused before any connection.
    both!(tls_polls_with_the_configured_ca_and_refuses_any_other);
    async fn tls_polls_with_the_configured_ca_and_refuses_any_other(db: TestDb) {
        let certs = tempfile::tempdir().unwrap();
        certificates(certs.path());
        let dovecot = start_with(Options { tls: Some((&certs.path().join("server.pem"), &certs.path().join("server.key"))), ..Default::default() });
        let store = open(&db).await;
        let d = mailing(&store, 8).await;
        let intake = intake(&store);
        let (mails, expected) = reports(&store, d).await;
        for (n, m) in mails.iter().enumerate() {
            drop_mail(&dovecot.maildir, n, m);
        }
        let url = format!("imaps://127.0.0.1:{}", dovecot.tls_port.unwrap());
        let settings = || ImapSettings::parse(&url, "bounces", SecretString::new("imap-test-pass"), "INBOX", None).unwrap();
        let before = files(&dovecot.maildir, "");
        // (b) Not signed by the CA Herald trusts: refused, clearly; nothing read or changed.
        for (what, s) in [("the CA in `imap_ca_file`", settings().with_ca_file(&certs.path().join("other-ca.pem")).unwrap()), ("the web PKI roots", settings())] {
            let e = format!("{:#}", poll(&s, &intake).await.unwrap_err());
            assert!(e.contains("certificate is refused") && e.contains(&format!("signed by {what}")) && e.contains("imap_ca_file"), "{what}: {e}");
            assert!(e.contains("UnknownIssuer"), "{what}: {e}");
            assert!(!e.contains("imap-test-pass"), "{e}");
        }
        assert!(suppressed(&store).await.is_empty());
        assert!(store.bounce_counts().await.unwrap().is_empty());
        assert_eq!(files(&dovecot.maildir, ""), before, "nothing read or flagged");
        // (a) Trusting the test CA: the poll works over TLS.
        let trusted = settings().with_ca_file(&certs.path().join("ca.pem")).unwrap();
        let first = poll(&trusted, &intake).await.unwrap();
        assert_eq!((first.read, first.applied, first.kept), (7, 5, 2), "{first:?}");
        assert_eq!(suppressed(&store).await, expected);
        assert_eq!(poll(&trusted, &intake).await.unwrap(), Default::default());
        // A CA file that is missing, or holds no certificate, is an error naming it.
        let e = format!("{:#}", settings().with_ca_file(&certs.path().join("missing.pem")).unwrap_err());
        assert!(e.contains("imap_ca_file") && e.contains("missing.pem"), "{e}");
        let e = format!("{:#}", settings().with_ca_file(&certs.path().join("ext.cnf")).unwrap_err());
        assert!(e.contains("imap_ca_file") && e.contains("ext.cnf") && e.contains("BEGIN CERTIFICATE"), "{e}");
        // (c) Plain IMAP beyond loopback is refused before connecting (and by `herald check`,
        // see `config::validate`); a CA file means nothing without TLS.
        for u in ["imap://mail.example.com", "imap://192.0.2.10:143"] {
            let e = format!("{:#}", ImapSettings::parse(u, "u", SecretString::new("p"), "INBOX", None).unwrap_err());
            assert!(e.contains("in clear") && e.contains("imaps://"), "{e}");
        }
        let plain = ImapSettings::parse(&format!("imap://127.0.0.1:{}", dovecot.port), "u", SecretString::new("p"), "INBOX", None).unwrap();
        assert!(plain.with_ca_file(&certs.path().join("ca.pem")).is_err());
        store.close().await;
    }
}

/// `herald bounces import` and `herald subscribers list --suppressed --json`, end to end.
mod cli {
    use super::*;
    use crate::util::{herald, out, temp_config};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn import_eml_and_postmark_export_then_list_suppressed() {
        let (dir, _) = temp_config("[store]\nurl = \"sqlite://data/herald.db\"\n\n[bounces]\nsoft_bounce_limit = 1\n");
        let url = StoreUrl::parse("sqlite://data/herald.db", dir.path()).unwrap();
        let store = Store::open(&url).await.unwrap();
        let d = mailing(&store, 4).await;
        store.close().await;
        let mid = |i: usize| format!("<{}.{}@example.com>", herald::channel::email::compose::short_hash("issue-1/newsletter/r1"), herald::channel::email::compose::short_hash(&addr(i)));
        std::fs::write(dir.path().join("hard.eml"), dsn("news@example.com", &addr(0), "failed", "5.1.1", &mid(0))).unwrap();
        std::fs::write(dir.path().join("soft.eml"), dsn("news@example.com", &addr(1), "failed", "4.2.2", &mid(1))).unwrap();
        std::fs::write(dir.path().join("bad.eml"), malformed("news@example.com")).unwrap();
        let export = serde_json::json!({"TotalCount": 1, "Bounces": [{"ID": 77, "Type": "SpamComplaint", "TypeCode": 512, "Name": "Spam complaint",
            "MessageID": "pm-2", "Email": addr(2), "Inactive": true, "Description": "complained", "BouncedAt": "2026-12-06T10:00:00Z"}]});
        std::fs::write(dir.path().join("export.json"), export.to_string()).unwrap();
        // A DSN about a stranger and reader 3 (tied by its Message-ID): reader 3 is applied,
        // the stranger reported on its own.
        std::fs::write(dir.path().join("partial.eml"), dsn_multi("news@example.com", &["stranger@elsewhere.example", &addr(3)], &mid(3))).unwrap();
        let o = herald(dir.path(), &["bounces", "import", "hard.eml", "soft.eml", "bad.eml", "export.json", "partial.eml", "--json"]);
        let (so, se) = out(&o);
        assert_eq!(o.status.code(), Some(1), "a malformed file makes the exit status 1: {so}{se}");
        let v: serde_json::Value = serde_json::from_str(&so).unwrap();
        let items = v["items"].as_array().unwrap();
        let statuses: Vec<&str> = items.iter().map(|r| r["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["applied", "applied", "malformed", "applied", "partial"], "{so}");
        let partial = &items[4];
        assert_eq!(partial["reports"], serde_json::json!([{"email": addr(3), "kind": "hard_bounce", "outcome": "suppressed"}]), "{so}");
        assert_eq!(partial["unmatched"][0]["email"], "stranger@elsewhere.example", "{so}");
        assert_eq!(partial["unmatched"].as_array().unwrap().len(), 1, "{so}");
        let sum = &v["summary"];
        assert_eq!((sum["files"].as_u64(), sum["items"].as_u64(), sum["applied"].as_u64(), sum["partial"].as_u64(), sum["malformed"].as_u64()), (Some(5), Some(5), Some(3), Some(1), Some(1)), "{so}");
        assert_eq!((sum["reports_recorded"].as_u64(), sum["suppressed"].as_u64(), sum["unmatched_recipients"].as_u64()), (Some(4), Some(4), Some(1)), "{so}");
        assert!(se.contains("stranger@elsewhere.example") && se.contains("not tied to a Herald message"), "the unmatched recipient is logged: {se}");
        let o = herald(dir.path(), &["subscribers", "list", "--suppressed", "--json"]);
        let (so, se) = out(&o);
        assert!(o.status.success(), "{se}");
        let v: serde_json::Value = serde_json::from_str(&so).unwrap();
        let got: Vec<(String, String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["email"].as_str().unwrap().into(), r["kind"].as_str().unwrap().into(), r["source"].as_str().unwrap().into()))
            .collect();
        // soft_bounce_limit = 1: the one soft bounce suppresses.
        assert_eq!(
            got,
            vec![
                (addr(0), "hard_bounce".into(), "import".into()),
                (addr(1), "soft_bounce".into(), "import".into()),
                (addr(2), "complaint".into(), "import".into()),
                (addr(3), "hard_bounce".into(), "import".into())
            ]
        );
        // Importing again changes nothing; the partial report is reported again, not re-applied.
        let o = herald(dir.path(), &["bounces", "import", "hard.eml", "export.json", "partial.eml"]);
        let (so, se) = out(&o);
        assert_eq!(o.status.code(), Some(1), "an unmatched recipient needs a person: {so}{se}");
        assert!(so.contains("hard.eml: reader0@example.org hard_bounce (already recorded)"), "{so}");
        assert!(so.contains(&format!("partial.eml: {} hard_bounce (already recorded), not applied: a DSN for stranger@elsewhere.example", addr(3))), "{so}");
        assert!(so.contains("3 item(s) from 3 file(s): 2 applied, 1 partly applied") && so.contains("0 report(s) recorded (0 newly suppressed), 3 already recorded, 1 recipient(s) not tied"), "{so}");
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.bounced_later(d).await.unwrap(), 4);
        assert_eq!(store.bounce_counts().await.unwrap(), vec![("complaint".into(), 1), ("hard_bounce".into(), 2), ("soft_bounce".into(), 1)]);
        store.close().await;
    }
}
