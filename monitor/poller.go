package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	rh "github.com/michaelklishin/rabbit-hole/v2"
)

// Poller defaults and limits.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 10 * time.Second
	// MaxPageSize is the largest page the management API accepts.
	MaxPageSize = 500
	// DefaultWarning and DefaultCritical apply when Thresholds.Default is zero
	// (DESIGN.md: health.queue_warning_threshold / queue_critical_threshold).
	DefaultWarning  = 10000
	DefaultCritical = 50000
)

// queueColumns limits the listing to what a QueueSample holds; the full queue
// objects are ten times larger and a broker may hold 10,000 queues.
const queueColumns = "name,vhost,messages,messages_ready,messages_unacknowledged,consumers," +
	"consumer_utilisation,message_stats.publish,arguments,effective_policy_definition"

// maxOddKeys bounds the memory of oddities already logged; past it the
// memory starts over (an oddity may then be logged once more).
const maxOddKeys = 100_000

// Errors a failed poll wraps, so callers (/readyz, logs) can tell why.
var (
	// ErrCredentialsRejected: the management API answered 401.
	ErrCredentialsRejected = errors.New("credentials rejected")
	// ErrPermissionDenied: the management API answered 403.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnreachable: no HTTP answer (connection refused, timeout, DNS, TLS).
	ErrUnreachable = errors.New("management API unreachable")
)

// PollerConfig configures a Poller. Zero values take the defaults.
type PollerConfig struct {
	URL        string        // e.g. http://127.0.0.1:15672, no credentials in it
	Username   string        // a user with the monitoring or management tag
	Password   string        // never logged nor put in errors
	Interval   time.Duration // between poll starts; default 5s
	Timeout    time.Duration // per HTTP request; default 10s
	PageSize   int           // queues per page; default and max 500
	Thresholds Thresholds    // classify queue depth; zero Default = 10000/50000
	// DeadLetterQueues are recognised as dead-letter queues whatever their
	// name or bindings (e.g. the consumers' dead_letter_queue settings).
	DeadLetterQueues []QueueRef
	// Probe, when its MaxQueues is set, reads fresh ready counts over AMQP
	// for some queues each poll (see probe.go for why).
	Probe ProbeConfig
}

// QueueRef names one queue of one vhost.
type QueueRef struct {
	Vhost string
	Name  string
}

// Poller polls the management API for every queue of every vhost, stores
// each successful poll and tells observers about every poll.
type Poller struct {
	cfg       PollerConfig
	endpoint  string // cfg.URL without a trailing slash; holds no credentials
	base      http.RoundTripper
	writer    SampleWriter
	observers []Observer
	logger    *slog.Logger
	now       func() time.Time

	pollMu sync.Mutex // polls never overlap, even when runOnce is called directly

	mu      sync.RWMutex
	latest  Snapshot
	lastErr string // message of the previous failed poll, to log changes only

	// Guarded by pollMu: state carried from one poll to the next.
	rates   map[queueKey]rateState // for warren's own rate deltas
	logged  map[string]bool        // oddities and one-off warnings already logged
	metrics pollMetrics            // optional; set by NewCollector
	probe   depthProber            // nil: management API counts only
}

