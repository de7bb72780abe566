//! Weak and placeholder secrets stop `serve` and fail `check-config` (the example file passes
//! with `--example`); `state export` writes mode 0600; `state import` waits for an incident to
//! end unless `--force`.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{base_env, command};
use quietbox_testkit::binary::with;

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/quietbox.env.example"
);

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `serve` and expects it to exit by itself within 10 s; a binary that starts serving
/// instead (as it did with weak secrets before) is killed and the test fails.
fn serve_must_exit(env: &[(String, String)]) -> std::process::Output {
    use std::process::Stdio;
    let mut child = command(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("serve started anyway: {}", stderr(&output));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn serve_refuses_a_short_api_key_a_placeholder_and_a_short_hs256_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("AGENT_API_KEY", "ten-bytes!"),
        (
            "AGENT_API_KEY",
            "Change-Me-to-a-long-random-value-0123456789",
        ),
        ("AUTH_JWT_SECRET", "hs256-secret-of-31-bytes-012345"),
    ];
    for (variable, value) in cases {
        let env = with(base_env(dir.path()), &[(variable, value)]);
        let output = serve_must_exit(&env);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{variable}: {text}");
        let line = text
            .lines()
            .find(|l| l.contains(&format!("configuration error: {variable}:")))
            .unwrap_or_else(|| panic!("no line naming {variable}: {text}"));
        assert!(
            line.contains("32 bytes") || line.contains("CHANGE-ME"),
            "{line}"
        );
        assert!(!text.contains(value), "the value leaked: {text}");
    }
}

#[test]
fn check_config_reports_each_weak_secret_on_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let env = with(
        base_env(dir.path()),
        &[
            ("AGENT_API_KEY", "short-key1"),
            (
                "AUTH_JWT_SECRET",
                "CHANGE-ME-jwt-secret-from-openssl-rand-hex-32",
            ),
        ],
    );
    let output = command(&env).arg("check-config").output().unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("configuration error"))
        .collect();
    assert_eq!(errors.len(), 2, "{text}");
    assert!(
        errors.iter().any(|l| l.contains("AGENT_API_KEY:")),
        "{text}"
    );
    assert!(
        errors.iter().any(|l| l.contains("AUTH_JWT_SECRET:")),
        "{text}"
    );
    assert!(
        !text.contains("short-key1") && !text.contains("jwt-secret-from"),
        "{text}"
    );

    let strong = command(&base_env(dir.path()))
        .arg("check-config")
        .output()
        .unwrap();
    assert!(strong.status.success(), "{}", stderr(&strong));
}

/// The example file's `KEY=VALUE` lines, with its paths pointed at this checkout.
fn example_env(dir: &std::path::Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let pairs: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut env = base_env(dir);
    env.retain(|(k, _)| k != "AGENT_API_KEY" && k != "AUTH_JWT_SECRET" && k != "AUTH_MODE");
    for (k, v) in pairs {
        if !matches!(k.as_str(), "DATA_DIR" | "LOCAL_MBOX" | "LOCAL_ICS") {
            env.retain(|(key, _)| *key != k);
            env.push((k, v));
        }
    }
    env
}

#[test]
fn the_example_file_passes_check_config_only_in_example_mode() {
    let dir = tempfile::tempdir().unwrap();
    let env = example_env(dir.path());
    let plain = command(&env).arg("check-config").output().unwrap();
    assert_eq!(plain.status.code(), Some(2), "{}", stderr(&plain));
    assert!(stderr(&plain).contains("AGENT_API_KEY: holds the placeholder CHANGE-ME"));
    let example = command(&env)
        .args(["check-config", "--example"])
        .output()
        .unwrap();
    assert!(example.status.success(), "{}", stderr(&example));
    // Serving never has an example mode.
    let serve = serve_must_exit(&env);
    assert_eq!(serve.status.code(), Some(2), "{}", stderr(&serve));
}

#[test]
fn state_export_is_mode_0600_even_over_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = base_env(dir.path());
    let file = dir.path().join("export.json");
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = command(&env)
        .args(["state", "export", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "export mode {mode:o}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"unsubscribes\""), "{text}");
}

#[test]
fn state_import_waits_for_an_incident_to_end_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let env = base_env(dir.path());
    let file = dir.path().join("export.json");
    let export = command(&env)
        .args(["state", "export", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", stderr(&export));
    let started = command(&env)
        .args(["incident", "start", "--ttl", "1h", "--reason", "drill"])
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", stderr(&started));

    let refused = command(&env)
        .args(["state", "import", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("incident mode is active"),
        "{}",
        stderr(&refused)
    );
    let status = command(&env).args(["incident", "status"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("drill"),
        "the incident is still recorded"
    );

    let forced = command(&env)
        .args(["state", "import", "--force", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(String::from_utf8_lossy(&forced.stdout).contains("state imported"));
}

/// Keys and OAuth metadata are fetched over https, or plain http to a loopback host only:
/// `check-config` refuses what `serve` would, naming the variable.
#[test]
fn check_config_refuses_a_plain_http_jwks_url_outside_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let refused = with(
        base_env(dir.path()),
        &[("AUTH_JWKS_URL", "http://idp.example/.well-known/jwks.json")],
    );
    let output = command(&refused).arg("check-config").output().unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("configuration error") && l.contains("AUTH_JWKS_URL")),
        "{text}"
    );

    for accepted in [
        "https://idp.example/.well-known/jwks.json",
        "http://127.0.0.1:9/jwks.json",
    ] {
        let env = with(base_env(dir.path()), &[("AUTH_JWKS_URL", accepted)]);
        let output = command(&env).arg("check-config").output().unwrap();
        let text = stderr(&output);
        assert!(
            !text.contains("AUTH_JWKS_URL"),
            "{accepted} should pass the URL rule: {text}"
        );
    }
}
