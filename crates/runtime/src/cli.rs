//! The command line every binary shares: `serve` (the default), `check-config`, `login`,
//! `incident start --ttl 1h | end | status`, `compliance [--enforce]`, `state export | import`.
//!
//! A binary's `main` is one call: [`main`] with its [`Binary`] and its protocol router.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::scopes::Scope;
use async_trait::async_trait;
use axum::Router;
use clap::{Parser, Subcommand};
use quietbox_core::Quietbox;
use quietbox_core::ports::{NoProgress, SystemClock};
use quietbox_core::service::ScanOptions;
use quietbox_core::store::StateStore;
use quietbox_scheduler::{Job, Schedule, Scheduler};

use crate::config::{Binary, Enforcement, RawSettings, Settings};
use crate::http::{HttpLimits, serve, shutdown_signal, with_common_layers};
use crate::telemetry::init_tracing;
use crate::wiring::{self, App, Started, SwitchRouter};

/// Flags and subcommands.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "quietbox: a personal mail-and-calendar agent. Settings come from the environment (see docs/operator-guide.md)."
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How to serve: `http` (default), or `stdio` (MCP only, for desktop clients).
    #[arg(long, global = true, default_value = "http", value_parser = ["http", "stdio"])]
    pub transport: String,
}

/// Serves a protocol over stdin/stdout (MCP's stdio transport).
pub type StdioServe = fn(App) -> futures::future::BoxFuture<'static, Result<(), String>>;

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the protocol (the default).
    Serve,
    /// Load and validate the settings, open the state, then exit. Placeholder (`CHANGE-ME`) and
    /// weak secrets are errors, one line each, except with `--example`.
    CheckConfig {
        /// The settings come from an example file (deploy/quietbox.env.example) whose secrets
        /// are placeholders by design: check everything but them.
        #[arg(long)]
        example: bool,
    },
    /// Authorize quietbox on a Google account (OAuth code + PKCE on a loopback redirect);
    /// writes `GOOGLE_TOKEN_FILE` from `GOOGLE_CLIENT_SECRET_FILE`. Asks for the archiving
    /// scopes (gmail.modify, gmail.settings.basic) only with `--archive` or
    /// `UNSUBSCRIBE_ENFORCE=archive`.
    Login {
        /// Also grant what auto-archiving needs (filters and label changes).
        #[arg(long)]
        archive: bool,
    },
    /// Print the unsubscribe compliance report (JSON); with `--enforce`, act on it as
    /// `UNSUBSCRIBE_ENFORCE` says.
    Compliance {
        /// Give violating senders `auto_archive` (only with `UNSUBSCRIBE_ENFORCE=archive`).
        #[arg(long)]
        enforce: bool,
    },
    /// Incident mode: turn all mutations off across every binary sharing the state.
    Incident {
        /// Start, end or show.
        #[command(subcommand)]
        action: IncidentAction,
    },
    /// Copy state between backends.
    State {
        /// Export or import.
        #[command(subcommand)]
        action: StateAction,
    },
}

/// `incident` actions.
#[derive(Debug, Subcommand)]
pub enum IncidentAction {
    /// Refuse mutations until the TTL ends (it reverts by itself).
    Start {
        /// How long, e.g. `1h`, `30m`, `2h30m`.
        #[arg(long, value_parser = parse_duration)]
        ttl: Duration,
        /// Why (recorded and shown to clients).
        #[arg(long, default_value = "operator request")]
        reason: String,
    },
    /// End incident mode now.
    End,
    /// Show whether incident mode is active.
    Status,
}

/// `state` actions.
#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Write every record as JSON (to a file, or stdout). The file is written atomically with
    /// mode 0600: it holds every scanned message's sender and subject.
    Export {
        /// Output file.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Replace the state with a JSON export. Refused while incident mode is active (the import
    /// would replace the incident record too), unless `--force`.
    Import {
        /// Input file.
        #[arg(long)]
        file: PathBuf,
        /// Import even while incident mode is active.
        #[arg(long)]
        force: bool,
    },
}

