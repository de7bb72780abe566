//! A cluster under test: N real `quietbox-api` processes, each with its own `DATA_DIR` and port
//! (as on separate machines), sharing a PostgreSQL schema and, when given, a Redis.

use std::time::{SystemTime, UNIX_EPOCH};

use quietbox_state::PgStore;
use quietbox_testkit::binary::{self, Server, with};
use quietbox_testkit::redis_server::RedisServer;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_quietbox-api");
pub const KEY: &str = quietbox_testkit::API_KEY;

/// A fresh schema in the test database, or `None` (with a printed reason) when there is none.
pub struct Postgres {
    /// The URL the binaries use: the test database with `search_path` set to the schema.
    pub url: String,
    /// A store on the same schema, for the test's own queries.
    pub store: PgStore,
    schema: String,
}

impl Postgres {
    pub async fn start() -> Option<Postgres> {
        let Ok(base) = std::env::var("QUIETBOX_TEST_DATABASE_URL") else {
            eprintln!(
                "SKIPPED: QUIETBOX_TEST_DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            return None;
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!("qb_scale_{}_{nanos}", std::process::id());
        let store = PgStore::connect_with_schema(&base, &schema).await.unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        Some(Postgres {
            url: format!("{base}{separator}options=-c%20search_path%3D{schema}"),
            store,
            schema,
        })
    }

    /// Drops the schema (called at the end of a passing test).
    pub async fn drop_schema(self) {
        let _ = sqlx_execute(
            &self.store,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
        )
        .await;
    }
}

async fn sqlx_execute(store: &PgStore, sql: &str) -> Result<(), String> {
    use sqlx::Executor;
    store
        .pool()
        .execute(sql)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The environment of one node: API-key auth, the sample data (or `extra`'s), port 0.
pub fn node_env(
    dir: &std::path::Path,
    pg: Option<&Postgres>,
    redis: Option<&RedisServer>,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = with(
        binary::base_env(dir),
        &[("AUTH_MODE", "api_key"), ("AGENT_API_KEY", KEY)],
    );
    if let Some(pg) = pg {
        env = with(
            env,
            &[("STATE_BACKEND", "postgres"), ("DATABASE_URL", &pg.url)],
        );
    }
    if let Some(redis) = redis {
        env = with(
            env,
            &[("RATE_LIMIT_BACKEND", "redis"), ("REDIS_URL", &redis.url())],
        );
    }
    with(env, extra)
}

pub struct Cluster {
    pub nodes: Vec<Server>,
    /// Each node's environment (the CLI of a node runs with it).
    pub envs: Vec<Vec<(String, String)>>,
    pub client: reqwest::Client,
}

impl Cluster {
    /// Starts `n` nodes.
    pub fn start(
        n: usize,
        pg: Option<&Postgres>,
        redis: Option<&RedisServer>,
        extra: &[(&str, &str)],
    ) -> Cluster {
        let mut nodes = Vec::new();
        let mut envs = Vec::new();
        for _ in 0..n {
            let dir = tempfile::tempdir().unwrap();
            let env = node_env(dir.path(), pg, redis, extra);
            nodes.push(binary::spawn(BIN, dir, &env));
            envs.push(env);
        }
        Cluster {
            nodes,
            envs,
            client: reqwest::Client::new(),
        }
    }

    pub fn node(&self, i: usize) -> &Server {
        &self.nodes[i % self.nodes.len()]
    }

    /// POSTs `body` to `path` on node `i` with the API key.
    pub async fn post(&self, i: usize, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.node(i).url(path))
            .header("x-api-key", KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// GETs `path` on node `i` with the API key.
    pub async fn get(&self, i: usize, path: &str) -> reqwest::Response {
        self.client
            .get(self.node(i).url(path))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap()
    }

    /// A harmless mutation: marks a sender `keep`. Refused during an incident.
    pub async fn keep_sender(&self, i: usize) -> reqwest::Response {
        self.client
            .put(self.node(i).url("/v1/senders/probe@example.org/decision"))
            .header("x-api-key", KEY)
            .json(&serde_json::json!({"decision": "keep"}))
            .send()
            .await
            .unwrap()
    }

    /// The `/metrics` text of node `i`.
    pub async fn metrics(&self, i: usize) -> String {
        self.client
            .get(self.node(i).url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The sum of the samples of `name` whose labels contain `labels`.
pub fn metric_sum(metrics: &str, name: &str, labels: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}
