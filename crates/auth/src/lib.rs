//! Reusable authentication and authorization for HTTP services.
