package normalize

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestOpenBody(t *testing.T) {
	var gz bytes.Buffer
	for _, part := range []string{"one\n", "two\n"} { // two gzip members
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte(part))
		zw.Close()
	}
	for _, tc := range []struct {
		name    string
		body    []byte
		hint    bool
		want    string
		gzip    bool
		wantErr string
	}{
		{"plain", []byte("plain\n"), false, "plain\n", false, ""},
		{"gzip by magic bytes", gz.Bytes(), false, "one\ntwo\n", true, ""},
		{"gzip by header and magic", gz.Bytes(), true, "one\ntwo\n", true, ""},
		{"header says gzip, body is not", []byte("plain\n"), true, "", false, "gzip: "},
		{"damaged gzip header", []byte{0x1f, 0x8b, 1, 2, 3}, false, "", false, "gzip: "},
		{"empty", nil, false, "", false, ""},
	} {
		b, err := OpenBody(bytes.NewReader(tc.body), tc.hint)
		if tc.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("%s: OpenBody error = %v; want %q...", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: OpenBody: %v", tc.name, err)
			continue
		}
		got, err := io.ReadAll(b)
		b.Close()
		if err != nil || string(got) != tc.want || b.Gzip != tc.gzip {
			t.Errorf("%s: read %q, gzip %v, %v; want %q, gzip %v", tc.name, got, b.Gzip, err, tc.want, tc.gzip)
		}
	}
}

// BenchmarkOpenBody inflates a gzip'd batch of 1,000 realistic records as
// the intake and the pipeline read one (the bytes are discarded).
func BenchmarkOpenBody(b *testing.B) {
	// The records of BenchmarkNormalize with the values that vary from
	// request to request drawn at random, so that the batch compresses
	// about as well as real traffic.
	rng := rand.New(rand.NewPCG(1, 2))
	var raw bytes.Buffer
	for _, r := range benchRecords(1000) {
		var m map[string]any
		if err := json.Unmarshal(r, &m); err != nil {
			b.Fatal(err)
		}
		m["RayID"] = fmt.Sprintf("%016x", rng.Uint64())
		for _, k := range []string{"ClientSrcPort", "ClientRequestBytes", "EdgeResponseBytes", "ClientASN"} {
			m[k] = rng.IntN(65536)
		}
		start := 1764115200000000000 + rng.Int64N(1e15)
		m["EdgeStartTimestamp"], m["EdgeEndTimestamp"] = start, start+rng.Int64N(1e9)
		m["ClientIP"] = fmt.Sprintf("%d.%d.%d.%d", rng.IntN(224), rng.IntN(256), rng.IntN(256), rng.IntN(256))
		line, _ := json.Marshal(m)
		raw.Write(line)
		raw.WriteByte('\n')
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	zw.Write(raw.Bytes())
	zw.Close()
	b.Logf("%d bytes gzip'd to %d", raw.Len(), gz.Len())
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(raw.Len()))
	b.ReportAllocs()
	for b.Loop() {
		body, err := OpenBody(bytes.NewReader(gz.Bytes()), true)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{body}, buf); err != nil {
			b.Fatal(err)
		}
		body.Close()
	}
}
