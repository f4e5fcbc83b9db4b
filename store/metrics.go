package store

import (
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the size of the database files. It stats the files at
// scrape time: cheap, and never stale.
type Collector struct {
	path string
	size *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// Collector returns the store's metrics collector, for the server's registry.
func (s *Store) Collector() *Collector {
	return &Collector{
		path: s.path,
		size: prometheus.NewDesc("warren_store_size_bytes",
			"Size of the SQLite store on disk, by file: db (the database) and wal (the write-ahead log, truncated by each maintenance pass).",
			[]string{"file"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.size }

// Collect implements prometheus.Collector. A file that cannot be read (the
// WAL between checkpoints may not exist) is left out.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for label, path := range map[string]string{"db": c.path, "wal": c.path + "-wal"} {
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(fi.Size()), label)
	}
}
