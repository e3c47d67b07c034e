//go:build linux

package web

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSlowBodyScenario measures the attack of issue 16, item 2: 2,000
// POST /login with Content-Length: 4000 sending a byte every 3 s, against
// a server (the default Options, in a child process) limited to 1,024
// open files, and a Logpush batch posted from another address meanwhile.
// It runs only with RAYWATCH_SLOWBODY_SCENARIO=1 (about a minute).
func TestSlowBodyScenario(t *testing.T) {
	if os.Getenv("RAYWATCH_SLOWBODY_CHILD") != "" {
		slowBodyChild(t)
		return
	}
	if os.Getenv("RAYWATCH_SLOWBODY_SCENARIO") == "" {
		t.Skip("a measurement: set RAYWATCH_SLOWBODY_SCENARIO=1 to run it")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSlowBodyScenario$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), "RAYWATCH_SLOWBODY_CHILD=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSpace(line)
	addr := strings.TrimPrefix(url, "http://")

	const attackers = 2000
	var open, refused atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	start := time.Now()
	for range attackers {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			open.Add(1)
			defer open.Add(-1)
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			go func() {
				tick := time.NewTicker(3 * time.Second)
				defer tick.Stop()
				_, err := io.WriteString(c, "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n")
				for err == nil {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
						_, err = c.Write([]byte{' '})
					}
				}
			}()
			b := make([]byte, 16)
			if n, _ := io.ReadFull(c, b); n > 0 && strings.HasPrefix(string(b[:n]), "HTTP/1.1 503") {
				refused.Add(1)
			}
			_, _ = io.Copy(io.Discard, c) // until the server closes
		})
	}
	other := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	client := &http.Client{Transport: &http.Transport{DialContext: other.DialContext, DisableKeepAlives: true}, Timeout: 15 * time.Second}
	intake := func() string {
		s := time.Now()
		req, _ := http.NewRequest("POST", url+"/plain/batch", strings.NewReader(fmt.Sprintf("{\"RayID\":\"%d\"}\n", s.UnixNano())))
		req.Header.Set(IntakeKeyHeader, "key-a")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Sprintf("error after %v (%v)", time.Since(s).Round(time.Millisecond), err)
		}
		resp.Body.Close()
		return fmt.Sprintf("%d in %v", resp.StatusCode, time.Since(s).Round(time.Millisecond))
	}
	for _, at := range []time.Duration{2 * time.Second, 5 * time.Second, 15 * time.Second, 40 * time.Second} {
		time.Sleep(time.Until(start.Add(at))) // a measurement at fixed times, not a wait for a condition
		t.Logf("t=%v: attacker connections open %d (answered 503: %d); intake from 127.0.0.2: %s", at, open.Load(), refused.Load(), intake())
	}
}

// slowBodyChild serves the default Options on 127.0.0.1 with at most
// 1,024 open files, prints its URL and serves until stdin closes.
func slowBodyChild(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = 1024
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	ts, _, _ := newTestServerOpts(t, nil)
	fmt.Println(ts.URL)
	_, _ = io.Copy(io.Discard, os.Stdin)
}
