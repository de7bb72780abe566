//! Test-only helpers shared by quietbox's test suites: a fake Google API server that follows
//! Google's documented request and response shapes, fixtures, and a loopback JWKS server.
//! Never a dependency of production code.
