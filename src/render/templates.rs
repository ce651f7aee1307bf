//! The default templates and manifests of every channel type, embedded from `channels/`
//! (by `build.rs`, which lists the folder) so the binary renders from any folder. A channel's `template` folder overrides them file by file.

/// (channel type, file name, contents) for every file under `channels/`, listed by `build.rs`.
pub const DEFAULTS: &[(&str, &str, &str)] = include!(concat!(env!("OUT_DIR"), "/channel_templates.rs"));

/// The embedded default file of a channel type.
pub fn default_file(kind: &str, file: &str) -> Option<&'static str> {
    DEFAULTS.iter().find(|(k, f, _)| *k == kind && *f == file).map(|(_, _, c)| *c)
}

#[cfg(test)]
mod tests {
    /// Every file under channels/ is embedded (a new template file must be added to DEFAULTS).
    #[test]
    fn every_channel_file_is_embedded() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/channels");
        for kind in std::fs::read_dir(root).unwrap() {
            let kind = kind.unwrap();
            for f in std::fs::read_dir(kind.path()).unwrap() {
                let f = f.unwrap();
                let (k, n) = (kind.file_name().into_string().unwrap(), f.file_name().into_string().unwrap());
                let on_disk = std::fs::read_to_string(f.path()).unwrap();
                assert_eq!(super::default_file(&k, &n), Some(on_disk.as_str()), "channels/{k}/{n} is not embedded or is stale");
            }
        }
    }
}
