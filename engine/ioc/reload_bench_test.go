package ioc

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkReloadSmallEdit edits a 10-line file next to the 1M-indicator
// feed (and, unless -short, a 10M one) and reloads: the big files are not
// parsed or indexed again, so the time is that of the small file.
func BenchmarkReloadSmallEdit(b *testing.B) {
	for _, scale := range []int{1, 10} {
		b.Run(fmt.Sprintf("%dM", scale), func(b *testing.B) {
			if scale > 1 && testing.Short() {
				b.Skip("-short: the 10M feed takes a minute to write and load")
			}
			feed := genFeedScaled(b, b.TempDir(), scale)
			small := filepath.Join(feed.dir, "small.txt")
			write := func(i int) {
				var s string
				for j := range 10 {
					s += fmt.Sprintf("198.51.100.%d\n", (i+j)%250+1)
				}
				if err := os.WriteFile(small, []byte(s), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			write(0)
			t0 := time.Now()
			w, err := NewWatcher(feed.dir, Options{Now: func() time.Time { return benchNow }})
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("first load of the %dM feed: %v", scale, time.Since(t0))
			want := (nIPv4+nCIDR+nDomain+nURL)*scale + nUA + nJA3 + 10
			i := 0
			for b.Loop() {
				i++
				b.StopTimer()
				write(i)
				b.StartTimer()
				if err := w.reload(map[string]bool{"small.txt": true}, false, false); err != nil {
					b.Fatal(err)
				}
			}
			if got := w.Current().Len(); got != want {
				b.Fatalf("Len = %d; want %d", got, want)
			}
		})
	}
}
