-- 0007: the delivery log: one row per webhook attempt.
CREATE TABLE alert_delivery_attempts (
    delivery_id TEXT    NOT NULL,
    webhook     TEXT    NOT NULL,
    alert_id    TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('delivered', 'retry', 'abandoned')),
    latency_ms  REAL    NOT NULL,
    error       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX alert_delivery_attempts_at ON alert_delivery_attempts (at);
