package openai

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// Keys holds the accepted API keys as SHA-256 digests, so comparing takes
// the same time whatever a key's length.
type Keys struct{ keys [][sha256.Size]byte }

// LoadKeys reads one key per line; blank lines and lines starting with #
// are skipped.
func LoadKeys(path string, read func(string) ([]byte, error)) (*Keys, error) {
	b, err := read(path)
	if err != nil {
		return nil, err
	}
	k := &Keys{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k.keys = append(k.keys, sha256.Sum256([]byte(line)))
	}
	if len(k.keys) == 0 {
		return nil, fmt.Errorf("%s holds no API key", path)
	}
	return k, nil
}

// Valid compares key's digest in constant time against every key's: the
// time depends on neither the keys' lengths nor which one matches.
func (k *Keys) Valid(key string) bool {
	got := sha256.Sum256([]byte(key))
	ok := 0
	for _, want := range k.keys {
		ok |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return ok == 1
}
