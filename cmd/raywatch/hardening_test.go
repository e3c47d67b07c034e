package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

// TestHostAndConnectionLimits runs serve without a dashboard token and with
// --allowed-hosts, --max-websocket-clients and --max-connections (as
// RAYWATCH_* variables), and checks that each is wired: a PATCH naming a
// foreign Host (DNS rebinding) gets 421 and changes nothing, an allowed
// host is served, the websocket beyond the cap gets 503 (and a place freed
// is taken again), and a connection beyond the limit gets 503 at once.
func TestHostAndConnectionLimits(t *testing.T) {
	const key = "hardening-intake-key-0123456789"
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY="+key, "RAYWATCH_ALLOWED_HOSTS=dash.example.internal",
		"RAYWATCH_MAX_WEBSOCKET_CLIENTS=2", "RAYWATCH_MAX_CONNECTIONS=8")
	if status, body := postBatch(t, in.base, key, sampleBatch(t)); status != 200 {
		t.Fatalf("POST = %d %s", status, body)
	}
	id := waitAlerts(t, in.base, len(sampleGrouped))[0].ID
	port := in.base[strings.LastIndexByte(in.base, ':')+1:]
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	send := func(method, path, host, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, in.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
			req.Header.Set("Origin", "http://"+host)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	rebind := "rebind.attacker.example:" + port
	if status, body := send("PATCH", "/api/v1/alerts/"+id, rebind, `{"status":"closed"}`); status != http.StatusMisdirectedRequest {
		t.Errorf("PATCH with Host %s = %d %s; want 421", rebind, status, body)
	}
	if status, body := send("GET", "/api/v1/alerts/"+id, "", ""); status != 200 || !strings.Contains(body, `"status":"new"`) {
		t.Errorf("GET the alert = %d %s; want it still new", status, body)
	}
	if status, body := send("GET", "/api/v1/alerts", "dash.example.internal:"+port, ""); status != 200 {
		t.Errorf("GET with Host dash.example.internal (in --allowed-hosts) = %d %s; want 200", status, body)
	}
	wsURL := "ws" + strings.TrimPrefix(in.base, "http") + "/ws"
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Host": {rebind}}); err == nil || resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("/ws with Host %s: %v, %v; want 421", rebind, err, resp)
	}

	var socks []*websocket.Conn
	defer func() {
		for _, c := range socks {
			c.Close()
		}
	}()
	for i := range 2 {
		c, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
		if err != nil {
			t.Fatalf("websocket %d of 2: %v", i+1, err)
		}
		socks = append(socks, c)
	}
	if c, resp, err := websocket.DefaultDialer.Dial(wsURL, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		if c != nil {
			c.Close()
		}
		t.Fatalf("third websocket with --max-websocket-clients 2: %v, %v; want 503", err, resp)
	}
	socks[0].Close()
	waitFor(t, 30*time.Second, func() bool {
		c, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
		if err != nil {
			return false
		}
		socks[0] = c
		return true
	}, "the websocket place freed by a close to be taken again")

	checkConnectionLimit(t, in.base[len("http://"):], 8)
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d\n%s", code, in.log())
	}
}

