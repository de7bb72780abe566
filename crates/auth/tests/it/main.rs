//! Integration tests of the auth crate: the mode × credential × scope matrix, attacks against
//! JWT and JWKS handling, the axum layer, and the notes example end to end. Everything talks
//! to loopback only.

mod attacks;
mod fetching;
mod layer;
mod matrix;
mod notes;
mod support;
