//! The security runbook's release preflight, run by `cargo xtask preflight` after the build:
//! every binary answers `--help`; `check-config` passes on all three with the env file that
//! compose uses; the compose file, the Kubernetes manifests, the Prometheus rules and the
//! Grafana dashboard are well-formed and agree with each other and with the metric names of
//! DESIGN.md §7; the operator guide's configuration table is current. `docker compose config`
//! and `promtool` run too when they are installed (`.ci/run` installs promtool).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::config_doc;
use crate::fleet::{self, BINARIES, ScratchDir};
use crate::yaml::{self, Yaml};

/// The metric names of DESIGN.md §7 (a histogram also as its `_bucket`, `_sum`, `_count`), plus
/// Prometheus's own `up`.
const METRICS: &[&str] = &[
    "http_requests_total",
    "http_request_duration_seconds",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_sum",
    "http_request_duration_seconds_count",
    "jwt_verify_errors_total",
    "rate_limited_total",
    "unsubscribe_total",
    "gmail_requests_total",
    "scheduler_runs_total",
    "up",
];

/// Where the data volume is mounted in the image (the Dockerfile's `DATA_DIR`).
const DATA_MOUNT: &str = "/srv/quietbox/data";

/// Runs every check, printing one line per check; fails at the first failure.
pub fn run() -> Result<()> {
    let root = fleet::workspace_root();
    let bin_dir = fleet::debug_bin_dir();
    step("each binary answers --help", || help(&bin_dir))?;
    step(
        "check-config passes with deploy/quietbox.env.example",
        || check_config(&root, &bin_dir),
    )?;
    step("deploy/Dockerfile", || dockerfile(&root))?;
    step("deploy/docker-compose.yml", || compose(&root))?;
    step("deploy/k8s manifests", || kubernetes(&root))?;
    let recorded = step_value("deploy/prometheus/alerts.yml", || rules(&root))?;
    step("deploy/grafana/quietbox-dashboard.json", || {
        dashboard(&root, &recorded)
    })?;
    step("docs/operator-guide.md configuration table", || {
        config_doc::run(&root, true).map(|()| "current".to_owned())
    })?;
    Ok(())
}

fn step(name: &str, check: impl FnOnce() -> Result<String>) -> Result<()> {
    step_value(name, || check().map(|detail| (detail, ())))
}

fn step_value<T>(name: &str, check: impl FnOnce() -> Result<(String, T)>) -> Result<T> {
    match check() {
        Ok((detail, value)) => {
            eprintln!("release check ok: {name}: {detail}");
            Ok(value)
        }
        Err(error) => Err(error.context(format!("release check failed: {name}"))),
    }
}

fn tool_exists(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|out| out.status.success())
}

fn help(bin_dir: &Path) -> Result<String> {
    for name in BINARIES {
        let program = bin_dir.join(name);
        let out = Command::new(&program)
            .arg("--help")
            .env_clear()
            .output()
            .with_context(|| format!("cannot run {}", program.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(out.status.success(), "{name} --help exited {}", out.status);
        for subcommand in ["serve", "check-config", "incident", "state"] {
            ensure!(
                text.contains(subcommand),
                "{name} --help does not mention {subcommand}"
            );
        }
    }
    Ok("serve, check-config, incident, state listed by all three".into())
}

/// `KEY=VALUE` lines of an env file (comments and blank lines skipped).
fn env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .with_context(|| format!("{}:{}: not KEY=VALUE", path.display(), number + 1))?;
        pairs.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(pairs)
}

fn check_config(root: &Path, bin_dir: &Path) -> Result<String> {
    let example = root.join("deploy/quietbox.env.example");
    let pairs = env_file(&example)?;
    for (key, _) in &pairs {
        ensure!(
            config_doc::is_known(key),
            "{}: {key} is not a quietbox variable (typo?)",
            example.display()
        );
    }
    // The paths of the file are the image's; point them at this checkout.
    let scratch = ScratchDir::new("check-config")?;
    let mut env: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "DATA_DIR" | "LOCAL_MBOX" | "LOCAL_ICS"))
        .collect();
    env.extend([
        (
            "DATA_DIR".to_owned(),
            scratch.path().join("data").display().to_string(),
        ),
        (
            "LOCAL_MBOX".to_owned(),
            root.join("data/sample/inbox.mbox").display().to_string(),
        ),
        (
            "LOCAL_ICS".to_owned(),
            root.join("data/sample/calendar.ics").display().to_string(),
        ),
    ]);
    for name in BINARIES {
        let out = Command::new(bin_dir.join(name))
            // The example's secrets are CHANGE-ME placeholders by design.
            .args(["check-config", "--example"])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .with_context(|| format!("cannot run {name}"))?;
        ensure!(
            out.status.success(),
            "{name} check-config exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(format!("{} variables, all three binaries", env.len()))
}

fn dockerfile(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("deploy/Dockerfile"))?;
    let stages = text.lines().filter(|l| l.starts_with("FROM ")).count();
    ensure!(stages >= 2, "not multi-stage ({stages} FROM lines)");
    ensure!(
        text.lines()
            .any(|l| l.starts_with("FROM rust:1.95") && l.contains(" AS builder")),
        "the builder stage is not rust:1.95"
    );
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .context("no USER: the image would run as root")?;
    ensure!(
        !matches!(user.trim(), "root" | "0" | "0:0"),
        "USER {user} is root"
    );
    ensure!(text.contains("HEALTHCHECK "), "no HEALTHCHECK");
    for name in BINARIES {
        ensure!(text.contains(name), "{name} is not in the image");
    }
    ensure!(
        text.contains(&format!("DATA_DIR={DATA_MOUNT}")),
        "DATA_DIR is not {DATA_MOUNT}"
    );
    Ok(format!("{stages} stages, USER {user}, HEALTHCHECK"))
}