/// Parses `90s`, `30m`, `1h`, `2h30m`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("{text:?}: unknown unit {c:?} (use s, m, h, d)")),
        };
        let value: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: a number must precede {c:?}"))?;
        total = total.saturating_add(value.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(format!("{text:?} is not a duration such as 1h or 30m"));
    }
    Ok(Duration::from_secs(total))
}

/// Runs a binary: parses flags, loads settings, and serves `surface` or runs a subcommand.
/// Errors end the process with one line on stderr and exit code 1 (2 for bad settings).
pub fn main(binary: Binary, surface: fn(App) -> Router) -> ExitCode {
    main_with_stdio(binary, surface, None, |_| Scope::ALL.to_vec())
}

/// Like [`main`], for a binary that can also serve over stdio (`--transport stdio`).
/// `challenge_scopes` are the scopes the 401 challenge names while the OAuth issuer has not
/// answered yet (the binary's own list: MCP names its tools' scopes).
pub fn main_with_stdio(
    binary: Binary,
    surface: fn(App) -> Router,
    stdio: Option<StdioServe>,
    challenge_scopes: fn(&Settings) -> Vec<Scope>,
) -> ExitCode {
    let cli = Cli::parse();
    if cli.transport == "stdio" && stdio.is_none() {
        eprintln!(
            "{}: --transport stdio is only for quietbox-mcp",
            binary.name()
        );
        return ExitCode::from(2);
    }
    let raw = match RawSettings::load() {
        Ok(raw) => raw,
        Err(error) => {
            eprintln!("{}: configuration error: {error}", binary.name());
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::from_raw(binary, &raw) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{}: configuration error: {error}", binary.name());
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // A weak or placeholder secret stops `serve` (whatever the transport) and fails
    // `check-config`; the other subcommands authenticate nobody.
    if matches!(
        command,
        Command::Serve | Command::CheckConfig { example: false }
    ) {
        let problems = raw.secret_problems();
        if !problems.is_empty() {
            for problem in &problems {
                eprintln!("{}: configuration error: {problem}", binary.name());
            }
            return ExitCode::from(2);
        }
    }
    init_tracing(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{}: cannot start the async runtime: {error}", binary.name());
            return ExitCode::FAILURE;
        }
    };
    let outcome = match (&command, stdio) {
        (Command::Serve, Some(stdio)) if cli.transport == "stdio" => runtime.block_on(async move {
            let app = wiring::build(settings).await.map_err(|e| e.to_string())?;
            stdio(app).await
        }),
        _ => runtime.block_on(run(binary, settings, command, surface, challenge_scopes)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}: {error}", binary.name());
            ExitCode::FAILURE
        }
    }
}

