//! The table of every variable quietbox reads: name, default, meaning.
//!
//! It is the single source for the defaults [`super::Settings`] applies and for the
//! configuration table of `docs/operator-guide.md`, which `cargo xtask config-doc` writes from
//! it. xtask includes this file by path (it must build before the runtime's dependencies), so it
//! holds plain data only and refers to nothing outside this file.

/// What an unset variable means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// No default: unset turns the feature off, or the variable is required where its meaning
    /// says so.
    None,
    /// Unset means what the text says, decided at start-up (e.g. "the account address").
    Derived(&'static str),
    /// This value.
    Value(&'static str),
    /// A value per binary: `quietbox-api`, `quietbox-a2a`, `quietbox-mcp`.
    PerBinary([&'static str; 3]),
}

/// One variable of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    /// The name, as written in the environment or the TOML file.
    pub name: &'static str,
    /// What applies when it is unset.
    pub default: DefaultValue,
    /// What it does and what it accepts, in one sentence of Markdown.
    pub meaning: &'static str,
}

const fn var(name: &'static str, default: DefaultValue, meaning: &'static str) -> Variable {
    Variable {
        name,
        default,
        meaning,
    }
}

use DefaultValue::{Derived, None as Unset, PerBinary, Value};

/// Every variable, in the order the operator guide lists them. Anything else is ignored.
pub const VARIABLES: &[Variable] = &[
    var(
        "QUIETBOX_CONFIG",
        Unset,
        "TOML file of settings (keys in either case); the environment overrides it.",
    ),
    var(
        "AUTH_MODE",
        Value("api_key"),
        "`api_key` \\| `jwt` \\| `hybrid` (API key first, then JWT).",
    ),
    var(
        "AGENT_API_KEY",
        Unset,
        "Static shared secret, compared in constant time; required in `api_key` and `hybrid` mode.",
    ),
    var(
        "AUTH_JWT_SECRET",
        Unset,
        "HS256 signing secret (`jwt`/`hybrid`); this or `AUTH_JWKS_URL` is required there.",
    ),
    var(
        "AUTH_JWKS_URL",
        Unset,
        "JWKS endpoint (RS256/ES256/EdDSA keys), used instead of or besides the secret.",
    ),
    var(
        "AUTH_JWT_ISSUER",
        Unset,
        "Required `iss` of tokens, when set.",
    ),
    var(
        "AUTH_JWT_AUDIENCE",
        Value("quietbox"),
        "Required `aud` of tokens.",
    ),
    var(
        "AUTH_JWT_LEEWAY_S",
        Value("30"),
        "Clock skew allowed on `exp` and `nbf`, in seconds.",
    ),
    var(
        "AUTH_JWKS_TTL_S",
        Value("600"),
        "How long fetched JWKS keys are cached, in seconds.",
    ),
    var(
        "MCP_AUTH_MODE",
        Value("inherit"),
        "`inherit` \\| `api_key` \\| `jwt` \\| `hybrid` \\| `oauth`; `quietbox-mcp` only.",
    ),
    var(
        "MCP_OAUTH_ISSUER",
        Unset,
        "Authorization server of `MCP_AUTH_MODE=oauth` (metadata discovered from it).",
    ),
    var(
        "MCP_RESOURCE_URL",
        Unset,
        "This MCP server's canonical URL; `oauth` tokens must carry it as audience.",
    ),
    var(
        "MCP_ENABLE_MUTATION_TOOLS",
        Value("true"),
        "`false` hides and refuses the mutation tools (`unsubscribe`, `send_unsubscribe_digest`, `set_sender_decision`).",
    ),
    var(
        "MCP_ALLOWED_HOSTS",
        Derived("`localhost`, `127.0.0.1`, `[::1]`"),
        "Comma-separated `Host` header values the MCP HTTP transport accepts; list the public names behind a proxy.",
    ),
    var(
        "MCP_ALLOWED_ORIGINS",
        Derived("`http`/`https` on `localhost`, `127.0.0.1`, `[::1]`, any port"),
        "Comma-separated browser origins (`https://app.example.com`, `http://host:*` for any port) the MCP HTTP transport accepts in `Origin`; any other origin, and `null`, gets 403; requests without `Origin` are allowed.",
    ),
    var(
        "MCP_MAX_SESSIONS",
        Value("256"),
        "Live MCP HTTP sessions per tenant (all tenants together: 4 times this); idle ones end after 5 minutes; a new session past it gets 503 with `Retry-After`.",
    ),
    var(
        "A2A_TASK_TTL_H",
        Value("168"),
        "Hours an A2A task is kept after its last update (1 to 876000); older tasks are pruned, in both state backends.",
    ),
    var(
        "A2A_MAX_TASKS",
        Value("10000"),
        "A2A tasks kept at most (1 to 1000000), the most recently updated; the rest are pruned, in both state backends.",
    ),
    var(
        "A2A_PUBLIC_URL",
        Derived("`http://` and the address `quietbox-a2a` is bound to"),
        "The `http(s)` URL clients reach the A2A agent at (e.g. behind a TLS proxy), given as the agent card's interface URL; never taken from the request's `Host`.",
    ),
    var(
        "DATA_DIR",
        Value("./data"),
        "State directory shared by all three binaries (JSON files, outbox).",
    ),
    var(
        "STATE_BACKEND",
        Value("file"),
        "`file` (JSON files in `DATA_DIR`) \\| `postgres` (`DATABASE_URL`).",
    ),
    var(
        "DATABASE_URL",
        Unset,
        "PostgreSQL URL; required with `STATE_BACKEND=postgres`.",
    ),
    var(
        "MAIL_PROVIDER",
        Value("local"),
        "`local` (mbox + .ics files) \\| `gmail` (Gmail and Google Calendar).",
    ),
    var(
        "LOCAL_MBOX",
        Value("data/sample/inbox.mbox"),
        "Mailbox of the local provider.",
    ),
    var(
        "LOCAL_ICS",
        Value("data/sample/calendar.ics"),
        "Calendar of the local provider.",
    ),
    var(
        "LOCAL_ACCOUNT",
        Value("owner@example.org"),
        "Owner's address on the local provider (mail is sent from it).",
    ),
    var(
        "SMTP_URL",
        Unset,
        "Relay for the local provider's outgoing mail; unset writes `.eml` files to `DATA_DIR/outbox/`.",
    ),
    var(
        "GOOGLE_TOKEN_FILE",
        Value("token.json"),
        "Google OAuth token, refreshed and rewritten atomically with mode 0600.",
    ),
    var(
        "GOOGLE_CLIENT_SECRET_FILE",
        Value("client_secret.json"),
        "Google OAuth client used by `login`.",
    ),
    var(
        "GOOGLE_API_BASE_URL",
        Value("https://www.googleapis.com"),
        "Google API root; tests point it at a fake server.",
    ),
    var(
        "GOOGLE_RETRY_AFTER_MAX_S",
        Value("30"),
        "Longest `Retry-After` from Google (seconds or HTTP date) a request waits for (0 to 3600 s); when Google asks for longer, the request fails at once with 503 `upstream_rate_limited` and a `Retry-After` of Google's wait.",
    ),
    var(
        "CALENDAR_IDS",
        Value("primary"),
        "Google calendars asked in freeBusy (comma-separated ids); one the answer marks in error or leaves out fails the availability query.",
    ),
    var(
        "BIND_ADDR",
        PerBinary(["127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8082"]),
        "Listen address; port 0 picks a free port (the bound address is printed on stdout).",
    ),
    var(
        "HTTP_HEADER_TIMEOUT_S",
        Value("10"),
        "Seconds a connection may take to send a request's headers (and may stay idle between requests) before it is closed (1 to 3600).",
    ),
    var(
        "HTTP_MAX_CONNECTIONS",
        Value("1024"),
        "Concurrent connections per binary (1 to 1000000); further connections wait in the listen backlog until one closes.",
    ),
    var(
        "RATE_LIMIT_PER_MIN",
        Value("30"),
        "Requests per minute per tenant and operation (at least 1).",
    ),
    var(
        "RATE_LIMIT_BURST",
        Value("5"),
        "Burst above the per-minute rate (at least 1).",
    ),
    var(
        "RATE_LIMIT_READ_PER_MIN",
        Value("600"),
        "Requests per minute per tenant and cheap read (availability, candidates, history, compliance, sender view; at least 1); scans, digests, unsubscribes and sender decisions use `RATE_LIMIT_PER_MIN`.",
    ),
    var(
        "RATE_LIMIT_READ_BURST",
        Value("60"),
        "Burst of the cheap reads above their per-minute rate (at least 1).",
    ),
    var(
        "RATE_LIMIT_BACKEND",
        Value("memory"),
        "`memory` (each process its own buckets) \\| `redis` (one budget shared by every replica, in `REDIS_URL`).",
    ),
    var(
        "REDIS_URL",
        Unset,
        "Redis of the rate limits (`redis://[:password@]host:6379[/db]`); required with `RATE_LIMIT_BACKEND=redis`.",
    ),
    var(
        "RATE_LIMIT_ON_ERROR",
        Derived(
            "`closed` for mutations (unsubscribe, digest, sender decision), `open` for reads (scan and the rest)",
        ),
        "`open` \\| `closed`: what the limiter does while Redis is down, for every operation (`closed` answers 503).",
    ),
    var(
        "QUIETBOX_TEST_UNSUBSCRIBE_LOOPBACK",
        Value("false"),
        "Test builds only (release builds refuse it): outbound unsubscribe may reach 127.0.0.1.",
    ),
    var(
        "UNSUBSCRIBE_ALLOW",
        Unset,
        "Comma-separated host patterns (`*.example.com`, `**`) outbound unsubscribe may reach.",
    ),
    var(
        "UNSUBSCRIBE_DENY",
        Unset,
        "Comma-separated host patterns outbound unsubscribe never reaches.",
    ),
    var(
        "UNSUBSCRIBE_GRACE_H",
        Value("48"),
        "Hours a sender gets to honour an unsubscribe before its mail counts as a violation.",
    ),
    var(
        "UNSUBSCRIBE_ENFORCE",
        Value("report"),
        "`report` \\| `archive`: violating senders get `auto_archive` (hourly; a Gmail filter and `batchModify`; `login` then asks for `gmail.modify` and `gmail.settings.basic`).",
    ),
    var(
        "DIGEST_CRON",
        Value("0 8 * * MON"),
        "Digest schedule, a cron expression of 5 or 6 fields.",
    ),
    var(
        "DIGEST_TZ",
        Value("UTC"),
        "IANA time zone of `DIGEST_CRON`.",
    ),
    var(
        "DIGEST_TO",
        Derived("the account address"),
        "Recipient of the digest.",
    ),
    var(
        "SCHEDULER_ENABLED",
        PerBinary(["true", "false", "false"]),
        "Host the scheduler; a lease makes each job run on one node of a cluster.",
    ),
    var(
        "LOG_FORMAT",
        Value("text"),
        "`text` \\| `json` (one object per line).",
    ),
    var(
        "RUST_LOG",
        Value("info"),
        "Log filter, e.g. `info,quietbox_runtime=debug`.",
    ),
];
