package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Every loadgen flag error exits 2 and names the flag and the bad value.
func TestLoadgenFlagErrors(t *testing.T) {
	badYAML := filepath.Join(t.TempDir(), "phases.yaml")
	if err := os.WriteFile(badYAML, []byte("- {duration: 60s, rate: fast}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--queue", "q", "--phase", "60s@fast"}, `invalid value "60s@fast" for flag -phase: rate "fast"`},
		{[]string{"--queue", "q", "--phase", "60s"}, `invalid value "60s" for flag -phase: want DURATION@RATE/s`},
		{[]string{"--queue", "q", "--phase", "soon@10/s"}, `invalid value "soon@10/s" for flag -phase: duration "soon"`},
		{[]string{"--queue", "q", "--size", "big"}, `invalid value "big" for flag -size`},
		{[]string{"--queue", "q", "--size", "2000-100"}, `invalid value "2000-100" for flag -size: the range 2000-100 is empty`},
		{[]string{"--queue", "q", "--size", "999999999"}, `invalid value "999999999" for flag -size`},
		{[]string{"--queue", "q", "--type", "A:0"}, `invalid value "A:0" for flag -type: weight "0"`},
		{[]string{"--queue", "q", "--publishers", "0"}, "--publishers must be at least 1, got 0"},
		{[]string{"--queue", "q", "--max-outstanding", "0"}, "--max-outstanding must be at least 1, got 0"},
		{[]string{"--queue", "q", "--confirms=maybe"}, `invalid boolean value "maybe" for -confirms`},
		{[]string{"--queue", "q", "--phase", "1s@10/s", "--rate", "5"}, "--rate and --duration are the one-phase form"},
		{[]string{"--queue", "q", "--phase", "1s@10/s", "--phases-file", badYAML}, "--phase and --phases-file cannot be combined"},
		{[]string{"--queue", "q", "--phases-file", badYAML}, `--phases-file "` + badYAML + `": phase 1: rate "fast"`},
		{[]string{"--queue", "q", "--phases-file", "/nonexistent/phases.yaml"}, `--phases-file "/nonexistent/phases.yaml"`},
		{[]string{"--queue", "q", "--exchange", "x"}, `--queue "q" and --exchange "x" cannot be combined`},
		{[]string{"--queue", "q", "--routing-key", "k"}, `--routing-key "k" needs --exchange`},
		{[]string{"--exchange", "x", "--declare"}, "--declare declares --queue"},
		{[]string{"--queue", "q", "--count", "-1"}, "--count must not be negative, got -1"},
		{[]string{"--queue", "q", "extra"}, `unexpected argument "extra"`},
		{[]string{"--queue", "q", "--rate", "fast"}, `invalid value "fast" for flag -rate: want messages per second (a number, 0 or more) or max`},
		{[]string{"--queue", "q", "--rate", "-5"}, `invalid value "-5" for flag -rate`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), append([]string{"warren", "loadgen"}, tc.args...), noEnv, io.Discard, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}

func TestLoadgenCommandJSONReportMatchesTheBroker(t *testing.T) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	queue := "warren-loadgen-cmd-" + hex.EncodeToString(b)
	conn, err := amqp.Dial(testAMQPURL)
	if err != nil {
		t.Fatalf("the test needs RabbitMQ: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = ch.QueueDelete(queue, false, false, false)
		conn.Close()
	})
	phases := filepath.Join(t.TempDir(), "phases.yaml")
	if err := os.WriteFile(phases, []byte("- {duration: 200ms, rate: 100/s}\n- duration: 300ms\n  rate: 200\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"warren", "loadgen", "--queue", queue, "--declare", "--phases-file", phases,
		"--publishers", "2", "--type", "OrderCreated", "--json", "--quiet", "--amqp-url", testAMQPURL}, noEnv, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	var rep struct {
		Confirms bool `json:"confirms"`
		Phases   []struct {
			Phase      string   `json:"phase"`
			TargetRate float64  `json:"target_rate"`
			Confirmed  int64    `json:"confirmed"`
			P99        *float64 `json:"confirm_p99_ms"`
		} `json:"phases"`
		Total struct {
			Confirmed int64 `json:"confirmed"`
			Errors    int64 `json:"errors"`
		} `json:"total"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout.String())
	}
	if !rep.Confirms || len(rep.Phases) != 2 || rep.Phases[0].Phase != "200ms@100/s" || rep.Phases[1].TargetRate != 200 || rep.Phases[1].P99 == nil {
		t.Fatalf("report %s", stdout.String())
	}
	for i, want := range []int64{20, 60} {
		if got := rep.Phases[i].Confirmed; got < want-1 || got > want+1 {
			t.Errorf("phase %d confirmed %d, want %d±1", i+1, got, want)
		}
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if int64(q.Messages) != rep.Total.Confirmed || rep.Total.Errors != 0 {
		t.Fatalf("broker holds %d, report says %d confirmed and %d errors", q.Messages, rep.Total.Confirmed, rep.Total.Errors)
	}
}

// Ctrl-C (the context ending) stops the run and still prints the report.
func TestLoadgenCommandReportsAfterInterrupt(t *testing.T) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	queue := "warren-loadgen-int-" + hex.EncodeToString(b)
	conn, err := amqp.Dial(testAMQPURL)
	if err != nil {
		t.Fatalf("the test needs RabbitMQ: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = ch.QueueDelete(queue, false, false, false)
		conn.Close()
	})
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"warren", "loadgen", "--queue", queue, "--phase", "1h@100/s", "--quiet", "--amqp-url", testAMQPURL}, noEnv, &stdout, &stderr)
	}()
	eventually(t, 20*time.Second, "messages in the queue", func() bool {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && q.Messages >= 5
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after interrupt, stderr %q", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("loadgen did not stop after interrupt")
	}
	out := stdout.String()
	if !strings.Contains(out, "phase 1 1h0m0s@100/s") || !strings.Contains(out, "total") || !strings.Contains(out, "confirm p50") {
		t.Fatalf("report after interrupt:\n%s", out)
	}
}

// --rate takes "max" like a phase's rate does (a trial found it refused).
func TestLoadgenRateMax(t *testing.T) {
	var r rateFlag
	if err := r.Set("max"); err != nil || r != 0 || r.String() != "max" {
		t.Fatalf("max: %v %v %q", err, float64(r), r.String())
	}
	if err := r.Set("250.5"); err != nil || r != 250.5 {
		t.Fatalf("250.5: %v %v", err, float64(r))
	}
}
