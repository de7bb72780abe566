//! `cargo xtask demo`: the three binaries on the embedded default — the sample mailbox and
//! calendar, JSON state in `./data` — on their usual ports, with how to call each.
//!
//! Ctrl-C in the terminal reaches the whole process group, so every binary gets SIGINT and shuts
//! down gracefully; if one binary exits on its own, the others are stopped too.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::fleet::{self, Launch, Logs};

/// Builds and runs the three binaries until Ctrl-C or until one of them exits.
pub fn run() -> Result<()> {
    fleet::build_binaries()?;
    let root = fleet::workspace_root();
    let key = std::env::var("AGENT_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "quietbox-demo-key-0123456789abcdef".to_owned());
    let mut env = vec![
        ("AGENT_API_KEY".to_owned(), key.clone()),
        (
            "DATA_DIR".to_owned(),
            root.join("data").display().to_string(),
        ),
    ];
    // The caller's provider settings win (e.g. MAIL_PROVIDER=gmail after `login`).
    for (name, default) in [
        ("MAIL_PROVIDER", "local".to_owned()),
        (
            "LOCAL_MBOX",
            root.join("data/sample/inbox.mbox").display().to_string(),
        ),
        (
            "LOCAL_ICS",
            root.join("data/sample/calendar.ics").display().to_string(),
        ),
    ] {
        let value = std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or(default);
        env.push((name.to_owned(), value));
    }
    let launch = Launch {
        bin_dir: &fleet::debug_bin_dir(),
        env,
        binds: [
            "127.0.0.1:8080".into(),
            "127.0.0.1:8081".into(),
            "127.0.0.1:8082".into(),
        ],
        clear_env: false,
        logs: Logs::Inherit,
    };
    let mut fleet = fleet::start(&launch)?;
    let url = |name: &str| fleet.get(name).map(|p| p.base.clone()).unwrap_or_default();
    let (api, a2a, mcp) = (
        url("quietbox-api"),
        url("quietbox-a2a"),
        url("quietbox-mcp"),
    );
    eprintln!(
        "\nquietbox is running on the sample data (state in {}); API key {key:?}. Try:\n\
         \n  REST   curl -H 'X-API-Key: {key}' {api}/v1/unsubscribe/candidates\
         \n         curl -H 'X-API-Key: {key}' '{api}/v1/availability?tz=Europe/Paris&slot_minutes=60'\
         \n         curl {api}/openapi.json\
         \n  A2A    agent card {a2a}/.well-known/agent-card.json\
         \n         curl -H 'X-API-Key: {key}' -H 'content-type: application/json' {a2a}/ -d \
         '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\",\"params\":{{\"message\":{{\"messageId\":\"m1\",\"role\":\"ROLE_USER\",\"parts\":[{{\"text\":\"list candidates\"}}]}}}}}}'\
         \n  MCP    streamable HTTP {mcp}/mcp (header X-API-Key: {key}); e.g.\
         \n         npx @modelcontextprotocol/inspector --transport http --server-url {mcp}/mcp\
         \n\nCtrl-C stops all three.\n",
        root.join("data").display()
    );
    loop {
        for process in &mut fleet.processes {
            if let Some(status) = process.exited() {
                let name = process.name;
                fleet.stop_all();
                bail!("{name} exited ({status}); stopped the others");
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
