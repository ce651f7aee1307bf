//! The skeleton against an in-memory network, as a table of crash and resume stories.
//!
//! The fake network is a list of posts. Like the real ones, it refuses a reply to a post it
//! doesn't have, and it can lose an answer after the post is made (a crash or a timeout after
//! the request went out). In "look first" mode it has no idempotency (like X: posting the same
//! part twice makes two posts), so only the skeleton's lookup prevents a duplicate; in
//! "post again" mode it keeps each part's key (like Mastodon's `Idempotency-Key`) and answers
//! a resend with the original.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Lookup, PartCall, PartView, Posted, Settle, ThreadNetwork, deliver, find_existing};
use crate::channel::{
    DeliveryCtx, DeliveryError, Kind, MemoryCheckpoint, PartState, Reconciled, ThreadProgress,
};
use crate::render::Post;

/// What happens to one post request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// The post is made; the answer is lost.
    DropAnswer,
    /// The request is lost before the network sees it (a timeout that changed nothing).
    LostBeforeSend,
    /// Refused, nothing posted (a 503).
    Refuse,
}

#[derive(Debug, Clone, PartialEq)]
struct NetPost {
    id: String,
    text: String,
    parent: Option<String>,
    key: String,
}

#[derive(Default)]
struct Net {
    posts: Vec<NetPost>,
    /// Faults for the next post request of part `i`, consumed in order.
    faults: HashMap<usize, Vec<Fault>>,
    /// Post requests made, by part index.
    calls: Vec<usize>,
    /// Lookups made, by part index.
    lookups: Vec<usize>,
}

/// The fake network. `LOOK_FIRST`: no idempotency, reconciled by lookup.
struct Fake<const LOOK_FIRST: bool> {
    net: Mutex<Net>,
    /// Whether lookups work (X without a user id, Mastodon past the key's hour can't look).
    checkable: bool,
    before_first: Mutex<usize>,
    /// The part that stands for the rest of the thread (X's link post), if any.
    ends_at: Option<usize>,
}

impl<const L: bool> Fake<L> {
    fn new(checkable: bool, faults: &[(usize, Fault)]) -> Self {
        let mut net = Net::default();
        for (part, f) in faults {
            net.faults.entry(*part).or_default().push(*f);
        }
        Self { net: Mutex::new(net), checkable, before_first: Mutex::new(0), ends_at: None }
    }
    fn posts(&self) -> Vec<NetPost> {
        self.net.lock().unwrap().posts.clone()
    }
}

fn key_of(prepared: &Value) -> String {
    prepared["key"].as_str().expect("the marker was saved before the call").to_string()
}

#[async_trait]
impl<const L: bool> ThreadNetwork for Fake<L> {
    const SETTLE: Settle = if L { Settle::LookFirst } else { Settle::PostAgain };

    fn network(&self) -> &'static str {
        "fake"
    }

    /// A key chosen once per part and kept across attempts.
    fn marker(&self, index: usize, earlier: &Value) -> Option<Value> {
        if earlier.get("key").is_some() {
            return if L { Some(earlier.clone()) } else { None };
        }
        let mut m = json!({ "key": format!("k{index}-{}", uuid::Uuid::new_v4().simple()) });
        if self.ends_at == Some(index) {
            m["ends"] = json!(true);
        }
        Some(m)
    }

    async fn post_part(&self, part: &mut PartCall<'_>) -> Result<Posted, DeliveryError> {
        let v = part.view();
        let key = key_of(&v.state().prepared);
        let mut net = self.net.lock().unwrap();
        net.calls.push(v.index);
        let fault = net.faults.get_mut(&v.index).and_then(|f| (!f.is_empty()).then(|| f.remove(0)));
        match fault {
            Some(Fault::Refuse) => return Err(DeliveryError::retryable("503 Service Unavailable")),
            Some(Fault::LostBeforeSend) => return Err(DeliveryError::unknown_outcome("timed out")),
            _ => {}
        }
        if let Some(parent) = v.parent_id()
            && !net.posts.iter().any(|p| p.id == parent)
        {
            return Err(DeliveryError::permanent(format!("no post {parent} to reply to")));
        }
        if !L && let Some(p) = net.posts.iter().find(|p| p.key == key) {
            // The same key: the original post, not a new one.
            return Ok(Posted::new(p.id.clone(), None));
        }
        let id = format!("p{}", net.posts.len() + 100);
        net.posts.push(NetPost { id: id.clone(), text: v.post().text.clone(), parent: v.parent_id().map(Into::into), key });
        if fault == Some(Fault::DropAnswer) {
            return Err(DeliveryError::unknown_outcome("connection reset after the request was sent"));
        }
        Ok(Posted::new(id.clone(), Some(format!("https://fake.example/{id}"))))
    }

    async fn find_part(&self, part: PartView<'_>) -> Result<Lookup, DeliveryError> {
        let mut net = self.net.lock().unwrap();
        net.lookups.push(part.index);
        if !self.checkable {
            return Ok(Lookup::CannotCheck("the fake can't look".into()));
        }
        let key = key_of(&part.state().prepared);
        Ok(match net.posts.iter().find(|p| p.key == key) {
            Some(p) => Lookup::Found(Posted::new(p.id.clone(), Some(format!("https://fake.example/{}", p.id)))),
            None => Lookup::NotThere,
        })
    }

    async fn before_first(&self, _posts: &[Post]) -> Result<(), DeliveryError> {
        *self.before_first.lock().unwrap() += 1;
        Ok(())
    }

    fn ends_thread(&self, part: &PartState) -> bool {
        part.prepared["ends"] == json!(true)
    }

    fn note(&self, _progress: &ThreadProgress, _total: usize, reconciled: bool) -> Option<String> {
        reconciled.then(|| "reconciled".into())
    }
}

