-- 0010: conditions waiting out their rule's "for" duration, so a restart
-- continues the wait instead of starting it again. seen_at is refreshed at
-- most once a minute while the condition holds.
CREATE TABLE alert_pending (
    rule    TEXT    NOT NULL,
    vhost   TEXT    NOT NULL,
    queue   TEXT    NOT NULL,
    since   INTEGER NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (rule, vhost, queue)
) WITHOUT ROWID;