fn compose(root: &Path) -> Result<String> {
    let path = root.join("deploy/docker-compose.yml");
    let doc = yaml::parse(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("{} is not in the supported YAML subset", path.display()))?;
    let services = doc.get("services").context("no services")?;
    let mut env_files = BTreeSet::new();
    let mut images = BTreeSet::new();
    let mut binds = BTreeSet::new();
    for (service, binary) in [
        ("api", "quietbox-api"),
        ("a2a", "quietbox-a2a"),
        ("mcp", "quietbox-mcp"),
    ] {
        let spec = services
            .get(service)
            .with_context(|| format!("no service {service}"))?;
        let command = spec.get("command").map(Yaml::scalars).unwrap_or_default();
        ensure!(
            command.first() == Some(&binary),
            "{service} does not run {binary}"
        );
        let volumes = spec.get("volumes").map(Yaml::scalars).unwrap_or_default();
        ensure!(
            volumes.contains(&format!("data:{DATA_MOUNT}").as_str()),
            "{service} does not mount the data volume at {DATA_MOUNT}"
        );
        let files = spec.get("env_file").map(Yaml::scalars).unwrap_or_default();
        ensure!(files.len() == 1, "{service}: expected one env_file");
        env_files.insert(files[0].to_owned());
        images.insert(
            spec.get("image")
                .and_then(Yaml::as_str)
                .with_context(|| format!("{service} has no image"))?
                .to_owned(),
        );
        let environment = spec.get("environment").context("no environment")?;
        let bind = environment
            .get("BIND_ADDR")
            .and_then(Yaml::as_str)
            .with_context(|| format!("{service} sets no BIND_ADDR"))?;
        ensure!(bind.starts_with("0.0.0.0:"), "{service} binds {bind}");
        binds.insert(bind.to_owned());
        let backend = environment
            .get("STATE_BACKEND")
            .and_then(Yaml::as_str)
            .unwrap_or_default();
        ensure!(
            backend.starts_with("${STATE_BACKEND"),
            "{service}: STATE_BACKEND must follow the postgres profile's variable"
        );
        let database = environment
            .get("DATABASE_URL")
            .and_then(Yaml::as_str)
            .unwrap_or_default();
        ensure!(
            database.contains("@postgres:5432/"),
            "{service}: DATABASE_URL does not point at the postgres service"
        );
    }
    ensure!(
        env_files.len() == 1,
        "services use different env files: {env_files:?}"
    );
    ensure!(
        images.len() == 1,
        "services use different images: {images:?}"
    );
    ensure!(binds.len() == 3, "services share a BIND_ADDR: {binds:?}");
    ensure!(
        doc.at(&["volumes", "data"]).is_some(),
        "the data volume is not declared"
    );
    let profiles = services
        .at(&["postgres", "profiles"])
        .map(Yaml::scalars)
        .unwrap_or_default();
    ensure!(
        profiles.contains(&"postgres"),
        "no postgres service in a `postgres` profile"
    );
    let mut detail =
        "api, a2a, mcp share the data volume, one env file and one image; postgres profile"
            .to_owned();
    if tool_exists("docker", &["compose", "version"]) {
        for profile in [None, Some("postgres")] {
            let mut command = Command::new("docker");
            command.args(["compose", "-f", &path.display().to_string()]);
            if let Some(profile) = profile {
                command.args(["--profile", profile]);
            }
            let out = command
                .args(["config", "--quiet"])
                .env("QUIETBOX_ENV_FILE", "quietbox.env.example")
                .output()?;
            ensure!(
                out.status.success(),
                "docker compose config ({profile:?}): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        detail.push_str("; docker compose config ok");
    } else {
        detail.push_str("; no compose plugin here, `docker compose config` not run");
    }
    Ok(detail)
}

fn kubernetes(root: &Path) -> Result<String> {
    let dir = root.join("deploy/k8s");
    let kustomization = yaml::parse(&std::fs::read_to_string(dir.join("kustomization.yaml"))?)?;
    let mut documents = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in &files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let docs = yaml::parse_documents(&std::fs::read_to_string(file)?)
            .with_context(|| format!("{}", file.display()))?;
        let listed = kustomization
            .get("resources")
            .map(Yaml::scalars)
            .unwrap_or_default()
            .contains(&name.as_str());
        let kinds: Vec<&str> = docs
            .iter()
            .filter_map(|d| d.get("kind").and_then(Yaml::as_str))
            .collect();
        ensure!(
            listed || name == "kustomization.yaml" || kinds == ["Secret"],
            "{name} is not listed in kustomization.yaml"
        );
        documents.extend(docs);
    }
    let of_kind = |kind: &str| -> Vec<&Yaml> {
        documents
            .iter()
            .filter(|d| d.get("kind").and_then(Yaml::as_str) == Some(kind))
            .collect()
    };
    let name_of = |d: &Yaml| {
        d.at(&["metadata", "name"])
            .and_then(Yaml::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let secrets: Vec<String> = of_kind("Secret").into_iter().map(name_of).collect();
    let claims: Vec<String> = of_kind("PersistentVolumeClaim")
        .into_iter()
        .map(name_of)
        .collect();
    let maps: Vec<String> = of_kind("ConfigMap").into_iter().map(name_of).collect();
    let services = of_kind("Service");
    for (binary, port) in BINARIES.into_iter().zip(["8080", "8081", "8082"]) {
        let deployment = of_kind("Deployment")
            .into_iter()
            .find(|d| name_of(d) == binary)
            .with_context(|| format!("no Deployment {binary}"))?;
        let containers = deployment
            .at(&["spec", "template", "spec", "containers"])
            .map(Yaml::items)
            .unwrap_or_default();
        let container = containers.first().context("no container")?;
        ensure!(
            container
                .get("command")
                .map(Yaml::scalars)
                .unwrap_or_default()
                == [binary],
            "{binary}: the container does not run {binary}"
        );
        let env = container.get("env").map(Yaml::items).unwrap_or_default();
        let bind = env
            .iter()
            .find(|e| e.get("name").and_then(Yaml::as_str) == Some("BIND_ADDR"))
            .and_then(|e| e.get("value").and_then(Yaml::as_str))
            .with_context(|| format!("{binary}: no BIND_ADDR"))?;
        ensure!(
            bind == format!("0.0.0.0:{port}"),
            "{binary}: BIND_ADDR {bind}"
        );
        let container_port = container
            .get("ports")
            .map(Yaml::items)
            .and_then(|p| p.first())
            .and_then(|p| p.get("containerPort"))
            .and_then(Yaml::as_str);
        ensure!(
            container_port == Some(port),
            "{binary}: containerPort {container_port:?}"
        );
        let liveness = container
            .at(&["livenessProbe", "httpGet", "path"])
            .and_then(Yaml::as_str);
        ensure!(
            liveness == Some("/health"),
            "{binary}: liveness probe {liveness:?}"
        );
        let readiness = container
            .at(&["readinessProbe", "httpGet", "path"])
            .and_then(Yaml::as_str);
        let wanted = if binary == "quietbox-api" {
            "/ready"
        } else {
            "/health"
        };
        ensure!(
            readiness == Some(wanted),
            "{binary}: readiness probe {readiness:?}, wanted {wanted}"
        );
        let env_from = container
            .get("envFrom")
            .map(Yaml::items)
            .unwrap_or_default();
        let referenced = |kind: &str| {
            env_from
                .iter()
                .filter_map(|e| e.at(&[kind, "name"]).and_then(Yaml::as_str))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        for secret in referenced("secretRef") {
            ensure!(
                secrets.contains(&secret),
                "{binary}: Secret {secret} is not defined"
            );
        }
        ensure!(
            !referenced("secretRef").is_empty(),
            "{binary}: no keys from a Secret"
        );
        for map in referenced("configMapRef") {
            ensure!(
                maps.contains(&map),
                "{binary}: ConfigMap {map} is not defined"
            );
        }
        let volumes = deployment
            .at(&["spec", "template", "spec", "volumes"])
            .map(Yaml::items)
            .unwrap_or_default();
        let claim = volumes
            .iter()
            .find_map(|v| v.at(&["persistentVolumeClaim", "claimName"]))
            .and_then(Yaml::as_str)
            .with_context(|| format!("{binary}: no PVC for the state"))?;
        ensure!(
            claims.iter().any(|c| c == claim),
            "{binary}: PVC {claim} is not defined"
        );
        let mounts = container
            .get("volumeMounts")
            .map(Yaml::scalars)
            .unwrap_or_default();
        ensure!(
            mounts.contains(&DATA_MOUNT),
            "{binary}: state not mounted at {DATA_MOUNT}"
        );
        ensure!(
            services.iter().any(|s| {
                s.at(&["spec", "selector", "app.kubernetes.io/name"])
                    .and_then(Yaml::as_str)
                    == Some(binary)
            }),
            "{binary}: no Service selects it"
        );
    }
    Ok(format!(
        "{} documents; a Deployment and Service per binary, probes, Secret, PVC",
        documents.len()
    ))
}

/// Names that look like metrics in a PromQL expression: `quietbox:` recording rules and words
/// ending like our metric names. Function names and labels never end that way.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| {
            word.starts_with("quietbox:")
                || word.ends_with("_total")
                || word.contains("_seconds")
                || *word == "up"
        })
        .map(str::to_owned)
        .collect()
}

fn rules(root: &Path) -> Result<(String, Vec<String>)> {
    let path = root.join("deploy/prometheus/alerts.yml");
    let doc = yaml::parse(&std::fs::read_to_string(&path)?)?;
    let mut recorded = Vec::new();
    let mut alerts = Vec::new();
    for group in doc.get("groups").map(Yaml::items).unwrap_or_default() {
        for rule in group.get("rules").map(Yaml::items).unwrap_or_default() {
            let expr = rule
                .get("expr")
                .and_then(Yaml::as_str)
                .context("a rule without expr")?;
            for name in metric_names(expr) {
                ensure!(
                    METRICS.contains(&name.as_str()) || recorded.contains(&name),
                    "{name} is neither a DESIGN.md §7 metric nor recorded above its use"
                );
            }
            if let Some(name) = rule.get("record").and_then(Yaml::as_str) {
                recorded.push(name.to_owned());
            }
            if let Some(name) = rule.get("alert").and_then(Yaml::as_str) {
                alerts.push((name.to_owned(), expr.trim().to_owned()));
            }
        }
    }
    // The thresholds of the policy, as written in the alerts.
    for (alert, threshold) in [
        ("QuietboxSuccessRateLow", "< 0.95"),
        ("QuietboxLatencyP90High", "> 0.5"),
        ("QuietboxServerErrors", ">= 1"),
        ("QuietboxJwtVerifyFailures", ">= 5"),
    ] {
        let expr = alerts
            .iter()
            .find(|(name, _)| name == alert)
            .map(|(_, expr)| expr.as_str())
            .with_context(|| format!("no alert {alert}"))?;
        ensure!(
            expr.ends_with(threshold),
            "{alert}: {expr} (wanted {threshold})"
        );
    }
    let mut detail = format!(
        "{} recording rules, {} alerts",
        recorded.len(),
        alerts.len()
    );
    if tool_exists("promtool", &["--version"]) {
        crate::run("promtool", &["check", "rules", &path.display().to_string()])?;
        let tests = root.join("deploy/prometheus/alerts.test.yml");
        crate::run("promtool", &["test", "rules", &tests.display().to_string()])?;
        detail.push_str("; promtool check rules and test rules passed");
    } else {
        detail.push_str("; promtool not installed, its checks not run");
    }
    Ok((detail, recorded))
}

fn dashboard(root: &Path, recorded: &[String]) -> Result<String> {
    let path = root.join("deploy/grafana/quietbox-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    let panels = dashboard["panels"].as_array().context("no panels")?;
    let mut queried = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().map_or(&[][..], Vec::as_slice) {
            let expr = target["expr"].as_str().unwrap_or_default();
            for name in metric_names(expr) {
                ensure!(
                    METRICS.contains(&name.as_str()) || recorded.contains(&name),
                    "panel {:?} queries {name}, which nothing records",
                    panel["title"]
                );
                queried.insert(name);
            }
        }
    }
    for needed in [
        "quietbox:http_requests_success:ratio_rate15m",
        "quietbox:http_request_duration_seconds:p90_rate10m",
        "quietbox:http_requests_5xx:rate5m",
        "jwt_verify_errors_total",
    ] {
        ensure!(queried.contains(needed), "no panel shows {needed}");
    }
    Ok(format!(
        "{} panels on {} series names",
        panels.len(),
        queried.len()
    ))
}

/// Whether an error chain names a check: used by tests to prove a check can fail.
#[cfg(test)]
fn fails_with(result: Result<String>, needle: &str) -> bool {
    match result {
        Ok(_) => false,
        Err(error) => format!("{error:#}").contains(needle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_found_in_promql() {
        assert_eq!(
            metric_names(
                "sum by (job, le) (rate(http_request_duration_seconds_bucket{endpoint!~\"/health\"}[10m]))"
            ),
            ["http_request_duration_seconds_bucket"]
        );
        assert_eq!(
            metric_names("quietbox:x:rate5m >= bool 0.99 and up == 1"),
            ["quietbox:x:rate5m", "up"]
        );
    }

    #[test]
    fn the_deploy_files_of_the_repository_pass_their_checks() {
        let root = fleet::workspace_root();
        dockerfile(&root).unwrap();
        kubernetes(&root).unwrap();
        let (_, recorded) = rules_without_promtool(&root);
        dashboard(&root, &recorded).unwrap();
    }

    fn rules_without_promtool(root: &Path) -> (String, Vec<String>) {
        // promtool may be absent here; the YAML checks are what this test is about.
        let path = root.join("deploy/prometheus/alerts.yml");
        let doc = yaml::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        let recorded = doc
            .get("groups")
            .map(Yaml::items)
            .unwrap_or_default()
            .iter()
            .flat_map(|g| g.get("rules").map(Yaml::items).unwrap_or_default())
            .filter_map(|r| r.get("record").and_then(Yaml::as_str))
            .map(str::to_owned)
            .collect();
        (String::new(), recorded)
    }

    #[test]
    fn a_dashboard_querying_an_unknown_metric_is_refused() {
        let scratch = ScratchDir::new("dashboard-test").unwrap();
        let dir = scratch.path().join("deploy/grafana");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("quietbox-dashboard.json"),
            r#"{"panels": [{"title": "typo", "targets": [{"expr": "rate(http_request_total[5m])"}]}]}"#,
        )
        .unwrap();
        assert!(fails_with(
            dashboard(scratch.path(), &[]),
            "http_request_total"
        ));
    }

    #[test]
    fn env_files_are_read_as_key_value_lines() {
        let scratch = ScratchDir::new("env-test").unwrap();
        let path = scratch.path().join("x.env");
        std::fs::write(&path, "# c\n\nA=1\nDIGEST_CRON=0 8 * * MON\n").unwrap();
        assert_eq!(
            env_file(&path).unwrap(),
            [
                ("A".to_owned(), "1".to_owned()),
                ("DIGEST_CRON".to_owned(), "0 8 * * MON".to_owned())
            ]
        );
        std::fs::write(&path, "oops\n").unwrap();
        assert!(env_file(&path).is_err());
    }
}
