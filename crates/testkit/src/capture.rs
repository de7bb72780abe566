//! Runs a quietbox binary with both stdout and stderr captured in full (the plain harness keeps
//! stderr only), for tests that assert what a process never prints: secrets, at any log level.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use crate::binary;

/// A running binary whose every output byte is kept; killed on drop.
pub struct Captured {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    output: Arc<Mutex<String>>,
}

impl Drop for Captured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Captured {
    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the process and returns everything it wrote to stdout and stderr.
    pub fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader threads end at EOF; give them a moment to push their last bytes.
        for _ in 0..100 {
            if Arc::strong_count(&self.output) == 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

fn pump(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = from.read(&mut buffer) {
            if n == 0 {
                break;
            }
            if let Ok(mut output) = into.lock() {
                output.push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        }
    });
}

/// Starts `binary` with exactly `env`, waiting for its `listening on` line.
pub fn spawn(binary_path: &str, env: &[(String, String)]) -> Captured {
    let mut child = binary::command(binary_path, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the binary");
    let output = Arc::new(Mutex::new(String::new()));
    pump(child.stderr.take().expect("stderr"), output.clone());
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    if let Ok(mut all) = output.lock() {
        all.push_str(&line);
    }
    let Some(addr) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "unexpected first line {line:?}; output: {}",
            output.lock().map(|o| o.clone()).unwrap_or_default()
        );
    };
    pump(stdout, output.clone());
    Captured {
        child,
        base: format!("http://{addr}"),
        output,
    }
}

/// Distinctive secrets for the log tests: none of them may ever appear in a binary's output.
pub mod secrets {
    /// `AGENT_API_KEY`.
    pub const API_KEY: &str = "qbk-live-7f3a9c2e1b5d4a60e8f9a0b1";
    /// `AUTH_JWT_SECRET` (HS256).
    pub const JWT_SECRET: &str = "hs256-secret-c0ffee-9a8b7c6d5e4f3a2b";
    /// The Google refresh token in `token.json`.
    pub const REFRESH_TOKEN: &str = "1//refresh-tok-5e6f7a8b9c0d";
    /// The OAuth client secret in `token.json`.
    pub const CLIENT_SECRET: &str = "GOCSPX-client-secret-4d3c2b1a";
    /// Secrets sent in query strings (`?token=`, `?key=`, `?code=`).
    pub const QUERY: [&str; 3] = [
        "qtoken-1a2b3c4d5e",
        "qkey-6f7a8b9c0d1e",
        "qcode-2f3a4b5c6d7e",
    ];
    /// A cookie value.
    pub const COOKIE: &str = "sess-cookie-8e9f0a1b2c";
    /// A wrong API key (a secret all the same: often a real key with a typo).
    pub const WRONG_KEY: &str = "qbk-live-wrong-3c4d5e6f7a";

    /// `?token=..&key=..&code=..` with [`QUERY`].
    pub fn query() -> String {
        format!("token={}&key={}&code={}", QUERY[0], QUERY[1], QUERY[2])
    }

