//! The real `quietbox-api` binary over HTTP: auth and scopes per route, problem+json, body
//! limits, idempotency, rate limits, incident mode from the CLI of another process, start-up
//! errors, and secrets kept out of the logs. Every test gets its own `DATA_DIR` and port.
//! Beside it, REST, A2A and MCP served in-process (`surfaces`): the one scope matrix and the
//! tests that the three protocols answer alike.

mod hardening;
mod harness;
mod input_bounds;
mod openapi;
mod operations;
mod protocol_parity;
mod routes;
mod scope_matrix;
mod secrets_and_state;
mod startup_without_google;
mod surfaces;
mod typed_settings;
