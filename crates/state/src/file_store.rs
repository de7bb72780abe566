//! [`FileStore`]: the `StateStore` port over versioned JSON files (see `docs/state-format.md`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use quietbox_core::store::{
    Claim, IdempotencyRecord, Incident, Lease, ScanCheckpoint, SenderDecision, SentLink, Snapshot,
    StateError, StatePart, StateStore, SubscriptionKey, TaskPage, TaskQuery, TaskRecord,
    TaskRetention, UnsubscribeAttempt, UnsubscribeEntry,
};

use crate::cache::Slot;
use crate::files::{self, Access, Collection};
use crate::rules;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Unsubscribes {
    entries: Vec<UnsubscribeEntry>,
}
impl Collection for Unsubscribes {
    const FILE: &'static str = "unsubscribed_methods.json";
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SentLinks {
    links: Vec<SentLink>,
}
impl Collection for SentLinks {
    const FILE: &'static str = "sent_unsubscribe_links.json";
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ScanState {
    checkpoints: Vec<ScanCheckpoint>,
}
impl Collection for ScanState {
    const FILE: &'static str = "scan_state.json";
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IncidentFile {
    incident: Option<Incident>,
}
impl Collection for IncidentFile {
    const FILE: &'static str = "incident.json";
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Tasks {
    tasks: Vec<TaskRecord>,
}
impl Collection for Tasks {
    const FILE: &'static str = "tasks.json";
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Leases {
    leases: Vec<Lease>,
    /// Last fencing token issued per lease name; survives release so tokens only grow.
    #[serde(default)]
    last_tokens: std::collections::BTreeMap<String, u64>,
}
impl Collection for Leases {
    const FILE: &'static str = "leases.json";
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Idempotency {
    records: Vec<IdempotencyRecord>,
}
impl Collection for Idempotency {
    const FILE: &'static str = "idempotency.json";
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Decisions {
    decisions: Vec<SenderDecision>,
}
impl Collection for Decisions {
    const FILE: &'static str = "sender_decisions.json";
}

/// Every file the store owns, for validation at start-up and for the format document.
pub const FILES: &[&str] = &[
    Unsubscribes::FILE,
    SentLinks::FILE,
    ScanState::FILE,
    IncidentFile::FILE,
    Tasks::FILE,
    Leases::FILE,
    Idempotency::FILE,
    Decisions::FILE,
];

/// The last parsed content of every file (see [`crate::cache`]).
#[derive(Debug, Default)]
struct Caches {
    unsubscribes: Slot<Unsubscribes>,
    sent_links: Slot<SentLinks>,
    scan_state: Slot<ScanState>,
    incident: Slot<IncidentFile>,
    tasks: Slot<Tasks>,
    leases: Slot<Leases>,
    idempotency: Slot<Idempotency>,
    decisions: Slot<Decisions>,
}

/// A collection with a place in [`Caches`].
trait Cached: Collection + Sync {
    fn slot(caches: &Caches) -> &Slot<Self>;
}

macro_rules! cached {
    ($($collection:ty => $field:ident),* $(,)?) => {
        $(impl Cached for $collection {
            fn slot(caches: &Caches) -> &Slot<Self> {
                &caches.$field
            }
        })*
    };
}

cached! {
    Unsubscribes => unsubscribes,
    SentLinks => sent_links,
    ScanState => scan_state,
    IncidentFile => incident,
    Tasks => tasks,
    Leases => leases,
    Idempotency => idempotency,
    Decisions => decisions,
}

/// The JSON-file state store. Clones share one cache of parsed files.
///
/// Reads are served from the last parsed content of a file while a `stat` shows the file is
/// still the one it was parsed from (writers in any process replace files by rename, which makes
/// a new file); a changed file is read and parsed again under the shared lock.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    caches: Arc<Caches>,
}

impl FileStore {
    /// Opens (creating if needed) the store in `dir`, removes temp files of writers that died,
    /// and validates every existing file: a corrupt or newer-version file stops start-up here,
    /// with an error naming it.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StateError> {
        let dir = files::ensure_dir(dir.as_ref())?;
        files::with_lock(&dir, Access::Exclusive, || {
            files::remove_stale_temp_files(&dir)?;
            files::read::<Unsubscribes>(&dir)?;
            files::read::<SentLinks>(&dir)?;
            files::read::<ScanState>(&dir)?;
            files::read::<IncidentFile>(&dir)?;
            files::read::<Tasks>(&dir)?;
            files::read::<Leases>(&dir)?;
            files::read::<Idempotency>(&dir)?;
            files::read::<Decisions>(&dir)?;
            Ok(())
        })?;
        Ok(FileStore {
            dir,
            caches: Arc::default(),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Applies `f` to the current content of collection `C`.
    async fn read<C: Cached, R>(&self, f: impl FnOnce(&C) -> R) -> Result<R, StateError> {
        let (collection, _) = self.current::<C>().await?;
        Ok(f(&collection))
    }

    /// The current content of collection `C` and its generation: the cached one when the file
    /// is unchanged (one `stat`, done in place: it does not wait on the disk the way a read
    /// can), else the file read and parsed again on a blocking thread.
    async fn current<C: Cached>(&self) -> Result<(Arc<C>, u64), StateError> {
        if let Some(fresh) = C::slot(&self.caches).fresh(&self.dir) {
            return Ok(fresh);
        }
        let store = self.clone();
        blocking(move || {
            files::with_lock(&store.dir, Access::Shared, || {
                C::slot(&store.caches).load(&store.dir)
            })
        })
        .await
    }

    /// Read-modify-write under the exclusive lock. `f` returns its result and whether it
    /// changed the collection (unchanged collections are not rewritten).
    async fn update<C: Collection, R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut C) -> Result<(R, bool), StateError> + Send + 'static,
    ) -> Result<R, StateError> {
        let dir = self.dir.clone();
        blocking(move || {
            files::with_lock(&dir, Access::Exclusive, || {
                let mut collection = files::read::<C>(&dir)?;
                let (result, changed) = f(&mut collection)?;
                if changed {
                    files::write(&dir, &collection)?;
                }
                Ok(result)
            })
        })
        .await
    }
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, StateError> + Send + 'static,
) -> Result<R, StateError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StateError::Io {
            location: "state worker".to_owned(),
            detail: e.to_string(),
        })?
}

#[async_trait]
impl StateStore for FileStore {
    async fn claim_unsubscribe(
        &self,
        attempt: UnsubscribeAttempt,
        stale_after: Duration,
    ) -> Result<Claim, StateError> {
        self.update(move |c: &mut Unsubscribes| {
            let position = c.entries.iter().position(|e| e.key == attempt.key);
            match position {
                Some(i) if !rules::claimable(&c.entries[i], attempt.at, stale_after) => {
                    Ok((Claim::Existing(c.entries[i].clone()), false))
                }
                Some(i) => {
                    rules::apply_attempt(&mut c.entries[i], attempt);
                    Ok((Claim::Claimed, true))
                }
                None => {
                    c.entries.push(rules::new_entry(attempt));
                    Ok((Claim::Claimed, true))
                }
            }
        })
        .await
    }

