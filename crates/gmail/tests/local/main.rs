//! Behaviour of the core use cases on the embedded default: the local mbox and .ics provider,
//! the real file state store, and a loopback HTTPS one-click endpoint that records what it got.

mod compliance;
mod ics;
mod input_bounds;
mod support;
mod unsubscribe;
mod use_cases;
