//! quietbox-api under test, through testkit's real-binary harness: hybrid auth, the sample data.

use std::time::{SystemTime, UNIX_EPOCH};

pub use quietbox_testkit::binary::Server;
use quietbox_testkit::binary::{self, with};

pub const BIN: &str = env!("CARGO_BIN_EXE_quietbox-api");
pub const KEY: &str = quietbox_testkit::API_KEY;
pub const SECRET: &str = quietbox_testkit::JWT_SECRET;

/// The environment every test starts from: hybrid auth, the sample data.
pub fn base_env(dir: &std::path::Path) -> Vec<(String, String)> {
    with(
        binary::base_env(dir),
        &[
            ("AUTH_MODE", "hybrid"),
            ("AGENT_API_KEY", KEY),
            ("AUTH_JWT_SECRET", SECRET),
        ],
    )
}

pub fn command(env: &[(String, String)]) -> std::process::Command {
    binary::command(BIN, env)
}

pub struct App {
    pub server: Server,
    pub client: reqwest::Client,
}

impl std::ops::Deref for App {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

pub fn spawn(extra: &[(&str, &str)]) -> App {
    spawn_in(tempfile::tempdir().unwrap(), extra)
}

pub fn spawn_in(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> App {
    let env = with(base_env(dir.path()), extra);
    App {
        server: binary::spawn(BIN, dir, &env),
        client: reqwest::Client::new(),
    }
}

/// An HS256 token with the given scopes.
pub fn token(scopes: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"sub": "user-7", "tenant": "acme", "aud": "quietbox", "scope": scopes, "exp": now + 600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}
