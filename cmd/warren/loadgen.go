package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"warren/loadgen"
)

func runLoadgen(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("loadgen", "loadgen --queue Q [--rate R] [--duration D | --count N] [--size BYTES]", stderr)
	amqpURL := fs.String("amqp-url", envOr(getenv, "WARREN_AMQP_URL", defaultConfig().AMQPURL), "broker URL (env WARREN_AMQP_URL)")
	vhost := fs.String("vhost", "", "vhost to publish into (default: the URL's vhost)")
	queue := fs.String("queue", "", "queue to publish to, through the default exchange (required)")
	rate := fs.Float64("rate", 100, "messages per second; 0 publishes as fast as confirms allow")
	dur := fs.Duration("duration", 0, "how long to publish, e.g. 30s (default: until --count, or 10s)")
	count := fs.Int64("count", 0, "stop after this many messages (0: no limit)")
	size := fs.Int("size", 256, "message body size in bytes")
	declare := fs.Bool("declare", false, "declare the queue (durable) if it does not exist")
	quiet := fs.Bool("quiet", false, "no progress line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dur == 0 && *count == 0 {
		*dur = 10 * time.Second
	}
	u := *amqpURL
	if *vhost != "" {
		parsed, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("--amqp-url: not a URL: %q", redactURL(u))
		}
		parsed.Path = "/" + *vhost
		parsed.RawPath = "/" + url.PathEscape(*vhost)
		u = parsed.String()
	}
	cfg := loadgen.Config{URL: u, Queue: *queue, Rate: *rate, Duration: *dur, Count: *count, Size: *size, Declare: *declare}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if !*quiet {
		cfg.Progress = func(r loadgen.Report) {
			fmt.Fprintf(stderr, "\rsent %d  confirmed %d  nacked %d  errors %d  %.0f msg/s   ", r.Sent, r.Confirmed, r.Nacked, r.Errors, r.Rate())
		}
	}
	fmt.Fprintf(stderr, "publishing to %q on %s\n", *queue, redactURL(u))
	rep, err := loadgen.Run(ctx, cfg)
	if !*quiet {
		fmt.Fprintln(stderr)
	}
	fmt.Fprintf(stdout, "sent %d, confirmed %d, nacked %d, errors %d in %s: %.1f msg/s (target %s)\n",
		rep.Sent, rep.Confirmed, rep.Nacked, rep.Errors, rep.Elapsed.Round(time.Millisecond), rep.Rate(), rateTarget(*rate))
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	if rep.Errors > 0 {
		return fmt.Errorf("loadgen: %d messages were not delivered to a queue (does %q exist? use --declare)", rep.Errors, *queue)
	}
	return nil
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
