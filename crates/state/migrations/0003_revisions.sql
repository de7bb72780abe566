-- Revisions of the parts core caches what it derives from (StateStore::revision): every
-- statement that writes one of these tables bumps its part's revision in the same transaction
-- and announces it with NOTIFY, so that every replica learns of the change without asking.
-- The payload is "<schema> <part> <revision>": one database may hold several schemas.
CREATE TABLE IF NOT EXISTS state_revisions (
    part      TEXT PRIMARY KEY,
    revision  BIGINT NOT NULL
);
INSERT INTO state_revisions (part, revision)
VALUES ('scan_checkpoints', 1), ('unsubscribes', 1), ('sender_decisions', 1)
ON CONFLICT (part) DO NOTHING;

CREATE OR REPLACE FUNCTION quietbox_bump_revision() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bumped BIGINT;
BEGIN
    EXECUTE format(
        'UPDATE %I.state_revisions SET revision = revision + 1 WHERE part = $1 RETURNING revision',
        TG_TABLE_SCHEMA)
    INTO bumped USING TG_ARGV[0];
    PERFORM pg_notify('quietbox_state', TG_TABLE_SCHEMA || ' ' || TG_ARGV[0] || ' ' || bumped);
    RETURN NULL;
END
$$;

CREATE TRIGGER scan_checkpoints_revision
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON scan_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION quietbox_bump_revision('scan_checkpoints');
CREATE TRIGGER unsubscribe_entries_revision
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON unsubscribe_entries
    FOR EACH STATEMENT EXECUTE FUNCTION quietbox_bump_revision('unsubscribes');
CREATE TRIGGER sender_decisions_revision
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sender_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION quietbox_bump_revision('sender_decisions');
