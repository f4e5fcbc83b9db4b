// Package store keeps warren's state in SQLite (modernc.org/sqlite, no cgo):
// queue and consumer samples, alerts and the webhook delivery outbox.
//
// All writes go through one connection, so SQLite never has two writers racing
// for the lock; reads use a separate pool that WAL lets run beside the writer.
// Every time is stored as INTEGER unix milliseconds (UTC).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"warren/migrations"
)

// ErrNotFound is returned when a row addressed by its id does not exist.
var ErrNotFound = errors.New("not found")

// busyTimeoutMs is how long a connection waits for a lock before SQLITE_BUSY.
const busyTimeoutMs = 5000

// Store is the SQLite store. It is safe for concurrent use.
type Store struct {
	writer *sql.DB // exactly one connection: every write funnels through it
	reader *sql.DB // query_only pool for reads
	logger *slog.Logger
	now    func() time.Time
	path   string // absolute path of the database file

	retention Retention

	// idMu guards ids and is held across a whole queue-sample write and
	// across the pruning of unused queue ids, so a cached id is never used
	// after its row was deleted.
	idMu sync.Mutex
	ids  map[queueKey]int64
}

// Option configures Open.
type Option func(*Store)

// WithRetention sets how long each resolution is kept (zero fields keep the
// defaults). It also decides which resolution QueueSeries answers from.
func WithRetention(r Retention) Option {
	return func(s *Store) {
		if r.Raw > 0 {
			s.retention.Raw = r.Raw
		}
		if r.Minute > 0 {
			s.retention.Minute = r.Minute
		}
		if r.Hour > 0 {
			s.retention.Hour = r.Hour
		}
	}
}

// Open opens (creating if needed) the database at path, checks that the
// pragmas took effect and applies any pending migrations. It fails, naming the
// cause, rather than run with a half-configured database.
func Open(ctx context.Context, path string, logger *slog.Logger, opts ...Option) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "store")
	if path == "" {
		return nil, errors.New("opening store: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}

	// _txlock=immediate makes every BeginTx on the writer a BEGIN IMMEDIATE:
	// the write lock is taken at the start of the transaction, so a write
	// transaction can never fail half-way with "database is locked" when it
	// upgrades from a read lock. Within this process the single-connection
	// writer pool already serialises transactions (a plain BEGIN would do), but
	// another process (a CLI, sqlite3 shell) may open the same file.
	writerDSN := dsn(abs, []string{
		"journal_mode(WAL)",
		fmt.Sprintf("busy_timeout(%d)", busyTimeoutMs),
		"foreign_keys(1)",
		"synchronous(NORMAL)",
	}, "_txlock=immediate")
	writer, err := sql.Open("sqlite", writerDSN)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", abs, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	s := &Store{writer: writer, logger: logger, now: time.Now, path: abs, retention: DefaultRetention(), ids: map[queueKey]int64{}}
	for _, o := range opts {
		o(s)
	}
	fail := func(err error) (*Store, error) {
		_ = s.Close()
		return nil, err
	}

	if err := checkPragmas(ctx, writer, "writer"); err != nil {
		return fail(fmt.Errorf("opening store %s: %w", abs, err))
	}

	// The reader is opened after the writer so the file already is in WAL mode
	// (journal_mode is persistent). query_only makes an accidental write on the
	// read pool an error instead of a second writer.
	reader, err := sql.Open("sqlite", dsn(abs, []string{
		fmt.Sprintf("busy_timeout(%d)", busyTimeoutMs),
		"foreign_keys(1)",
		"query_only(1)",
	}, ""))
	if err != nil {
		return fail(fmt.Errorf("opening store read pool %s: %w", abs, err))
	}
	reader.SetMaxOpenConns(max(4, runtime.NumCPU()))
	s.reader = reader
	if err := checkPragmas(ctx, reader, "reader"); err != nil {
		return fail(fmt.Errorf("opening store %s: %w", abs, err))
	}

	applied, err := s.migrate(ctx, migrations.Files())
	if err != nil {
		return fail(fmt.Errorf("opening store %s: %w", abs, err))
	}
	logger.Info("store open", "path", abs, "migrations_applied", applied)
	return s, nil
}

// dsn builds a file: URI for the driver. The path is escaped, so a '?' or '#'
// in a directory name cannot be taken for the start of the parameters.
func dsn(abs string, pragmas []string, extra string) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	q := make([]string, 0, len(pragmas)+1)
	for _, p := range pragmas {
		q = append(q, "_pragma="+url.QueryEscape(p))
	}
	if extra != "" {
		q = append(q, extra)
	}
	return u.String() + "?" + strings.Join(q, "&")
}

