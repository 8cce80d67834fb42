package twin

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Reserved member names inside a property section.
const (
	keyMetadata            = "$metadata"
	keyVersion             = "$version"
	keyLastUpdated         = "$lastUpdated"
	keyLastUpdatedVersion  = "$lastUpdatedVersion"
	keyLastUpdatedBy       = "$lastUpdatedBy"
	keyLastUpdatedByDigest = "$lastUpdatedByDigest"
)

// Collection is one property section (desired or reported): the values plus
// the section's $metadata tree and $version. In JSON the three share one
// object: {"k":v,...,"$metadata":{...},"$version":n}.
//
// Values holds canonical JSON values (see the package doc). Change a
// section only through the Twin write methods, which keep Metadata and
// Version exact; they replace maps copy-on-write and never modify one in
// place, so Values and Metadata may be shared (see Twin.Clone).
type Collection struct {
	Values   map[string]any
	Metadata Metadata
	Version  int64
}

// Metadata is one node of a $metadata tree. The tree mirrors the values:
// one node per key at every level, objects included; array elements have
// no nodes of their own.
type Metadata struct {
	// LastUpdated is when the key (or, at the root, anything in the
	// section, deletions included) was last written.
	LastUpdated Time
	// LastUpdatedVersion is the desired $version of the write that last
	// set the key (at the root: that last changed the section); 0
	// (omitted) in reported metadata and at the root of a desired section
	// never written.
	LastUpdatedVersion int64
	// LastUpdatedBy and LastUpdatedByDigest name the automatic
	// configuration that wrote the key, if any; kept as read.
	LastUpdatedBy       string
	LastUpdatedByDigest string
	// Children holds the nodes of the keys of an object value.
	Children map[string]*Metadata
}

// MarshalJSON implements json.Marshaler.
func (c Collection) MarshalJSON() ([]byte, error) {
	return c.appendJSON(make([]byte, 0, 256), true), nil
}

// appendJSON appends the section; withMetadata false gives the device view.
func (c *Collection) appendJSON(b []byte, withMetadata bool) []byte {
	return appendObject(b, c.Values, func(b []byte, first bool) []byte {
		if !first {
			b = append(b, ',')
		}
		if withMetadata {
			b = append(b, `"$metadata":`...)
			b = c.Metadata.appendJSON(b)
			b = append(b, ',')
		}
		b = append(b, `"$version":`...)
		return strconv.AppendInt(b, c.Version, 10)
	})
}

// UnmarshalJSON implements json.Unmarshaler. Numbers decode as json.Number;
// other $-prefixed members than $metadata and $version are dropped.
func (c *Collection) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*c = Collection{}
		return nil
	}
	obj, err := decodeObject(data, "")
	if err != nil {
		return fmt.Errorf("twin: property section: %w", err)
	}
	out, err := collectionFromJSON(obj)
	if err != nil {
		return err
	}
	*c = out
	return nil
}

// collectionFromJSON builds a section from its decoded JSON object, taking
// over the object's values.
func collectionFromJSON(obj map[string]any) (Collection, error) {
	out := Collection{Values: make(map[string]any, len(obj))}
	for k, v := range obj {
		switch {
		case k == keyMetadata:
			node, ok := v.(map[string]any)
			if !ok {
				return Collection{}, fmt.Errorf("twin: $metadata is not an object")
			}
			md, err := metadataFromJSON(node)
			if err != nil {
				return Collection{}, err
			}
			out.Metadata = *md
		case k == keyVersion:
			n, ok := v.(json.Number)
			if !ok {
				return Collection{}, fmt.Errorf("twin: $version is not a number")
			}
			version, err := n.Int64()
			if err != nil {
				return Collection{}, fmt.Errorf("twin: $version: %w", err)
			}
			out.Version = version
		case len(k) > 0 && k[0] == '$':
		default:
			out.Values[k] = v
		}
	}
	return out, nil
}

// MarshalJSON implements json.Marshaler.
func (m Metadata) MarshalJSON() ([]byte, error) {
	return m.appendJSON(make([]byte, 0, 128)), nil
}