// checkConnectionLimit opens max idle connections to addr (beside those
// already open), then checks that one more is answered 503 at once and
// that, once they are closed, the server answers again.
func checkConnectionLimit(t *testing.T, addr string, max int) {
	t.Helper()
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range max {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a connection over --max-connections got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a connection over --max-connections %d = %d (Retry-After %q); want 503 with Retry-After", max, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	waitFor(t, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "healthz 200 once the idle connections are closed")
}

// TestDamagedStore damages alerts.db between two runs: serve then fails
// with one message that names the file and the fix (no crash, no goroutine
// dump), store check reports the damage (exit 1), store recover copies
// what is readable, and serve starts again.
func TestDamagedStore(t *testing.T) {
	const key = "damaged-store-intake-key-0123456789"
	dataDir := t.TempDir()
	in := startServe(t, dataDir, "RAYWATCH_INTAKE_KEY="+key)
	if status, body := postBatch(t, in.base, key, sampleBatch(t)); status != 200 {
		t.Fatalf("POST = %d %s", status, body)
	}
	waitAlerts(t, in.base, len(sampleGrouped))
	if code := in.stop(); code != 0 {
		t.Fatalf("exit = %d", code)
	}
	db := filepath.Join(dataDir, "alerts.db")
	st, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(db, st.Size()*6/10); err != nil {
		t.Fatal(err)
	}

	code, _, errOut := runBin(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	fix := "raywatch store recover --data-dir " + dataDir
	if code != 1 || !strings.Contains(errOut, db) || !strings.Contains(errOut, fix) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("serve on a damaged store = %d\n%s\nwant exit 1 and one line naming %s and %q", code, errOut, db, fix)
	}
	for _, crash := range []string{"panic", "goroutine ", "SIGBUS", "fatal error"} {
		if strings.Contains(errOut, crash) {
			t.Errorf("serve on a damaged store crashed (%q):\n%s", crash, errOut)
		}
	}

	code, out, errOut := runBin(t, nil, "store", "check", "--data-dir", dataDir)
	if code != 1 || !strings.Contains(out, "problems:") || !strings.Contains(out, "truncated") || !strings.Contains(out, fix) {
		t.Errorf("store check of the damaged store = %d\n%s%s\nwant exit 1, the problems and the fix", code, out, errOut)
	}
	code, out, _ = runBin(t, nil, "store", "check", "--json", "--data-dir", dataDir)
	var rep struct {
		Path     string   `json:"path"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != 1 || err != nil || rep.Path != db || len(rep.Problems) == 0 {
		t.Errorf("store check --json = %d, %+v (%v)\n%s; want exit 1 and the problems", code, rep, err, out)
	}

	code, out, errOut = runBin(t, nil, "store", "recover", "--data-dir", dataDir)
	moved, _ := filepath.Glob(db + ".damaged-*")
	if code != 0 || !strings.Contains(out, "damaged database moved to "+db+".damaged-") || len(moved) != 1 {
		t.Fatalf("store recover = %d\n%s%s\nfiles moved aside %q; want exit 0 and the damaged file moved aside", code, out, errOut, moved)
	}
	if code, out, errOut := runBin(t, nil, "store", "check", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "no problem found") {
		t.Errorf("store check after recover = %d\n%s%s; want exit 0", code, out, errOut)
	}

	in = startServe(t, dataDir, "RAYWATCH_INTAKE_KEY="+key)
	listAlerts(t, in.base, 100) // the API answers from the recovered store
	code, _, errOut = runBin(t, nil, "store", "check", "--data-dir", dataDir)
	if code != 2 || !strings.Contains(errOut, "another raywatch holds") {
		t.Errorf("store check while serve runs = %d\n%s; want exit 2 and that another raywatch holds the file", code, errOut)
	}
	if code := in.stop(); code != 0 {
		t.Errorf("exit after recover = %d\n%s", code, in.log())
	}
}

// fieldErrorSample is the sample batch as other tools export Cloudflare
// records: EdgeStartTimestamp as "YYYY-MM-DD HH:MM:SS" (accepted), and
// EdgeResponseBytes a string, a number on even records and "NNNx" (a field
// error) on odd ones.
func fieldErrorSample(t *testing.T) []byte {
	t.Helper()
	var out bytes.Buffer
	for i, line := range strings.Split(strings.TrimSpace(string(sampleBatch(t))), "\n") {
		var rec map[string]any
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		if err := d.Decode(&rec); err != nil {
			t.Fatal(err)
		}
		ns, err := rec["EdgeStartTimestamp"].(json.Number).Int64()
		if err != nil {
			t.Fatal(err)
		}
		rec["EdgeStartTimestamp"] = time.Unix(0, ns).UTC().Format(time.DateTime)
		bytesOut := rec["EdgeResponseBytes"].(json.Number).String()
		if i%2 == 1 {
			bytesOut += "x"
		}
		rec["EdgeResponseBytes"] = bytesOut
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(append(b, '\n'))
	}
	return out.Bytes()
}

// TestScanFieldErrors scans records with fields of the wrong type or
// format: every record is still detected (the sample's alerts), the exit
// status is 0, and stderr names the field for each record and in the
// summary.
func TestScanFieldErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exported.ndjson")
	if err := os.WriteFile(path, fieldErrorSample(t), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runBin(t, nil, "scan", path)
	if code != 0 {
		t.Fatalf("scan = %d; want 0 (a field error does not make a record malformed)\n%s", code, errOut)
	}
	if n := strings.Count(out, "\n"); n != len(sampleTitles) {
		t.Errorf("scan gave %d alerts; want the sample's %d\n%s", n, len(sampleTitles), out)
	}
	for _, want := range []string{
		"exported.ndjson: record 2: field \"EdgeResponseBytes\" left out (want number, got string)",
		"14 records in 1 files, 6 alerts, 0 malformed",
		"7 records scanned without some of their fields",
		": EdgeResponseBytes 7",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not say %q:\n%s", want, errOut)
		}
	}
}

// TestIOCFileWarning replaces an IOC file by an HTML error page (a failed
// download): the file keeps its indicators, GET /api/v1/iocs carries the
// warning, and the dashboard's IOCs page shows it as text (the file name
// and the page's markup are not HTML there).
func TestIOCFileWarning(t *testing.T) {
	iocDir := t.TempDir()
	name := `feed<img src=x onerror="window.__xss=1">.txt`
	var feed strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&feed, "203.0.113.%d\n", i)
	}
	if err := os.WriteFile(filepath.Join(iocDir, name), []byte(feed.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY=ioc-warning-intake-key-0123", "RAYWATCH_IOC_DIR="+iocDir)
	type iocs struct {
		Total int `json:"total"`
		Files []struct {
			Total   int    `json:"total"`
			Warning string `json:"warning"`
		} `json:"files"`
	}
	var rep iocs
	apiGet(t, in.base, "/api/v1/iocs", &rep)
	if rep.Total != 20 {
		t.Fatalf("indicators = %d; want 20", rep.Total)
	}
	// A failed download replaces the file at once (rename), as a fetcher
	// writing to a temporary file does.
	junk := filepath.Join(t.TempDir(), "download")
	page := "<html><head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1><script>window.__xss=2</script>502 Bad Gateway</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n"
	if err := os.WriteFile(junk, []byte(page), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(junk, filepath.Join(iocDir, name)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool {
		rep = iocs{}
		apiGet(t, in.base, "/api/v1/iocs", &rep)
		return len(rep.Files) == 1 && rep.Files[0].Warning != ""
	}, "a warning on the replaced IOC file")
	warning := rep.Files[0].Warning
	if rep.Total != 20 || rep.Files[0].Total != 20 || !strings.Contains(warning, "keeping the 20 indicators") || !strings.Contains(warning, name) {
		t.Errorf("after the file became an error page: %d indicators (file %d), warning %q; want the 20 kept and a warning naming the file", rep.Total, rep.Files[0].Total, warning)
	}

	ctx := newBrowser(t)
	guardPage(t, ctx)
	do(t, ctx, chromedp.Navigate(in.base+"/#/iocs"))
	evalUntil(t, ctx, `document.querySelectorAll("#ioc-warnings .warning").length === 1`, "the IOC file warning")
	if shown := evalString(t, ctx, `document.querySelector("#ioc-warnings .warning").textContent`); !strings.Contains(shown, warning) {
		t.Errorf("the IOCs page shows %q; want the warning %q as text", shown, warning)
	}
	if n := evalString(t, ctx, `String(document.querySelectorAll("#ioc-files tr.warn-row").length)`); n != "1" {
		t.Errorf("%s rows of the IOC table are marked; want the file's", n)
	}
	if v := evalString(t, ctx, `String(window.__xss) + " " + document.querySelectorAll("main img, main script, [onerror]").length`); v != "undefined 0" {
		t.Errorf("markup from the file name or its content ran or was inserted: %s", v)
	}
	noCSPViolations(t, ctx)
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}
