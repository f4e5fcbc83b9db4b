package consumers

import (
	"runtime"
	"time"
)

// RuntimeStats is the process's memory and goroutine use, sampled with the
// consumer samples when Options.TrackMemory is on.
type RuntimeStats struct {
	At             time.Time `json:"at"`
	HeapAllocBytes uint64    `json:"heap_alloc_bytes"`
	HeapInuseBytes uint64    `json:"heap_inuse_bytes"`
	SysBytes       uint64    `json:"sys_bytes"`
	NumGC          uint32    `json:"num_gc"`
	Goroutines     int       `json:"goroutines"`
}

// sampleRuntime reads the runtime figures. ReadMemStats stops the world
// briefly, so it runs once per sample interval, never per message.
func sampleRuntime(at time.Time) RuntimeStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return RuntimeStats{
		At:             at,
		HeapAllocBytes: ms.HeapAlloc,
		HeapInuseBytes: ms.HeapInuse,
		SysBytes:       ms.Sys,
		NumGC:          ms.NumGC,
		Goroutines:     runtime.NumGoroutine(),
	}
}

// Runtime returns the latest runtime sample and whether there is one (only
// with Options.TrackMemory, after the first sample interval or Run's end).
func (m *Manager) Runtime() (RuntimeStats, bool) {
	p := m.runtime.Load()
	if p == nil {
		return RuntimeStats{}, false
	}
	return *p, true
}
