//! Fuzzes `List-Unsubscribe` / `List-Unsubscribe-Post` parsing: never panics, and what it
//! returns keeps its promises (one-click only over https, links re-render).

use quietbox_core::list_unsubscribe::{UnsubscribeTarget, parse};

/// One fuzz input; panics when a property above does not hold.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // The first line is List-Unsubscribe-Post, the rest List-Unsubscribe (folded or not).
    let (post, header) = text.split_once('\n').unwrap_or(("", &text));
    let options = parse(Some(header), Some(post));
    if let Some(url) = options.one_click_url() {
        assert!(options.one_click);
        assert!(
            options
                .targets
                .iter()
                .any(|t| matches!(t, UnsubscribeTarget::Url { url: u, https: true } if u == url))
        );
    }
    for target in &options.targets {
        let link = target.link();
        if let UnsubscribeTarget::Mailto { .. } = target {
            assert!(link.starts_with("mailto:"));
        }
    }
}