    async fn complete_unsubscribe(&self, attempt: UnsubscribeAttempt) -> Result<(), StateError> {
        self.update(move |c: &mut Unsubscribes| {
            match c.entries.iter_mut().find(|e| e.key == attempt.key) {
                Some(entry) => rules::apply_attempt(entry, attempt),
                None => c.entries.push(rules::new_entry(attempt)),
            }
            Ok(((), true))
        })
        .await
    }

    async fn unsubscribe_entry(
        &self,
        key: &SubscriptionKey,
    ) -> Result<Option<UnsubscribeEntry>, StateError> {
        let key = key.clone();
        self.read(|c: &Unsubscribes| c.entries.iter().find(|e| e.key == key).cloned())
            .await
    }

    async fn unsubscribe_history(
        &self,
        sender: Option<&str>,
    ) -> Result<Vec<UnsubscribeEntry>, StateError> {
        self.read(|c: &Unsubscribes| {
            let mut entries: Vec<_> = c
                .entries
                .iter()
                .filter(|e| sender.is_none_or(|s| e.key.sender == s))
                .cloned()
                .collect();
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            entries
        })
        .await
    }

    async fn insert_sent_link(&self, link: SentLink) -> Result<bool, StateError> {
        self.update(move |c: &mut SentLinks| {
            if c.links.iter().any(|l| l.link == link.link) {
                return Ok((false, false));
            }
            c.links.push(link);
            Ok((true, true))
        })
        .await
    }

    async fn sent_links(&self) -> Result<Vec<SentLink>, StateError> {
        self.read(|c: &SentLinks| c.links.clone()).await
    }

    async fn claim_sent_links(&self, links: Vec<SentLink>) -> Result<Vec<String>, StateError> {
        self.update(move |c: &mut SentLinks| {
            let mut claimed = Vec::new();
            for link in links {
                if !c.links.iter().any(|l| l.link == link.link) {
                    claimed.push(link.link.clone());
                    c.links.push(link);
                }
            }
            let changed = !claimed.is_empty();
            Ok((claimed, changed))
        })
        .await
    }

