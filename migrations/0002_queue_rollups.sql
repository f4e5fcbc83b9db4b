-- 0002_queue_rollups: queue ids, compact raw samples, 1-minute and 1-hour rollups.
-- Every time is INTEGER unix milliseconds (UTC), compared as numbers.
--
-- A full default history for 1,000 queues (6 h raw at 5 s, 7 d of minutes,
-- 90 d of hours) is about 16.5 million rows; repeating the vhost and name
-- text in each would cost more than the rows themselves. So every queue gets
-- a small integer id and the sample tables are WITHOUT ROWID tables keyed by
-- (queue_id, ts): one B-tree each, no separate index. Range reads and deletes
-- by time use "queue_id IN (SELECT id FROM queues) AND ts ..." which SQLite
-- answers with one key range per queue.

CREATE TABLE queues (
    id    INTEGER PRIMARY KEY,
    vhost TEXT NOT NULL,
    name  TEXT NOT NULL,
    UNIQUE (vhost, name)
);

-- Raw samples at the poll interval. NULL = the broker did not report it.
-- Rates are messages per second derived by warren from its own deltas.
CREATE TABLE queue_samples_v2 (
    queue_id     INTEGER NOT NULL,
    ts           INTEGER NOT NULL,
    messages     INTEGER,
    ready        INTEGER,
    unacked      INTEGER,
    consumers    INTEGER,
    ingress_rate REAL,
    egress_rate  REAL,
    PRIMARY KEY (queue_id, ts)
) WITHOUT ROWID;

INSERT INTO queues (vhost, name) SELECT DISTINCT vhost, name FROM queue_samples;
-- Two samples of one queue at the same ms (only possible from a retried
-- write) collapse into one.
INSERT OR REPLACE INTO queue_samples_v2 (queue_id, ts, messages, ready, unacked, consumers)
    SELECT q.id, s.ts, s.messages, s.ready, s.unacked, s.consumers
    FROM queue_samples s JOIN queues q ON q.vhost = s.vhost AND q.name = s.name;
DROP TABLE queue_samples;
ALTER TABLE queue_samples_v2 RENAME TO queue_samples;

-- Rollups: ts is the bucket start. Averages are rounded to whole messages
-- (counts are integers; a chart loses nothing) so rows stay small.
-- samples = how many raw rows (or minutes) went into the bucket.
CREATE TABLE queue_rollups_1m (
    queue_id     INTEGER NOT NULL,
    ts           INTEGER NOT NULL,
    samples      INTEGER NOT NULL,
    messages     INTEGER,
    messages_max INTEGER,
    ready        INTEGER,
    unacked      INTEGER,
    consumers    INTEGER,
    ingress_rate REAL,
    egress_rate  REAL,
    PRIMARY KEY (queue_id, ts)
) WITHOUT ROWID;

CREATE TABLE queue_rollups_1h (
    queue_id     INTEGER NOT NULL,
    ts           INTEGER NOT NULL,
    samples      INTEGER NOT NULL,
    messages     INTEGER,
    messages_max INTEGER,
    ready        INTEGER,
    unacked      INTEGER,
    consumers    INTEGER,
    ingress_rate REAL,
    egress_rate  REAL,
    PRIMARY KEY (queue_id, ts)
) WITHOUT ROWID;

-- How far each rollup level has been computed (exclusive bucket end, ms).
CREATE TABLE rollup_state (
    level      TEXT    PRIMARY KEY,
    done_until INTEGER NOT NULL
);
