package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"warren/loadgen"
)

const loadgenSynopsis = `loadgen (--queue Q | --exchange X --routing-key K) [--phase 60s@100/s ...] [flags]

Publishes messages in phases of duration x rate (--phase, repeatable, or
--phases-file); --rate with --duration and/or --count is the one-phase form.
Prints a progress line every second on stderr and a report per phase at the
end (stdout; --json for JSON). Exit 2 for bad flags, 1 if the run failed or
any message was not routed to a queue.`

// phaseFlags collects repeated --phase values.
type phaseFlags []loadgen.Phase

func (p *phaseFlags) String() string {
	parts := make([]string, len(*p))
	for i, ph := range *p {
		parts[i] = ph.String()
	}
	return strings.Join(parts, " ")
}

func (p *phaseFlags) Set(s string) error {
	ph, err := loadgen.ParsePhase(s)
	if err != nil {
		return err
	}
	*p = append(*p, ph)
	return nil
}

// typeFlags collects repeated --type values.
type typeFlags []loadgen.MessageType

func (t *typeFlags) String() string {
	parts := make([]string, len(*t))
	for i, mt := range *t {
		parts[i] = fmt.Sprintf("%s:%d", mt.Name, mt.Weight)
	}
	return strings.Join(parts, " ")
}

func (t *typeFlags) Set(s string) error {
	mt, err := loadgen.ParseMessageType(s)
	if err != nil {
		return err
	}
	*t = append(*t, mt)
	return nil
}

// sizeFlag is --size: BYTES or MIN-MAX.
type sizeFlag struct{ r loadgen.SizeRange }

func (s *sizeFlag) String() string { return s.r.String() }

func (s *sizeFlag) Set(v string) error {
	r, err := loadgen.ParseSize(v)
	if err != nil {
		return err
	}
	s.r = r
	return nil
}

