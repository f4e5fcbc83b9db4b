package alerts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/template"
	"time"
)

// Webhook body formats besides FormatGeneric.
const (
	// FormatAlertmanager is the Alertmanager webhook (version 4) body, so
	// receivers built for Alertmanager work unchanged.
	FormatAlertmanager = "alertmanager"
	// FormatSlack is a Slack incoming-webhook body: {"text": "..."}.
	FormatSlack = "slack"
	// FormatTemplate renders WebhookConfig.Template (Go text/template) as
	// the body and sends WebhookConfig.Headers.
	FormatTemplate = "template"
)

// Formats lists the supported webhook formats.
var Formats = []string{FormatGeneric, FormatAlertmanager, FormatSlack, FormatTemplate}

// encoder turns a notification into a request body and its content type.
type encoder func(n Notification) (body []byte, contentType string, err error)

func encodeGeneric(n Notification) ([]byte, string, error) {
	b, err := json.Marshal(GenericPayload{Version: "1", Status: n.Status, Alert: n.Alert})
	return b, "application/json", err
}

// AlertmanagerPayload is the Alertmanager webhook version 4 body.
type AlertmanagerPayload struct {
	Version           string              `json:"version"`
	GroupKey          string              `json:"groupKey"`
	TruncatedAlerts   int                 `json:"truncatedAlerts"`
	Status            string              `json:"status"`
	Receiver          string              `json:"receiver"`
	GroupLabels       map[string]string   `json:"groupLabels"`
	CommonLabels      map[string]string   `json:"commonLabels"`
	CommonAnnotations map[string]string   `json:"commonAnnotations"`
	ExternalURL       string              `json:"externalURL"`
	Alerts            []AlertmanagerAlert `json:"alerts"`
}

// AlertmanagerAlert is one alert of an AlertmanagerPayload.
type AlertmanagerAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// alertLabels are the labels identifying a's target; alertname is the rule.
func alertLabels(a Alert) map[string]string {
	l := map[string]string{"alertname": a.Rule, "severity": a.Severity, "source": "warren"}
	if a.Vhost != "" {
		l["vhost"] = a.Vhost
	}
	if a.Queue != "" {
		l["queue"] = a.Queue
	}
	return l
}

// Summary is a one-line human description of a notification.
func Summary(status string, a Alert) string {
	target := a.Queue
	switch {
	case a.Queue == "":
		target = "warren"
	case a.Vhost != "":
		target = a.Queue + " in vhost " + a.Vhost
	}
	return fmt.Sprintf("[%s %s] %s on %s: value %g (threshold %g)",
		strings.ToUpper(status), a.Severity, a.Rule, target, a.Value, a.Threshold)
}

// fingerprint is a stable hash of the labels identifying the target (FNV-64a
// over sorted name/value pairs, as Alertmanager does), without severity so an
// escalation stays the same alert.
func fingerprint(labels map[string]string) string {
	h := fnv.New64a()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if k == "severity" {
			continue
		}
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0xff})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

func groupKey(labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if k == "severity" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	return "{}:{" + strings.Join(parts, ", ") + "}"
}

func encodeAlertmanager(cfg WebhookConfig) encoder {
	return func(n Notification) ([]byte, string, error) {
		a := n.Alert
		labels := alertLabels(a)
		annotations := map[string]string{
			"summary":     Summary(n.Status, a),
			"description": fmt.Sprintf("rule %s is %s at severity %s: value %g, threshold %g", a.Rule, n.Status, a.Severity, a.Value, a.Threshold),
			"value":       fmt.Sprintf("%g", a.Value),
			"threshold":   fmt.Sprintf("%g", a.Threshold),
			"alert_id":    a.ID,
		}
		am := AlertmanagerAlert{
			Status:       n.Status,
			Labels:       labels,
			Annotations:  annotations,
			StartsAt:     a.StartedAt,
			GeneratorURL: cfg.ExternalURL,
			Fingerprint:  fingerprint(labels),
		}
		if n.Status == StateResolved && a.ResolvedAt != nil {
			am.EndsAt = *a.ResolvedAt
		}
		p := AlertmanagerPayload{
			Version:           "4",
			GroupKey:          groupKey(labels),
			Status:            n.Status,
			Receiver:          cfg.Name,
			GroupLabels:       map[string]string{"alertname": a.Rule},
			CommonLabels:      labels,
			CommonAnnotations: annotations,
			ExternalURL:       cfg.ExternalURL,
			Alerts:            []AlertmanagerAlert{am},
		}
		b, err := json.Marshal(p)
		return b, "application/json", err
	}
}

func encodeSlack(n Notification) ([]byte, string, error) {
	b, err := json.Marshal(map[string]string{"text": Summary(n.Status, n.Alert)})
	return b, "application/json", err
}

// TemplateData is what a template-format body is rendered from.
type TemplateData struct {
	Status     string
	DeliveryID string
	Webhook    string
	Summary    string
	Alert      Alert
}

// templateFuncs are available in template bodies: json renders any value as
// JSON (use it to quote strings safely).
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

// ParseTemplate parses a template-format body.
func ParseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Funcs(templateFuncs).Option("missingkey=error").Parse(text)
}

func encodeTemplate(cfg WebhookConfig, tmpl *template.Template) encoder {
	ct := "application/json"
	if v := http.Header(canonicalHeaders(cfg.Headers)).Get("Content-Type"); v != "" {
		ct = v
	}
	return func(n Notification) ([]byte, string, error) {
		var buf bytes.Buffer
		err := tmpl.Execute(&buf, TemplateData{Status: n.Status, DeliveryID: n.DeliveryID, Webhook: n.Webhook,
			Summary: Summary(n.Status, n.Alert), Alert: n.Alert})
		if err != nil {
			return nil, "", fmt.Errorf("rendering template: %w", err)
		}
		return buf.Bytes(), ct, nil
	}
}

func canonicalHeaders(h map[string]string) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, v := range h {
		out[http.CanonicalHeaderKey(k)] = []string{v}
	}
	return out
}
