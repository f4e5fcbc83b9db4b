package consumers

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// freezeProxy forwards TCP to the real broker and can stop forwarding in
// both directions, so heartbeats go missing while both ends stay up: the
// broker cannot produce that on its own, so a proxy in front of the real
// broker stands in for a dead network path.
type freezeProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen bool
	conns  []net.Conn
}

func newFreezeProxy(t *testing.T) *freezeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln}
	t.Cleanup(func() {
		_ = ln.Close()
		p.dropAll()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", "127.0.0.1:5672")
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go p.pipe(up, c)
			go p.pipe(c, up)
		}
	}()
	return p
}

func (p *freezeProxy) url() string {
	return fmt.Sprintf("amqp://guest:guest@%s/", p.ln.Addr())
}

// pipe copies src to dst, holding data back while frozen.
func (p *freezeProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			_ = dst.Close()
			return
		}
		for {
			p.mu.Lock()
			frozen := p.frozen
			p.mu.Unlock()
			if !frozen {
				break
			}
			time.Sleep(10 * time.Millisecond) // a stalled network path, not a wait for a condition
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			_ = src.Close()
			return
		}
	}
}

func (p *freezeProxy) setFrozen(f bool) {
	p.mu.Lock()
	p.frozen = f
	p.mu.Unlock()
}

// dropAll closes every proxied connection (the frozen path is gone).
func (p *freezeProxy) dropAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func TestMissedHeartbeatsRecover(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	proxy := newFreezeProxy(t)
	rec := newRecorder()
	m, err := NewManager(proxy.url(), []Config{testConfig("hb", q)}, nil, testLogger(t), Options{
		Handlers:            map[string]HandlerFactory{"test": rec.factory()},
		Heartbeat:           time.Second,
		ReconnectMinBackoff: 50 * time.Millisecond,
		ReconnectMaxBackoff: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 10*time.Second, func() bool { return m.Ready(context.Background()) == nil }, "ready")

	proxy.setFrozen(true)
	eventually(t, 20*time.Second, func() bool {
		st := mustGet(t, m, "hb")
		return st.State == StateReconnecting && strings.Contains(st.LastError, "i/o timeout")
	}, "missed heartbeats detected: %+v", mustGet(t, m, "hb"))
	proxy.dropAll()
	proxy.setFrozen(false)
	eventually(t, 20*time.Second, func() bool { return mustGet(t, m, "hb").State == StateRunning }, "running again")
	ids := b.publish(q, 20, "h")
	eventually(t, 20*time.Second, func() bool { return mustGet(t, m, "hb").Processed == 20 }, "processing after recovery")
	rec.mu.Lock()
	for _, id := range ids {
		if rec.seen[id] != 1 {
			t.Errorf("%s handled %d times", id, rec.seen[id])
		}
	}
	rec.mu.Unlock()
}
