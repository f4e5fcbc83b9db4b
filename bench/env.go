package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"
)

// environment is the header of every table: when, where, which versions.
type environment struct {
	date     string
	cpu      string
	cores    int
	goVer    string
	rabbit   string
	erlang   string
	amqpURL  string
	mgmtURL  string
	mgmtUser string
	mgmtPass string
	load     string // /proc/loadavg at the start: other work on the shared host
}

func (e environment) String() string {
	return fmt.Sprintf("%s UTC · %s, %d cores · %s · RabbitMQ %s (Erlang %s) on the same host · load average at start %s",
		e.date, e.cpu, e.cores, e.goVer, e.rabbit, e.erlang, e.load)
}

func describeEnvironment(ctx context.Context, o options) (environment, error) {
	env := environment{
		date:    time.Now().UTC().Format("2006-01-02 15:04"),
		cpu:     cpuModel(),
		cores:   runtime.NumCPU(),
		goVer:   runtime.Version(),
		amqpURL: o.amqpURL,
		load:    "n/a",
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			env.load = strings.Join(f[:3], " ")
		}
	}
	u, err := url.Parse(o.mgmtURL)
	if err != nil {
		return env, fmt.Errorf("-management-url: not a URL")
	}
	env.mgmtUser, env.mgmtPass = "guest", "guest"
	if u.User != nil {
		env.mgmtUser = u.User.Username()
		env.mgmtPass, _ = u.User.Password()
		u.User = nil
	}
	env.mgmtURL = strings.TrimSuffix(u.String(), "/")
	var overview struct {
		RabbitMQ string `json:"rabbitmq_version"`
		Erlang   string `json:"erlang_version"`
	}
	if err := env.getJSON(ctx, "/api/overview", &overview); err != nil {
		return env, err
	}
	env.rabbit, env.erlang = overview.RabbitMQ, overview.Erlang
	return env, nil
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// getJSON reads a management API path into v.
func (e environment) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.mgmtURL+path, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(e.mgmtUser, e.mgmtPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("management API %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("management API %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// queueStats is the part of /api/queues/{vhost}/{name} the suites read.
type queueStats struct {
	Messages     int64 `json:"messages"`
	MessageStats struct {
		Publish int64 `json:"publish"`
	} `json:"message_stats"`
}

func (e environment) queue(ctx context.Context, name string) (queueStats, error) {
	var q queueStats
	err := e.getJSON(ctx, "/api/queues/"+url.PathEscape(vhostOf(e.amqpURL))+"/"+url.PathEscape(name), &q)
	return q, err
}

func vhostOf(amqpURL string) string {
	u, err := url.Parse(amqpURL)
	if err != nil || u.Path == "" || u.Path == "/" {
		return "/"
	}
	return strings.TrimPrefix(u.Path, "/")
}

func uniqueQueue(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// rewriteSections replaces each named section of file (between
// "<!-- bench:NAME -->" and "<!-- /bench:NAME -->") and appends the ones not
// there yet, leaving every other part of the file as it was.
func rewriteSections(file string, sections map[string]string) error {
	data, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	for _, name := range suiteNames() {
		body, ok := sections[name]
		if !ok {
			continue
		}
		begin, end := []byte("<!-- bench:"+name+" -->"), []byte("<!-- /bench:"+name+" -->")
		block := append(append(append(append([]byte{}, begin...), '\n'), body...), end...)
		i, j := bytes.Index(data, begin), bytes.Index(data, end)
		if i >= 0 && j > i {
			data = append(append(append([]byte{}, data[:i]...), block...), data[j+len(end):]...)
			continue
		}
		data = append(bytes.TrimRight(data, "\n"), "\n\n"...)
		data = append(append(data, block...), '\n')
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return nil
}
