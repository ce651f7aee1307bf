//! The default templates and manifests of every channel type, embedded from `channels/`
//! so the binary renders from any folder. A channel's `template` folder overrides them file by file.

/// (channel type, file name, contents) for every file under `channels/`.
pub const DEFAULTS: &[(&str, &str, &str)] = &[
    ("bluesky", "manifest.toml", include_str!("../../channels/bluesky/manifest.toml")),
    ("bluesky", "short.txt.hbs", include_str!("../../channels/bluesky/short.txt.hbs")),
    ("bluesky", "thread_intro.txt.hbs", include_str!("../../channels/bluesky/thread_intro.txt.hbs")),
    ("bluesky", "thread_section.txt.hbs", include_str!("../../channels/bluesky/thread_section.txt.hbs")),
    ("email", "body.html.hbs", include_str!("../../channels/email/body.html.hbs")),
    ("email", "body.txt.hbs", include_str!("../../channels/email/body.txt.hbs")),
    ("email", "manifest.toml", include_str!("../../channels/email/manifest.toml")),
    ("email", "subject.txt.hbs", include_str!("../../channels/email/subject.txt.hbs")),
    ("email_api", "body.html.hbs", include_str!("../../channels/email_api/body.html.hbs")),
    ("email_api", "body.txt.hbs", include_str!("../../channels/email_api/body.txt.hbs")),
    ("email_api", "manifest.toml", include_str!("../../channels/email_api/manifest.toml")),
    ("email_api", "subject.txt.hbs", include_str!("../../channels/email_api/subject.txt.hbs")),
    ("exec", "body.json.hbs", include_str!("../../channels/exec/body.json.hbs")),
    ("exec", "manifest.toml", include_str!("../../channels/exec/manifest.toml")),
    ("linkedin", "manifest.toml", include_str!("../../channels/linkedin/manifest.toml")),
    ("linkedin", "post.txt.hbs", include_str!("../../channels/linkedin/post.txt.hbs")),
    ("mastodon", "manifest.toml", include_str!("../../channels/mastodon/manifest.toml")),
    ("mastodon", "short.txt.hbs", include_str!("../../channels/mastodon/short.txt.hbs")),
    ("mastodon", "thread_intro.txt.hbs", include_str!("../../channels/mastodon/thread_intro.txt.hbs")),
    ("mastodon", "thread_section.txt.hbs", include_str!("../../channels/mastodon/thread_section.txt.hbs")),
    ("substack", "body.md.hbs", include_str!("../../channels/substack/body.md.hbs")),
    ("substack", "manifest.toml", include_str!("../../channels/substack/manifest.toml")),
    ("substack", "subtitle.txt.hbs", include_str!("../../channels/substack/subtitle.txt.hbs")),
    ("substack", "title.txt.hbs", include_str!("../../channels/substack/title.txt.hbs")),
    ("threads", "manifest.toml", include_str!("../../channels/threads/manifest.toml")),
    ("threads", "short.txt.hbs", include_str!("../../channels/threads/short.txt.hbs")),
    ("threads", "thread_intro.txt.hbs", include_str!("../../channels/threads/thread_intro.txt.hbs")),
    ("threads", "thread_section.txt.hbs", include_str!("../../channels/threads/thread_section.txt.hbs")),
    ("webhook", "body.json.hbs", include_str!("../../channels/webhook/body.json.hbs")),
    ("webhook", "manifest.toml", include_str!("../../channels/webhook/manifest.toml")),
    ("x", "manifest.toml", include_str!("../../channels/x/manifest.toml")),
    ("x", "short.txt.hbs", include_str!("../../channels/x/short.txt.hbs")),
    ("x", "thread_intro.txt.hbs", include_str!("../../channels/x/thread_intro.txt.hbs")),
    ("x", "thread_section.txt.hbs", include_str!("../../channels/x/thread_section.txt.hbs")),
];

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
