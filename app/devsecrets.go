package app

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DevSecrets are the credentials `herald dev` generates on first start and
// keeps in its data directory, so tokens minted by `herald token` stay valid
// across restarts.
type DevSecrets struct {
	JWTSecret string `json:"jwt_secret"` // the HS256 secret, as is (like --jwt-secret)
	APIKey    string `json:"api_key"`
}

const devSecretsFile = "dev-secrets.json"

// LoadDevSecrets reads the data directory's secrets, creating them if absent.
func LoadDevSecrets(dataDir string) (DevSecrets, error) {
	path := filepath.Join(dataDir, devSecretsFile)
	raw, err := os.ReadFile(path)
	if err == nil {
		var s DevSecrets
		if err := json.Unmarshal(raw, &s); err != nil {
			return DevSecrets{}, fmt.Errorf("reading %s: %w", path, err)
		}
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return DevSecrets{}, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return DevSecrets{}, err
	}
	s := DevSecrets{JWTSecret: randomHex(32), APIKey: "dev-" + randomHex(16)}
	raw, _ = json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return DevSecrets{}, err
	}
	return s, nil
}

// ReadDevSecrets reads existing secrets without creating them.
func ReadDevSecrets(dataDir string) (DevSecrets, error) {
	raw, err := os.ReadFile(filepath.Join(dataDir, devSecretsFile))
	if err != nil {
		return DevSecrets{}, err
	}
	var s DevSecrets
	return s, json.Unmarshal(raw, &s)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
