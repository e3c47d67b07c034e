package normalize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchRecord is a realistic http_requests record: 41 fields, about 1 KB.
const benchRecord = `{"BotScore":30,"BotScoreSrc":"Machine Learning","BotTags":["api"],"CacheCacheStatus":"dynamic","CacheResponseBytes":0,"CacheResponseStatus":0,"ClientASN":13335,"ClientCountry":"us","ClientDeviceType":"desktop","ClientIP":"203.0.113.7","ClientIPClass":"noRecord","ClientRequestBytes":1024,"ClientRequestHost":"www.example.com","ClientRequestMethod":"GET","ClientRequestPath":"/wp-login.php","ClientRequestProtocol":"HTTP/2","ClientRequestReferer":"https://www.example.com/","ClientRequestScheme":"https","ClientRequestSource":"eyeball","ClientRequestURI":"/wp-login.php?redirect_to=%2Fwp-admin%2F&reauth=1","ClientRequestUserAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36","ClientSSLCipher":"AEAD-AES128-GCM-SHA256","ClientSSLProtocol":"TLSv1.3","ClientSrcPort":51234,"ClientXRequestedWith":"","Cookies":{"session":"abc"},"EdgeColoCode":"CDG","EdgeEndTimestamp":1658281702371000000,"EdgeResponseBytes":2790,"EdgeResponseContentType":"text/html","EdgeResponseStatus":200,"EdgeServerIP":"198.51.100.1","EdgeStartTimestamp":1658281671671000000,"OriginIP":"192.0.2.10","OriginResponseStatus":200,"RayID":"72d807ffeba5753d","SecurityAction":"","SecurityRuleID":"","WAFAttackScore":80,"WorkerSubrequest":false,"ZoneName":"example.com"}`

// benchUserAgents is a realistic mix: a few browsers make most requests,
// then crawlers, tools and scanners.
var benchUserAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	"curl/8.5.0",
	"python-requests/2.31.0",
	"Go-http-client/1.1",
	"Mozilla/5.0 zgrab/0.x",
	"",
}

// benchRecords returns n realistic http_requests records: benchRecord with
// a varying RayID, client, path and user-agent, the user-agents drawn with
// a skew towards the first ones.
func benchRecords(n int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		ua := benchUserAgents[(i*i+i/3)%len(benchUserAgents)%(1+i%len(benchUserAgents))]
		r := strings.Replace(benchRecord, "72d807ffeba5753d", fmt.Sprintf("72d807ffeba5%04x", i), 1)
		r = strings.Replace(r, "203.0.113.7", fmt.Sprintf("203.0.%d.%d", i/250%250, i%250), 1)
		r = strings.Replace(r, "/wp-login.php?", fmt.Sprintf("/p/%d?", i%97), 1)
		uaJSON, _ := json.Marshal(ua)
		r = strings.Replace(r, `"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"`, string(uaJSON), 1)
		recs[i] = []byte(r)
	}
	return recs
}

// BenchmarkNormalize normalizes realistic records, user-agent parsing
// included (the cache is warm after the first records), into a reused
// Event as a pipeline does (with and without building the nested Doc),
// and with Normalize, which returns a new Event each time.
func BenchmarkNormalize(b *testing.B) {
	recs := benchRecords(512)
	n := New(Options{})
	for _, r := range recs { // warm the user-agent cache
		if _, err := n.Normalize("http_requests", r); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Into", func(b *testing.B) {
		var ev Event
		b.SetBytes(int64(len(recs[0])))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := n.NormalizeInto(&ev, "http_requests", recs[i%len(recs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	// Doc is built lazily, for alerts; this is the cost when every event
	// needs its nested document too.
	b.Run("IntoDoc", func(b *testing.B) {
		var ev Event
		b.SetBytes(int64(len(recs[0])))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := n.NormalizeInto(&ev, "http_requests", recs[i%len(recs)]); err != nil {
				b.Fatal(err)
			}
			if len(ev.Doc()) == 0 {
				b.Fatal("empty Doc")
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("New", func(b *testing.B) {
		b.SetBytes(int64(len(recs[0])))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := n.Normalize("http_requests", recs[i%len(recs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	// The baseline: encoding/json into a map, the same records.
	b.Run("StdlibMap", func(b *testing.B) {
		b.SetBytes(int64(len(recs[0])))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(recs[i%len(recs)]))
			dec.UseNumber()
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}

func BenchmarkNormalizeParallel(b *testing.B) {
	recs := benchRecords(512)
	n := New(Options{})
	b.SetBytes(int64(len(recs[0])))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ev Event
		i := 0
		for pb.Next() {
			if err := n.NormalizeInto(&ev, "http_requests", recs[i%len(recs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func FuzzNormalize(f *testing.F) {
	f.Add("http_requests", []byte(benchRecord))
	f.Add("auto", []byte(`{"ClientIP":"::ffff:1.2.3.4","EdgeStartTimestamp":"2022-07-20T01:47:51.671Z","RequestHeaders":{"a":{"b":[1,"",null]}}}`))
	f.Add("http_requests", []byte(`{"FirewallMatchesActions":[{"b":1},[2],true,null],"EdgeStartTimestamp":1658281671}`))
	f.Add("", []byte(`[1,2]`))
	// Seeds from testdata: SEKOIA's fixtures (as their format and as
	// auto), Elastic's inputs, and the golden inputs of this package.
	for _, format := range sekoiaFormats {
		files, _ := filepath.Glob(filepath.Join(sekoiaRoot, format.dir, "*.json"))
		for _, file := range files {
			message, _ := readSEKOIACase(f, file)
			f.Add(format.dataset, []byte(message))
			f.Add("auto", []byte(message))
		}
	}
	logs, _ := filepath.Glob(filepath.Join("..", "..", "shared", "testdata", "elastic", "*", "*.log"))
	goldens, _ := filepath.Glob(filepath.Join("..", "testdata", "normalize", "*.ndjson"))
	for _, file := range append(logs, goldens...) {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 {
				f.Add("auto", bytes.Clone(line))
			}
		}
	}
	n := New(Options{MaxRecordBytes: 1 << 20})
	f.Fuzz(func(t *testing.T, dataset string, raw []byte) {
		ev, err := n.Normalize(dataset, raw)
		if err != nil {
			if ev != nil {
				t.Fatalf("Normalize returned an Event and error %v", err)
			}
			return
		}
		if ev == nil || ev.Key == "" || ev.Dataset == "" {
			t.Fatalf("Normalize returned %+v and no error", ev)
		}
		if _, err := json.Marshal(ev.Doc()); err != nil {
			t.Fatalf("json.Marshal(Doc): %v", err)
		}
		texts := ev.Texts()
		ev.Range(func(field, value string) bool {
			if !bytes.Contains(texts, []byte(value)) {
				t.Fatalf("value %q of %s is not in Texts", value, field)
			}
			return true
		})
		for name, v := range ev.FlatMap() {
			switch v.(type) {
			case string, json.Number, bool, []any:
			default:
				t.Fatalf("Flat[%q] is %T", name, v)
			}
		}
	})
}
