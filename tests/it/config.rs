//! config tests
#[test]
fn dump() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for d in ["config", "config/examples", "tests/fixtures/config/bad"] {
        for e in std::fs::read_dir(root.join(d)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                match herald::config::load(&p) {
                    Ok(_) => println!("OK {}", p.display()),
                    Err(e) => println!("ERR\n{e}\n"),
                }
            }
        }
    }
    for d in ["tests/fixtures/issues", "tests/fixtures/issues/bad"] {
        for e in std::fs::read_dir(root.join(d)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "md") {
                match herald::issue::parse_file(&p) {
                    Ok(i) => println!("OK {} sections={} links={}", p.display(), i.sections.len(), i.links.len()),
                    Err(e) => println!("ERR {e}\n"),
                }
            }
        }
    }
}
