package testenv

import (
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// Link is one client's own loopback TCP path to the API server, which a test
// can cut as a network partition would. TLS goes end to end through it (the
// API server's certificate covers 127.0.0.1), so a client configured with URL
// and the API server's CA cannot tell it from a direct connection.
type Link struct {
	URL  string // https://127.0.0.1:PORT, forwarded to the API server
	Addr string // 127.0.0.1:PORT

	t              testing.TB
	target, caFile string
	dir            string
	ln             net.Listener
	wg             sync.WaitGroup

	mu     sync.Mutex
	cut    bool
	closed bool
	conns  map[*linkConn]struct{}
}

// linkConn is one client connection and, once dialled, its API server side.
type linkConn struct {
	client, server net.Conn
	hung           chan struct{} // closed when a cut catches the connection
	done           chan struct{} // closed when both sides are closed
	hangOnce       sync.Once
	dropOnce       sync.Once
}

func (lc *linkConn) hang() { lc.hangOnce.Do(func() { close(lc.hung) }) }

func (lc *linkConn) isHung() bool {
	select {
	case <-lc.hung:
		return true
	default:
		return false
	}
}

// NewLink starts a link to the API server on its own loopback port; t.Cleanup
// closes it and every connection through it.
func (a *APIServer) NewLink(t testing.TB) *Link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("link listener: %v", err)
	}
	l := &Link{Addr: ln.Addr().String(), t: t, target: a.URL[len("https://"):], caFile: a.CAFile, dir: a.Dir,
		ln: ln, conns: map[*linkConn]struct{}{}}
	l.URL = "https://" + l.Addr
	t.Cleanup(l.close)
	l.wg.Add(1)
	go l.accept()
	return l
}

// Kubeconfig writes a kubeconfig that reaches the API server through this
// link with a bearer token, and returns its path.
func (l *Link) Kubeconfig(t testing.TB, token string) string {
	t.Helper()
	f, err := os.CreateTemp(l.dir, "link-*.kubeconfig")
	if err != nil {
		t.Fatalf("link kubeconfig: %v", err)
	}
	f.Close()
	writeKubeconfig(t, f.Name(), l.URL, l.caFile, token)
	return f.Name()
}

// Cut partitions the link: open connections hang (bytes in either direction
// are no longer delivered, and neither side is closed) and new connections are
// accepted but never forwarded.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	for lc := range l.conns {
		lc.hang()
	}
}

// Heal ends a cut: it closes the connections that hung, so that clients
// reconnect, and forwards new connections again.
func (l *Link) Heal() {
	l.mu.Lock()
	l.cut = false
	var hung []*linkConn
	for lc := range l.conns {
		if lc.isHung() {
			hung = append(hung, lc)
		}
	}
	l.mu.Unlock()
	for _, lc := range hung {
		l.drop(lc)
	}
}

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		lc := &linkConn{client: c, hung: make(chan struct{}), done: make(chan struct{})}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[lc] = struct{}{}
		if l.cut {
			lc.hang() // held, unread, until Heal closes it
		}
		l.mu.Unlock()
		if !lc.isHung() {
			l.wg.Add(1)
			go l.forward(lc)
		}
	}
}

// forward dials the API server for lc and copies both ways.
func (l *Link) forward(lc *linkConn) {
	defer l.wg.Done()
	s, err := net.DialTimeout("tcp", l.target, 5*time.Second)
	if err != nil {
		l.drop(lc) // the API server is down: refuse, as it would
		return
	}
	l.mu.Lock()
	lc.server = s
	_, open := l.conns[lc]
	l.mu.Unlock()
	if !open { // dropped while dialling
		s.Close()
		return
	}
	l.wg.Add(2)
	go l.pipe(lc, s, lc.client)
	go l.pipe(lc, lc.client, s)
}

// pipe copies src to dst until either side ends, then closes both. Once a
// cut catches the connection, nothing more is delivered, an end is not passed
// on either, and the connection stays open until Heal or cleanup.
func (l *Link) pipe(lc *linkConn, dst, src net.Conn) {
	defer l.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if lc.isHung() {
			<-lc.done
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	l.drop(lc)
}

// drop closes both sides of lc and forgets it.
func (l *Link) drop(lc *linkConn) {
	lc.dropOnce.Do(func() {
		l.mu.Lock()
		delete(l.conns, lc)
		s := lc.server
		l.mu.Unlock()
		lc.client.Close()
		if s != nil {
			s.Close()
		}
		close(lc.done)
	})
}

func (l *Link) close() {
	l.mu.Lock()
	l.closed = true
	all := make([]*linkConn, 0, len(l.conns))
	for lc := range l.conns {
		all = append(all, lc)
	}
	l.mu.Unlock()
	l.ln.Close()
	for _, lc := range all {
		l.drop(lc)
	}
	l.wg.Wait()
}
