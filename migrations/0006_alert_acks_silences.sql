-- 0006: operator actions on alerts: acknowledgements and silences.

-- At most one acknowledgement per alert instance (a new ack replaces it).
CREATE TABLE alert_acks (
    alert_id TEXT    PRIMARY KEY REFERENCES alerts (id) ON DELETE CASCADE,
    acked_by TEXT    NOT NULL,
    acked_at INTEGER NOT NULL,
    note     TEXT    NOT NULL DEFAULT ''
);

-- A silence suppresses notifications of matching transitions until ends_at.
-- Empty rule / vhost / queue match everything; queue may be a glob.
CREATE TABLE alert_silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    rule       TEXT    NOT NULL DEFAULT '',
    vhost      TEXT    NOT NULL DEFAULT '',
    queue      TEXT    NOT NULL DEFAULT '',
    ends_at    INTEGER NOT NULL,
    owner      TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX alert_silences_ends_at ON alert_silences (ends_at);