// NewPoller validates cfg, fills in defaults and returns a Poller. w may be
// nil (nothing is stored); observers are called in order after every poll.
func NewPoller(cfg PollerConfig, w SampleWriter, observers []Observer, logger *slog.Logger) (*Poller, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Parse errors quote the input, which could hold a password.
		return nil, errors.New("management url: not a valid URL, want http(s)://host:port")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("management url %q: want http(s)://host:port", u.Redacted())
	}
	if u.User != nil {
		return nil, fmt.Errorf("management url %q: put credentials in username/password, not in the URL", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("management url %q: must not have a query or fragment", u.Redacted())
	}
	switch {
	case cfg.Interval == 0:
		cfg.Interval = DefaultInterval
	case cfg.Interval < 0:
		return nil, fmt.Errorf("management poll_interval %s: must be positive", cfg.Interval)
	}
	switch {
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("management timeout %s: must be positive", cfg.Timeout)
	}
	switch {
	case cfg.PageSize == 0:
		cfg.PageSize = MaxPageSize
	case cfg.PageSize < 0 || cfg.PageSize > MaxPageSize:
		return nil, fmt.Errorf("management page size %d: must be between 1 and %d", cfg.PageSize, MaxPageSize)
	}
	// A zero Level would classify every queue, empty ones included, as critical.
	if cfg.Thresholds.Default == (Level{}) {
		cfg.Thresholds.Default = Level{Warning: DefaultWarning, Critical: DefaultCritical}
	}
	if err := checkLevel(cfg.Thresholds.Default); err != nil {
		return nil, fmt.Errorf("health thresholds: %w", err)
	}
	for name, l := range cfg.Thresholds.Queues {
		if err := checkLevel(l); err != nil {
			return nil, fmt.Errorf("health thresholds of queue %q: %w", name, err)
		}
	}
	endpoint := strings.TrimRight(cfg.URL, "/")
	var probe depthProber
	switch {
	case cfg.Probe.MaxQueues < 0:
		return nil, fmt.Errorf("depth probe max queues %d: must not be negative", cfg.Probe.MaxQueues)
	case cfg.Probe.MaxQueues > 0:
		pr, err := newProber(cfg.Probe, logger.With("component", "monitor"))
		if err != nil {
			return nil, err
		}
		probe = pr
	}
	return &Poller{
		probe:     probe,
		cfg:       cfg,
		endpoint:  endpoint,
		base:      http.DefaultTransport.(*http.Transport).Clone(),
		writer:    w,
		observers: slices.Clone(observers),
		logger:    logger.With("component", "monitor", "management_url", endpoint),
		now:       time.Now,
		logged:    map[string]bool{},
	}, nil
}

// checkLevel rejects thresholds that cannot be meant: an empty queue in
// warning, or a critical level below the warning level.
func checkLevel(l Level) error {
	if l.Warning < 1 {
		return fmt.Errorf("warning %d: must be at least 1", l.Warning)
	}
	if l.Critical < l.Warning {
		return fmt.Errorf("critical %d: must not be below warning %d", l.Critical, l.Warning)
	}
	return nil
}

