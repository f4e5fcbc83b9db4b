// Command library shows warren used as a library: a program registers its
// own message handler, a batch handler and interceptors (code before and
// after every handler call), then runs the managed consumers with the same
// retry, dead-lettering, breaker and live-tuning machinery as the warren
// server, and serves warren's dashboard and JSON API for them.
//
//	go run ./examples/library -amqp amqp://guest:guest@127.0.0.1:5672/ -listen 127.0.0.1:8081
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"warren/consumers"
	"warren/web"
)

// order is the message this program's handler decodes.
type order struct {
	ID     string  `json:"id"`
	Amount float64 `json:"amount"`
}

// newOrderHandler is a HandlerFactory: it is called once per consumer whose
// handler.type is "orders".
func newOrderHandler(cfg consumers.Config, logger *slog.Logger) (consumers.HandlerFunc, error) {
	return func(ctx context.Context, d consumers.Delivery) error {
		var o order
		if err := json.Unmarshal(d.Body, &o); err != nil {
			// Never succeeds on retry: straight to the dead-letter queue.
			return consumers.Malformed(fmt.Errorf("decoding order: %w", err))
		}
		if o.Amount < 0 {
			return fmt.Errorf("order %s: negative amount", o.ID) // retried with backoff
		}
		logger.DebugContext(ctx, "order handled", "order", o.ID)
		return nil
	}, nil
}

// newAuditBatchHandler is a BatchHandlerFactory: up to batch_size messages
// per call, acked together when it returns nil.
func newAuditBatchHandler(cfg consumers.Config, logger *slog.Logger) (consumers.BatchHandlerFunc, error) {
	return func(ctx context.Context, batch []consumers.Delivery) error {
		logger.InfoContext(ctx, "audit batch stored", "size", len(batch))
		return nil
	}, nil
}

// timing is an interceptor: before and after every handler call.
func timing(logger *slog.Logger, calls *atomic.Int64) consumers.Interceptor {
	return func(cfg consumers.Config, next consumers.HandlerFunc) consumers.HandlerFunc {
		return func(ctx context.Context, d consumers.Delivery) error {
			start := time.Now() // before
			err := next(ctx, d)
			calls.Add(1) // after
			if err != nil {
				logger.WarnContext(ctx, "handler failed", "consumer", cfg.Name, "took", time.Since(start), "err", err)
			}
			return err
		}
	}
}

func main() {
	amqpURL := flag.String("amqp", "amqp://guest:guest@127.0.0.1:5672/", "AMQP URL")
	listen := flag.String("listen", "127.0.0.1:8081", "dashboard address (loopback)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *amqpURL, *listen, logger); err != nil {
		logger.Error("example failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, amqpURL, listen string, logger *slog.Logger) error {
	var calls atomic.Int64
	mgr, err := consumers.NewManager(amqpURL, []consumers.Config{
		{
			Name: "orders", Queue: "example.orders", Vhost: "/", Declare: true,
			MaxConcurrentMessages: 8, PrefetchCount: 32,
			HandlerTimeout: time.Minute,
			Retry:          &consumers.RetryConfig{MaxAttempts: 3, InitialDelay: time.Second, Multiplier: 2},
			CircuitBreaker: &consumers.BreakerConfig{FailureThreshold: 10, CoolDown: 30 * time.Second, HalfOpenMax: 3},
			Throttle:       &consumers.ThrottleConfig{MaxConcurrent: 4},
			Handler:        consumers.HandlerConfig{Type: "orders"},
		},
		{
			Name: "audit", Queue: "example.audit", Vhost: "/", Declare: true,
			MaxConcurrentMessages: 2, PrefetchCount: 100, BatchSize: 50, BatchTimeout: 200 * time.Millisecond,
			Handler: consumers.HandlerConfig{Type: "audit"},
		},
	}, nil, logger, consumers.Options{
		Handlers:      map[string]consumers.HandlerFactory{"orders": newOrderHandler},
		BatchHandlers: map[string]consumers.BatchHandlerFactory{"audit": newAuditBatchHandler},
		Interceptors:  []consumers.Interceptor{timing(logger, &calls)},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	srv := web.New(web.Deps{
		Consumers: mgr,
		Checks:    []web.Check{{Name: "consumers", Check: mgr.Ready}},
		Logger:    logger,
		Version:   "library-example",
	})
	logger.Info("example running", "dashboard", "http://"+listen)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, ln) })
	g.Go(func() error { return mgr.Run(gctx) })
	err = g.Wait()
	logger.Info("example stopped", "handler_calls", calls.Load())
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