// checkPragmas reads the connection settings back: the driver applies DSN
// pragmas silently, and a typo or an unsupported file system (WAL needs shared
// memory) would otherwise leave us running in rollback-journal mode.
func checkPragmas(ctx context.Context, db *sql.DB, pool string) error {
	var journal string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
		return fmt.Errorf("reading journal_mode on %s: %w", pool, err)
	}
	if !strings.EqualFold(journal, "wal") {
		return fmt.Errorf("%s: journal_mode is %q, want wal", pool, journal)
	}
	var busy int
	if err := db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
		return fmt.Errorf("reading busy_timeout on %s: %w", pool, err)
	}
	if busy < busyTimeoutMs {
		return fmt.Errorf("%s: busy_timeout is %d ms, want %d", pool, busy, busyTimeoutMs)
	}
	var fk int
	if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("reading foreign_keys on %s: %w", pool, err)
	}
	if fk != 1 {
		return fmt.Errorf("%s: foreign_keys is off", pool)
	}
	return nil
}

var migrationName = regexp.MustCompile(`^[0-9]{4}_[a-z0-9_]+\.sql$`)

// migrate applies, in name order, every migration not yet recorded in
// schema_migrations, each in its own transaction together with its record.
// It returns how many it applied.
func (s *Store) migrate(ctx context.Context, files fs.FS) (int, error) {
	if _, err := s.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name       TEXT    PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return 0, fmt.Errorf("creating schema_migrations: %w", err)
	}

	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return 0, fmt.Errorf("listing migrations: %w", err)
	}
	var names []string
	known := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		if !migrationName.MatchString(e.Name()) {
			return 0, fmt.Errorf("migration %s: name must look like 0001_description.sql", e.Name())
		}
		names = append(names, e.Name())
		known[e.Name()] = true
	}
	sort.Strings(names)

	applied := map[string]bool{}
	rows, err := s.writer.QueryContext(ctx, "SELECT name FROM schema_migrations")
	if err != nil {
		return 0, fmt.Errorf("reading schema_migrations: %w", err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reading schema_migrations: %w", err)
		}
		applied[n] = true
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("reading schema_migrations: %w", err)
	}
	// A database migrated by a newer warren must not be used by an older one:
	// it would not know the schema it is writing to.
	for n := range applied {
		if !known[n] {
			return 0, fmt.Errorf("database has migration %s that this binary does not know (newer warren?)", n)
		}
	}

	count := 0
	for _, name := range names {
		if applied[name] {
			continue
		}
		body, err := fs.ReadFile(files, name)
		if err != nil {
			return count, fmt.Errorf("migration %s: %w", name, err)
		}
		if err := s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
				name, s.now().UnixMilli())
			return err
		}); err != nil {
			return count, fmt.Errorf("migration %s: %w", name, err)
		}
		s.logger.Info("migration applied", "name", name)
		count++
	}
	return count, nil
}

// inTx runs fn in a write transaction on the writer connection and commits it,
// or rolls back if fn fails.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// Ping checks that the store can still answer a query (used by /readyz).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.reader.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("pinging store: %w", err)
	}
	return nil
}

// Close closes both pools. Call it last, after every writer has stopped.
func (s *Store) Close() error {
	var errs []error
	if s.reader != nil {
		if err := s.reader.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing store read pool: %w", err))
		}
	}
	if s.writer != nil {
		if err := s.writer.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing store writer: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ms converts a time to stored unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

// fromMs converts stored unix milliseconds back to a UTC time.
func fromMs(v int64) time.Time { return time.UnixMilli(v).UTC() }

func nullInt(p *int64) sql.NullInt64 {
	if p == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: *p, Valid: true}
}

func intPtr(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	v := n.Int64
	return &v
}

func nullFloat(p *float64) sql.NullFloat64 {
	if p == nil {
		return sql.NullFloat64{}
	}
	return sql.NullFloat64{Float64: *p, Valid: true}
}

func floatPtr(n sql.NullFloat64) *float64 {
	if !n.Valid {
		return nil
	}
	v := n.Float64
	return &v
}
