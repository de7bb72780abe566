-- quietbox state, PostgreSQL backend. Mirrors the JSON files of docs/state-format.md.
CREATE TABLE IF NOT EXISTS unsubscribe_entries (
    sender      TEXT NOT NULL,
    list_id     TEXT NOT NULL DEFAULT '',
    entry       JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (sender, list_id)
);

CREATE TABLE IF NOT EXISTS sent_links (
    link     TEXT PRIMARY KEY,
    sender   TEXT NOT NULL,
    sent_at  TIMESTAMPTZ NOT NULL,
    seq      BIGSERIAL NOT NULL
);

CREATE TABLE IF NOT EXISTS scan_checkpoints (
    account  TEXT PRIMARY KEY,
    data     JSONB NOT NULL
);

CREATE TABLE IF NOT EXISTS incident (
    id    INT PRIMARY KEY CHECK (id = 1),
    data  JSONB
);

CREATE TABLE IF NOT EXISTS tasks (
    id          TEXT PRIMARY KEY,
    context_id  TEXT NOT NULL,
    state       TEXT NOT NULL,
    data        JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_update ON tasks (updated_at DESC, id);

-- One row per lease name, kept after release so fencing tokens only grow.
CREATE TABLE IF NOT EXISTS leases (
    name           TEXT PRIMARY KEY,
    holder         TEXT NOT NULL,
    fencing_token  BIGINT NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS idempotency (
    key         TEXT PRIMARY KEY,
    data        JSONB NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS sender_decisions (
    sender  TEXT PRIMARY KEY,
    data    JSONB NOT NULL
);
