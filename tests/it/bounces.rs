//! Issue 17: asynchronous bounces, complaints and unsubscribes, one suppression list.

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
