package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"warren/consumers"
)

// maxPatchBody bounds a PATCH body; a real one is a few dozen bytes.
const maxPatchBody = 4 << 10

func isNotFound(err error) bool { return errors.Is(err, consumers.ErrNotFound) }
func isInvalid(err error) bool  { return errors.Is(err, consumers.ErrInvalid) }

// consumerError maps a controller error to an API error.
func consumerError(name string, err error) error {
	switch {
	case isNotFound(err):
		return jsonError(http.StatusNotFound, "consumer %q not found", name)
	case isInvalid(err):
		return jsonError(http.StatusBadRequest, "%s", err.Error())
	default:
		return fmt.Errorf("consumer %q: %w", name, err)
	}
}

// consumersJSON is the body of GET /api/consumers.
type consumersJSON struct {
	Consumers []consumers.Status `json:"consumers"`
}

// apiConsumers is GET /api/consumers.
func (s *Server) apiConsumers(c echo.Context) error {
	list := s.consumers.List()
	if list == nil {
		list = []consumers.Status{}
	}
	noStore(c)
	return c.JSON(http.StatusOK, consumersJSON{Consumers: list})
}

// apiConsumer is GET /api/consumers/{name}.
func (s *Server) apiConsumer(c echo.Context) error {
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	st, err := s.consumers.Get(name)
	if err != nil {
		return consumerError(name, err)
	}
	noStore(c)
	return c.JSON(http.StatusOK, st)
}

// apiPatchConsumer is PATCH /api/consumers/{name} with {"concurrency":N}
// and/or {"prefetch":N}. The body is decoded strictly here (shape and
// types); the ranges are the controller's to judge, and it changes nothing
// when it rejects a value.
func (s *Server) apiPatchConsumer(c echo.Context) error {
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return jsonError(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxPatchBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return jsonError(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxPatchBody)
		}
		return jsonError(http.StatusBadRequest, "reading request body failed")
	}
	ch, err := decodeChange(body)
	if err != nil {
		return jsonError(http.StatusBadRequest, "%s", err.Error())
	}
	// A missing consumer is 404 whatever the body said, but only after the
	// body was found well-formed (a bad body is the client's first problem).
	st, err := s.updateConsumer(c, name, ch)
	if err != nil {
		return consumerError(name, err)
	}
	return c.JSON(http.StatusOK, st)
}

// apiPause is POST /api/consumers/{name}/pause.
func (s *Server) apiPause(c echo.Context) error {
	return s.apiStateChange(c, s.consumerStateAction(c, auditPause, s.consumers.Pause))
}

// apiResume is POST /api/consumers/{name}/resume.
func (s *Server) apiResume(c echo.Context) error {
	return s.apiStateChange(c, s.consumerStateAction(c, auditResume, s.consumers.Resume))
}

func (s *Server) apiStateChange(c echo.Context, do func(context.Context, string) (consumers.Status, error)) error {
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	st, err := do(c.Request().Context(), name)
	if err != nil {
		return consumerError(name, err)
	}
	return c.JSON(http.StatusOK, st)
}

// patchFields are the only keys a PATCH body may have.
var patchFields = []string{"concurrency", "prefetch", "throttle_max_concurrent", "throttle_delay_ms"}

// patchFieldList names patchFields for an error message, without quotes:
// the message goes out as a JSON string, where quotes come back escaped.
func patchFieldList() string {
	return strings.Join(patchFields[:len(patchFields)-1], ", ") + " or " + patchFields[len(patchFields)-1]
}

