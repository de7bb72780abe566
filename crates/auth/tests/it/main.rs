//! Integration tests of the auth crate: the mode × credential × scope matrix, attacks against
//! JWT and JWKS handling, and the axum layer. Everything talks to loopback only.

mod attacks;
mod fetching;
mod layer;
mod matrix;
mod support;