    async fn release_sent_links(&self, links: &[String]) -> Result<(), StateError> {
        let links = links.to_vec();
        self.update(move |c: &mut SentLinks| {
            let before = c.links.len();
            c.links.retain(|l| !links.contains(&l.link));
            Ok(((), c.links.len() != before))
        })
        .await
    }

    async fn scan_checkpoint(&self, account: &str) -> Result<Option<ScanCheckpoint>, StateError> {
        self.read(|c: &ScanState| {
            c.checkpoints
                .iter()
                .find(|cp| cp.account == account)
                .cloned()
        })
        .await
    }

    async fn set_scan_checkpoint(&self, checkpoint: ScanCheckpoint) -> Result<(), StateError> {
        self.update(move |c: &mut ScanState| {
            c.checkpoints.retain(|cp| cp.account != checkpoint.account);
            c.checkpoints.push(checkpoint);
            Ok(((), true))
        })
        .await
    }

    async fn incident(&self) -> Result<Option<Incident>, StateError> {
        self.read(|c: &IncidentFile| c.incident.clone()).await
    }

    async fn set_incident(&self, incident: Option<Incident>) -> Result<(), StateError> {
        self.update(move |c: &mut IncidentFile| {
            c.incident = incident;
            Ok(((), true))
        })
        .await
    }

    async fn put_task(&self, task: TaskRecord) -> Result<(), StateError> {
        self.update(move |c: &mut Tasks| {
            match c.tasks.iter_mut().find(|t| t.id == task.id) {
                Some(existing) if !rules::task_may_be_replaced(existing, &task) => {
                    return Ok(((), false));
                }
                Some(existing) => *existing = task,
                None => c.tasks.push(task),
            }
            Ok(((), true))
        })
        .await
    }

    async fn get_task(&self, id: &str) -> Result<Option<TaskRecord>, StateError> {
        self.read(|c: &Tasks| c.tasks.iter().find(|t| t.id == id).cloned())
            .await
    }

    async fn list_tasks(&self, query: TaskQuery) -> Result<TaskPage, StateError> {
        self.read(|c: &Tasks| rules::page_tasks(&c.tasks, &query))
            .await?
    }

