-- 0003_consumer_slow_messages: recent slow-message samples of the managed
-- consumers (consumer, message type, message id, handler time, end-to-end
-- time). Bounded by count per consumer, not by time: the store keeps the most
-- recent rows of each consumer (see store.MaxSlowMessagesPerConsumer).
-- Times are INTEGER unix milliseconds (UTC).

CREATE TABLE consumer_slow_messages (
    id           INTEGER PRIMARY KEY,
    consumer     TEXT    NOT NULL,
    message_type TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    duration_ms  REAL    NOT NULL,
    e2e_ms       REAL,
    ts           INTEGER NOT NULL
);
CREATE INDEX consumer_slow_messages_consumer_id ON consumer_slow_messages (consumer, id);
