//! `DIGEST_CRON` and `DIGEST_TZ` are parsed when the settings load, so `check-config` refuses
//! every value `serve` would, with one line naming the variable and what it accepts.

use crate::harness::{base_env, command};
use quietbox_testkit::binary::with;

/// Runs `check-config` with `pairs` over the base environment: (exit code, stderr).
fn check_config(pairs: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let env = with(base_env(dir.path()), pairs);
    let output = command(&env).arg("check-config").output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_config_passes_the_base_environment() {
    let (code, text) = check_config(&[]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn check_config_refuses_a_cron_expression_the_scheduler_refuses() {
    // "61 8 * * MON" has the five fields the old check counted; only the scheduler refused it.
    for bad in ["not a cron", "61 8 * * MON", "0 8 * * FUNDAY"] {
        let (code, text) = check_config(&[("DIGEST_CRON", bad)]);
        assert_ne!(code, Some(0), "DIGEST_CRON={bad}: {text}");
        let errors: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("configuration error"))
            .collect();
        assert_eq!(errors.len(), 1, "{text}");
        assert!(errors[0].contains("DIGEST_CRON:"), "{text}");
        assert!(
            errors[0].contains("0 8 * * MON"),
            "names an accepted form: {text}"
        );
    }
}

#[test]
fn check_config_refuses_an_unknown_time_zone() {
    let (code, text) = check_config(&[("DIGEST_TZ", "Mars/Olympus")]);
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("DIGEST_TZ:") && l.contains("IANA time zone")),
        "{text}"
    );
}
