package main

import (
	"strings"
	"testing"
	"time"

	"warren/alerts"
)

func TestLoadConfigAlertRules(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, `
health: {queue_warning_threshold: 100, queue_critical_threshold: 200, queues: {orders: {warning: 5, critical: 9}}}
alerts:
  rules:
    defaults:
      queue_depth: {clear_below: 80, for: 30s}
      no_consumer: {enabled: true, for: 2m}
    overrides:
      - {rule: queue_depth, queue: "orders", clear_below: 3}
      - {rule: queue_depth, queue: "batch.*", vhost: "/", enabled: false}
`), noEnv)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	rs := alerts.RuleSetFromThresholds(thresholds(cfg.Health)).Layer(cfg.Alerts.Rules.ruleSet())
	if got := rs.Resolve(alerts.RuleQueueDepth, "/", "other"); got.Warning != 100 || got.Critical != 200 || got.ClearBelow != 80 || got.For != 30*time.Second || !got.Enabled {
		t.Errorf("queue_depth on other = %+v", got)
	}
	if got := rs.Resolve(alerts.RuleQueueDepth, "/", "orders"); got.Warning != 5 || got.Critical != 9 || got.ClearBelow != 3 {
		t.Errorf("queue_depth on orders = %+v", got)
	}
	if got := rs.Resolve(alerts.RuleQueueDepth, "/", "batch.1"); got.Enabled {
		t.Errorf("queue_depth on batch.1 enabled")
	}
	if got := rs.Resolve(alerts.RuleNoConsumer, "/", "x"); !got.Enabled || got.For != 2*time.Minute {
		t.Errorf("no_consumer = %+v", got)
	}
	for yaml, key := range map[string]string{
		"alerts: {rules: {defaults: {bogus: {}}}}":                                      "alerts.rules.defaults.bogus",
		"alerts: {rules: {overrides: [{rule: queue_depth, warning: 10, critical: 5}]}}": "alerts.rules.overrides[0].critical",
		"alerts: {rules: {defaults: {queue_depth: {warning: 10, clear_below: 20}}}}":    "alerts.rules.defaults.queue_depth.clear_below",
		"alerts: {rules: {overrides: [{rule: nope}]}}":                                  "alerts.rules.overrides[0].rule",
		"alerts: {rules: {overrides: [{rule: queue_depth, queue: \"[\"}]}}":             "alerts.rules.overrides[0].queue",
		"alerts: {rules: {defaults: {queue_depth: {for: -1s}}}}":                        `alerts.rules.defaults["queue_depth"].for`,
	} {
		_, err := loadConfig(writeConfig(t, yaml+"\n"), noEnv)
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error %v does not name %s", yaml, err, key)
		}
	}
}

func TestLoadConfigWebhookFormats(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, `
alerts:
  webhooks:
    - {name: am, url: "http://127.0.0.1:9093/hook", format: alertmanager, external_url: "http://warren.local:8080"}
    - {name: chat, url: "https://hooks.slack.example/T/B/x", format: slack}
    - name: custom
      url: "http://127.0.0.1:9000/x"
      format: template
      headers: {Authorization: "Bearer t"}
      template: '{"s": {{json .Status}}}'
`), noEnv)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if h := cfg.Alerts.Webhooks[2].hook(); h.Template == "" || h.Headers["Authorization"] != "Bearer t" || cfg.Alerts.Webhooks[0].hook().ExternalURL == "" {
		t.Errorf("hooks = %+v", cfg.Alerts.Webhooks)
	}
	for yaml, key := range map[string]string{
		`alerts: {webhooks: [{name: a, url: "http://x/", format: template, template: "{{.Status"}]}`: `alerts.webhooks[0] ("a").template`,
		`alerts: {webhooks: [{name: a, url: "http://x/", format: template}]}`:                        `alerts.webhooks[0] ("a").template`,
		`alerts: {webhooks: [{name: a, url: "http://x/", format: pager}]}`:                           `alerts.webhooks[0].format`,
		`alerts: {webhooks: [{name: a, url: "http://x/", external_url: "ftp://x"}]}`:                 `alerts.webhooks[0].external_url`,
	} {
		_, err := loadConfig(writeConfig(t, yaml+"\n"), noEnv)
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error %v does not name %s", yaml, err, key)
		}
	}
}

func TestLoadConfigRepeatIntervalAndMaxAge(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, `
alerts:
  repeat_interval: 30m
  webhooks:
    - {name: a, url: "http://127.0.0.1:9000/hook", max_age: 2h}
    - {name: b, url: "http://127.0.0.1:9001/hook"}
`), noEnv)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if got := cfg.Alerts.RepeatInterval.D(); got != 30*time.Minute {
		t.Errorf("repeat_interval = %s, want 30m", got)
	}
	if got := cfg.Alerts.Webhooks[0].hook().MaxAge; got != 2*time.Hour {
		t.Errorf("webhooks[0].max_age = %s, want 2h", got)
	}
	// Left out: the default (24h), filled in so Settings shows it.
	if got := cfg.Alerts.Webhooks[1].hook().MaxAge; got != alerts.DefaultMaxAge {
		t.Errorf("webhooks[1].max_age = %s, want the default %s", got, alerts.DefaultMaxAge)
	}
	if got := cfg.Alerts.Webhooks[1].hook().Timeout; got != alerts.DefaultWebhookTimeout {
		t.Errorf("webhooks[1].timeout = %s, want the default %s", got, alerts.DefaultWebhookTimeout)
	}

	def, err := loadConfig(writeConfig(t, "alerts: {webhooks: [{name: a, url: \"http://127.0.0.1:9000/hook\"}]}\n"), noEnv)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if got := def.Alerts.RepeatInterval.D(); got != 0 {
		t.Errorf("default repeat_interval = %s, want 0 (off)", got)
	}

	for yaml, key := range map[string]string{
		"alerts: {repeat_interval: 30s}":                                             "alerts.repeat_interval",
		"alerts: {repeat_interval: -1m}":                                             "alerts.repeat_interval",
		"alerts: {webhooks: [{name: a, url: \"http://127.0.0.1/h\", max_age: 0s}]}":  "alerts.webhooks[0].max_age",
		"alerts: {webhooks: [{name: a, url: \"http://127.0.0.1/h\", max_age: -1h}]}": "alerts.webhooks[0].max_age",
	} {
		_, err := loadConfig(writeConfig(t, yaml+"\n"), noEnv)
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error %v does not name %s", yaml, err, key)
		}
	}
}