// decodeChange parses a PATCH body strictly: one JSON object whose keys are
// among patchFields, each at most once, each a JSON integer that fits an int;
// at least one key; nothing after the object. Error messages name the field.
func decodeChange(body []byte) (consumers.Change, error) {
	var ch consumers.Change
	if len(bytes.TrimSpace(body)) == 0 {
		return ch, errors.New(`request body is empty: expected a JSON object such as {"concurrency": 10} or {"prefetch": 20}`)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return ch, fmt.Errorf("request body is not valid JSON: %s", jsonErrText(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return ch, errors.New("request body must be a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ch, fmt.Errorf("request body is not valid JSON: %s", jsonErrText(err))
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return ch, fmt.Errorf("request body is not valid JSON: %s", jsonErrText(err))
		}
		known := false
		for _, f := range patchFields {
			known = known || key == f
		}
		if !known {
			return ch, fmt.Errorf("unknown field %q: only %s can be changed", clip(key, 40), patchFieldList())
		}
		if seen[key] {
			return ch, fmt.Errorf("field %q appears more than once", key)
		}
		seen[key] = true
		n, err := parseIntField(key, raw)
		if err != nil {
			return ch, err
		}
		switch key {
		case "concurrency":
			ch.Concurrency = &n
		case "prefetch":
			ch.Prefetch = &n
		case "throttle_max_concurrent":
			ch.ThrottleMaxConcurrent = &n
		case "throttle_delay_ms":
			if n > math.MaxInt64/int(time.Millisecond) || n < math.MinInt64/int(time.Millisecond) {
				return ch, fmt.Errorf("%s is out of range: %d", key, n)
			}
			d := time.Duration(n) * time.Millisecond
			ch.ThrottleDelay = &d
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return ch, fmt.Errorf("request body is not valid JSON: %s", jsonErrText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return ch, errors.New("request body has data after the JSON object")
	}
	if ch.Concurrency == nil && ch.Prefetch == nil && ch.ThrottleMaxConcurrent == nil && ch.ThrottleDelay == nil {
		return ch, fmt.Errorf("nothing to change: give one or more of %s", patchFieldList())
	}
	return ch, nil
}

// parseIntField accepts only a JSON number written as an integer that fits
// an int: not null, a string, a fraction, an exponent or a huge number.
func parseIntField(key string, raw json.RawMessage) (int, error) {
	text := strings.TrimSpace(string(raw))
	if text == "" || !(text[0] == '-' || (text[0] >= '0' && text[0] <= '9')) {
		return 0, fmt.Errorf("%s must be an integer, got %s", key, clip(text, 40))
	}
	n, err := strconv.ParseInt(text, 10, strconv.IntSize)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s is out of range: %s", key, clip(text, 40))
		}
		return 0, fmt.Errorf("%s must be an integer, got %s", key, clip(text, 40))
	}
	return int(n), nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// jsonErrText is the decoder's message without Go type names.
func jsonErrText(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%s (at byte %d)", syn.Error(), syn.Offset)
	}
	return "malformed"
}

// UI controls. Each answers with the consumer row: 200 when the change was
// applied; 422 (bad value), 404 (consumer gone) or 500 with the row showing
// the real values and the error next to the control. app.js swaps error
// responses that are text/html (htmx would not by default).

// uiConcurrency is POST /ui/consumers/{name}/concurrency with op=set&value=N,
// op=inc or op=dec (one more/less than the current value).
func (s *Server) uiConcurrency(c echo.Context) error {
	return s.uiChange(c, "concurrency", func(st consumers.Status) int { return st.Concurrency },
		func(n int) consumers.Change { return consumers.Change{Concurrency: &n} })
}

// uiPrefetch is POST /ui/consumers/{name}/prefetch, like uiConcurrency.
func (s *Server) uiPrefetch(c echo.Context) error {
	return s.uiChange(c, "prefetch", func(st consumers.Status) int { return st.Prefetch },
		func(n int) consumers.Change { return consumers.Change{Prefetch: &n} })
}

func (s *Server) uiChange(c echo.Context, field string, current func(consumers.Status) int, change func(int) consumers.Change) error {
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	var target int
	switch op := c.FormValue("op"); op {
	case "inc", "dec":
		st, err := s.consumers.Get(name)
		if err != nil {
			return s.uiRowError(c, name, field, err)
		}
		target = current(st) + 1
		if op == "dec" {
			target = current(st) - 1
		}
	case "", "set":
		raw := strings.TrimSpace(c.FormValue("value"))
		n, err := strconv.Atoi(raw)
		if err != nil {
			msg := field + " must be a whole number"
			if raw == "" {
				msg = "enter a " + field + " value"
			}
			return s.uiRowError(c, name, field, fmt.Errorf("%s: %w", msg, errBadForm))
		}
		target = n
	default:
		return s.uiRowError(c, name, field, fmt.Errorf("unknown operation %q: %w", clip(op, 20), errBadForm))
	}
	st, err := s.updateConsumer(c, name, change(target))
	if err != nil {
		return s.uiRowError(c, name, field, err)
	}
	return render(c, http.StatusOK, consumerRowView(newConsumerRow(st)))
}

// uiPause is POST /ui/consumers/{name}/pause.
func (s *Server) uiPause(c echo.Context) error {
	return s.uiState(c, s.consumerStateAction(c, auditPause, s.consumers.Pause))
}

// uiResume is POST /ui/consumers/{name}/resume.
func (s *Server) uiResume(c echo.Context) error {
	return s.uiState(c, s.consumerStateAction(c, auditResume, s.consumers.Resume))
}

func (s *Server) uiState(c echo.Context, do func(context.Context, string) (consumers.Status, error)) error {
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	st, err := do(c.Request().Context(), name)
	if err != nil {
		return s.uiRowError(c, name, "state", err)
	}
	return render(c, http.StatusOK, consumerRowView(newConsumerRow(st)))
}

// errBadForm marks a form value the UI could not parse (never sent on).
var errBadForm = errors.New("bad form value")

// uiRowError answers a failed control with the row as it really is now and
// the message next to the control named by field.
func (s *Server) uiRowError(c echo.Context, name, field string, err error) error {
	code := http.StatusInternalServerError
	msg := field + " change failed"
	switch {
	case isNotFound(err):
		return render(c, http.StatusNotFound, consumerGoneRow(name))
	case isInvalid(err):
		code, msg = http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, errBadForm):
		code, msg = http.StatusUnprocessableEntity, strings.TrimSuffix(err.Error(), ": "+errBadForm.Error())
	default:
		s.log.Error("consumer control failed", "consumer", name, "field", field, "error", err)
	}
	st, gerr := s.consumers.Get(name)
	if gerr != nil {
		if isNotFound(gerr) {
			return render(c, http.StatusNotFound, consumerGoneRow(name))
		}
		return fmt.Errorf("reading consumer %q after a failed change: %w", name, gerr)
	}
	row := newConsumerRow(st)
	switch field {
	case "concurrency":
		row.ConcurrencyError = msg
	case "prefetch":
		row.PrefetchError = msg
	default:
		row.StateError = msg
	}
	return render(c, code, consumerRowView(row))
}
