//! Prints an HS256 JWT for the HTTP benchmark: `sub` bench, audience `quietbox`, the scopes
//! given, valid for an hour.
//!
//! Run with: `cargo run --release -p quietbox-bench --bin mint-token -- <secret> <scope…>`

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let secret = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: mint-token <secret> <scope…>"))?;
    let scope = args.collect::<Vec<_>>().join(" ");
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "sub": "bench", "aud": "quietbox", "scope": scope, "iat": now, "exp": now + 3600,
    });
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?;
    println!("{token}");
    Ok(())
}