async fn run(
    binary: Binary,
    settings: Settings,
    command: Command,
    surface: fn(App) -> Router,
    challenge_scopes: fn(&Settings) -> Vec<Scope>,
) -> Result<(), String> {
    let actor = format!("{}-cli", binary.name());
    match command {
        Command::Serve => serve_app(binary, settings, surface, challenge_scopes).await,
        Command::Login { archive } => {
            let scopes = login_scopes(&settings, archive);
            eprintln!("requesting scopes: {}", scopes.join(" "));
            quietbox_gmail::google::login(
                &settings.google_client_secret_file,
                &settings.google_token_file,
                &scopes,
                Duration::from_secs(300),
                |url| {
                    eprintln!(
                        "Open this URL in a browser on this machine and consent:\n\n  {url}\n"
                    )
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            println!("wrote {}", settings.google_token_file.display());
            Ok(())
        }
        Command::CheckConfig { .. } => {
            wiring::build(settings).await.map_err(|e| e.to_string())?;
            println!("configuration ok");
            Ok(())
        }
        Command::Incident { action } => {
            let app = wiring::build(settings).await.map_err(|e| e.to_string())?;
            match action {
                IncidentAction::Start { ttl, reason } => {
                    let incident = app
                        .quietbox
                        .incident_start(ttl, &reason, &actor)
                        .await
                        .map_err(|e| e.to_string())?;
                    println!(
                        "incident mode active until {} ({})",
                        incident.until.to_rfc3339(),
                        incident.reason
                    );
                }
                IncidentAction::End => {
                    app.quietbox
                        .incident_end(&actor)
                        .await
                        .map_err(|e| e.to_string())?;
                    println!("incident mode ended");
                }
                IncidentAction::Status => {
                    let status = app
                        .quietbox
                        .incident_status()
                        .await
                        .map_err(|e| e.to_string())?;
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&status).map_err(|e| e.to_string())?
                    );
                }
            }
            Ok(())
        }
        Command::Compliance { enforce } => {
            let app = wiring::build(settings).await.map_err(|e| e.to_string())?;
            let json = if enforce {
                let outcome = app
                    .quietbox
                    .enforce(&actor)
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::to_string_pretty(&outcome)
            } else {
                let report = app.quietbox.compliance().await.map_err(|e| e.to_string())?;
                serde_json::to_string_pretty(&report)
            };
            println!("{}", json.map_err(|e| e.to_string())?);
            Ok(())
        }
        Command::State { action } => {
            let state = wiring::open_state(&settings)
                .await
                .map_err(|e| e.to_string())?;
            match action {
                StateAction::Export { file } => {
                    let snapshot = state.export().await.map_err(|e| e.to_string())?;
                    let json =
                        serde_json::to_string_pretty(&snapshot).map_err(|e| e.to_string())?;
                    match file {
                        Some(path) => {
                            quietbox_state::files::write_atomically(&path, json.as_bytes())
                                .map_err(|e| format!("cannot write {}: {e}", path.display()))?
                        }
                        None => println!("{json}"),
                    }
                }
                StateAction::Import { file, force } => {
                    if let Some(incident) = state.incident().await.map_err(|e| e.to_string())?
                        && incident.is_active(chrono::Utc::now())
                        && !force
                    {
                        return Err(format!(
                            "incident mode is active until {} ({}); an import would replace it: \
                             end it first (`incident end`) or pass --force",
                            incident.until.to_rfc3339(),
                            incident.reason
                        ));
                    }
                    let text = std::fs::read_to_string(&file)
                        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                    let snapshot = serde_json::from_str(&text)
                        .map_err(|e| format!("{} is not a state export: {e}", file.display()))?;
                    state.import(snapshot).await.map_err(|e| e.to_string())?;
                    println!("state imported from {}", file.display());
                }
            }
            Ok(())
        }
    }
}

async fn serve_app(
    binary: Binary,
    settings: Settings,
    surface: fn(App) -> Router,
    challenge_scopes: fn(&Settings) -> Vec<Scope>,
) -> Result<(), String> {
    let bind = settings.bind_addr;
    let limits = HttpLimits::from_settings(&settings);
    let router = match wiring::start(settings).await.map_err(|e| e.to_string())? {
        Started::Ready(app) => {
            start_scheduler(binary, &app.settings, app.state.clone(), &app.quietbox)?;
            with_common_layers(surface(app), binary.name(), limits)
        }
        // The IdP is unreachable: serve what needs no token, and the real surface once the
        // issuer answers (no restart).
        Started::AwaitingIssuer(waiting) => {
            start_scheduler(
                binary,
                waiting.settings(),
                waiting.state(),
                waiting.quietbox(),
            )?;
            let scopes = challenge_scopes(waiting.settings());
            let switch = SwitchRouter::new(with_common_layers(
                waiting.router(&scopes),
                binary.name(),
                limits,
            ));
            let swap = switch.clone();
            tokio::spawn(async move {
                let app = waiting.connect().await;
                swap.replace(with_common_layers(surface(app), binary.name(), limits));
            });
            switch.router()
        }
    };
    serve(router, bind, binary.name(), limits)
        .await
        .map_err(|e| format!("cannot serve on {bind}: {e}"))
}

/// Starts the scheduler when `SCHEDULER_ENABLED` (the digest job, and the enforcement job with
/// `UNSUBSCRIBE_ENFORCE=archive`).
fn start_scheduler(
    binary: Binary,
    settings: &Settings,
    state: Arc<dyn StateStore>,
    quietbox: &Quietbox,
) -> Result<(), String> {
    if !settings.scheduler_enabled {
        return Ok(());
    }
    let schedule = settings.digest_cron.clone();
    let node = format!("{}-{}-{}", binary.name(), hostname(), std::process::id());
    let mut scheduler = Scheduler::new(state, Arc::new(SystemClock), node).with_job(
        schedule,
        Arc::new(DigestJob {
            quietbox: quietbox.clone(),
        }),
    );
    if settings.unsubscribe_enforce == Enforcement::Archive {
        let hourly = Schedule::new(ENFORCE_CRON, settings.digest_tz)
            .map_err(|e| format!("the enforcement schedule: {e}"))?;
        scheduler = scheduler.with_job(
            hourly,
            Arc::new(EnforceJob {
                quietbox: quietbox.clone(),
            }),
        );
    }
    tokio::spawn(async move { scheduler.run_until(shutdown_signal()).await });
    Ok(())
}

