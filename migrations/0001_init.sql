-- 0001_init: samples, alerts and the webhook outbox.
-- Every time is INTEGER unix milliseconds (UTC), compared as numbers.

-- One row per queue per successful poll. NULL = the broker did not report it.
CREATE TABLE queue_samples (
    ts        INTEGER NOT NULL,
    vhost     TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    messages  INTEGER,
    ready     INTEGER,
    unacked   INTEGER,
    consumers INTEGER
);
-- QueueHistory: one queue, a time range.
CREATE INDEX queue_samples_queue_ts ON queue_samples (vhost, name, ts);
-- Retention: delete by age.
CREATE INDEX queue_samples_ts ON queue_samples (ts);

-- One row per consumer per aggregation interval (not per message).
CREATE TABLE consumer_samples (
    ts          INTEGER NOT NULL,
    consumer    TEXT    NOT NULL,
    interval_ms INTEGER NOT NULL,
    processed   INTEGER NOT NULL,
    failed      INTEGER NOT NULL,
    slow        INTEGER NOT NULL,
    p50_ms      REAL,
    p95_ms      REAL,
    p99_ms      REAL,
    max_ms      REAL
);
CREATE INDEX consumer_samples_consumer_ts ON consumer_samples (consumer, ts);
CREATE INDEX consumer_samples_ts ON consumer_samples (ts);

-- Current state of every alert instance (firing or resolved).
CREATE TABLE alerts (
    id          TEXT    PRIMARY KEY,
    rule        TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('firing', 'resolved')),
    vhost       TEXT    NOT NULL,
    queue       TEXT    NOT NULL,
    value       REAL    NOT NULL,
    threshold   REAL    NOT NULL,
    started_at  INTEGER NOT NULL,
    resolved_at INTEGER,
    updated_at  INTEGER NOT NULL
);
-- ActiveAlerts reads only the firing ones.
CREATE INDEX alerts_firing ON alerts (started_at) WHERE state = 'firing';
-- AlertHistory: most recent first.
CREATE INDEX alerts_updated_at ON alerts (updated_at);

-- One row per transition per webhook, written in the same transaction as the
-- alert row and before anything is sent (at-least-once delivery).
CREATE TABLE alert_outbox (
    delivery_id        TEXT    PRIMARY KEY,
    webhook            TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    alert_id           TEXT    NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    payload            TEXT    NOT NULL CHECK (json_valid(payload)),
    created_at         INTEGER NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    INTEGER NOT NULL,
    last_error         TEXT,
    delivered_at       INTEGER,
    failed_permanently INTEGER NOT NULL DEFAULT 0 CHECK (failed_permanently IN (0, 1))
);
-- PendingNotifications: only undelivered, not abandoned rows, by due time.
CREATE INDEX alert_outbox_pending ON alert_outbox (next_attempt_at, created_at)
    WHERE delivered_at IS NULL AND failed_permanently = 0;
CREATE INDEX alert_outbox_alert_id ON alert_outbox (alert_id);
