//! Scheduled jobs for quietbox.
//!
//! The digest job runs on a cron schedule in a configured time zone. Every node may host the
//! scheduler; a lease held in the state store (with a fencing token) makes one node per cluster
//! run each job.
