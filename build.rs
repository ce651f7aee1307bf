//! Link options for the `herald` binary (Linux, glibc): resident memory of the idle daemon.
//!
//! A position-independent executable carries one relocation per pointer in its read-only data
//! (vtables, string and Unicode tables): 2.2 MB of `.rela.dyn` that the loader reads at every
//! start, and 2.2 MB of `.data.rel.ro` that it then writes, so both stay resident, the second
//! as private dirty memory. `bench/daemon` measured the idle daemon at 20.3 MB as a PIE,
//! 19.2 MB with packed relocations, 16.9 MB linked as a fixed-address executable.
//!
//! - Default: `-no-pie`. The pointers are resolved at link time; read-only data is paged in
//!   only where touched, and stays clean. The cost is that the executable's own image is not
//!   randomised (ASLR still covers the heap, stacks and shared libraries) — the trade Go makes
//!   for every Linux binary it builds; Herald's code forbids `unsafe`.
//! - `HERALD_PIE=1` at build time: a PIE with packed relative relocations (`DT_RELR`, glibc ≥
//!   2.36, binutils ≥ 2.38), for those who want the image randomised.
//! - `HERALD_PIE=plain`: the toolchain's default PIE, for an older toolchain or libc.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    embed_channel_templates();
    println!("cargo:rerun-if-env-changed=HERALD_PIE");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || env != "gnu" {
        return;
    }
    match std::env::var("HERALD_PIE").as_deref() {
        Ok("plain") => {}
        Ok(_) => println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs"),
        Err(_) => println!("cargo:rustc-link-arg-bins=-no-pie"),
    }
    order_hot_code();
}

/// Release builds: ask the linker to place the functions the idle daemon runs first and together
/// (`build/symbol-order.txt`, written by `bench/daemon/order.sh`). The kernel maps code in 64 KB
/// runs around each page touched, so code spread over the whole text stays resident; gathered,
/// it fills a few hundred KB (bench/daemon). Only with lld, the toolchain's linker on x86_64
/// Linux since Rust 1.90 (GNU ld has no `--symbol-ordering-file`); `HERALD_SYMBOL_ORDER=off`
/// turns it off. Names that are no longer in the binary are ignored.
fn order_hot_code() {
    println!("cargo:rerun-if-env-changed=HERALD_SYMBOL_ORDER");
    let file = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("build/symbol-order.txt");
    println!("cargo:rerun-if-changed={}", file.display());
    let off = std::env::var("HERALD_SYMBOL_ORDER").is_ok_and(|v| v == "off" || v == "0");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let x86_64 = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    if off || !release || !x86_64 || !file.is_file() || !rustc_links_with_lld() {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={},--no-warn-symbol-ordering", file.display());
}

/// rustc ≥ 1.90 links x86_64-unknown-linux-gnu with its own lld, unless told otherwise.
fn rustc_links_with_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc).arg("-V").output() else { return false };
    let v = String::from_utf8_lossy(&out.stdout);
    let minor = v.split_whitespace().nth(1).and_then(|v| v.split('.').nth(1)).and_then(|m| m.parse::<u32>().ok());
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    minor.is_some_and(|m| m >= 90) && !flags.contains("link-self-contained=-linker") && !flags.contains("linker-flavor")
}

/// Every file under `channels/<type>/` as a `(type, file, include_str!(…))` row for
/// `src/render/templates.rs`, so a new channel type's default templates need no list kept by hand.
fn embed_channel_templates() {
    let root = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("channels");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut rows = Vec::new();
    for kind in std::fs::read_dir(&root).expect("channels/ is readable") {
        let kind = kind.expect("channels/ entry");
        if !kind.path().is_dir() {
            continue;
        }
        println!("cargo:rerun-if-changed={}", kind.path().display());
        for f in std::fs::read_dir(kind.path()).expect("channels/<type>/ is readable") {
            let f = f.expect("template entry");
            let (k, n) = (kind.file_name().into_string().expect("UTF-8 name"), f.file_name().into_string().expect("UTF-8 name"));
            rows.push(format!("({k:?}, {n:?}, include_str!({:?})),\n", f.path().display().to_string()));
        }
    }
    rows.sort();
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets it")).join("channel_templates.rs");
    std::fs::write(out, format!("&[\n{}]\n", rows.concat())).expect("OUT_DIR is writable");
}
