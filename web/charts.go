package web

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
)

// Charts are drawn on the server as SVG: no chart library to ship, nothing
// to run in the browser, and the page stays readable without JavaScript.
// Colours come from CSS variables (static/app.css), so one drawing serves
// dark and light; every series is labelled at its end, so there is no
// legend to hunt for.

// chartRange is one of the time windows the charts offer.
type chartRange struct {
	Key  string // query value: ?range=6h
	Span time.Duration
	// Tick is the spacing of the time axis labels.
	Tick time.Duration
}

// chartRanges are the windows offered, shortest first.
var chartRanges = []chartRange{
	{"15m", 15 * time.Minute, 5 * time.Minute},
	{"1h", time.Hour, 15 * time.Minute},
	{"6h", 6 * time.Hour, time.Hour},
	{"24h", 24 * time.Hour, 6 * time.Hour},
	{"7d", 7 * 24 * time.Hour, 24 * time.Hour},
	{"90d", 90 * 24 * time.Hour, 15 * 24 * time.Hour},
}

// defaultChartRange is the window of a page opened without ?range=.
const defaultChartRange = "1h"

// parseChartRange reads ?range=; empty means the default. Anything else is
// an error naming the allowed values.
func parseChartRange(v string) (chartRange, error) {
	if v == "" {
		v = defaultChartRange
	}
	keys := make([]string, len(chartRanges))
	for i, r := range chartRanges {
		if r.Key == v {
			return r, nil
		}
		keys[i] = r.Key
	}
	return chartRange{}, fmt.Errorf("range must be one of %s, got %q", strings.Join(keys, ", "), clip(v, 20))
}

// chartPoint is one value at one time; V nil = not known (drawn as a gap).
type chartPoint struct {
	At time.Time
	V  *float64
}

// chartSeries is one line of a chart.
type chartSeries struct {
	Label  string
	Points []chartPoint
}

// chart is one chart: a title, the unit of its values and its series over
// [From, To].
type chart struct {
	Title    string
	Unit     string // unitMessages, unitRate or unitMs
	From, To time.Time
	Tick     time.Duration
	Series   []chartSeries
	// Marks are horizontal reference lines (e.g. thresholds), drawn only
	// when they fall within the data's scale so they never squash it.
	Marks []chartMark
}

// chartMark is one reference line; Class is a status class (warning,
// critical) for its colour.
type chartMark struct {
	Label string
	V     float64
	Class string
}

// Units of chart values, as the axis shows them.
const (
	unitMessages = "msg"
	unitRate     = "msg/s"
	unitMs       = "ms"
)

// Drawing geometry, in SVG user units (the SVG scales to the panel width).
const (
	chartW       = 640.0
	chartH       = 190.0
	chartLeft    = 64.0  // y axis labels
	chartRight   = 118.0 // direct labels of the series
	chartTop     = 10.0
	chartBottom  = 24.0 // time axis labels
	labelSpacing = 13.0 // least vertical distance between two series labels
)

