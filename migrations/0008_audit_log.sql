-- 0008: the audit log: every operator action (consumer changes, alert acks,
-- silences, webhook tests), who did it, when, from where, old -> new value,
-- and whether it took effect.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL DEFAULT '',
    old_value   TEXT    NOT NULL DEFAULT '',
    new_value   TEXT    NOT NULL DEFAULT '',
    outcome     TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '',
    remote_addr TEXT    NOT NULL DEFAULT ''
);
-- Retention deletes by time; the page reads newest first by id.
CREATE INDEX audit_log_at ON audit_log (at);