fn posts(n: usize) -> Vec<Post> {
    (0..n)
        .map(|i| Post { text: format!("part {}", i + 1), facets: vec![], entities: vec![], count: 6, limit: 500 })
        .collect()
}

fn ctx(cp: &Arc<MemoryCheckpoint>) -> DeliveryCtx {
    DeliveryCtx { checkpoint: cp.clone(), ..DeliveryCtx::for_test("2026-week-01/fake/r1") }
}

/// One call of the story and what it must answer.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// `deliver`: `None` → Ok, `Some(kind)` → that error.
    Deliver(Option<Kind>),
    /// `find_existing`.
    Find(Rec),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Rec {
    Found,
    NotFound,
    CannotCheck,
}

struct Case {
    name: &'static str,
    look_first: bool,
    checkable: bool,
    parts: usize,
    faults: &'static [(usize, Fault)],
    steps: &'static [Step],
    /// Post requests made, by part index, over the whole story.
    calls: &'static [usize],
    /// Parts on the network at the end (each once, each replying to the one before).
    out: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "crash after the request was sent: reconcile finds it, the retry resumes after it, no second post",
        look_first: true,
        checkable: true,
        parts: 3,
        faults: &[(1, Fault::DropAnswer)],
        steps: &[Step::Deliver(Some(Kind::UnknownOutcome)), Step::Find(Rec::NotFound), Step::Deliver(None), Step::Find(Rec::Found)],
        calls: &[0, 1, 2],
        out: 3,
    },
    Case {
        name: "crash after the last part was sent: reconcile finds the whole thread",
        look_first: true,
        checkable: true,
        parts: 2,
        faults: &[(1, Fault::DropAnswer)],
        steps: &[Step::Deliver(Some(Kind::UnknownOutcome)), Step::Find(Rec::Found), Step::Deliver(None)],
        calls: &[0, 1],
        out: 2,
    },
    Case {
        name: "crash after send, then deliver again at once: it looks before posting",
        look_first: true,
        checkable: true,
        parts: 3,
        faults: &[(1, Fault::DropAnswer)],
        steps: &[Step::Deliver(Some(Kind::UnknownOutcome)), Step::Deliver(None)],
        calls: &[0, 1, 2],
        out: 3,
    },
    Case {
        name: "lost before the network saw it: reconcile says not there, the retry posts it once",
        look_first: true,
        checkable: true,
        parts: 3,
        faults: &[(1, Fault::LostBeforeSend)],
        steps: &[Step::Deliver(Some(Kind::UnknownOutcome)), Step::Find(Rec::NotFound), Step::Deliver(None)],
        calls: &[0, 1, 1, 2],
        out: 3,
    },
    Case {
        name: "the network can't check: unconfirmed, nothing posted again",
        look_first: true,
        checkable: false,
        parts: 2,
        faults: &[(0, Fault::DropAnswer)],
        steps: &[Step::Deliver(Some(Kind::UnknownOutcome)), Step::Find(Rec::CannotCheck)],
        calls: &[0],
        out: 1,
    },
    Case {
        name: "the network can't check a middle part: unconfirmed even though part 1 is recorded",
        look_first: true,
        checkable: false,
        parts: 3,
        faults: &[(1, Fault::DropAnswer)],
        steps: &[Step::Deliver(Some(Kind::UnknownOutcome)), Step::Find(Rec::CannotCheck)],
        calls: &[0, 1],
        out: 2,
    },
    Case {
        name: "refused mid-thread: the retry resumes at that part, replying to the one before",
        look_first: true,
        checkable: true,
        parts: 4,
        faults: &[(2, Fault::Refuse)],
        steps: &[Step::Deliver(Some(Kind::Retryable)), Step::Deliver(None), Step::Deliver(None)],
        calls: &[0, 1, 2, 2, 3],
        out: 4,
    },
    Case {
        name: "post-again network: the resend with the same key is the check, no second post",
        look_first: false,
        checkable: true,
        parts: 3,
        faults: &[(1, Fault::DropAnswer)],
        steps: &[Step::Deliver(Some(Kind::UnknownOutcome)), Step::Deliver(None), Step::Find(Rec::Found)],
        calls: &[0, 1, 1, 2],
        out: 3,
    },
    Case {
        name: "post-again network: reconcile resends with the same key",
        look_first: false,
        checkable: true,
        parts: 2,
        faults: &[(1, Fault::DropAnswer)],
        steps: &[Step::Deliver(Some(Kind::UnknownOutcome)), Step::Find(Rec::Found), Step::Deliver(None)],
        calls: &[0, 1],
        out: 2,
    },
    Case {
        name: "nothing saved, nothing posted: reconcile says not there without asking",
        look_first: true,
        checkable: true,
        parts: 2,
        faults: &[],
        steps: &[Step::Find(Rec::NotFound), Step::Deliver(None)],
        calls: &[0, 1],
        out: 2,
    },
];