// svg renders the chart as an inline SVG element. Every text in it (titles,
// labels, which may come from broker-provided names) is escaped.
func (c chart) svg() string {
	var b strings.Builder
	esc := html.EscapeString
	plotW := chartW - chartLeft - chartRight
	plotH := chartH - chartTop - chartBottom
	span := c.To.Sub(c.From)
	if span <= 0 {
		span = time.Second
	}
	x := func(t time.Time) float64 {
		return chartLeft + plotW*float64(t.Sub(c.From))/float64(span)
	}

	maxV, known := 0.0, 0
	for _, s := range c.Series {
		for _, p := range s.Points {
			if p.V != nil && !math.IsNaN(*p.V) && !math.IsInf(*p.V, 0) && !p.At.Before(c.From) && !p.At.After(c.To) {
				maxV = math.Max(maxV, *p.V)
				known++
			}
		}
	}
	step, top := niceScale(maxV)
	y := func(v float64) float64 { return chartTop + plotH*(1-v/top) }

	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		int(chartW), int(chartH), esc(c.Title+" ("+c.Unit+")"))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.Title+" ("+c.Unit+")"))

	// Value grid and axis labels.
	for i := 0; float64(i)*step <= top+step/2; i++ {
		v := float64(i) * step
		yy := y(v)
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, chartLeft, yy, chartLeft+plotW, yy)
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, chartLeft-6, yy+4, esc(formatTick(v, c.Unit)))
	}
	// Time axis: ticks at whole multiples of Tick (UTC), like the rest of
	// the page's times.
	if c.Tick > 0 {
		first := c.From.UTC().Truncate(c.Tick)
		if first.Before(c.From) {
			first = first.Add(c.Tick)
		}
		for t := first; !t.After(c.To); t = t.Add(c.Tick) {
			xx := x(t)
			fmt.Fprintf(&b, `<line class="tick" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, xx, chartTop+plotH, xx, chartTop+plotH+4)
			fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, xx, chartH-6, esc(timeTick(t, span)))
		}
	}
	fmt.Fprintf(&b, `<line class="axis-line" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, chartLeft, chartTop+plotH, chartLeft+plotW, chartTop+plotH)
	for _, m := range c.Marks {
		if known == 0 || m.V <= 0 || m.V > top {
			continue
		}
		yy := y(m.V)
		fmt.Fprintf(&b, `<line class="mark mark-%s" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, esc(m.Class), chartLeft, yy, chartLeft+plotW, yy)
		fmt.Fprintf(&b, `<text class="mark-label mark-%s" x="%.1f" y="%.1f">%s</text>`, esc(m.Class), chartLeft+4, yy-3, esc(m.Label+" "+formatTick(m.V, c.Unit)))
	}

	if known == 0 {
		fmt.Fprintf(&b, `<text class="nodata" x="%.1f" y="%.1f" text-anchor="middle">no data in this range</text>`,
			chartLeft+plotW/2, chartTop+plotH/2)
		b.WriteString(`</svg>`)
		return b.String()
	}

	type endLabel struct {
		y     float64
		class string
		text  string
	}
	var labels []endLabel
	for i, s := range c.Series {
		class := "s" + strconv.Itoa(i%4+1)
		segs := segments(s.Points, c.From, c.To)
		for _, seg := range segs {
			if len(seg) == 1 {
				// A lone known point between gaps is still shown.
				fmt.Fprintf(&b, `<circle class="dot %s" cx="%.1f" cy="%.1f" r="2"/>`, class, x(seg[0].At), y(*seg[0].V))
				continue
			}
			var d strings.Builder
			for j, p := range seg {
				cmd := "L"
				if j == 0 {
					cmd = "M"
				}
				fmt.Fprintf(&d, "%s%.1f %.1f", cmd, x(p.At), y(*p.V))
			}
			fmt.Fprintf(&b, `<path class="line %s" d="%s"/>`, class, d.String())
		}
		if last, ok := lastKnown(s.Points, c.From, c.To); ok {
			labels = append(labels, endLabel{y: y(*last.V), class: class, text: s.Label + " " + formatTick(*last.V, c.Unit)})
		} else {
			labels = append(labels, endLabel{y: chartTop + plotH, class: class, text: s.Label + " n/a"})
		}
	}
	// Direct labels at the right edge, nudged apart so none overlap.
	sort.SliceStable(labels, func(i, j int) bool { return labels[i].y < labels[j].y })
	for i := range labels {
		if i > 0 && labels[i].y-labels[i-1].y < labelSpacing {
			labels[i].y = labels[i-1].y + labelSpacing
		}
	}
	if n := len(labels); n > 0 && labels[n-1].y > chartTop+plotH+4 {
		shift := labels[n-1].y - (chartTop + plotH + 4)
		for i := range labels {
			labels[i].y -= shift
		}
	}
	for _, l := range labels {
		fmt.Fprintf(&b, `<text class="label %s" x="%.1f" y="%.1f">%s</text>`, l.class, chartLeft+plotW+6, l.y+4, esc(l.text))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// component wraps the SVG for a templ page; svg() escapes every text.
func (c chart) component() templ.Component { return templ.Raw(c.svg()) }

// segments splits a series into runs of known points to draw as one line
// each. A line breaks at an unknown value and where points are missing: a
// distance between two points over three times the usual one (warren was
// down, the broker did not answer) is a gap, not a straight line.
func segments(pts []chartPoint, from, to time.Time) [][]chartPoint {
	var in []chartPoint
	for _, p := range pts {
		if !p.At.Before(from) && !p.At.After(to) {
			in = append(in, p)
		}
	}
	gap := usualSpacing(in) * 3
	var out [][]chartPoint
	var cur []chartPoint
	for i, p := range in {
		known := p.V != nil && !math.IsNaN(*p.V) && !math.IsInf(*p.V, 0)
		if i > 0 && gap > 0 && p.At.Sub(in[i-1].At) > gap && len(cur) > 0 {
			out = append(out, cur)
			cur = nil
		}
		if !known {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, p)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// usualSpacing is the median distance between consecutive points.
func usualSpacing(pts []chartPoint) time.Duration {
	if len(pts) < 2 {
		return 0
	}
	d := make([]time.Duration, 0, len(pts)-1)
	for i := 1; i < len(pts); i++ {
		d = append(d, pts[i].At.Sub(pts[i-1].At))
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

func lastKnown(pts []chartPoint, from, to time.Time) (chartPoint, bool) {
	for i := len(pts) - 1; i >= 0; i-- {
		p := pts[i]
		if p.V != nil && !math.IsNaN(*p.V) && !math.IsInf(*p.V, 0) && !p.At.Before(from) && !p.At.After(to) {
			return p, true
		}
	}
	return chartPoint{}, false
}

// niceScale returns a tick step of 1, 2 or 5 times a power of ten and the
// axis top (a whole number of steps, at least max) for values in [0, max].
func niceScale(max float64) (step, top float64) {
	if max <= 0 || math.IsNaN(max) || math.IsInf(max, 0) {
		return 1, 4
	}
	raw := max / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	top = math.Ceil(max/step) * step
	return step, top
}

// formatTick writes an axis or label value with its unit, short enough for
// the axis: 1.2k msg, 15/s, 250 ms, 1.5 s.
func formatTick(v float64, unit string) string {
	switch unit {
	case unitMs:
		if v >= 1000 {
			return trimFloat(v/1000) + " s"
		}
		return trimFloat(v) + " ms"
	case unitRate:
		return shortNumber(v) + "/s"
	default:
		return shortNumber(v) + " " + unit
	}
}

// shortNumber writes 1234 as 1.2k and 2500000 as 2.5M.
func shortNumber(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e9:
		return trimFloat(v/1e9) + "G"
	case a >= 1e6:
		return trimFloat(v/1e6) + "M"
	case a >= 1e4:
		return trimFloat(v/1e3) + "k"
	default:
		return trimFloat(v)
	}
}

// trimFloat writes v with at most one decimal (two below 1), without
// trailing zeros.
func trimFloat(v float64) string {
	prec := 1
	if math.Abs(v) < 1 {
		prec = 2
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// timeTick labels a time axis tick: the clock for windows up to a day,
// the date beyond.
func timeTick(t time.Time, span time.Duration) string {
	if span <= 24*time.Hour {
		return t.UTC().Format("15:04")
	}
	return t.UTC().Format("Jan 02")
}
