package alerts

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ValidateWebhooks checks the alerts.webhooks configuration: every webhook
// has a unique name, an absolute http(s) URL, a known format (empty means
// generic), a non-negative timeout and a non-negative max age (zero means
// DefaultMaxAge). Each problem names the webhook and the
// key; the URL and secret are never echoed since they may hold credentials.
func ValidateWebhooks(webhooks []WebhookConfig) error {
	var errs []error
	seen := make(map[string]int, len(webhooks))
	for i, w := range webhooks {
		where := fmt.Sprintf("alerts.webhooks[%d]", i)
		if w.Name != "" {
			where += fmt.Sprintf(" (%q)", w.Name)
		}
		if w.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: is required", where))
		} else if j, dup := seen[w.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: duplicates alerts.webhooks[%d]; names must be unique", where, j))
		} else {
			seen[w.Name] = i
		}
		for _, err := range webhookFieldErrors(w) {
			errs = append(errs, fmt.Errorf("%s.%w", where, err))
		}
	}
	return errors.Join(errs...)
}

// webhookFieldErrors checks one webhook's url, format and timeout; each error
// starts with the offending key so callers can prefix the webhook's path.
func webhookFieldErrors(w WebhookConfig) []error {
	var errs []error
	u, err := url.Parse(w.URL)
	switch {
	case w.URL == "":
		errs = append(errs, errors.New("url: is required"))
	case err != nil:
		errs = append(errs, errors.New("url: is not a valid URL"))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, errors.New("url: must be an absolute http:// or https:// URL"))
	case u.Host == "":
		errs = append(errs, errors.New("url: has no host"))
	}
	switch w.Format {
	case "", FormatGeneric, FormatAlertmanager, FormatSlack:
		if w.Template != "" {
			errs = append(errs, fmt.Errorf("template: only used with format %q", FormatTemplate))
		}
	case FormatTemplate:
		if strings.TrimSpace(w.Template) == "" {
			errs = append(errs, errors.New("template: is required with format template"))
		} else if _, err := ParseTemplate(w.Name, w.Template); err != nil {
			errs = append(errs, fmt.Errorf("template: %v", err))
		}
	default:
		errs = append(errs, fmt.Errorf("format: %q is not supported (supported: %s)", w.Format, strings.Join(Formats, ", ")))
	}
	for k := range w.Headers {
		if k == "" || strings.ContainsAny(k, " \t:\r\n") {
			errs = append(errs, fmt.Errorf("headers: %q is not a valid header name", k))
		}
		switch http.CanonicalHeaderKey(k) {
		case HeaderDelivery, HeaderSignature, "Content-Length", "Host":
			errs = append(errs, fmt.Errorf("headers: %q is set by warren and cannot be configured", k))
		}
	}
	if w.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: must not be negative, got %s", w.Timeout))
	}
	if w.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max_age: must be positive, got %s", w.MaxAge))
	}
	return errs
}