/// Run one story on a fresh network and checkpoint.
async fn run<const L: bool>(case: &Case) -> (Fake<L>, Arc<MemoryCheckpoint>) {
    let fake = Fake::<L>::new(case.checkable, case.faults);
    let cp = Arc::new(MemoryCheckpoint::default());
    let posts = posts(case.parts);
    for (n, step) in case.steps.iter().enumerate() {
        match *step {
            Step::Deliver(want) => {
                let got = deliver(&fake, &posts, &ctx(&cp)).await;
                match (want, got) {
                    (None, Ok(r)) => {
                        assert_eq!(r.remote_id, fake.posts()[0].id, "{}: step {n}: the receipt names part 1", case.name);
                    }
                    (Some(k), Err(e)) => assert_eq!(e.kind(), k, "{}: step {n}: {e}", case.name),
                    (want, got) => panic!("{}: step {n}: wanted {want:?}, got {got:?}", case.name),
                }
            }
            Step::Find(want) => {
                let got = find_existing(&fake, &posts, &ctx(&cp)).await.expect("find_existing");
                let rec = match &got {
                    Reconciled::Found(r) => {
                        assert_eq!(r.remote_id, fake.posts()[0].id, "{}: step {n}", case.name);
                        assert_eq!(r.note.as_deref(), Some("reconciled"), "{}: step {n}", case.name);
                        Rec::Found
                    }
                    Reconciled::NotFound => Rec::NotFound,
                    Reconciled::CannotCheck(_) => Rec::CannotCheck,
                };
                assert_eq!(rec, want, "{}: step {n}: {got:?}", case.name);
            }
        }
    }
    (fake, cp)
}

fn assert_thread<const L: bool>(case: &Case, fake: &Fake<L>) {
    let out = fake.posts();
    let texts: Vec<&str> = out.iter().map(|p| p.text.as_str()).collect();
    let want: Vec<String> = (0..case.out).map(|i| format!("part {}", i + 1)).collect();
    assert_eq!(texts, want, "{}: each part once, in order", case.name);
    for (i, p) in out.iter().enumerate() {
        let parent = i.checked_sub(1).map(|j| out[j].id.clone());
        assert_eq!(p.parent, parent, "{}: part {} replies to part {i}", case.name, i + 1);
    }
    assert_eq!(fake.net.lock().unwrap().calls, case.calls, "{}: post requests by part", case.name);
}

#[tokio::test]
async fn crash_and_resume_stories() {
    for case in CASES {
        if case.look_first {
            let (fake, _) = run::<true>(case).await;
            assert_thread(case, &fake);
        } else {
            let (fake, _) = run::<false>(case).await;
            assert_thread(case, &fake);
        }
    }
}

