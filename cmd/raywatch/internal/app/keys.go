package app

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
)

// IntakeKey returns the key of the named intake the way raywatch serve
// finds it: RAYWATCH_INTAKE_KEY, RAYWATCH_INTAKE_KEYS or
// RAYWATCH_INTAKE_KEYS_FILE, else the key serve generated in dataDir. It
// never creates a key.
func IntakeKey(env Env, dataDir, intake string) (string, error) {
	keys, err := IntakeKeysFromEnv(env)
	if err != nil {
		return "", err
	}
	if len(keys) > 0 {
		if k, ok := keys[intake]; ok {
			return k, nil
		}
		names := slices.Sorted(maps.Keys(keys))
		return "", fmt.Errorf("no intake named %q in RAYWATCH_INTAKE_KEY(S); the configured intakes are %s; pick one with --intake", intake, strings.Join(names, ", "))
	}
	path := KeyFile(dataDir)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("no intake key: %s does not exist and RAYWATCH_INTAKE_KEY is not set; start raywatch serve once with the same --data-dir (it generates the key), or set RAYWATCH_INTAKE_KEY", path)
	case err != nil:
		return "", fmt.Errorf("read intake key: %w", err)
	}
	if intake != "default" {
		return "", fmt.Errorf("no intake named %q: the key in %s is intake \"default\"; set RAYWATCH_INTAKE_KEYS to define more intakes", intake, path)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("intake key file %s is empty", path)
	}
	return key, nil
}

// LocalIntakeKeys returns the intake keys raywatch serve would use, or
// none when they cannot be read (status works without them).
func LocalIntakeKeys(env Env, dataDir string) map[string]string {
	keys, err := IntakeKeysFromEnv(env)
	if err == nil && len(keys) > 0 {
		return keys
	}
	b, err := os.ReadFile(KeyFile(dataDir))
	if err != nil {
		return nil
	}
	if k := strings.TrimSpace(string(b)); k != "" {
		return map[string]string{"default": k}
	}
	return nil
}
