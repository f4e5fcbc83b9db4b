package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Phase is one stretch of a run at a fixed arrival rate.
type Phase struct {
	Duration time.Duration // 0: until Config.Count is reached (only as the last phase)
	Rate     float64       // messages per second; 0 = as fast as confirms allow
}

// String renders the phase the way --phase takes it.
func (p Phase) String() string {
	rate := "max"
	if p.Rate > 0 {
		rate = strconv.FormatFloat(p.Rate, 'f', -1, 64) + "/s"
	}
	d := "until-count"
	if p.Duration > 0 {
		d = p.Duration.String()
	}
	return d + "@" + rate
}

// ParsePhase parses "DURATION@RATE/s" (e.g. "60s@100/s"); the "/s" is
// optional and a rate of "max" or 0 means unpaced.
func ParsePhase(s string) (Phase, error) {
	durText, rateText, ok := strings.Cut(strings.TrimSpace(s), "@")
	if !ok {
		return Phase{}, fmt.Errorf("want DURATION@RATE/s, e.g. 60s@100/s")
	}
	d, err := time.ParseDuration(durText)
	if err != nil || d <= 0 {
		return Phase{}, fmt.Errorf("duration %q is not a positive duration like 60s or 2m", durText)
	}
	rate, err := parseRate(rateText)
	if err != nil {
		return Phase{}, err
	}
	return Phase{Duration: d, Rate: rate}, nil
}

func parseRate(s string) (float64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "/s")
	if t == "max" {
		return 0, nil
	}
	r, err := strconv.ParseFloat(t, 64)
	if err != nil || r < 0 || r != r || r > 1e9 {
		return 0, fmt.Errorf("rate %q is not a number of messages per second like 100/s (or max)", s)
	}
	return r, nil
}

// ParsePhasesYAML reads a YAML list of {duration, rate} phases, e.g.
// "[{duration: 60s, rate: 100}, {duration: 2m, rate: 1000/s}]" or the same
// as a block list; rate takes the --phase forms (100, 100/s, max).
func ParsePhasesYAML(data []byte) ([]Phase, error) {
	var raw []struct {
		Duration string `yaml:"duration"`
		Rate     string `yaml:"rate"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("want a YAML list of {duration, rate}: %w", err)
	}
	if len(raw) == 0 {
		return nil, errors.New("no phases in the file")
	}
	phases := make([]Phase, 0, len(raw))
	for i, r := range raw {
		p, err := ParsePhase(r.Duration + "@" + r.Rate)
		if err != nil {
			return nil, fmt.Errorf("phase %d: %w", i+1, err)
		}
		phases = append(phases, p)
	}
	return phases, nil
}

// SizeRange is a body size, fixed (Min == Max) or drawn uniformly from
// [Min, Max] per message.
type SizeRange struct{ Min, Max int }

// ParseSize parses "256" or "100-2000".
func ParseSize(s string) (SizeRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	a, err := strconv.Atoi(lo)
	if err != nil {
		return SizeRange{}, fmt.Errorf("want BYTES or MIN-MAX, e.g. 256 or 100-2000")
	}
	b := a
	if isRange {
		if b, err = strconv.Atoi(hi); err != nil {
			return SizeRange{}, fmt.Errorf("want BYTES or MIN-MAX, e.g. 256 or 100-2000")
		}
	}
	r := SizeRange{Min: a, Max: b}
	if err := r.validate(); err != nil {
		return SizeRange{}, err
	}
	return r, nil
}

func (r SizeRange) validate() error {
	switch {
	case r.Min < 0 || r.Max > maxBody:
		return fmt.Errorf("sizes must be between 0 and %d bytes", maxBody)
	case r.Max < r.Min:
		return fmt.Errorf("the range %d-%d is empty", r.Min, r.Max)
	}
	return nil
}

func (r SizeRange) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

func (r SizeRange) pick(rng *rand.Rand) int {
	if r.Max <= r.Min {
		return r.Min
	}
	return r.Min + rng.IntN(r.Max-r.Min+1)
}

// maxBody is RabbitMQ 3.10's default max_message_size.
const maxBody = 128 << 20

// MessageType is a message type name and its relative weight.
type MessageType struct {
	Name   string
	Weight int
}

// ParseMessageType parses "OrderCreated" (weight 1) or "OrderCreated:3".
func ParseMessageType(s string) (MessageType, error) {
	name, w, weighted := strings.Cut(strings.TrimSpace(s), ":")
	if name == "" {
		return MessageType{}, errors.New("want NAME or NAME:WEIGHT, e.g. OrderCreated:3")
	}
	t := MessageType{Name: name, Weight: 1}
	if weighted {
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 {
			return MessageType{}, fmt.Errorf("weight %q is not a positive whole number", w)
		}
		t.Weight = n
	}
	return t, nil
}

// typePicker draws a type name by weight.
type typePicker struct {
	names      []string
	cumulative []int
}

func newTypePicker(types []MessageType) typePicker {
	var p typePicker
	sum := 0
	for _, t := range types {
		sum += t.Weight
		p.names = append(p.names, t.Name)
		p.cumulative = append(p.cumulative, sum)
	}
	return p
}

func (p typePicker) pick(rng *rand.Rand) string {
	if len(p.names) == 0 {
		return ""
	}
	x := rng.IntN(p.cumulative[len(p.cumulative)-1])
	for i, c := range p.cumulative {
		if x < c {
			return p.names[i]
		}
	}
	return p.names[len(p.names)-1]
}
