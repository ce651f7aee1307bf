//! The short version of the chaos suite (bench/chaos): a full publish of every channel with a
//! 2,000-recipient mailing against `herald sandbox serve` in another process, `publish --wait`
//! (or a daemon) killed with SIGKILL at a random moment and rerun to completion, a few times.
//! The verdict comes from the fakes' fsynced journals, read by bench/chaos/chaos.py, not from
//! Herald's own status.

use crate::util::root;

#[test]
fn killed_publishes_lose_nothing_post_nothing_twice_and_keep_email_duplicates_within_the_bound() {
    let work = tempfile::tempdir().unwrap();
    let o = std::process::Command::new("python3")
        .current_dir(root())
        .arg("bench/chaos/chaos.py")
        .args(["--trials", "3", "--fault-trials", "0", "--pg-trials", "0", "--recipients", "2000", "--json", "--settle-timeout", "90"])
        .arg("--herald")
        .arg(crate::pipeline::herald_bin())
        .arg("--work")
        .arg(work.path())
        .env_remove("HERALD_CONFIG")
        .output()
        .expect("python3 runs bench/chaos/chaos.py (Python 3.11, standard library only)");
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "chaos.py failed:\n{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let t = &v["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("totals.{k} missing: {v}"));
    let context = format!("seed {} (rerun with --seed), per trial:\n{err}\n{}", v["seed"], serde_json::to_string_pretty(&v["summary"]).unwrap());
    // 3 trials × every channel of config/herald.toml but the plugin.
    let cfg = herald::config::load(&root().join("config/herald.toml")).expect("config/herald.toml loads");
    let deliveries = 3 * cfg.config.channels.values().filter(|c| c.type_name() != "exec").count() as u64;
    assert_eq!(n("deliveries"), deliveries, "{context}");
    assert_eq!(n("sent"), deliveries, "every delivery ends sent: {context}");
    assert_eq!(n("post_lost"), 0, "no post lost: {context}");
    assert_eq!(n("post_duplicates"), 0, "no post twice: {context}");
    assert_eq!(n("broken_chains"), 0, "every reply chain intact: {context}");
    assert_eq!(n("email_lost"), 0, "every recipient mailed: {context}");
    assert_eq!(n("over_bound"), 0, "email duplicates per crash within `concurrency`: {context}");
    assert_eq!(n("torn_lines"), 0, "the journals are whole: {context}");
}