    /// Writes a `token.json` for the fake Google at `base` (accepting [`REFRESH_TOKEN`]) into
    /// `dir` and returns the environment of the `gmail` provider.
    pub fn gmail_env(fake: &crate::FakeGoogle, dir: &std::path::Path) -> Vec<(String, String)> {
        fake.add_refresh_token(REFRESH_TOKEN);
        let token = dir.join("token.json");
        let body = serde_json::json!({
            "refresh_token": REFRESH_TOKEN,
            "client_id": "client-1.apps.googleusercontent.com",
            "client_secret": CLIENT_SECRET,
            "token_uri": format!("{}/token", fake.base),
        });
        std::fs::write(&token, body.to_string()).expect("write token.json");
        vec![
            ("MAIL_PROVIDER".to_owned(), "gmail".to_owned()),
            ("GOOGLE_TOKEN_FILE".to_owned(), token.display().to_string()),
            ("GOOGLE_API_BASE_URL".to_owned(), fake.base.clone()),
            ("AUTH_MODE".to_owned(), "hybrid".to_owned()),
            ("AGENT_API_KEY".to_owned(), API_KEY.to_owned()),
            ("AUTH_JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
            // Debug everywhere: the project's own crates and the HTTP stack under them.
            ("RUST_LOG".to_owned(), "debug".to_owned()),
        ]
    }

    /// The JWTs a scripted session presents, each minted with HS256 for `aud=quietbox`: one
    /// with the scopes the script needs, one with too narrow a scope, one forged (signed with
    /// another secret).
    pub struct Tokens {
        /// Signed with [`JWT_SECRET`], scopes `mail:scan unsubscribe:read`.
        pub good: String,
        /// Signed with [`JWT_SECRET`], scope `availability:read` only.
        pub narrow: String,
        /// Scope `mail:scan`, signed with a secret quietbox does not know.
        pub forged: String,
    }

    impl Tokens {
        /// Tokens for the subject `sub`.
        pub fn mint(sub: &str) -> Tokens {
            Tokens {
                good: hs256(sub, "mail:scan unsubscribe:read", JWT_SECRET),
                narrow: hs256(sub, "availability:read", JWT_SECRET),
                forged: hs256(sub, "mail:scan", "not-the-secret-but-still-a-token-sig"),
            }
        }

        /// Every token and every token's signature: none may appear in the output.
        pub fn secrets(&self) -> Vec<&str> {
            [&self.good, &self.narrow, &self.forged]
                .into_iter()
                .flat_map(|t| [t.as_str(), t.rsplit('.').next().unwrap_or(t)])
                .collect()
        }
    }

    fn hs256(sub: &str, scopes: &str, secret: &str) -> String {
        let claims = serde_json::json!({
            "sub": sub, "aud": "quietbox", "scope": scopes, "exp": 4_000_000_000u64,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("HS256 encoding")
    }

    /// A scripted session's subject: the fake Google holding one one-click newsletter, and
    /// `binary` started against it with [`gmail_env`] (debug logs, every secret configured),
    /// its output captured.
    pub struct Session {
        /// The fake Google, for faults and token expiry mid-script.
        pub fake: crate::FakeGoogle,
        /// The running binary.
        pub server: super::Captured,
        _dir: tempfile::TempDir,
    }

    impl Session {
        /// Starts the fake Google, then `binary_path`.
        pub async fn start(binary_path: &str) -> Session {
            let fake = crate::FakeGoogle::start("owner@example.com").await;
            fake.add_messages(vec![crate::FakeMessage::new(
                "g1",
                "\"Gadget News\" <news@gadgets.example.com>",
                1_795_000_000_000,
                &[
                    ("List-Id", "<news.gadgets.example.com>"),
                    ("List-Unsubscribe", "<https://gadgets.example.com/u/1>"),
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ],
            )]);
            let dir = tempfile::tempdir().expect("temp dir");
            let mut env = crate::binary::base_env(dir.path());
            for (k, v) in gmail_env(&fake, dir.path()) {
                env.retain(|(key, _)| *key != k);
                env.push((k, v));
            }
            let server = super::spawn(binary_path, &env);
            Session {
                fake,
                server,
                _dir: dir,
            }
        }

        /// Makes the fake Google fail what follows: access tokens expire and the next 20 calls
        /// answer 5xx, so the script's next Google-backed request logs a refresh and failures.
        pub fn break_google(&self) {
            self.fake.expire_access_tokens();
            self.fake.set_faults(crate::Faults {
                fail_next: 20,
                ..crate::Faults::default()
            });
        }

        /// Ends [`Session::break_google`].
        pub fn heal_google(&self) {
            self.fake.set_faults(crate::Faults::default());
        }

        /// Stops the binary and asserts its whole output holds none of the fixed secrets nor
        /// `tokens`; returns the output for further checks.
        pub fn finish(self, tokens: &Tokens) -> String {
            let output = self.server.finish();
            assert_absent(&output, &tokens.secrets());
            output
        }
    }

    /// Panics naming the first secret found in `output`; `extra` adds per-test secrets (the
    /// JWTs minted, their signatures). Also checks debug logging was really on.
    pub fn assert_absent(output: &str, extra: &[&str]) {
        assert!(
            output.contains("DEBUG"),
            "debug logging was not on; output:\n{output}"
        );
        let fixed = [
            API_KEY,
            JWT_SECRET,
            REFRESH_TOKEN,
            CLIENT_SECRET,
            COOKIE,
            WRONG_KEY,
        ];
        for secret in fixed.iter().chain(QUERY.iter()).chain(extra) {
            if let Some(at) = output.find(secret) {
                let from = at.saturating_sub(300);
                let line = output.get(from..at + secret.len()).unwrap_or(secret);
                panic!("secret {secret:?} leaked into the output: ...{line}");
            }
        }
    }
}
