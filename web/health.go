package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// healthJSON is the body of /healthz and /readyz.
type healthJSON struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

// healthz is GET /healthz: the process is alive and serving.
func (s *Server) healthz(c echo.Context) error {
	noStore(c)
	return c.JSON(http.StatusOK, healthJSON{Status: "ok"})
}

// readyz is GET /readyz: every Check passes within a short deadline. The
// checks run concurrently; one that ignores its context is reported as timed
// out and not waited for.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.readyTimeout)
	defer cancel()

	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(s.checks)) // buffered: late checks never block
	for _, ch := range s.checks {
		go func() {
			results <- result{name: ch.Name, err: runCheck(ctx, ch)}
		}()
	}

	body := healthJSON{Status: "ok", Checks: make(map[string]string, len(s.checks))}
	for _, ch := range s.checks {
		body.Checks[ch.Name] = fmt.Sprintf("timed out after %s", s.readyTimeout)
	}
	pending := len(s.checks)
	failed := false
collect:
	for pending > 0 {
		select {
		case r := <-results:
			pending--
			if r.err == nil {
				body.Checks[r.name] = "ok"
				continue
			}
			failed = true
			if errors.Is(r.err, context.DeadlineExceeded) && ctx.Err() != nil {
				body.Checks[r.name] = fmt.Sprintf("timed out after %s", s.readyTimeout)
			} else {
				body.Checks[r.name] = shortError(r.err)
			}
		case <-ctx.Done():
			failed = true
			break collect
		}
	}
	noStore(c)
	if failed {
		body.Status = "unavailable"
		s.log.Warn("not ready", "checks", body.Checks)
		return c.JSON(http.StatusServiceUnavailable, body)
	}
	return c.JSON(http.StatusOK, body)
}

// runCheck runs one check, turning a panic into a failure.
func runCheck(ctx context.Context, ch Check) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check panicked: %v", r)
		}
	}()
	if ch.Check == nil {
		return nil
	}
	return ch.Check(ctx)
}