// appendJSON appends the node: its own $-members, then its children sorted.
func (m *Metadata) appendJSON(b []byte) []byte {
	b = append(b, `{"$lastUpdated":`...)
	b = m.LastUpdated.appendJSON(b)
	if m.LastUpdatedVersion != 0 {
		b = append(b, `,"$lastUpdatedVersion":`...)
		b = strconv.AppendInt(b, m.LastUpdatedVersion, 10)
	}
	if m.LastUpdatedBy != "" {
		b = append(b, `,"$lastUpdatedBy":`...)
		b = appendString(b, m.LastUpdatedBy)
	}
	if m.LastUpdatedByDigest != "" {
		b = append(b, `,"$lastUpdatedByDigest":`...)
		b = appendString(b, m.LastUpdatedByDigest)
	}
	for _, k := range sortedKeys(m.Children) {
		b = append(b, ',')
		b = appendString(b, k)
		b = append(b, ':')
		b = m.Children[k].appendJSON(b)
	}
	return append(b, '}')
}

// UnmarshalJSON implements json.Unmarshaler.
func (m *Metadata) UnmarshalJSON(data []byte) error {
	obj, err := decodeObject(data, "")
	if err != nil {
		return fmt.Errorf("twin: $metadata: %w", err)
	}
	md, err := metadataFromJSON(obj)
	if err != nil {
		return err
	}
	*m = *md
	return nil
}

// metadataFromJSON builds a metadata node from its decoded JSON object.
func metadataFromJSON(obj map[string]any) (*Metadata, error) {
	m := &Metadata{}
	for k, v := range obj {
		switch k {
		case keyLastUpdated:
			s, _ := v.(string)
			t, err := ParseTime(s)
			if err != nil {
				return nil, err
			}
			m.LastUpdated = t
		case keyLastUpdatedVersion:
			if n, ok := v.(json.Number); ok {
				m.LastUpdatedVersion, _ = n.Int64()
			}
		case keyLastUpdatedBy:
			m.LastUpdatedBy, _ = v.(string)
		case keyLastUpdatedByDigest:
			m.LastUpdatedByDigest, _ = v.(string)
		default:
			child, ok := v.(map[string]any)
			if !ok || (len(k) > 0 && k[0] == '$') {
				continue
			}
			node, err := metadataFromJSON(child)
			if err != nil {
				return nil, err
			}
			if m.Children == nil {
				m.Children = make(map[string]*Metadata, len(obj))
			}
			m.Children[k] = node
		}
	}
	return m, nil
}

// clone deep-copies the node and its children.
func (m *Metadata) clone() Metadata {
	out := *m
	if m.Children != nil {
		out.Children = make(map[string]*Metadata, len(m.Children))
		for k, child := range m.Children {
			c := child.clone()
			out.Children[k] = &c
		}
	}
	return out
}

// toJSONValue renders the node as a decoded JSON object, the form the query
// engine walks.
func (m *Metadata) toJSONValue() map[string]any {
	var r metadataRenderer
	return r.render(m)
}

// metadataRenderer renders metadata trees for QueryDocument. One write
// stamps many nodes with the same time and version, so it reuses the text
// of the last ones it rendered instead of allocating it per node.
type metadataRenderer struct {
	time        Time
	timeText    string
	version     int64
	versionText json.Number
}

// render returns the decoded JSON object of node m.
func (r *metadataRenderer) render(m *Metadata) map[string]any {
	out := make(map[string]any, len(m.Children)+2)
	if r.timeText == "" || !m.LastUpdated.Equal(r.time.Time) {
		r.time, r.timeText = m.LastUpdated, m.LastUpdated.String()
	}
	out[keyLastUpdated] = r.timeText
	if m.LastUpdatedVersion != 0 {
		if r.versionText == "" || m.LastUpdatedVersion != r.version {
			r.version, r.versionText = m.LastUpdatedVersion, int64Number(m.LastUpdatedVersion)
		}
		out[keyLastUpdatedVersion] = r.versionText
	}
	if m.LastUpdatedBy != "" {
		out[keyLastUpdatedBy] = m.LastUpdatedBy
	}
	if m.LastUpdatedByDigest != "" {
		out[keyLastUpdatedByDigest] = m.LastUpdatedByDigest
	}
	for k, child := range m.Children {
		out[k] = r.render(child)
	}
	return out
}

// DeepCopy returns a copy of the section that shares no memory with it.
func (c *Collection) DeepCopy() Collection {
	return Collection{Values: cloneObject(c.Values), Metadata: c.Metadata.clone(), Version: c.Version}
}