func runLoadgen(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("loadgen", loadgenSynopsis, stderr)
	amqpURL := fs.String("amqp-url", envOr(getenv, "WARREN_AMQP_URL", defaultConfig().AMQPURL), "broker URL (env WARREN_AMQP_URL)")
	vhost := fs.String("vhost", "", "vhost to publish into (default: the URL's vhost)")
	queue := fs.String("queue", "", "queue to publish to, through the default exchange")
	exchange := fs.String("exchange", "", "exchange to publish to (instead of --queue)")
	routingKey := fs.String("routing-key", "", "routing key, with --exchange")
	declare := fs.Bool("declare", false, "declare --queue (durable) if it does not exist")
	var phases phaseFlags
	fs.Var(&phases, "phase", "a phase DURATION@RATE/s, e.g. 60s@100/s (rate max: unpaced); repeat for several, run in order")
	phasesFile := fs.String("phases-file", "", "YAML list of phases, e.g. [{duration: 60s, rate: 100}, {duration: 2m, rate: 1000}]")
	rate := rateFlag(100)
	fs.Var(&rate, "rate", "messages per second for the one-phase form; max (or 0) publishes as fast as confirms allow")
	dur := fs.Duration("duration", 0, "how long the one-phase form publishes, e.g. 30s (default: until --count, or 10s)")
	count := fs.Int64("count", 0, "stop after this many messages in all (0: no limit)")
	size := sizeFlag{loadgen.SizeRange{Min: 256, Max: 256}}
	fs.Var(&size, "size", "body size in bytes, or MIN-MAX for a uniform distribution, e.g. 100-2000")
	var types typeFlags
	fs.Var(&types, "type", "message type, sent as the x-message-type header and AMQP type; NAME or NAME:WEIGHT, repeatable")
	gzipBodies := fs.Bool("gzip", false, "gzip bodies (content-encoding gzip); --size is the size before compression")
	transient := fs.Bool("transient", false, "publish transient messages (default persistent)")
	confirms := fs.Bool("confirms", true, "use publisher confirms (--confirms=false: fire and forget, no confirm latency)")
	publishers := fs.Int("publishers", 1, "parallel publishers, one connection each, sharing the rate")
	maxOutstanding := fs.Int("max-outstanding", 1000, "unconfirmed messages allowed in all before publishing waits")
	quiet := fs.Bool("quiet", false, "no progress line")
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	usageErr := func(err error) error {
		fmt.Fprintf(stderr, "warren loadgen: %v\n(run warren loadgen --help for the flags)\n", err)
		return errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if *phasesFile != "" {
		if len(phases) > 0 {
			return usageErr(errors.New("--phase and --phases-file cannot be combined"))
		}
		data, err := os.ReadFile(*phasesFile)
		if err != nil {
			return usageErr(fmt.Errorf("--phases-file %q: %w", *phasesFile, err))
		}
		if phases, err = loadgen.ParsePhasesYAML(data); err != nil {
			return usageErr(fmt.Errorf("--phases-file %q: %w", *phasesFile, err))
		}
	}
	if len(phases) > 0 && (set["rate"] || set["duration"]) {
		return usageErr(errors.New("--rate and --duration are the one-phase form: give them or --phase/--phases-file, not both"))
	}
	if *publishers < 1 {
		return usageErr(fmt.Errorf("--publishers must be at least 1, got %d", *publishers))
	}
	if *maxOutstanding < 1 {
		return usageErr(fmt.Errorf("--max-outstanding must be at least 1, got %d", *maxOutstanding))
	}
	if len(phases) == 0 && *dur == 0 && *count == 0 {
		*dur = 10 * time.Second
	}
	u := *amqpURL
	if *vhost != "" {
		parsed, err := url.Parse(u)
		if err != nil {
			return usageErr(fmt.Errorf("--amqp-url: not a URL: %q", redactURL(u)))
		}
		parsed.Path = "/" + *vhost
		parsed.RawPath = "/" + url.PathEscape(*vhost)
		u = parsed.String()
	}
	cfg := loadgen.Config{
		URL: u, Queue: *queue, Exchange: *exchange, RoutingKey: *routingKey, Declare: *declare,
		Phases: phases, Count: *count,
		Size: size.r.Min, SizeMax: size.r.Max, Types: types,
		Gzip: *gzipBodies, Transient: *transient, NoConfirms: !*confirms,
		Publishers: *publishers, MaxOutstanding: *maxOutstanding,
	}
	if len(phases) == 0 {
		cfg.Rate, cfg.Duration = float64(rate), *dur
	}
	if err := cfg.Validate(); err != nil {
		return usageErr(err)
	}
	if !*quiet {
		cfg.Progress = progressPrinter(stderr, len(cfg.Phases))
	}
	target := fmt.Sprintf("queue %q", *queue)
	if *exchange != "" {
		target = fmt.Sprintf("exchange %q with routing key %q", *exchange, *routingKey)
	}
	if !*quiet {
		fmt.Fprintf(stderr, "publishing to %s on %s\n", target, redactURL(u))
	}
	rep, err := loadgen.Run(ctx, cfg)
	if !*quiet {
		fmt.Fprintln(stderr)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(jsonReport(rep)); jerr != nil {
			return fmt.Errorf("writing the report: %w", jerr)
		}
	} else {
		writeReport(stdout, rep)
	}
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	if rep.Errors > 0 {
		return fmt.Errorf("loadgen: %d messages were not delivered to a queue (does the %s exist and route somewhere? --declare declares a queue)", rep.Errors, target)
	}
	return nil
}

// progressPrinter returns a Progress callback printing one overwritten line:
// the current phase, totals, and the rate over the last interval.
func progressPrinter(w io.Writer, phases int) func(loadgen.Report) {
	var lastCount int64
	var lastAt time.Time
	start := time.Now()
	return func(r loadgen.Report) {
		n := r.Sent
		if r.Confirms {
			n = r.Confirmed
		}
		now := time.Now()
		since := lastAt
		if since.IsZero() {
			since = start
		}
		current := 0.0
		if d := now.Sub(since).Seconds(); d > 0 {
			current = float64(n-lastCount) / d
		}
		lastCount, lastAt = n, now
		phase := ""
		if len(r.Phases) > 0 {
			phase = fmt.Sprintf("phase %d/%d %s  ", len(r.Phases), max(phases, 1), r.Phases[len(r.Phases)-1].Phase)
		}
		confirmed := "-"
		if r.Confirms {
			confirmed = fmt.Sprint(r.Confirmed)
		}
		fmt.Fprintf(w, "\r%ssent %d  confirmed %s  rate %.0f/s  errors %d   ", phase, r.Sent, confirmed, current, r.Errors+r.Nacked)
	}
}

func writeReport(w io.Writer, rep loadgen.Report) {
	line := func(label string, target float64, sent, confirmed, nacked, errs int64, elapsed time.Duration, achieved float64, p50, p99 time.Duration) {
		fmt.Fprintf(w, "%-28s sent %d, confirmed %s, nacked %d, errors %d in %s: %.1f msg/s",
			label, sent, confirmedText(rep.Confirms, confirmed), nacked, errs, elapsed.Round(time.Millisecond), achieved)
		if target > 0 {
			fmt.Fprintf(w, " (target %s, %.1f%%)", rateTarget(target), 100*achieved/target)
		} else if target == 0 {
			fmt.Fprint(w, " (target unlimited)")
		}
		if rep.Confirms {
			fmt.Fprintf(w, ", confirm p50 %s p99 %s", p50, p99)
		}
		fmt.Fprintln(w)
	}
	for i, p := range rep.Phases {
		line(fmt.Sprintf("phase %d %s", i+1, p.Phase), p.Phase.Rate, p.Sent, p.Confirmed, p.Nacked, p.Errors, p.Elapsed, p.Rate(), p.ConfirmP50, p.ConfirmP99)
	}
	line("total", -1, rep.Sent, rep.Confirmed, rep.Nacked, rep.Errors, rep.Elapsed, rep.Rate(), rep.ConfirmP50, rep.ConfirmP99)
}

func confirmedText(confirms bool, n int64) string {
	if !confirms {
		return "n/a"
	}
	return fmt.Sprint(n)
}

// loadgenJSON is the --json report; durations in milliseconds.
type loadgenJSON struct {
	Confirms bool               `json:"confirms"`
	Phases   []loadgenPhaseJSON `json:"phases"`
	Total    loadgenPhaseJSON   `json:"total"`
}

type loadgenPhaseJSON struct {
	Phase        string   `json:"phase,omitempty"`
	DurationMS   int64    `json:"duration_ms,omitempty"`
	TargetRate   *float64 `json:"target_rate,omitempty"` // absent for the total; 0 = unlimited
	Sent         int64    `json:"sent"`
	Confirmed    int64    `json:"confirmed"`
	Nacked       int64    `json:"nacked"`
	Errors       int64    `json:"errors"`
	ElapsedMS    float64  `json:"elapsed_ms"`
	AchievedRate float64  `json:"achieved_rate"`
	ConfirmP50MS *float64 `json:"confirm_p50_ms,omitempty"`
	ConfirmP99MS *float64 `json:"confirm_p99_ms,omitempty"`
}

func jsonReport(rep loadgen.Report) loadgenJSON {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	latency := func(p50, p99 time.Duration) (*float64, *float64) {
		if !rep.Confirms {
			return nil, nil
		}
		a, b := ms(p50), ms(p99)
		return &a, &b
	}
	out := loadgenJSON{Confirms: rep.Confirms, Phases: []loadgenPhaseJSON{}}
	for _, p := range rep.Phases {
		target := p.Phase.Rate
		j := loadgenPhaseJSON{
			Phase: p.Phase.String(), DurationMS: p.Phase.Duration.Milliseconds(), TargetRate: &target,
			Sent: p.Sent, Confirmed: p.Confirmed, Nacked: p.Nacked, Errors: p.Errors,
			ElapsedMS: ms(p.Elapsed), AchievedRate: p.Rate(),
		}
		j.ConfirmP50MS, j.ConfirmP99MS = latency(p.ConfirmP50, p.ConfirmP99)
		out.Phases = append(out.Phases, j)
	}
	out.Total = loadgenPhaseJSON{
		Sent: rep.Sent, Confirmed: rep.Confirmed, Nacked: rep.Nacked, Errors: rep.Errors,
		ElapsedMS: ms(rep.Elapsed), AchievedRate: rep.Rate(),
	}
	out.Total.ConfirmP50MS, out.Total.ConfirmP99MS = latency(rep.ConfirmP50, rep.ConfirmP99)
	return out
}

func rateTarget(r float64) string {
	if r == 0 {
		return "unlimited"
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", r), ".0") + " msg/s"
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// rateFlag is --rate: messages per second, or "max" (0: unpaced), as a
// phase's rate is written.
type rateFlag float64

func (r *rateFlag) String() string {
	if *r == 0 {
		return "max"
	}
	return strconv.FormatFloat(float64(*r), 'f', -1, 64)
}

func (r *rateFlag) Set(s string) error {
	if s == "max" {
		*r = 0
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return fmt.Errorf("want messages per second (a number, 0 or more) or max, got %q", s)
	}
	*r = rateFlag(v)
	return nil
}
