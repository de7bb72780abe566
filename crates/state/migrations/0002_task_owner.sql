-- A2A tasks belong to the principal that created them (tenant + subject) and record their skill.
-- Rows stored before this migration belong to the API-key principal (tenant `default`, subject
-- `api_key`), as the file backend reads tasks without an owner; their skill is unknown (NULL).
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS owner_tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS owner_subject TEXT NOT NULL DEFAULT 'api_key';
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS skill TEXT;
CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner_tenant, owner_subject, updated_at DESC, id);
