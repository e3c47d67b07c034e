package normalize

import (
	"bytes"
	"compress/gzip"
	"io"
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
