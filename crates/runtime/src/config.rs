//! Settings of all three binaries: built-in defaults, then the optional `QUIETBOX_CONFIG` TOML
//! file, then the environment, with the variable names of DESIGN.md §2 (no prefix: the security
//! runbook names them as they are).
//!
//! Loading is two steps. The `config` crate merges the layers into [`RawSettings`] (all text, so
//! a bad value never fails inside serde with an unhelpful message); [`Settings::from_raw`] then
//! validates each variable and fails with one [`SettingsError`] naming it and what it accepts.
//! This module is the only place that reads the environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// Which binary is loading settings; decides defaults such as `BIND_ADDR`.
/// The order is that of [`DefaultValue::PerBinary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// `quietbox-api`.
    Api = 0,
    /// `quietbox-a2a`.
    A2a = 1,
    /// `quietbox-mcp`.
    Mcp = 2,
}

impl Binary {
    /// The binary's name, for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Binary::Api => "quietbox-api",
            Binary::A2a => "quietbox-a2a",
            Binary::Mcp => "quietbox-mcp",
        }
    }
}

pub use quietbox_auth::{AuthMode, Secret};
pub use quietbox_scheduler::Schedule;

/// A variable with a bad value. Displayed as one line naming the variable and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct SettingsError {
    /// The variable's name, as the operator writes it.
    pub variable: &'static str,
    /// What is wrong and what is accepted. Never contains a secret's value.
    pub problem: String,
}

impl SettingsError {
    fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        SettingsError {
            variable,
            problem: problem.into(),
        }
    }
}

/// The merged, unvalidated layers: every variable as text.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSettings {
    #[serde(flatten)]
    values: HashMap<String, String>,
}

impl RawSettings {
    /// Reads the optional TOML file named by `QUIETBOX_CONFIG`, then the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(&env)
    }

    /// Like [`RawSettings::load`], from a given environment (tests use this; nothing global).
    pub fn load_from(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder();
        if let Some(path) = env.get("QUIETBOX_CONFIG").filter(|p| !p.is_empty()) {
            if !std::path::Path::new(path).is_file() {
                return Err(SettingsError::new(
                    "QUIETBOX_CONFIG",
                    format!("{path:?} is not a readable file"),
                ));
            }
            builder = builder
                .add_source(config::File::new(path, config::FileFormat::Toml).required(true));
        }
        let file = builder
            .build()
            .map_err(|e| SettingsError::new("QUIETBOX_CONFIG", e.to_string()))?;
        let mut values = HashMap::new();
        // File keys may be written in either case (`auth_mode` or `AUTH_MODE`).
        if let Ok(table) = file.try_deserialize::<HashMap<String, config::Value>>() {
            for (key, value) in table {
                let text = value.into_string().map_err(|e| {
                    SettingsError::new("QUIETBOX_CONFIG", format!("key {key}: {e}"))
                })?;
                values.insert(key.to_ascii_uppercase(), text);
            }
        }
        for (key, value) in env {
            if is_known(key) {
                values.insert(key.clone(), value.clone());
            }
        }
        Ok(RawSettings { values })
    }

    fn get(&self, key: &'static str) -> Option<&str> {
        debug_assert!(is_known(key), "{key} is missing from config::VARIABLES");
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// The value of `key`, else its default from [`VARIABLES`] (empty when it has none, which
    /// then fails validation naming the variable).
    fn or_default(&self, key: &'static str, binary: Binary) -> &str {
        self.get(key)
            .or_else(|| default_of(key, binary))
            .unwrap_or_default()
    }
}

/// The `Origin` allow-list of the MCP streamable HTTP transport (`MCP_ALLOWED_ORIGINS`), a
/// setting parsed at load.
pub mod origins;
mod scaling;
mod variables;

pub use scaling::{RateLimitBackend, RateLimitOnError};

pub use variables::{DefaultValue, VARIABLES, Variable};

/// Whether quietbox reads `name`.
pub fn is_known(name: &str) -> bool {
    VARIABLES.iter().any(|v| v.name == name)
}

/// The default of `name` for `binary`, from [`VARIABLES`]; `None` when unset means "off" or
/// "derived at start-up".
pub fn default_of(name: &str, binary: Binary) -> Option<&'static str> {
    match VARIABLES.iter().find(|v| v.name == name)?.default {
        DefaultValue::Value(value) => Some(value),
        DefaultValue::PerBinary(values) => Some(values[binary as usize]),
        DefaultValue::None | DefaultValue::Derived(_) => None,
    }
}

/// `STATE_BACKEND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateBackend {
    /// JSON files in `DATA_DIR`.
    File,
    /// PostgreSQL at `DATABASE_URL`.
    Postgres {
        /// Connection URL (may hold a password).
        url: Secret,
    },
}

/// `MAIL_PROVIDER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailProviderKind {
    /// mbox + .ics files.
    Local,
    /// Gmail and Google Calendar.
    Gmail,
}

/// `UNSUBSCRIBE_ENFORCE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// Report violating senders only.
    Report,
    /// Give violating senders `auto_archive`.
    Archive,
}

