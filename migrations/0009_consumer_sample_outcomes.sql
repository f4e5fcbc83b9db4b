-- 0009_consumer_sample_outcomes: retries, dead letters and end-to-end latency
-- per consumer sample, and 1-minute and 1-hour consumer rollups, for the
-- consumer and queue charts over up to 90 days.
-- NULL = not recorded (rows written before this migration), never 0.
ALTER TABLE consumer_samples ADD COLUMN retried INTEGER;
ALTER TABLE consumer_samples ADD COLUMN dead_lettered INTEGER;
ALTER TABLE consumer_samples ADD COLUMN e2e_p50_ms REAL;
ALTER TABLE consumer_samples ADD COLUMN e2e_p95_ms REAL;
ALTER TABLE consumer_samples ADD COLUMN e2e_p99_ms REAL;

-- Consumer rollups are folded in as samples are written (a few rows per
-- consumer per minute, so no separate rollup pass). Percentiles cannot be
-- merged exactly: each bucket keeps the sum of its samples' percentiles
-- weighted by the messages they covered (*_sum) and that weight, and a chart
-- shows sum / weight. ts is the bucket start, in Unix milliseconds.
CREATE TABLE consumer_rollups_1m (
    consumer      TEXT    NOT NULL,
    ts            INTEGER NOT NULL,
    samples       INTEGER NOT NULL,
    interval_ms   INTEGER NOT NULL,
    processed     INTEGER NOT NULL,
    failed        INTEGER NOT NULL,
    slow          INTEGER NOT NULL,
    retried       INTEGER NOT NULL,
    dead_lettered INTEGER NOT NULL,
    lat_weight    INTEGER NOT NULL,
    p50_sum       REAL,
    p95_sum       REAL,
    p99_sum       REAL,
    max_ms        REAL,
    e2e_weight    INTEGER NOT NULL,
    e2e_p50_sum   REAL,
    e2e_p95_sum   REAL,
    e2e_p99_sum   REAL,
    PRIMARY KEY (consumer, ts)
) WITHOUT ROWID;

CREATE TABLE consumer_rollups_1h (
    consumer      TEXT    NOT NULL,
    ts            INTEGER NOT NULL,
    samples       INTEGER NOT NULL,
    interval_ms   INTEGER NOT NULL,
    processed     INTEGER NOT NULL,
    failed        INTEGER NOT NULL,
    slow          INTEGER NOT NULL,
    retried       INTEGER NOT NULL,
    dead_lettered INTEGER NOT NULL,
    lat_weight    INTEGER NOT NULL,
    p50_sum       REAL,
    p95_sum       REAL,
    p99_sum       REAL,
    max_ms        REAL,
    e2e_weight    INTEGER NOT NULL,
    e2e_p50_sum   REAL,
    e2e_p95_sum   REAL,
    e2e_p99_sum   REAL,
    PRIMARY KEY (consumer, ts)
) WITHOUT ROWID;
