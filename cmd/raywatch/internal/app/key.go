package app

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// loadOrCreateKey returns the intake key kept in the data folder, creating
// it (and printing it once, with the Logpush destination to use) on first
// start.
func loadOrCreateKey(dataDir string, out io.Writer) (string, error) {
	path := KeyFile(dataDir)
	b, err := os.ReadFile(path)
	if err == nil {
		key := strings.TrimSpace(string(b))
		if key == "" {
			return "", fmt.Errorf("intake key file %s is empty; delete it to generate a new key", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read intake key: %w", err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate intake key: %w", err)
	}
	key := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("save intake key: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("save intake key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("save intake key: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("save intake key: %w", err)
	}
	fmt.Fprintf(out, `
raywatch generated an intake key for intake "default" and saved it in %s.
It is shown only this once (set RAYWATCH_INTAKE_KEY to choose your own).

  intake key:        %s
  destination_conf:  https://YOUR-RAYWATCH-HOST/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=%s

Use that destination_conf in a Cloudflare Logpush http_requests job (Logpush
needs HTTPS: start raywatch with --tls-cert/--tls-key or put it behind a TLS proxy).

`, path, key, key)
	return key, nil
}
