//! Checks a grep can make, run by plain `cargo test` (the rust-analyzer habit): every Rust file
//! opens with a `//!` doc, and no test is skipped or stubbed.

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    fn workspace_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path
                    .file_name()
                    .is_some_and(|n| n == "target" || n == "fuzz")
                {
                    continue;
                }
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    fn all_sources() -> Vec<(PathBuf, String)> {
        let root = workspace_root();
        let mut files = Vec::new();
        for top in ["crates", "bins", "xtask"] {
            rust_files(&root.join(top), &mut files);
        }
        files
            .into_iter()
            .filter_map(|path| fs::read_to_string(&path).ok().map(|text| (path, text)))
            .collect()
    }

    #[test]
    fn every_rust_file_opens_with_a_module_doc() {
        let missing: Vec<_> = all_sources()
            .into_iter()
            .filter(|(_, text)| !text.trim_start().starts_with("//!"))
            .map(|(path, _)| path.display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "files without a `//!` doc: {missing:#?}"
        );
    }

    #[test]
    fn no_test_is_ignored_and_nothing_is_stubbed() {
        // Built from pieces so that this file does not match itself.
        let forbidden = [
            concat!("#[", "ignore"),
            concat!("#[", "should_panic"),
            concat!("to", "do!("),
            concat!("unimple", "mented!("),
        ];
        let mut hits = Vec::new();
        for (path, text) in all_sources() {
            for needle in forbidden {
                if text.contains(needle) {
                    hits.push(format!("{}: {needle}", path.display()));
                }
            }
        }
        assert!(hits.is_empty(), "forbidden markers: {hits:#?}");
    }
}