/// `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Auth settings, as validated values; the auth crate's config is built from these.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `AUTH_MODE` (or `MCP_AUTH_MODE` when it is not `inherit`, for the MCP binary).
    pub mode: AuthMode,
    /// `AGENT_API_KEY`.
    pub api_key: Option<Secret>,
    /// `AUTH_JWT_SECRET`.
    pub jwt_secret: Option<Secret>,
    /// `AUTH_JWKS_URL`.
    pub jwks_url: Option<String>,
    /// `AUTH_JWT_ISSUER`.
    pub issuer: Option<String>,
    /// `AUTH_JWT_AUDIENCE`.
    pub audience: String,
    /// `AUTH_JWT_LEEWAY_S`.
    pub leeway: Duration,
    /// `AUTH_JWKS_TTL_S`.
    pub jwks_ttl: Duration,
    /// `MCP_OAUTH_ISSUER`.
    pub oauth_issuer: Option<String>,
    /// `MCP_RESOURCE_URL`.
    pub resource_url: Option<String>,
}

/// Validated settings of one binary.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which binary these are for.
    pub binary: Binary,
    /// Authentication.
    pub auth: AuthSettings,
    /// `MCP_ENABLE_MUTATION_TOOLS`.
    pub mcp_enable_mutation_tools: bool,
    /// `MCP_ALLOWED_HOSTS`: `Host` header values the MCP HTTP transport accepts.
    pub mcp_allowed_hosts: Vec<String>,
    /// `MCP_ALLOWED_ORIGINS`: `Origin` header values the MCP HTTP transport accepts.
    pub mcp_allowed_origins: origins::AllowedOrigins,
    /// `MCP_MAX_SESSIONS`: live MCP HTTP sessions per tenant (all tenants together: 4 times
    /// this), so a flood of `initialize` calls cannot exhaust memory (each session holds a worker
    /// until it idles out) nor lock another tenant out.
    pub mcp_max_sessions: usize,
    /// `A2A_TASK_TTL_H`: A2A tasks not updated for this long are pruned.
    pub a2a_task_ttl: Duration,
    /// `A2A_MAX_TASKS`: A2A tasks kept at most (the most recently updated).
    pub a2a_max_tasks: usize,
    /// `A2A_PUBLIC_URL`: the A2A interface URL the agent card gives (`None`: from the bound
    /// address).
    pub a2a_public_url: Option<String>,
    /// `DATA_DIR`.
    pub data_dir: PathBuf,
    /// `STATE_BACKEND` (+ `DATABASE_URL`).
    pub state_backend: StateBackend,
    /// `MAIL_PROVIDER`.
    pub mail_provider: MailProviderKind,
    /// `LOCAL_MBOX`.
    pub local_mbox: PathBuf,
    /// `LOCAL_ICS`.
    pub local_ics: PathBuf,
    /// `LOCAL_ACCOUNT`: the owner's address for the local provider (mail is sent from it).
    pub local_account: String,
    /// `SMTP_URL`: when set, the local provider sends through SMTP instead of the outbox folder.
    pub smtp_url: Option<Secret>,
    /// `GOOGLE_TOKEN_FILE`.
    pub google_token_file: PathBuf,
    /// `CALENDAR_IDS`: the Google calendars asked in freeBusy (never empty).
    pub calendar_ids: Vec<String>,
    /// `GOOGLE_CLIENT_SECRET_FILE`.
    pub google_client_secret_file: PathBuf,
    /// `GOOGLE_API_BASE_URL`.
    pub google_api_base_url: String,
    /// `GOOGLE_RETRY_AFTER_MAX_S`: the longest `Retry-After` from Google a request waits for.
    pub google_retry_after_max: Duration,
    /// `BIND_ADDR`.
    pub bind_addr: SocketAddr,
    /// `RATE_LIMIT_PER_MIN`.
    pub rate_limit_per_min: u32,
    /// `RATE_LIMIT_BURST`.
    pub rate_limit_burst: u32,
    /// `RATE_LIMIT_READ_PER_MIN`: the cheap reads' rate (operations of `Budget::Read`).
    pub rate_limit_read_per_min: u32,
    /// `RATE_LIMIT_READ_BURST`.
    pub rate_limit_read_burst: u32,
    /// `HTTP_HEADER_TIMEOUT_S`: how long a connection may take to send a request's headers.
    pub http_header_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS`: concurrent connections served at most.
    pub http_max_connections: usize,
    /// `RATE_LIMIT_BACKEND` (+ `REDIS_URL`).
    pub rate_limit_backend: RateLimitBackend,
    /// `RATE_LIMIT_ON_ERROR`.
    pub rate_limit_on_error: RateLimitOnError,
    /// `QUIETBOX_TEST_UNSUBSCRIBE_LOOPBACK` (debug builds only).
    pub unsubscribe_allow_loopback: bool,
    /// `UNSUBSCRIBE_ALLOW`.
    pub unsubscribe_allow: Vec<String>,
    /// `UNSUBSCRIBE_DENY`.
    pub unsubscribe_deny: Vec<String>,
    /// `UNSUBSCRIBE_GRACE_H`.
    pub unsubscribe_grace: Duration,
    /// `UNSUBSCRIBE_ENFORCE`.
    pub unsubscribe_enforce: Enforcement,
    /// `DIGEST_CRON`, evaluated in `DIGEST_TZ`: parsed at load, so `check-config` refuses
    /// every expression the scheduler would.
    pub digest_cron: Schedule,
    /// `DIGEST_TZ`: the digest's zone and the default zone of availability queries.
    pub digest_tz: chrono_tz::Tz,
    /// `DIGEST_TO` (`None`: the account address).
    pub digest_to: Option<String>,
    /// `SCHEDULER_ENABLED`.
    pub scheduler_enabled: bool,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
}

/// Google's API root; `GOOGLE_API_BASE_URL` replaces it in tests.
pub const GOOGLE_API_DEFAULT: &str = "https://www.googleapis.com";

fn one_of<T: Copy>(
    variable: &'static str,
    value: &str,
    choices: &[(&str, T)],
) -> Result<T, SettingsError> {
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value.trim()))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let accepted: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            SettingsError::new(
                variable,
                format!("{value:?} is not one of {}", accepted.join(", ")),
            )
        })
}

fn number<T: FromStr>(variable: &'static str, value: &str, what: &str) -> Result<T, SettingsError> {
    value
        .trim()
        .parse()
        .map_err(|_| SettingsError::new(variable, format!("{value:?} is not {what}")))
}

fn boolean(variable: &'static str, value: &str) -> Result<bool, SettingsError> {
    one_of(
        variable,
        value,
        &[
            ("true", true),
            ("false", false),
            ("1", true),
            ("0", false),
            ("yes", true),
            ("no", false),
        ],
    )
}

fn list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn http_url(variable: &'static str, value: &str) -> Result<String, SettingsError> {
    let parsed = url::Url::parse(value.trim())
        .map_err(|e| SettingsError::new(variable, format!("{value:?} is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SettingsError::new(
            variable,
            format!("{value:?} must be an http(s) URL"),
        ));
    }
    Ok(value.trim().to_owned())
}

/// The fewest bytes `serve` accepts in `AGENT_API_KEY` and `AUTH_JWT_SECRET`: a shorter HS256
/// secret can be brute-forced from one token, a shorter key guessed.
pub const MIN_SECRET_BYTES: usize = 32;

/// The placeholder the example files put where a secret goes (matched in any case).
pub const PLACEHOLDER: &str = "CHANGE-ME";

impl RawSettings {
    /// The placeholder and weak secrets of these layers, one error per variable (never showing
    /// the value): any value containing [`PLACEHOLDER`] in any case, and an `AGENT_API_KEY` or
    /// `AUTH_JWT_SECRET` shorter than [`MIN_SECRET_BYTES`]. `serve` refuses to start on any of
    /// them and `check-config` reports them, except `check-config --example`, which checks an
    /// example file that holds placeholders by design.
    pub fn secret_problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        for variable in VARIABLES {
            let Some(value) = self.get(variable.name) else {
                continue;
            };
            if value.to_ascii_uppercase().contains(PLACEHOLDER) {
                problems.push(SettingsError::new(
                    variable.name,
                    format!("holds the placeholder {PLACEHOLDER}; set the real value"),
                ));
            } else if matches!(variable.name, "AGENT_API_KEY" | "AUTH_JWT_SECRET")
                && value.len() < MIN_SECRET_BYTES
            {
                problems.push(SettingsError::new(
                    variable.name,
                    format!(
                        "is shorter than {MIN_SECRET_BYTES} bytes; use a random value such as `openssl rand -hex 32`"
                    ),
                ));
            }
        }
        problems
    }
}

/// A URL quietbox fetches keys or metadata from: https, or http to a loopback host only (the
/// auth crate's rule, so that `check-config` refuses what start-up refuses).
fn fetch_url(variable: &'static str, value: &str) -> Result<String, SettingsError> {
    let value = http_url(variable, value)?;
    quietbox_auth::validate_fetch_url(&value)
        .map_err(|e| SettingsError::new(variable, e.to_string()))?;
    Ok(value)
}

const AUTH_MODES: &[(&str, AuthMode)] = &[
    ("api_key", AuthMode::ApiKey),
    ("jwt", AuthMode::Jwt),
    ("hybrid", AuthMode::Hybrid),
];

/// `MCP_AUTH_MODE`: `None` is `inherit` (the MCP binary uses `AUTH_MODE`).
const MCP_AUTH_MODES: &[(&str, Option<AuthMode>)] = &[
    ("inherit", None),
    ("api_key", Some(AuthMode::ApiKey)),
    ("jwt", Some(AuthMode::Jwt)),
    ("hybrid", Some(AuthMode::Hybrid)),
    ("oauth", Some(AuthMode::OAuth)),
];

/// `DIGEST_TZ`: an IANA zone name.
fn time_zone(variable: &'static str, value: &str) -> Result<chrono_tz::Tz, SettingsError> {
    value.trim().parse().map_err(|_| {
        SettingsError::new(
            variable,
            format!("{value:?} is not an IANA time zone such as Europe/Paris or UTC"),
        )
    })
}

/// `DIGEST_CRON`: a cron expression the scheduler accepts, in `tz`.
fn cron(variable: &'static str, value: &str, tz: chrono_tz::Tz) -> Result<Schedule, SettingsError> {
    Schedule::new(value.trim(), tz).map_err(|e| {
        let detail = match e {
            quietbox_scheduler::ScheduleError::Cron { detail, .. } => detail,
            other => other.to_string(),
        };
        SettingsError::new(
            variable,
            format!(
                "{value:?} is not a cron expression of 5 fields (minute hour day-of-month month \
                 day-of-week), or 6 with seconds first, such as `0 8 * * MON` ({detail})"
            ),
        )
    })
}

impl Settings {
    /// Loads and validates the settings of `binary` from the file and the process environment.
    pub fn load(binary: Binary) -> Result<Self, SettingsError> {
        Self::from_raw(binary, &RawSettings::load()?)
    }

    /// Validates merged layers.
    pub fn from_raw(binary: Binary, raw: &RawSettings) -> Result<Self, SettingsError> {
        let mut mode = one_of("AUTH_MODE", raw.or_default("AUTH_MODE", binary), AUTH_MODES)?;
        let mcp_mode = one_of(
            "MCP_AUTH_MODE",
            raw.or_default("MCP_AUTH_MODE", binary),
            MCP_AUTH_MODES,
        )?;
        if let (Binary::Mcp, Some(mcp_mode)) = (binary, mcp_mode) {
            mode = mcp_mode;
        }
        let secret = |key: &'static str| raw.get(key).map(Secret::new);
        let auth = AuthSettings {
            mode,
            api_key: secret("AGENT_API_KEY"),
            jwt_secret: secret("AUTH_JWT_SECRET"),
            jwks_url: raw
                .get("AUTH_JWKS_URL")
                .map(|v| fetch_url("AUTH_JWKS_URL", v))
                .transpose()?,
            issuer: raw.get("AUTH_JWT_ISSUER").map(str::to_owned),
            audience: raw.or_default("AUTH_JWT_AUDIENCE", binary).to_owned(),
            leeway: Duration::from_secs(number(
                "AUTH_JWT_LEEWAY_S",
                raw.or_default("AUTH_JWT_LEEWAY_S", binary),
                "a number of seconds",
            )?),
            jwks_ttl: Duration::from_secs(number(
                "AUTH_JWKS_TTL_S",
                raw.or_default("AUTH_JWKS_TTL_S", binary),
                "a number of seconds",
            )?),
            oauth_issuer: raw
                .get("MCP_OAUTH_ISSUER")
                .map(|v| fetch_url("MCP_OAUTH_ISSUER", v))
                .transpose()?,
            resource_url: raw
                .get("MCP_RESOURCE_URL")
                .map(|v| http_url("MCP_RESOURCE_URL", v))
                .transpose()?,
        };
        if mode.uses_api_key() && auth.api_key.is_none() {
            return Err(SettingsError::new(
                "AGENT_API_KEY",
                format!("is required when the auth mode is {mode}"),
            ));
        }
        if matches!(mode, AuthMode::Jwt | AuthMode::Hybrid)
            && auth.jwt_secret.is_none()
            && auth.jwks_url.is_none()
        {
            return Err(SettingsError::new(
                "AUTH_JWT_SECRET",
                format!(
                    "AUTH_JWT_SECRET or AUTH_JWKS_URL is required when the auth mode is {mode}"
                ),
            ));
        }
        if mode == AuthMode::OAuth {
            if auth.oauth_issuer.is_none() {
                return Err(SettingsError::new(
                    "MCP_OAUTH_ISSUER",
                    "is required with MCP_AUTH_MODE=oauth",
                ));
            }
            if auth.resource_url.is_none() {
                return Err(SettingsError::new(
                    "MCP_RESOURCE_URL",
                    "is required with MCP_AUTH_MODE=oauth",
                ));
            }
        }

        let state_backend = match one_of(
            "STATE_BACKEND",
            raw.or_default("STATE_BACKEND", binary),
            &[("file", false), ("postgres", true)],
        )? {
            false => StateBackend::File,
            true => StateBackend::Postgres {
                url: secret("DATABASE_URL").ok_or_else(|| {
                    SettingsError::new("DATABASE_URL", "is required when STATE_BACKEND=postgres")
                })?,
            },
        };
        let mail_provider = one_of(
            "MAIL_PROVIDER",
            raw.or_default("MAIL_PROVIDER", binary),
            &[
                ("local", MailProviderKind::Local),
                ("gmail", MailProviderKind::Gmail),
            ],
        )?;
        let bind_text = raw.or_default("BIND_ADDR", binary);
        let bind_addr = number(
            "BIND_ADDR",
            bind_text,
            "a socket address such as 127.0.0.1:8080",
        )?;
        let digest_tz = time_zone("DIGEST_TZ", raw.or_default("DIGEST_TZ", binary))?;
        let digest_cron = cron(
            "DIGEST_CRON",
            raw.or_default("DIGEST_CRON", binary),
            digest_tz,
        )?;
        let per_min: u32 = number(
            "RATE_LIMIT_PER_MIN",
            raw.or_default("RATE_LIMIT_PER_MIN", binary),
            "a positive whole number",
        )?;
        let burst: u32 = number(
            "RATE_LIMIT_BURST",
            raw.or_default("RATE_LIMIT_BURST", binary),
            "a positive whole number",
        )?;
        if per_min == 0 {
            return Err(SettingsError::new(
                "RATE_LIMIT_PER_MIN",
                "must be at least 1",
            ));
        }
        if burst == 0 {
            return Err(SettingsError::new("RATE_LIMIT_BURST", "must be at least 1"));
        }
        let at_least_one = |variable: &'static str| -> Result<u64, SettingsError> {
            let value: u64 = number(
                variable,
                raw.or_default(variable, binary),
                "a positive whole number",
            )?;
            if value == 0 {
                return Err(SettingsError::new(variable, "must be at least 1"));
            }
            Ok(value)
        };
        let below_u32 = |variable: &'static str| -> Result<u32, SettingsError> {
            u32::try_from(at_least_one(variable)?)
                .map_err(|_| SettingsError::new(variable, "must be at most 4294967295"))
        };
        let read_per_min = below_u32("RATE_LIMIT_READ_PER_MIN")?;
        let read_burst = below_u32("RATE_LIMIT_READ_BURST")?;
        let header_timeout_s = at_least_one("HTTP_HEADER_TIMEOUT_S")?;
        if header_timeout_s > 3600 {
            return Err(SettingsError::new(
                "HTTP_HEADER_TIMEOUT_S",
                "must be at most 3600 seconds",
            ));
        }
        let max_connections = usize::try_from(at_least_one("HTTP_MAX_CONNECTIONS")?)
            .ok()
            .filter(|n| *n <= 1_000_000)
            .ok_or_else(|| SettingsError::new("HTTP_MAX_CONNECTIONS", "must be at most 1000000"))?;
        let bounded = |variable: &'static str, max: u64| -> Result<u64, SettingsError> {
            let value: u64 = number(
                variable,
                raw.or_default(variable, binary),
                "a positive whole number",
            )?;
            if value == 0 || value > max {
                return Err(SettingsError::new(
                    variable,
                    format!("must be between 1 and {max}"),
                ));
            }
            Ok(value)
        };
        let a2a_task_ttl_h = bounded("A2A_TASK_TTL_H", 876_000)?;
        let a2a_max_tasks = bounded("A2A_MAX_TASKS", 1_000_000)?;
        let grace_h: u64 = number(
            "UNSUBSCRIBE_GRACE_H",
            raw.or_default("UNSUBSCRIBE_GRACE_H", binary),
            "a number of hours",
        )?;

        Ok(Settings {
            binary,
            auth,
            mcp_enable_mutation_tools: boolean(
                "MCP_ENABLE_MUTATION_TOOLS",
                raw.or_default("MCP_ENABLE_MUTATION_TOOLS", binary),
            )?,
            mcp_allowed_hosts: {
                let hosts = list(raw.get("MCP_ALLOWED_HOSTS"));
                if hosts.is_empty() {
                    vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
                } else {
                    hosts
                }
            },
            mcp_allowed_origins: origins::AllowedOrigins::parse(
                list(raw.get("MCP_ALLOWED_ORIGINS"))
                    .iter()
                    .map(String::as_str),
            )
            .map_err(|e| SettingsError::new("MCP_ALLOWED_ORIGINS", e.to_string()))?,
            mcp_max_sessions: {
                let max: usize = number(
                    "MCP_MAX_SESSIONS",
                    raw.or_default("MCP_MAX_SESSIONS", binary),
                    "a positive whole number",
                )?;
                if max == 0 {
                    return Err(SettingsError::new(
                        "MCP_MAX_SESSIONS",
                        "must be a positive whole number",
                    ));
                }
                max
            },
            a2a_task_ttl: Duration::from_secs(a2a_task_ttl_h * 3600),
            a2a_max_tasks: usize::try_from(a2a_max_tasks).unwrap_or(usize::MAX),
            a2a_public_url: raw
                .get("A2A_PUBLIC_URL")
                .map(|v| http_url("A2A_PUBLIC_URL", v))
                .transpose()?,
            data_dir: PathBuf::from(raw.or_default("DATA_DIR", binary)),
            state_backend,
            mail_provider,
            local_mbox: PathBuf::from(raw.or_default("LOCAL_MBOX", binary)),
            local_ics: PathBuf::from(raw.or_default("LOCAL_ICS", binary)),
            local_account: raw.or_default("LOCAL_ACCOUNT", binary).to_owned(),
            smtp_url: secret("SMTP_URL"),
            google_token_file: PathBuf::from(raw.or_default("GOOGLE_TOKEN_FILE", binary)),
            calendar_ids: {
                let ids = list(Some(raw.or_default("CALENDAR_IDS", binary)));
                if ids.is_empty() {
                    return Err(SettingsError::new(
                        "CALENDAR_IDS",
                        "must name at least one calendar (e.g. `primary`)",
                    ));
                }
                ids
            },
            google_client_secret_file: PathBuf::from(
                raw.or_default("GOOGLE_CLIENT_SECRET_FILE", binary),
            ),
            google_api_base_url: http_url(
                "GOOGLE_API_BASE_URL",
                raw.or_default("GOOGLE_API_BASE_URL", binary),
            )?,
            google_retry_after_max: {
                let seconds: u64 = number(
                    "GOOGLE_RETRY_AFTER_MAX_S",
                    raw.or_default("GOOGLE_RETRY_AFTER_MAX_S", binary),
                    "a whole number of seconds",
                )?;
                if seconds > 3600 {
                    return Err(SettingsError::new(
                        "GOOGLE_RETRY_AFTER_MAX_S",
                        "must be at most 3600 (an hour)",
                    ));
                }
                Duration::from_secs(seconds)
            },
            bind_addr,
            rate_limit_per_min: per_min,
            rate_limit_burst: burst,
            rate_limit_read_per_min: read_per_min,
            rate_limit_read_burst: read_burst,
            http_header_timeout: Duration::from_secs(header_timeout_s),
            http_max_connections: max_connections,
            rate_limit_backend: scaling::rate_limit_backend(raw)?,
            rate_limit_on_error: scaling::rate_limit_on_error(raw)?,
            unsubscribe_allow_loopback: scaling::unsubscribe_loopback(raw)?,
            unsubscribe_allow: list(raw.get("UNSUBSCRIBE_ALLOW")),
            unsubscribe_deny: list(raw.get("UNSUBSCRIBE_DENY")),
            unsubscribe_grace: Duration::from_secs(grace_h * 3600),
            unsubscribe_enforce: one_of(
                "UNSUBSCRIBE_ENFORCE",
                raw.or_default("UNSUBSCRIBE_ENFORCE", binary),
                &[
                    ("report", Enforcement::Report),
                    ("archive", Enforcement::Archive),
                ],
            )?,
            digest_cron,
            digest_tz,
            digest_to: raw.get("DIGEST_TO").map(str::to_owned),
            scheduler_enabled: boolean(
                "SCHEDULER_ENABLED",
                raw.or_default("SCHEDULER_ENABLED", binary),
            )?,
            log_format: one_of(
                "LOG_FORMAT",
                raw.or_default("LOG_FORMAT", binary),
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(binary: Binary, pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_raw(binary, &RawSettings::load_from(&env(pairs))?)
    }

    #[test]
    fn defaults_follow_the_design_contract() {
        let s = load(Binary::Api, &[("AGENT_API_KEY", "k")]).unwrap();
        assert_eq!(s.auth.mode, AuthMode::ApiKey);
        assert_eq!(s.auth.audience, "quietbox");
        assert_eq!(s.auth.leeway, Duration::from_secs(30));
        assert_eq!(s.auth.jwks_ttl, Duration::from_secs(600));
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.state_backend, StateBackend::File);
        assert_eq!(s.mail_provider, MailProviderKind::Local);
        assert_eq!(s.rate_limit_per_min, 30);
        assert_eq!(s.rate_limit_burst, 5);
        assert_eq!(s.unsubscribe_grace, Duration::from_secs(48 * 3600));
        assert_eq!(s.digest_cron.expression(), "0 8 * * MON");
        assert_eq!(s.digest_tz, chrono_tz::UTC);
        assert!(s.scheduler_enabled);
        let mcp = load(Binary::Mcp, &[("AGENT_API_KEY", "k")]).unwrap();
        assert_eq!(mcp.bind_addr.to_string(), "127.0.0.1:8082");
        assert!(!mcp.scheduler_enabled);
    }

    #[test]
    fn read_budget_and_connection_limits_have_defaults_and_refuse_zero() {
        let key = ("AGENT_API_KEY", "k-0123456789abcdef0123456789abcdef");
        let s = load(Binary::Api, &[key]).unwrap();
        assert_eq!(s.rate_limit_read_per_min, 600);
        assert_eq!(s.rate_limit_read_burst, 60);
        assert_eq!(s.http_header_timeout, Duration::from_secs(10));
        assert_eq!(s.http_max_connections, 1024);
        for variable in [
            "RATE_LIMIT_READ_PER_MIN",
            "RATE_LIMIT_READ_BURST",
            "HTTP_HEADER_TIMEOUT_S",
            "HTTP_MAX_CONNECTIONS",
        ] {
            for bad in ["0", "-1", "many", "99999999999"] {
                let err = load(Binary::Api, &[key, (variable, bad)]).unwrap_err();
                assert_eq!(err.variable, variable, "{variable}={bad}: {err}");
            }
        }
        let s = load(
            Binary::A2a,
            &[
                key,
                ("HTTP_HEADER_TIMEOUT_S", "2"),
                ("HTTP_MAX_CONNECTIONS", "8"),
            ],
        )
        .unwrap();
        assert_eq!(s.http_header_timeout, Duration::from_secs(2));
        assert_eq!(s.http_max_connections, 8);
    }

    #[test]
    fn the_google_retry_after_cap_defaults_to_30_s_and_refuses_more_than_an_hour() {
        let key = ("AGENT_API_KEY", "k-0123456789abcdef0123456789abcdef");
        let s = load(Binary::Api, &[key]).unwrap();
        assert_eq!(s.google_retry_after_max, Duration::from_secs(30));
        let s = load(Binary::Mcp, &[key, ("GOOGLE_RETRY_AFTER_MAX_S", "0")]).unwrap();
        assert_eq!(s.google_retry_after_max, Duration::ZERO);
        for bad in ["3601", "-1", "soon"] {
            let err = load(Binary::Api, &[key, ("GOOGLE_RETRY_AFTER_MAX_S", bad)]).unwrap_err();
            assert_eq!(err.variable, "GOOGLE_RETRY_AFTER_MAX_S", "{bad}: {err}");
        }
    }

    #[test]
    fn key_and_issuer_urls_must_be_https_outside_loopback() {
        let key = ("AGENT_API_KEY", "k-0123456789abcdef0123456789abcdef");
        let err = load(
            Binary::Api,
            &[
                key,
                ("AUTH_MODE", "jwt"),
                ("AUTH_JWKS_URL", "http://idp.example/jwks.json"),
            ],
        )
        .unwrap_err();
        assert_eq!(err.variable, "AUTH_JWKS_URL");
        assert!(err.to_string().contains("https"), "{err}");
        let err = load(
            Binary::Mcp,
            &[
                key,
                ("MCP_AUTH_MODE", "oauth"),
                ("MCP_OAUTH_ISSUER", "http://idp.example"),
                ("MCP_RESOURCE_URL", "https://mcp.example.com/mcp"),
            ],
        )
        .unwrap_err();
        assert_eq!(err.variable, "MCP_OAUTH_ISSUER");
        for ok in [
            "https://idp.example/jwks.json",
            "http://127.0.0.1:9000/jwks",
        ] {
            load(
                Binary::Api,
                &[key, ("AUTH_MODE", "jwt"), ("AUTH_JWKS_URL", ok)],
            )
            .unwrap();
        }
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_accepted_values() {
        let err = load(Binary::Api, &[("AUTH_MODE", "magic")]).unwrap_err();
        assert_eq!(err.variable, "AUTH_MODE");
        assert_eq!(
            err.to_string(),
            "AUTH_MODE: \"magic\" is not one of api_key, jwt, hybrid"
        );
        let err = load(
            Binary::Api,
            &[("AGENT_API_KEY", "k"), ("RATE_LIMIT_PER_MIN", "lots")],
        )
        .unwrap_err();
        assert_eq!(err.variable, "RATE_LIMIT_PER_MIN");
        let err = load(
            Binary::Api,
            &[("AGENT_API_KEY", "k"), ("DIGEST_TZ", "Mars/Olympus")],
        )
        .unwrap_err();
        assert_eq!(err.variable, "DIGEST_TZ");
    }

    #[test]
    fn digest_cron_and_tz_are_parsed_at_load_as_the_scheduler_parses_them() {
        let key = ("AGENT_API_KEY", "k-0123456789abcdef0123456789abcdef");
        // Five fields that croner refuses: the old field count let these through to `serve`.
        for bad in [
            "not a cron",
            "61 8 * * MON",
            "0 25 * * *",
            "a b c d e",
            "0 8 * * FUNDAY",
        ] {
            let err = load(Binary::Api, &[key, ("DIGEST_CRON", bad)]).unwrap_err();
            assert_eq!(err.variable, "DIGEST_CRON", "{bad}: {err}");
            let line = err.to_string();
            assert!(line.starts_with("DIGEST_CRON: "), "{line}");
            assert!(
                line.contains("0 8 * * MON") && !line.contains('\n'),
                "{line}"
            );
        }
        for bad in ["Mars/Olympus", "Europe/Pariss", "utc+2"] {
            let err = load(Binary::Api, &[key, ("DIGEST_TZ", bad)]).unwrap_err();
            assert_eq!(err.variable, "DIGEST_TZ", "{bad}: {err}");
            assert!(err.to_string().contains("IANA time zone"), "{err}");
        }
        let s = load(
            Binary::Api,
            &[
                key,
                ("DIGEST_CRON", "30 7 * * 1-5"),
                ("DIGEST_TZ", "Europe/Paris"),
            ],
        )
        .unwrap();
        assert_eq!(s.digest_tz, chrono_tz::Europe::Paris);
        assert_eq!(s.digest_cron.tz(), chrono_tz::Europe::Paris);
        assert_eq!(s.digest_cron.expression(), "30 7 * * 1-5");
        // Seconds first is the scheduler's six-field form.
        load(Binary::Api, &[key, ("DIGEST_CRON", "0 0 8 * * MON")]).unwrap();
    }

    #[test]
    fn auth_modes_are_typed_and_oauth_is_for_mcp_auth_mode_only() {
        let key = ("AGENT_API_KEY", "k-0123456789abcdef0123456789abcdef");
        let secret = ("AUTH_JWT_SECRET", "s-0123456789abcdef0123456789abcdef");
        for (text, mode) in [
            ("api_key", AuthMode::ApiKey),
            ("JWT", AuthMode::Jwt),
            ("hybrid", AuthMode::Hybrid),
        ] {
            let s = load(Binary::A2a, &[key, secret, ("AUTH_MODE", text)]).unwrap();
            assert_eq!(s.auth.mode, mode);
        }
        let err = load(Binary::Api, &[key, ("AUTH_MODE", "oauth")]).unwrap_err();
        assert_eq!(err.variable, "AUTH_MODE");
        let err = load(Binary::Mcp, &[key, ("MCP_AUTH_MODE", "basic")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MCP_AUTH_MODE: \"basic\" is not one of inherit, api_key, jwt, hybrid, oauth"
        );
        let s = load(Binary::Mcp, &[key, secret, ("MCP_AUTH_MODE", "jwt")]).unwrap();
        assert_eq!(s.auth.mode, AuthMode::Jwt);
    }

    #[test]
    fn api_key_mode_without_a_key_refuses_to_start() {
        let err = load(Binary::Api, &[]).unwrap_err();
        assert_eq!(err.variable, "AGENT_API_KEY");
    }

    #[test]
    fn mcp_auth_mode_overrides_auth_mode_only_for_the_mcp_binary() {
        let vars = [
            ("AGENT_API_KEY", "k"),
            ("MCP_AUTH_MODE", "oauth"),
            ("MCP_OAUTH_ISSUER", "https://idp.example.com"),
            ("MCP_RESOURCE_URL", "https://mcp.example.com/mcp"),
        ];
        assert_eq!(load(Binary::Mcp, &vars).unwrap().auth.mode, AuthMode::OAuth);
        assert_eq!(
            load(Binary::Api, &vars).unwrap().auth.mode,
            AuthMode::ApiKey
        );
        let err = load(Binary::Mcp, &vars[..2]).unwrap_err();
        assert_eq!(err.variable, "MCP_OAUTH_ISSUER");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = load(
            Binary::Api,
            &[
                ("AGENT_API_KEY", "hunter2-key"),
                ("AUTH_JWT_SECRET", "hunter2-jwt"),
            ],
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn environment_overrides_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("quietbox.toml");
        std::fs::write(
            &file,
            "auth_mode = \"jwt\"\nAUTH_JWT_SECRET = \"s\"\nRATE_LIMIT_BURST = \"9\"\n",
        )
        .unwrap();
        let path = file.to_string_lossy().into_owned();
        let s = load(
            Binary::Api,
            &[("QUIETBOX_CONFIG", &path), ("RATE_LIMIT_BURST", "7")],
        )
        .unwrap();
        assert_eq!(s.auth.mode, AuthMode::Jwt);
        assert_eq!(s.rate_limit_burst, 7);
        let err = load(Binary::Api, &[("QUIETBOX_CONFIG", "/nonexistent/q.toml")]).unwrap_err();
        assert_eq!(err.variable, "QUIETBOX_CONFIG");
    }

    #[test]
    fn the_variable_table_names_each_variable_once_and_holds_the_contract_defaults() {
        let mut names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a variable is listed twice");
        assert_eq!(
            default_of("GOOGLE_API_BASE_URL", Binary::Api),
            Some(GOOGLE_API_DEFAULT)
        );
        assert_eq!(default_of("BIND_ADDR", Binary::A2a), Some("127.0.0.1:8081"));
        assert_eq!(default_of("SCHEDULER_ENABLED", Binary::Mcp), Some("false"));
        assert_eq!(default_of("AGENT_API_KEY", Binary::Api), None);
        assert!(!is_known("HOME"));
        let a2a = load(Binary::A2a, &[("AGENT_API_KEY", "k")]).unwrap();
        assert_eq!(a2a.bind_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(a2a.local_account, "owner@example.org");
        assert_eq!(a2a.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn placeholder_and_short_secrets_are_named_never_shown() {
        let raw = |pairs: &[(&str, &str)]| RawSettings::load_from(&env(pairs)).unwrap();
        let long = "0123456789abcdef0123456789abcdef";
        assert!(
            raw(&[("AGENT_API_KEY", long), ("AUTH_JWT_SECRET", long)])
                .secret_problems()
                .is_empty()
        );
        let problems = raw(&[
            ("AGENT_API_KEY", "short-key1"),
            ("AUTH_JWT_SECRET", "0123456789abcdef0123456789abcde"),
            ("DATABASE_URL", "postgres://q:change-me-please@db/q"),
        ])
        .secret_problems();
        let mut named: Vec<&str> = problems.iter().map(|p| p.variable).collect();
        named.sort_unstable();
        assert_eq!(named, ["AGENT_API_KEY", "AUTH_JWT_SECRET", "DATABASE_URL"]);
        let shown: String = problems.iter().map(|p| format!("{p}\n")).collect();
        for value in ["short-key1", "0123456789abcdef", "please"] {
            assert!(!shown.contains(value), "{shown}");
        }
        let placeholder = raw(&[(
            "AGENT_API_KEY",
            "CHANGE-ME-api-key-from-openssl-rand-hex-32",
        )])
        .secret_problems();
        assert_eq!(placeholder.len(), 1);
        assert!(placeholder[0].problem.contains("CHANGE-ME"));
    }

    #[test]
    fn postgres_backend_requires_a_database_url() {
        let err = load(
            Binary::Api,
            &[("AGENT_API_KEY", "k"), ("STATE_BACKEND", "postgres")],
        )
        .unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");
    }

    #[test]
    fn calendar_ids_default_to_primary_split_on_commas_and_refuse_an_empty_list() {
        let key = ("AGENT_API_KEY", "k-0123456789abcdef0123456789abcdef");
        let s = load(Binary::Api, &[key]).unwrap();
        assert_eq!(s.calendar_ids, vec!["primary".to_owned()]);
        let s = load(
            Binary::Api,
            &[key, ("CALENDAR_IDS", "primary, team@example.com ,")],
        )
        .unwrap();
        assert_eq!(s.calendar_ids, vec!["primary", "team@example.com"]);
        let err = load(Binary::Api, &[key, ("CALENDAR_IDS", " , ")]).unwrap_err();
        assert_eq!(err.variable, "CALENDAR_IDS");
    }
}
