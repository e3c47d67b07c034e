package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// bomb returns n MiB of zero bytes gzip'd: one 1 MiB member (about 1 KiB)
// repeated, which gunzips as one stream.
func bomb(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.Write(make([]byte, 1<<20))
	w.Close()
	return bytes.Repeat(b.Bytes(), n)
}

func TestReadBatch(t *testing.T) {
	lim := batchLimits{MaxDecompressed: 1 << 20, MaxLines: 10}
	ndjson := "{\"a\":1}\n{\"a\":2}\r\n\n{\"a\":3}"
	tests := []struct {
		name      string
		body      []byte
		enc       string
		wantLines int
		wantErr   error
		wantProbe bool
	}{
		{"plain", []byte(ndjson), "", 4, nil, false},
		{"gzip by header", gz(t, ndjson), "GZIP", 4, nil, false},
		{"gzip by magic", gz(t, ndjson), "", 4, nil, false},
		{"multi-member gzip", append(gz(t, "{\"a\":1}\n"), gz(t, "{\"a\":2}\n")...), "gzip", 2, nil, false},
		{"empty", nil, "", 0, nil, false},
		{"probe", gz(t, `{"content":"tests"}`), "gzip", 1, nil, true},
		{"bomb", bomb(t, 64), "gzip", 0, errInflatedTooLarge, false},
		{"plain over the limit", bytes.Repeat([]byte("x"), 1<<20+1), "", 0, errInflatedTooLarge, false},
		{"too many lines", []byte(strings.Repeat("{}\n", 11)), "", 0, errTooManyLines, false},
		{"just enough lines", []byte(strings.Repeat("{}\n", 10)), "", 10, nil, false},
		{"truncated gzip", gz(t, ndjson)[:20], "gzip", 0, errBadGzip, false},
		{"gzip header then garbage", append(gz(t, ndjson), "garbage"...), "gzip", 0, errBadGzip, false},
		{"declared gzip, plain body", []byte(ndjson), "gzip", 0, errBadGzip, false},
		{"brotli", []byte(ndjson), "br", 0, errEncoding, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw, decoded bytes.Buffer
			info, err := readBatch(bytes.NewReader(tt.body), tt.enc, "zone", lim, &raw, &decoded)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("readBatch = %+v, %v; want error %v", info, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(raw.Bytes(), tt.body) {
				t.Errorf("raw copy differs from the body (%d bytes; want %d)", raw.Len(), len(tt.body))
			}
			if want := wantDecoded(tt.name, ndjson); !tt.wantProbe && tt.body != nil && decoded.String() != want {
				t.Errorf("decoded copy %q; want %q", decoded.String(), want)
			}
			if info.Lines != tt.wantLines || info.Probe != tt.wantProbe {
				t.Errorf("readBatch = %+v; want %d lines, probe %v", info, tt.wantLines, tt.wantProbe)
			}
		})
	}
}

// wantDecoded is the decompressed body of the TestReadBatch cases that
// read whole.
func wantDecoded(name, ndjson string) string {
	switch name {
	case "multi-member gzip":
		return "{\"a\":1}\n{\"a\":2}\n"
	case "just enough lines":
		return strings.Repeat("{}\n", 10)
	}
	return ndjson
}

func TestReadBatchIDIgnoresCompression(t *testing.T) {
	lim := batchLimits{MaxDecompressed: 1 << 20, MaxLines: 10}
	body := "{\"RayID\":\"1\"}\n"
	a, err1 := readBatch(bytes.NewReader([]byte(body)), "", "zone", lim, io.Discard, nil)
	b, err2 := readBatch(bytes.NewReader(gz(t, body)), "gzip", "zone", lim, io.Discard, nil)
	c, err3 := readBatch(bytes.NewReader([]byte(body)), "", "other", lim, io.Discard, nil)
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatal(err1, err2, err3)
	}
	sum := sha256.Sum256([]byte("zone\x00" + body))
	if a.ID != b.ID || a.ID != hex.EncodeToString(sum[:]) {
		t.Errorf("IDs %s (plain) and %s (gzip); want both sha256(intake, 0, body)", a.ID, b.ID)
	}
	if c.ID == a.ID {
		t.Error("the same body for another intake has the same ID")
	}
}

func TestReadBatchBodyLimit(t *testing.T) {
	lim := batchLimits{MaxDecompressed: 1 << 30, MaxLines: 1 << 20}
	body := http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(bomb(t, 8))), 100)
	_, err := readBatch(body, "gzip", "zone", lim, io.Discard, nil)
	if status, reason := rejection(err); status != 413 || reason != "body_too_large" {
		t.Errorf("rejection(%v) = %d %s; want 413 body_too_large", err, status, reason)
	}
}

// FuzzReadBatch checks the body framing on arbitrary input: no panic, the
// raw copy is the input (when it was read whole), the decompressed size
// never passes the limit, and every error maps to a 4xx answer.
func FuzzReadBatch(f *testing.F) {
	f.Add([]byte("{\"RayID\":\"1\"}\n"), false)
	f.Add(gz(f, "{\"RayID\":\"1\"}\n{\"RayID\":\"2\"}\n"), true)
	f.Add(gz(f, `{"content":"tests"}`), false)
	f.Add(bomb(f, 1), true)
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, false)
	f.Add([]byte("[{\"a\":1},{\"a\":2}]"), false)
	f.Fuzz(func(t *testing.T, body []byte, declared bool) {
		enc := ""
		if declared {
			enc = "gzip"
		}
		lim := batchLimits{MaxDecompressed: 64 << 10, MaxLines: 100}
		var raw, decoded bytes.Buffer
		info, err := readBatch(bytes.NewReader(body), enc, "zone", lim, &raw, &decoded)
		if err != nil {
			if status, _ := rejection(err); status < 400 || status > 499 {
				t.Fatalf("error %v maps to %d; want a 4xx", err, status)
			}
			return
		}
		if !bytes.Equal(raw.Bytes(), body) {
			t.Fatalf("raw copy has %d bytes; want the %d of the body", raw.Len(), len(body))
		}
		if info.Bytes > lim.MaxDecompressed || info.Lines > lim.MaxLines {
			t.Fatalf("accepted %+v beyond the limits", info)
		}
		if int64(decoded.Len()) != info.Bytes || (!info.Gzip && !bytes.Equal(decoded.Bytes(), body)) {
			t.Fatalf("decoded copy has %d bytes; want the %d decompressed (gzip %v)", decoded.Len(), info.Bytes, info.Gzip)
		}
	})
}