#[tokio::test]
async fn a_finished_story_leaves_every_part_recorded_with_its_marker() {
    let case = &CASES[0];
    let (fake, cp) = run::<true>(case).await;
    let progress: ThreadProgress = ctx(&cp).load_state().await.unwrap();
    let out = fake.posts();
    assert_eq!(progress.parts.len(), out.len());
    for (part, post) in progress.parts.iter().zip(&out) {
        assert_eq!(part.remote_id.as_deref(), Some(post.id.as_str()));
        assert_eq!(part.url.as_deref(), Some(format!("https://fake.example/{}", post.id).as_str()));
        assert_eq!(key_of(&part.prepared), post.key, "the marker saved before the call is the one the post carries");
    }
}

/// A checkpoint from an earlier process: parts 1 and 2 are out. The thread goes on at part 3,
/// replying to part 2's id, and the check before the first part is not run again.
#[tokio::test]
async fn resume_from_a_checkpoint_mid_thread() {
    let fake = Fake::<true>::new(true, &[]);
    {
        let mut net = fake.net.lock().unwrap();
        for (i, id) in ["p1", "p2"].iter().enumerate() {
            let parent = (i > 0).then(|| "p1".to_string());
            net.posts.push(NetPost { id: id.to_string(), text: format!("part {}", i + 1), parent, key: format!("old{i}") });
        }
    }
    let cp = Arc::new(MemoryCheckpoint::default());
    let saved = ThreadProgress {
        parts: vec![
            PartState { remote_id: Some("p1".into()), url: Some("https://fake.example/p1".into()), prepared: json!({ "key": "old0" }) },
            PartState { remote_id: Some("p2".into()), url: None, prepared: json!({ "key": "old1" }) },
        ],
    };
    ctx(&cp).save_state(&saved).await.unwrap();

    let r = deliver(&fake, &posts(4), &ctx(&cp)).await.expect("the rest goes out");
    assert_eq!(r.remote_id, "p1");
    assert_eq!(r.url.as_deref(), Some("https://fake.example/p1"));
    let net = fake.net.lock().unwrap();
    assert_eq!(net.calls, [2, 3], "only parts 3 and 4 are posted");
    assert!(net.lookups.is_empty(), "confirmed parts are not looked up");
    assert_eq!(net.posts[2].text, "part 3");
    assert_eq!(net.posts[2].parent.as_deref(), Some("p2"), "part 3 replies to part 2's saved id");
    assert_eq!(net.posts[3].parent.as_deref(), Some(net.posts[2].id.as_str()));
    assert_eq!(*fake.before_first.lock().unwrap(), 0, "the first-part check runs only on an empty checkpoint");
}

#[tokio::test]
async fn the_first_part_check_runs_before_anything_is_posted() {
    let fake = Fake::<true>::new(true, &[(0, Fault::Refuse)]);
    let cp = Arc::new(MemoryCheckpoint::default());
    deliver(&fake, &posts(2), &ctx(&cp)).await.expect_err("refused");
    assert_eq!(*fake.before_first.lock().unwrap(), 1);
    // Part 1's marker is saved: the checkpoint is no longer empty, so the check is not repeated.
    deliver(&fake, &posts(2), &ctx(&cp)).await.expect("delivered");
    assert_eq!(*fake.before_first.lock().unwrap(), 1);
}

/// A part that stands for the rest (X's `thread_fallback = "link"` post) ends the thread: nothing
/// after it is posted, a retry posts nothing more, and reconciling a lost answer for it finds
/// the thread complete.
#[tokio::test]
async fn a_part_that_ends_the_thread_is_the_last() {
    for drop in [false, true] {
        let faults: &[(usize, Fault)] = if drop { &[(1, Fault::DropAnswer)] } else { &[] };
        let mut fake = Fake::<true>::new(true, faults);
        fake.ends_at = Some(1);
        let cp = Arc::new(MemoryCheckpoint::default());
        let posts = posts(4);
        let first = deliver(&fake, &posts, &ctx(&cp)).await;
        assert_eq!(first.is_err(), drop, "{first:?}");
        if drop {
            match find_existing(&fake, &posts, &ctx(&cp)).await.unwrap() {
                Reconciled::Found(r) => assert_eq!(r.remote_id, fake.posts()[0].id),
                other => panic!("the ended thread is complete: {other:?}"),
            }
        }
        deliver(&fake, &posts, &ctx(&cp)).await.expect("nothing more to post");
        assert_eq!(fake.net.lock().unwrap().calls, [0, 1], "drop = {drop}: parts 3 and 4 are never posted");
        assert_eq!(fake.posts().len(), 2);
    }
}
