//! Durable state for quietbox behind core's `StateStore` port: atomic, advisory-locked JSON files
//! in `DATA_DIR` by default, and PostgreSQL for deployments with more than one node.