// Run polls at once and then every Interval until ctx ends, and returns nil
// then. Polls never overlap: a poll that outlasts the interval makes the
// loop skip the ticks it overran (logged), and the next poll starts at the
// next tick.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	defer p.Close()
	for {
		snap := p.runOnce(ctx)
		if snap.Duration > p.cfg.Interval {
			// The ticker kept one tick while we polled; drop it so the next
			// poll waits for a fresh tick instead of starting at once.
			select {
			case <-t.C:
			default:
			}
			skipped := int64(snap.Duration / p.cfg.Interval)
			p.metrics.overrun(skipped)
			p.logger.Warn("poll took longer than the poll interval; skipping ticks",
				"duration", snap.Duration.Round(time.Millisecond), "interval", p.cfg.Interval, "ticks_skipped", skipped)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// PollOnce runs one poll now, exactly as Run does at a tick (stored,
// published to Latest and the observers), and returns it. It waits for a
// poll in progress to end first: polls never overlap.
func (p *Poller) PollOnce(ctx context.Context) Snapshot {
	return p.runOnce(ctx)
}

// logOnce logs a warning the first time key is seen: an oddity that comes
// back at every poll must not flood the log.
func (p *Poller) logOnce(key, msg string, args ...any) {
	if p.logged[key] {
		return
	}
	if len(p.logged) >= maxOddKeys {
		clear(p.logged)
	}
	p.logged[key] = true
	p.logger.Warn(msg, args...)
}

// reportOddities logs each oddity once per queue and field.
func (p *Poller) reportOddities(odd []oddity) {
	for _, o := range odd {
		p.logOnce("odd\x00"+o.vhost+"\x00"+o.queue+"\x00"+o.field,
			"broker sent an unusable value; treating it as unknown (logged once per queue and field)",
			"vhost", o.vhost, "queue", o.queue, "field", o.field, "value", o.value, "reason", o.reason)
	}
}

// Latest returns the result of the last poll, failed or not; the zero
// Snapshot before the first poll ends. Its Queues are shared: do not modify.
func (p *Poller) Latest() Snapshot {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.latest
}

// Ready reports whether the last poll succeeded, and why not otherwise.
func (p *Poller) Ready(_ context.Context) error {
	s := p.Latest()
	if s.At.IsZero() {
		return errors.New("management API not polled yet")
	}
	return s.Err
}

// runOnce does one poll: list, derive, store, publish to Latest and observers.
func (p *Poller) runOnce(ctx context.Context) Snapshot {
	p.pollMu.Lock()
	defer p.pollMu.Unlock()

	start := p.now()
	snap, stats, err := p.poll(ctx, start.UTC())
	snap.Err = err
	snap.Duration = p.now().Sub(start)
	p.metrics.observePoll(snap.Duration, err)
	if err != nil {
		if ctx.Err() != nil {
			// Shutting down: an interrupted poll says nothing about the broker,
			// so it neither replaces Latest nor reaches observers.
			return snap
		}
		// A failed poll carries nothing: no samples, no partial picture.
		snap = Snapshot{At: snap.At, Err: err, Duration: snap.Duration}
		p.logFailure(err)
	} else {
		p.logRecovery()
		if p.writer != nil {
			wstart := time.Now()
			if werr := p.writer.WriteQueueSamples(ctx, snap.At, snap.Queues); werr != nil {
				// Storage trouble is not broker trouble: the snapshot still
				// counts as a successful poll for Ready and the observers.
				p.logger.Error("storing queue samples failed", "error", werr, "queues", len(snap.Queues))
			}
			p.metrics.observeWrite(time.Since(wstart))
		}
		p.logger.Debug("poll done", "queues", len(snap.Queues), "pages", stats.pages, "restarts", stats.restarts, "recovered", stats.recovered,
			"duplicates", stats.duplicates, "probed", stats.probed, "odd_values", stats.oddValues,
			"duration_ms", snap.Duration.Milliseconds())
	}

	p.mu.Lock()
	p.latest = snap
	p.mu.Unlock()

	for _, o := range p.observers {
		o.ObserveSnapshot(ctx, snap)
	}
	return snap
}

// poll reads everything one Snapshot holds. Only the queue listing and
// access errors (401, 403, no answer) fail it; an overview, node or consumer
// listing the broker answers oddly is left out and logged once.
func (p *Poller) poll(ctx context.Context, at time.Time) (Snapshot, listStats, error) {
	snap := Snapshot{At: at}
	optional := func(what string, err error) error {
		if err == nil {
			delete(p.logged, "fail:"+what)
			return nil
		}
		if isAccessError(err) || ctx.Err() != nil {
			return err
		}
		p.logOnce("fail:"+what, "polling "+what+" failed; it is left out until it works again", "error", err)
		return nil
	}
	ov, err := p.fetchOverview(ctx)
	if err := optional("overview", err); err != nil {
		return snap, listStats{}, err
	}
	snap.Overview = ov
	nodes, err := p.fetchNodes(ctx)
	if err := optional("nodes", err); err != nil {
		return snap, listStats{}, err
	}
	snap.Nodes = nodes

	queues, stats, err := p.listQueues(ctx)
	if err != nil {
		return snap, stats, err
	}
	cons, err := p.fetchConsumers(ctx)
	if err := optional("consumers", err); err != nil {
		return snap, stats, err
	}
	if cons != nil {
		for i := range queues {
			queues[i].ConsumerDetails = cons[queueKey{queues[i].Vhost, queues[i].Name}]
			if queues[i].ConsumerDetails == nil {
				queues[i].ConsumerDetails = []ConsumerInfo{} // known: none
			}
		}
	}
	if err := p.markDeadLetters(ctx, queues); err != nil {
		return snap, stats, err
	}
	// Rates come from the management API's own depths and publish counters,
	// which lag together; a fresh depth next to a stale counter would
	// show as phantom egress. The probe then refreshes the depths shown.
	next, odd := deriveRates(p.rates, queues, at)
	p.rates = next
	stats.oddValues += len(odd)
	p.reportOddities(odd)
	if p.probe != nil {
		stats.probed = p.probe.refresh(ctx, queues, p.cfg.Thresholds)
	}
	snap.Queues = queues
	return snap, stats, nil
}

// logFailure warns when polling starts failing or fails differently; a broker
// that stays down for an hour must not log a warning every five seconds.
func (p *Poller) logFailure(err error) {
	p.mu.Lock()
	changed := p.lastErr != err.Error()
	p.lastErr = err.Error()
	p.mu.Unlock()
	if changed {
		p.logger.Warn("polling management API failed", "error", err)
	} else {
		p.logger.Debug("polling management API still failing", "error", err)
	}
}

func (p *Poller) logRecovery() {
	p.mu.Lock()
	was := p.lastErr
	p.lastErr = ""
	p.mu.Unlock()
	if was != "" {
		p.logger.Info("polling management API recovered", "previous_error", was)
	}
}

// listStats describes one listing, for the debug summary and tests.
type listStats struct {
	probed     int // queues whose ready count came from a depth probe
	restarts   int
	recovered  int // queues missed by paging, found by recheckMissing
	pages      int
	duplicates int
	oddValues  int
}

// maxListAttempts bounds how often one poll restarts the queue listing
// because queues were created or deleted while it paged.
const maxListAttempts = 3

// listQueues reads every page of GET /api/queues and returns every queue once,
// sorted by vhost and name.
//
// The broker builds each page from the queues that exist at that moment, so
// a queue created or deleted mid-poll shifts the later pages: a queue can be
// listed twice (kept once) or, worse, be pushed onto a page already read and
// missed. When the listing's total changes between pages, the listing starts
// over (at most maxListAttempts times; the last attempt is kept as it is).
// A creation and a deletion that cancel out between two pages cannot be
// seen this way; the queue is then missing from this poll only.
func (p *Poller) listQueues(ctx context.Context) ([]QueueSample, listStats, error) {
	var stats listStats
	for attempt := 1; ; attempt++ {
		out, changed, err := p.listQueuesOnce(ctx, &stats)
		if err != nil {
			return nil, stats, err
		}
		if changed && attempt < maxListAttempts {
			stats.restarts++
			continue
		}
		if changed {
			p.logger.Debug("queue listing kept changing while paged; keeping the last reading", "attempts", attempt)
		}
		out, err = p.recheckMissing(ctx, out, &stats)
		if err != nil {
			return nil, stats, err
		}
		for i := range out {
			out[i].Status = p.cfg.Thresholds.Classify(out[i].Name, out[i].Messages)
		}
		slices.SortFunc(out, func(a, b QueueSample) int {
			if c := strings.Compare(a.Vhost, b.Vhost); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
		return out, stats, nil
	}
}

// maxRechecks bounds the single-queue requests one poll makes for queues
// that were in the previous poll but not in this listing.
const maxRechecks = 100

// recheckMissing asks for each queue of the previous poll that this listing
// lacks (GET /api/queues/VHOST/NAME): a deletion and a creation that cancel
// out between two pages shift a queue onto a page already read, and the
// total count does not show it. A 404 means the queue is really gone.
// Beyond maxRechecks (a mass deletion), the listing is kept as it is.
func (p *Poller) recheckMissing(ctx context.Context, out []QueueSample, stats *listStats) ([]QueueSample, error) {
	if len(p.rates) == 0 {
		return out, nil
	}
	listed := make(map[queueKey]bool, len(out))
	for _, q := range out {
		listed[queueKey{q.Vhost, q.Name}] = true
	}
	var missing []queueKey
	for k := range p.rates {
		if !listed[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > maxRechecks {
		p.logger.Debug("many queues gone since the last poll; not checking them one by one", "gone", len(missing))
		return out, nil
	}
	for _, k := range missing {
		body, err := p.get(ctx, "queue", apiPath("queues", k.vhost, k.name), url.Values{"columns": {queueColumns}})
		if errors.Is(err, errNotFound) {
			continue // really deleted
		}
		if err != nil {
			return nil, err
		}
		page := append(append([]byte(`{"page_count":1,"items":[`), body...), "]}"...)
		pg, err := decodeQueuePage(page, p.logger)
		if err != nil {
			return nil, fmt.Errorf("polling queue %q in vhost %q at %s: undecodable answer: %w", k.name, k.vhost, p.endpoint, err)
		}
		p.reportOddities(pg.oddities)
		for _, q := range pg.queues {
			if q.Vhost == k.vhost && q.Name == k.name {
				out = append(out, q)
				stats.recovered++
			}
		}
	}
	return out, nil
}

// listQueuesOnce reads every page once. changed reports that the listing
// changed while it was read (total count differs, or it got shorter).
func (p *Poller) listQueuesOnce(ctx context.Context, stats *listStats) (out []QueueSample, changed bool, err error) {
	index := map[queueKey]int{}
	var total *int64
	for page, pageCount := 1, 1; page <= pageCount; page++ {
		if err := ctx.Err(); err != nil {
			return nil, false, fmt.Errorf("polling queues at %s: %w", p.endpoint, err)
		}
		pg, err := p.fetchPage(ctx, page)
		if errors.Is(err, errPageOutOfRange) && page > 1 {
			// Queues were deleted while we paged: the list got shorter.
			return out, true, nil
		}
		if err != nil {
			return nil, false, err
		}
		stats.pages++
		stats.oddValues += len(pg.oddities)
		p.reportOddities(pg.oddities)
		pageCount = pg.pageCount
		if page == 1 {
			total = pg.totalCount
		} else if (total == nil) != (pg.totalCount == nil) || total != nil && *total != *pg.totalCount {
			changed = true
		}
		for _, q := range pg.queues {
			k := queueKey{q.Vhost, q.Name}
			if i, ok := index[k]; ok {
				// Listed twice (the pages shifted); keep the later reading.
				out[i] = q
				stats.duplicates++
				continue
			}
			index[k] = len(out)
			out = append(out, q)
		}
	}
	return out, changed, nil
}

// errPageOutOfRange marks the 400 the API gives for a page past the end.
var errPageOutOfRange = errors.New("page out of range")

// fetchPage gets one page through rabbit-hole and decodes the raw body kept
// by the transport (see rawBodyTransport for why).
func (p *Poller) fetchPage(ctx context.Context, page int) (queuePage, error) {
	client, err := rh.NewClient(p.endpoint, p.cfg.Username, p.cfg.Password)
	if err != nil {
		return queuePage{}, fmt.Errorf("polling queues at %s: %w", p.endpoint, err)
	}
	tr := &rawBodyTransport{ctx: ctx, base: p.base}
	client.SetTransport(tr)
	client.SetTimeout(p.cfg.Timeout)

	params := url.Values{}
	params.Set("page", fmt.Sprint(page))
	params.Set("page_size", fmt.Sprint(p.cfg.PageSize))
	params.Set("columns", queueColumns)
	// rabbit-hole's decoded result is discarded: its QueueInfo turns a
	// missing count into 0, which is exactly what must not happen.
	if _, err := client.PagedListQueuesWithParameters(params); err != nil {
		return queuePage{}, p.classify(ctx, page, tr.status, err)
	}
	if tr.body == nil {
		return queuePage{}, fmt.Errorf("polling queues at %s, page %d: no response body captured", p.endpoint, page)
	}
	pg, err := decodeQueuePage(tr.body, p.logger)
	if err != nil {
		return queuePage{}, fmt.Errorf("polling queues at %s, page %d: undecodable answer: %w", p.endpoint, page, err)
	}
	return pg, nil
}

// classify turns a failed request into an error that says what went wrong
// in operator terms, wrapping one of the exported sentinel errors.
func (p *Poller) classify(ctx context.Context, page, status int, err error) error {
	where := fmt.Sprintf("polling queues at %s", p.endpoint)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", where, ctxErr)
	}
	var apiErr rh.ErrorResponse
	switch {
	case status == http.StatusUnauthorized:
		return fmt.Errorf("%s: %w for user %q (HTTP 401)", where, ErrCredentialsRejected, p.cfg.Username)
	case status == http.StatusForbidden:
		return fmt.Errorf("%s: %w for user %q (HTTP 403; it needs the monitoring or management tag)",
			where, ErrPermissionDenied, p.cfg.Username)
	case errors.As(err, &apiErr):
		if apiErr.StatusCode == http.StatusBadRequest && apiErr.Message == "page_out_of_range" {
			return errPageOutOfRange
		}
		return fmt.Errorf("%s, page %d: management API answered HTTP %d: %s",
			where, page, apiErr.StatusCode, strings.TrimSpace(apiErr.Message+" "+apiErr.Reason))
	case status >= 400:
		return fmt.Errorf("%s, page %d: management API answered HTTP %d", where, page, status)
	case status == 0:
		// No HTTP answer at all. net/http already strips any password from
		// the URL it puts in its errors, and ours never holds one.
		return fmt.Errorf("%s: %w: %s", where, ErrUnreachable, describeTransportError(err, p.cfg.Timeout))
	default:
		return fmt.Errorf("%s, page %d: %w", where, page, err)
	}
}

// pollMetrics receives poll measurements; the zero value ignores them.
type pollMetrics struct {
	observePollFn  func(d time.Duration, err error)
	observeWriteFn func(d time.Duration)
	overrunFn      func(skipped int64)
}

func (m pollMetrics) observePoll(d time.Duration, err error) {
	if m.observePollFn != nil {
		m.observePollFn(d, err)
	}
}

func (m pollMetrics) observeWrite(d time.Duration) {
	if m.observeWriteFn != nil {
		m.observeWriteFn(d)
	}
}

func (m pollMetrics) overrun(skipped int64) {
	if m.overrunFn != nil {
		m.overrunFn(skipped)
	}
}
