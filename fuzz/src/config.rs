//! Fuzzes configuration parsing: `KEY=VALUE` lines as the environment, and the same bytes as the
//! TOML file named by `QUIETBOX_CONFIG`. Every input gives settings or a `SettingsError` naming a
//! variable, never a panic.

use std::collections::HashMap;
use std::io::Write;

use quietbox_runtime::config::{Binary, RawSettings, Settings};

fn check(env: &HashMap<String, String>) {
    let raw = match RawSettings::load_from(env) {
        Ok(raw) => raw,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    for binary in [Binary::Api, Binary::A2a, Binary::Mcp] {
        if let Err(error) = Settings::from_raw(binary, &raw) {
            assert!(!error.to_string().is_empty());
        }
    }
}

/// One fuzz input; panics when a property above does not hold.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let env: HashMap<String, String> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    check(&env);

    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    let mut with_file = HashMap::new();
    with_file.insert(
        "QUIETBOX_CONFIG".to_owned(),
        file.path().to_string_lossy().into_owned(),
    );
    check(&with_file);
}
