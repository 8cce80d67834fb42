package device

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// versionKey is the key IoT Hub adds to each property section and to every
// desired notification.
const versionKey = "$version"

// Properties is one section of the device view of a twin: the property
// values and the section's $version. JSON numbers decode as [json.Number],
// so values re-encode exactly as received.
type Properties struct {
	// Version is the section's $version.
	Version int64
	// Values holds the properties without $version (and without $metadata,
	// which the MQTT view does not carry; it is dropped if a hub sends it).
	Values map[string]any
}

// MarshalJSON renders the section as IoT Hub does: the values plus $version.
func (p Properties) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(p.Values)+1)
	for k, v := range p.Values {
		m[k] = v
	}
	m[versionKey] = p.Version
	return json.Marshal(m)
}

// UnmarshalJSON reads a section, splitting $version from the values.
func (p *Properties) UnmarshalJSON(b []byte) error {
	values, version, err := decodeSection(b)
	if err != nil {
		return err
	}
	p.Values, p.Version = values, version
	return nil
}

// Twin is the device view of a twin as the MQTT GET returns it:
// {"desired":{...,"$version":n},"reported":{...,"$version":m}}. It has no
// tags and no metadata; those are visible to the service side only.
type Twin struct {
	Desired  Properties `json:"desired"`
	Reported Properties `json:"reported"`
}

// DesiredPatch is a change of desired properties, delivered in increasing
// Version order by [Client.DesiredPatches].
type DesiredPatch struct {
	// Version is the desired $version after the change.
	Version int64
	// Properties is the merge patch as the hub sent it (a nil value deletes
	// the key), or the whole desired document when Full is set.
	Properties map[string]any
	// Full marks the complete desired document read with GET after a
	// (re)connect or a detected gap: it replaces, rather than patches, what
	// the consumer knew. Keys absent from it no longer exist.
	Full bool
}

// decodeSection decodes a JSON object into its values and $version,
// dropping $metadata. Numbers decode as json.Number.
func decodeSection(b []byte) (map[string]any, int64, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, 0, fmt.Errorf("twin properties are not a JSON object: %w", err)
	}
	if m == nil {
		return map[string]any{}, 0, nil
	}
	var version int64
	if v, ok := m[versionKey]; ok {
		n, ok := v.(json.Number)
		if !ok {
			return nil, 0, fmt.Errorf("twin properties have a non-numeric $version")
		}
		var err error
		if version, err = n.Int64(); err != nil {
			return nil, 0, fmt.Errorf("twin properties have a non-integer $version")
		}
	}
	delete(m, versionKey)
	delete(m, "$metadata")
	return m, version, nil
}

// decodeTwin decodes a GET response body. It also accepts the old
// documentation's {"properties":{...}} wrapper, which no current hub sends
// but costs nothing to tolerate.
func decodeTwin(b []byte) (*Twin, error) {
	var wire struct {
		Desired    json.RawMessage `json:"desired"`
		Reported   json.RawMessage `json:"reported"`
		Properties *struct {
			Desired  json.RawMessage `json:"desired"`
			Reported json.RawMessage `json:"reported"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		return nil, fmt.Errorf("twin GET response is not JSON: %w", err)
	}
	if wire.Desired == nil && wire.Properties != nil {
		wire.Desired, wire.Reported = wire.Properties.Desired, wire.Properties.Reported
	}
	t := &Twin{}
	for _, s := range []struct {
		raw json.RawMessage
		dst *Properties
	}{{wire.Desired, &t.Desired}, {wire.Reported, &t.Reported}} {
		if len(s.raw) == 0 {
			s.dst.Values = map[string]any{}
			continue
		}
		if err := s.dst.UnmarshalJSON(s.raw); err != nil {
			return nil, err
		}
	}
	return t, nil
}
