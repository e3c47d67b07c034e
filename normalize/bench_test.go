package normalize

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// benchRecord is a realistic http_requests record: 41 fields, about 1 KB.
const benchRecord = `{"BotScore":30,"BotScoreSrc":"Machine Learning","BotTags":["api"],"CacheCacheStatus":"dynamic","CacheResponseBytes":0,"CacheResponseStatus":0,"ClientASN":13335,"ClientCountry":"us","ClientDeviceType":"desktop","ClientIP":"203.0.113.7","ClientIPClass":"noRecord","ClientRequestBytes":1024,"ClientRequestHost":"www.example.com","ClientRequestMethod":"GET","ClientRequestPath":"/wp-login.php","ClientRequestProtocol":"HTTP/2","ClientRequestReferer":"https://www.example.com/","ClientRequestScheme":"https","ClientRequestSource":"eyeball","ClientRequestURI":"/wp-login.php?redirect_to=%2Fwp-admin%2F&reauth=1","ClientRequestUserAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36","ClientSSLCipher":"AEAD-AES128-GCM-SHA256","ClientSSLProtocol":"TLSv1.3","ClientSrcPort":51234,"ClientXRequestedWith":"","Cookies":{"session":"abc"},"EdgeColoCode":"CDG","EdgeEndTimestamp":1658281702371000000,"EdgeResponseBytes":2790,"EdgeResponseContentType":"text/html","EdgeResponseStatus":200,"EdgeServerIP":"198.51.100.1","EdgeStartTimestamp":1658281671671000000,"OriginIP":"192.0.2.10","OriginResponseStatus":200,"RayID":"72d807ffeba5753d","SecurityAction":"","SecurityRuleID":"","WAFAttackScore":80,"WorkerSubrequest":false,"ZoneName":"example.com"}`

func BenchmarkNormalize(b *testing.B) {
	n := New(Options{})
	raw := []byte(benchRecord)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.Normalize("http_requests", raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeParallel(b *testing.B) {
	n := New(Options{})
	raw := []byte(benchRecord)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := n.Normalize("http_requests", raw); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDecodeStdlibMap is the baseline: encoding/json into a map.
func BenchmarkDecodeStdlibMap(b *testing.B) {
	raw := []byte(benchRecord)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	f.Add("http_requests", []byte(benchRecord))
	f.Add("auto", []byte(`{"ClientIP":"::ffff:1.2.3.4","EdgeStartTimestamp":"2022-07-20T01:47:51.671Z","RequestHeaders":{"a":{"b":[1,"",null]}}}`))
	f.Add("http_requests", []byte(`{"FirewallMatchesActions":[{"b":1},[2],true,null],"EdgeStartTimestamp":1658281671}`))
	f.Add("", []byte(`[1,2]`))
	if files, _ := filepath.Glob(filepath.Join(sekoiaRoot, "http_requests", "*.json")); len(files) > 0 {
		for _, file := range files {
			message, _ := readSEKOIACase(f, file)
			f.Add("http_requests", []byte(message))
		}
	}
	if fh, err := os.Open(filepath.Join("..", "..", "shared", "testdata", "elastic", "http_request", "test-pipeline-http-request.log")); err == nil {
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			f.Add("auto", bytes.Clone(sc.Bytes()))
		}
		fh.Close()
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
		for name, v := range ev.FlatMap() {
			switch v.(type) {
			case string, json.Number, bool, []any:
			default:
				t.Fatalf("Flat[%q] is %T", name, v)
			}
		}
	})
}
