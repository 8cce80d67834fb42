package hub

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Permission is a right granted by a shared access policy (spec §1.3).
type Permission uint8

// The four IoT Hub permissions.
const (
	RegistryRead Permission = 1 << iota
	RegistryWrite
	ServiceConnect
	DeviceConnect
)

// Has reports whether p includes every permission in q.
func (p Permission) Has(q Permission) bool { return p&q == q }

// Policy is a shared access policy: a key name, two keys and its rights.
type Policy struct {
	Name         string     `json:"keyName"`
	PrimaryKey   string     `json:"primaryKey"`
	SecondaryKey string     `json:"secondaryKey"`
	Rights       Permission `json:"rights"`
}

// StandardPolicyRights are the five policies every IoT Hub starts with.
var StandardPolicyRights = map[string]Permission{
	"iothubowner":       RegistryRead | RegistryWrite | ServiceConnect | DeviceConnect,
	"service":           ServiceConnect,
	"device":            DeviceConnect,
	"registryRead":      RegistryRead,
	"registryReadWrite": RegistryRead | RegistryWrite,
}

const policiesFile = "policies.json"

// PolicyKeys gives keys for standard policies, e.g. from a Kubernetes
// Secret, so that a deployment is reproducible. The map is keyed by policy
// name; a missing secondary key is generated.
type PolicyKeys map[string]struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey,omitempty"`
}

// ParsePolicyKeys reads PolicyKeys from JSON of the form
// {"iothubowner":{"primaryKey":"...","secondaryKey":"..."}, ...}.
func ParsePolicyKeys(data []byte) (PolicyKeys, error) {
	var pk PolicyKeys
	if err := json.Unmarshal(data, &pk); err != nil {
		return nil, fmt.Errorf("policy keys: %w", err)
	}
	for name, k := range pk {
		if _, ok := StandardPolicyRights[name]; !ok {
			return nil, fmt.Errorf("policy keys: unknown policy %q", name)
		}
		if err := validateKey(k.PrimaryKey); err != nil {
			return nil, fmt.Errorf("policy keys: %s primary key: %w", name, err)
		}
		if k.SecondaryKey != "" {
			if err := validateKey(k.SecondaryKey); err != nil {
				return nil, fmt.Errorf("policy keys: %s secondary key: %w", name, err)
			}
		}
	}
	return pk, nil
}

// loadOrCreatePolicies returns the policies kept in dir (creating the
// standard set with random keys on first start) with given keys applied on
// top. Given keys win, so rotating a Secret rotates the hub's keys.
func loadOrCreatePolicies(dir string, given PolicyKeys) (map[string]*Policy, error) {
	policies := map[string]*Policy{}
	path := ""
	if dir != "" {
		path = filepath.Join(dir, policiesFile)
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			var list []*Policy
			if err := json.Unmarshal(data, &list); err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			for _, p := range list {
				policies[p.Name] = p
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	changed := false
	for name, rights := range StandardPolicyRights {
		if _, ok := policies[name]; !ok {
			policies[name] = &Policy{Name: name, PrimaryKey: NewKey(), SecondaryKey: NewKey(), Rights: rights}
			changed = true
		}
	}
	for name, k := range given {
		p := policies[name]
		if p.PrimaryKey != k.PrimaryKey || (k.SecondaryKey != "" && p.SecondaryKey != k.SecondaryKey) {
			p.PrimaryKey = k.PrimaryKey
			if k.SecondaryKey != "" {
				p.SecondaryKey = k.SecondaryKey
			}
			changed = true
		}
	}
	if changed && path != "" {
		if err := writeFileAtomic(path, marshalPolicies(policies), 0o600); err != nil {
			return nil, err
		}
	}
	return policies, nil
}

func marshalPolicies(policies map[string]*Policy) []byte {
	list := make([]*Policy, 0, len(policies))
	for _, p := range policies {
		list = append(list, p)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	data, _ := json.MarshalIndent(list, "", "  ")
	return data
}

// NewKey returns a new random shared access key: 32 random bytes in base64,
// the form IoT Hub generates.
func NewKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.StdEncoding.EncodeToString(b)
}

// validateKey checks that a supplied key is base64 of 16 to 64 bytes, as
// IoT Hub requires. The message never contains the key.
func validateKey(key string) error {
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return errors.New("the key is not valid base64")
	}
	if len(b) < 16 || len(b) > 64 {
		return errors.New("the key must be between 16 and 64 bytes long")
	}
	return nil
}
