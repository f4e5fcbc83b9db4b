package web

import (
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

// parseSVG checks that s is well-formed XML and returns its elements by name.
func parseSVG(t *testing.T, s string) map[string][]xml.StartElement {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(s))
	out := map[string][]xml.StartElement{}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("chart is not well-formed SVG: %v\n%s", err, s)
		}
		if se, ok := tok.(xml.StartElement); ok {
			out[se.Name.Local] = append(out[se.Name.Local], se)
		}
	}
}

func xmlAttr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func TestChartSVG(t *testing.T) {
	from := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	to := from.Add(15 * time.Minute)
	at := func(sec int) time.Time { return from.Add(time.Duration(sec) * time.Second) }
	series := func(label string, vals map[int]*float64, every, n int) chartSeries {
		s := chartSeries{Label: label}
		for i := 0; i < n; i++ {
			v, ok := vals[i]
			if !ok {
				v = f64(float64(i))
			}
			s.Points = append(s.Points, chartPoint{At: at(i * every), V: v})
		}
		return s
	}

	t.Run("unknown values break the line instead of dropping to 0", func(t *testing.T) {
		s := series("ready", map[int]*float64{5: nil, 6: nil}, 5, 20)
		c := chart{Title: "depth", Unit: unitMessages, From: from, To: to, Tick: 5 * time.Minute, Series: []chartSeries{s}}
		els := parseSVG(t, c.svg())
		paths := els["path"]
		if len(paths) != 2 {
			t.Fatalf("%d line segments, want 2 (broken at the unknown points)", len(paths))
		}
		for _, p := range paths {
			d := xmlAttr(p, "d")
			// y of value 0 is the bottom of the plot; no point may sit there
			// except the first (whose value really is 0).
			if strings.Count(d, "M") != 1 {
				t.Errorf("segment %q should start once", d)
			}
		}
		if !strings.HasPrefix(xmlAttr(paths[1], "d"), "M") {
			t.Error("second segment does not start with a move")
		}
	})

	t.Run("missing points in time are a gap too", func(t *testing.T) {
		s := chartSeries{Label: "ingress"}
		for i := 0; i < 10; i++ {
			s.Points = append(s.Points, chartPoint{At: at(i * 5), V: f64(3)})
		}
		// warren was down for five minutes.
		for i := 0; i < 10; i++ {
			s.Points = append(s.Points, chartPoint{At: at(350 + i*5), V: f64(4)})
		}
		c := chart{Title: "rates", Unit: unitRate, From: from, To: to, Series: []chartSeries{s}}
		if n := len(parseSVG(t, c.svg())["path"]); n != 2 {
			t.Errorf("%d segments, want 2 across the missing minutes", n)
		}
	})

	t.Run("a lone known point is drawn as a dot", func(t *testing.T) {
		s := series("p95", map[int]*float64{0: nil, 1: f64(7), 2: nil}, 5, 3)
		c := chart{Title: "latency", Unit: unitMs, From: from, To: to, Series: []chartSeries{s}}
		els := parseSVG(t, c.svg())
		if len(els["path"]) != 0 || len(els["circle"]) != 1 {
			t.Errorf("%d paths, %d dots; want 0 and 1", len(els["path"]), len(els["circle"]))
		}
	})

	t.Run("no data says so", func(t *testing.T) {
		c := chart{Title: "depth", Unit: unitMessages, From: from, To: to,
			Series: []chartSeries{{Label: "ready", Points: []chartPoint{{At: at(0)}, {At: at(5)}}}}}
		out := c.svg()
		parseSVG(t, out)
		if !strings.Contains(out, "no data in this range") || strings.Contains(out, "<path") {
			t.Errorf("an all-unknown chart should say no data and draw no line:\n%s", out)
		}
	})

	t.Run("labels and titles are escaped", func(t *testing.T) {
		evil := `<script>alert(1)</script>"&'`
		s := series(evil, nil, 5, 3)
		c := chart{Title: "latency of consumer " + evil, Unit: unitMs, From: from, To: to, Series: []chartSeries{s}}
		out := c.svg()
		els := parseSVG(t, out)
		if len(els["script"]) != 0 || strings.Contains(out, "<script") {
			t.Fatalf("markup from a name reached the SVG:\n%s", out)
		}
		if got := xmlAttr(els["svg"][0], "aria-label"); !strings.Contains(got, evil) {
			t.Errorf("aria-label %q does not carry the name as text", got)
		}
	})

	t.Run("two series get direct labels with their last value and unit", func(t *testing.T) {
		ready := chartSeries{Label: "ready", Points: []chartPoint{{At: at(0), V: f64(1000)}, {At: at(5), V: f64(12000)}}}
		unacked := chartSeries{Label: "unacked", Points: []chartPoint{{At: at(0), V: f64(10)}, {At: at(5), V: f64(11900)}}}
		c := chart{Title: "depth", Unit: unitMessages, From: from, To: to, Tick: 5 * time.Minute, Series: []chartSeries{ready, unacked}}
		out := c.svg()
		els := parseSVG(t, out)
		var labels []string
		var ys []string
		for _, tx := range els["text"] {
			if strings.Contains(xmlAttr(tx, "class"), "label") {
				ys = append(ys, xmlAttr(tx, "y"))
				labels = append(labels, xmlAttr(tx, "class"))
			}
		}
		if len(labels) != 2 {
			t.Fatalf("%d direct labels, want 2", len(labels))
		}
		if ys[0] == ys[1] {
			t.Error("the two labels overlap (same y)")
		}
		for _, want := range []string{"ready 12k msg", "unacked 11.9k msg", "12:05", "12:10"} {
			if !strings.Contains(out, want) {
				t.Errorf("chart lacks %q", want)
			}
		}
	})
}

func TestParseChartRange(t *testing.T) {
	for _, ok := range []string{"", "15m", "1h", "6h", "24h", "7d", "90d"} {
		if _, err := parseChartRange(ok); err != nil {
			t.Errorf("range %q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"2h", "1H", "90d ", "<b>", "-1h"} {
		_, err := parseChartRange(bad)
		if err == nil {
			t.Errorf("range %q accepted", bad)
			continue
		}
		if !strings.Contains(err.Error(), "15m, 1h, 6h, 24h, 7d, 90d") {
			t.Errorf("error %q does not name the allowed ranges", err)
		}
	}
}

func TestNiceScale(t *testing.T) {
	for _, tc := range []struct{ max, step, top float64 }{
		{0, 1, 4}, {3, 1, 3}, {9, 5, 10}, {12000, 5000, 15000}, {0.3, 0.1, 0.3},
	} {
		step, top := niceScale(tc.max)
		if math.Abs(step-tc.step) > 1e-9 || math.Abs(top-tc.top) > 1e-9 {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", tc.max, step, top, tc.step, tc.top)
		}
	}
}