/// The scopes `login` asks for: the archiving ones only when auto-archiving is configured
/// (`--archive`, or `UNSUBSCRIBE_ENFORCE=archive`).
pub fn login_scopes(settings: &Settings, archive: bool) -> Vec<&'static str> {
    quietbox_gmail::google::login_scopes(
        archive || settings.unsubscribe_enforce == Enforcement::Archive,
    )
}

/// When the enforcement job runs (with `UNSUBSCRIBE_ENFORCE=archive`): hourly, so a violating
/// sender leaves the inbox within an hour of the scan that sees it.
pub const ENFORCE_CRON: &str = "0 * * * *";

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned())
}

/// The digest job: scan, then send the digest if anything is new.
struct DigestJob {
    quietbox: Quietbox,
}

#[async_trait]
impl Job for DigestJob {
    fn name(&self) -> &str {
        "digest"
    }

    async fn run(&self, _occurrence: chrono::DateTime<chrono::Utc>) -> Result<String, String> {
        self.quietbox
            .scan(ScanOptions::default(), &NoProgress)
            .await
            .map_err(|e| e.to_string())?;
        let outcome = self
            .quietbox
            .digest(true)
            .await
            .map_err(|e| e.to_string())?;
        Ok(if outcome.sent {
            format!(
                "digest of {} candidates sent to {}",
                outcome.candidates.len(),
                outcome.to
            )
        } else {
            "nothing new; no digest sent".to_owned()
        })
    }
}

/// The enforcement job: scan (incrementally on Gmail), then give violating senders
/// `auto_archive`.
struct EnforceJob {
    quietbox: Quietbox,
}

#[async_trait]
impl Job for EnforceJob {
    fn name(&self) -> &str {
        "unsubscribe_enforce"
    }

    async fn run(&self, _occurrence: chrono::DateTime<chrono::Utc>) -> Result<String, String> {
        self.quietbox
            .scan(ScanOptions::default(), &NoProgress)
            .await
            .map_err(|e| e.to_string())?;
        let outcome = self
            .quietbox
            .enforce("scheduler")
            .await
            .map_err(|e| e.to_string())?;
        let archived: usize = outcome
            .actions
            .iter()
            .filter_map(|a| a.archive.as_ref())
            .map(|a| a.message_ids.len())
            .sum();
        Ok(format!(
            "{} violating senders; {} messages out of the inbox",
            outcome.report.summary.violating, archived
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_an_operator_writes_them() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2h30m"), Ok(Duration::from_secs(9000)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn login_asks_for_archiving_scopes_only_when_archiving_is_configured() {
        use crate::config::RawSettings;
        use quietbox_gmail::google::{GMAIL_MODIFY, GMAIL_SETTINGS_BASIC};
        let load = |pairs: &[(&str, &str)]| {
            let env = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Settings::from_raw(Binary::Api, &RawSettings::load_from(&env).unwrap()).unwrap()
        };
        let archiving = |scopes: &[&str]| {
            scopes.contains(&GMAIL_MODIFY) || scopes.contains(&GMAIL_SETTINGS_BASIC)
        };
        let report = load(&[("AGENT_API_KEY", "k")]);
        assert!(!archiving(&login_scopes(&report, false)), "least privilege");
        let both = login_scopes(&report, true);
        assert!(both.contains(&GMAIL_MODIFY) && both.contains(&GMAIL_SETTINGS_BASIC));
        let enforce = load(&[("AGENT_API_KEY", "k"), ("UNSUBSCRIBE_ENFORCE", "archive")]);
        assert!(archiving(&login_scopes(&enforce, false)));
    }
}