    async fn prune_tasks(
        &self,
        retention: TaskRetention,
        now: DateTime<Utc>,
    ) -> Result<usize, StateError> {
        // The check is a read (usually answered from memory): the file is rewritten only when
        // something is to go.
        let needed = self
            .read(|c: &Tasks| rules::tasks_need_pruning(&c.tasks, retention, now))
            .await?;
        if !needed {
            return Ok(0);
        }
        self.update(move |c: &mut Tasks| {
            let dropped = rules::prune_tasks(&mut c.tasks, retention, now);
            Ok((dropped, dropped > 0))
        })
        .await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>, StateError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        let ttl = rules::chrono_ttl(ttl)?;
        self.update(move |c: &mut Leases| {
            let current = c.leases.iter().position(|l| l.name == name);
            if let Some(i) = current {
                let lease = &mut c.leases[i];
                if lease.expires_at > now && lease.holder != holder {
                    return Ok((None, false));
                }
                if lease.expires_at > now && lease.holder == holder {
                    lease.expires_at = now + ttl;
                    return Ok((Some(lease.clone()), true));
                }
            }
            let token = c.last_tokens.get(&name).copied().unwrap_or(0) + 1;
            c.last_tokens.insert(name.clone(), token);
            let lease = Lease {
                name: name.clone(),
                holder,
                fencing_token: token,
                expires_at: now + ttl,
            };
            c.leases.retain(|l| l.name != name);
            c.leases.push(lease.clone());
            Ok((Some(lease), true))
        })
        .await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, StateError> {
        let lease = lease.clone();
        let ttl = rules::chrono_ttl(ttl)?;
        self.update(move |c: &mut Leases| {
            let current = c.leases.iter_mut().find(|l| l.name == lease.name);
            match current {
                Some(l) if l.fencing_token == lease.fencing_token && l.expires_at > now => {
                    l.expires_at = now + ttl;
                    Ok((l.clone(), true))
                }
                _ => Err(StateError::Conflict(format!(
                    "lease {} with fencing token {} is no longer held",
                    lease.name, lease.fencing_token
                ))),
            }
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StateError> {
        let lease = lease.clone();
        self.update(move |c: &mut Leases| {
            let before = c.leases.len();
            c.leases
                .retain(|l| !(l.name == lease.name && l.fencing_token == lease.fencing_token));
            Ok(((), c.leases.len() != before))
        })
        .await
    }

    async fn check_fence(
        &self,
        name: &str,
        fencing_token: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        self.read(|c: &Leases| {
            c.leases
                .iter()
                .any(|l| l.name == name && l.fencing_token == fencing_token && l.expires_at > now)
        })
        .await
    }

    async fn idempotency_get(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, StateError> {
        self.read(|c: &Idempotency| {
            c.records
                .iter()
                .find(|r| r.key == key && r.expires_at > now)
                .cloned()
        })
        .await
    }

    async fn idempotency_put(
        &self,
        record: IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, StateError> {
        self.update(move |c: &mut Idempotency| {
            if let Some(existing) = c
                .records
                .iter()
                .find(|r| r.key == record.key && r.expires_at > now)
            {
                return Ok((Some(existing.clone()), false));
            }
            c.records
                .retain(|r| r.expires_at > now && r.key != record.key);
            c.records.push(record);
            Ok((None, true))
        })
        .await
    }

    async fn set_sender_decision(&self, decision: SenderDecision) -> Result<(), StateError> {
        self.update(move |c: &mut Decisions| {
            c.decisions.retain(|d| d.sender != decision.sender);
            c.decisions.push(decision);
            Ok(((), true))
        })
        .await
    }

    async fn sender_decisions(&self) -> Result<Vec<SenderDecision>, StateError> {
        self.read(|c: &Decisions| {
            let mut decisions = c.decisions.clone();
            decisions.sort_by(|a, b| a.sender.cmp(&b.sender));
            decisions
        })
        .await
    }

    async fn revision(&self, part: StatePart) -> Result<Option<u64>, StateError> {
        let generation = match part {
            StatePart::ScanCheckpoints => self.current::<ScanState>().await?.1,
            StatePart::Unsubscribes => self.current::<Unsubscribes>().await?.1,
            StatePart::SenderDecisions => self.current::<Decisions>().await?.1,
        };
        Ok(Some(generation))
    }

    async fn check_writable(&self) -> Result<(), StateError> {
        let dir = self.dir.clone();
        blocking(move || {
            files::with_lock(&dir, Access::Exclusive, || {
                let probe = dir.join(".ready-probe");
                std::fs::write(&probe, b"ok")
                    .and_then(|()| std::fs::remove_file(&probe))
                    .map_err(|e| StateError::Io {
                        location: dir.display().to_string(),
                        detail: format!("not writable: {e}"),
                    })
            })
        })
        .await
    }

    async fn export(&self) -> Result<Snapshot, StateError> {
        let dir = self.dir.clone();
        blocking(move || {
            files::with_lock(&dir, Access::Shared, || {
                let leases = files::read::<Leases>(&dir)?;
                Ok(Snapshot {
                    unsubscribes: files::read::<Unsubscribes>(&dir)?.entries,
                    sent_links: files::read::<SentLinks>(&dir)?.links,
                    scan_checkpoints: files::read::<ScanState>(&dir)?.checkpoints,
                    incident: files::read::<IncidentFile>(&dir)?.incident,
                    tasks: files::read::<Tasks>(&dir)?.tasks,
                    leases: leases.leases,
                    idempotency: files::read::<Idempotency>(&dir)?.records,
                    sender_decisions: files::read::<Decisions>(&dir)?.decisions,
                })
            })
        })
        .await
    }

    async fn import(&self, snapshot: Snapshot) -> Result<(), StateError> {
        let dir = self.dir.clone();
        blocking(move || {
            files::with_lock(&dir, Access::Exclusive, || {
                let mut last_tokens = std::collections::BTreeMap::new();
                for lease in &snapshot.leases {
                    last_tokens.insert(lease.name.clone(), lease.fencing_token);
                }
                files::write(
                    &dir,
                    &Unsubscribes {
                        entries: snapshot.unsubscribes,
                    },
                )?;
                files::write(
                    &dir,
                    &SentLinks {
                        links: snapshot.sent_links,
                    },
                )?;
                files::write(
                    &dir,
                    &ScanState {
                        checkpoints: snapshot.scan_checkpoints,
                    },
                )?;
                files::write(
                    &dir,
                    &IncidentFile {
                        incident: snapshot.incident,
                    },
                )?;
                files::write(
                    &dir,
                    &Tasks {
                        tasks: snapshot.tasks,
                    },
                )?;
                files::write(
                    &dir,
                    &Leases {
                        leases: snapshot.leases,
                        last_tokens,
                    },
                )?;
                files::write(
                    &dir,
                    &Idempotency {
                        records: snapshot.idempotency,
                    },
                )?;
                files::write(
                    &dir,
                    &Decisions {
                        decisions: snapshot.sender_decisions,
                    },
                )?;
                Ok(())
            })
        })
        .await
    }
}
