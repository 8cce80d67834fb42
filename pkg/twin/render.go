package twin

import (
	"encoding/json"
	"strconv"
)

// MarshalJSON implements json.Marshaler with AppendJSON.
func (t Twin) MarshalJSON() ([]byte, error) {
	return t.AppendJSON(make([]byte, 0, 4096)), nil
}

// AppendJSON appends the service JSON of the twin to b: the same document
// json.Marshal produces (field order, omitted empty fields, key order),
// written directly rather than through reflection because the hub renders
// a twin on every twin response and for every row of SELECT *. Unlike
// json.Marshal it does not escape <, > and & in strings.
func (t *Twin) AppendJSON(b []byte) []byte {
	b = append(b, `{"deviceId":`...)
	b = appendString(b, t.DeviceID)
	b = appendOptionalString(b, `,"moduleId":`, t.ModuleID)
	b = append(b, `,"etag":`...)
	b = appendString(b, t.ETag)
	b = appendOptionalString(b, `,"deviceEtag":`, t.DeviceETag)
	b = appendOptionalString(b, `,"status":`, t.Status)
	b = appendOptionalString(b, `,"statusReason":`, t.StatusReason)
	b = append(b, `,"statusUpdateTime":`...)
	b = t.StatusUpdateTime.appendJSON(b)
	b = appendOptionalString(b, `,"connectionState":`, t.ConnectionState)
	b = append(b, `,"lastActivityTime":`...)
	b = t.LastActivityTime.appendJSON(b)
	b = append(b, `,"cloudToDeviceMessageCount":`...)
	b = strconv.AppendInt(b, t.CloudToDeviceMessageCount, 10)
	b = appendOptionalString(b, `,"authenticationType":`, t.AuthenticationType)
	if x := t.X509Thumbprint; x != nil {
		b = append(b, `,"x509Thumbprint":{"primaryThumbprint":`...)
		b = appendNullableString(b, x.PrimaryThumbprint)
		b = append(b, `,"secondaryThumbprint":`...)
		b = appendNullableString(b, x.SecondaryThumbprint)
		b = append(b, '}')
	}
	b = append(b, `,"modelId":`...)
	b = appendString(b, t.ModelID)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, t.Version, 10)
	if len(t.Tags) > 0 {
		b = append(b, `,"tags":`...)
		b = appendObject(b, t.Tags, nil)
	}
	b = append(b, `,"properties":{"desired":`...)
	b = t.Properties.Desired.appendJSON(b, true)
	b = append(b, `,"reported":`...)
	b = t.Properties.Reported.appendJSON(b, true)
	b = append(b, '}')
	if t.Capabilities != nil {
		b = append(b, `,"capabilities":{"iotEdge":`...)
		b = strconv.AppendBool(b, t.Capabilities.IoTEdge)
		b = append(b, '}')
	}
	b = appendOptionalString(b, `,"deviceScope":`, t.DeviceScope)
	if len(t.ParentScopes) > 0 {
		b = append(b, `,"parentScopes":[`...)
		for i, scope := range t.ParentScopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, scope)
		}
		b = append(b, ']')
	}
	if len(t.Configurations) > 0 {
		b = append(b, `,"configurations":{`...)
		for i, k := range sortedKeys(t.Configurations) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, `:{"status":`...)
			b = appendString(b, t.Configurations[k].Status)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendOptionalString appends member (",\"name\":") and s unless s is
// empty, like the omitempty option.
func appendOptionalString(b []byte, member, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, member...), s)
}

// appendNullableString appends *s, or null for a nil pointer.
func appendNullableString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendString(b, *s)
}

// DeviceView returns the body of the MQTT twin GET response:
// {"desired":{...,"$version":d},"reported":{...,"$version":r}}, without
// $metadata, tags or root fields.
func (t *Twin) DeviceView() []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"desired":`...)
	b = t.Properties.Desired.appendJSON(b, false)
	b = append(b, `,"reported":`...)
	b = t.Properties.Reported.appendJSON(b, false)
	return append(b, '}')
}

// Clone returns a copy of t that is cheap to make: root fields, slices and
// maps of the root are copied, while the tags, property values and
// $metadata trees are shared. That is safe because those trees are
// immutable: the write methods never modify a map they did not just
// create (they copy the maps along the paths they change), so a write to
// either twin never shows in the other. Code that wants to modify the maps
// in place must use DeepCopy.
func (t *Twin) Clone() *Twin {
	out := *t
	if t.X509Thumbprint != nil {
		x := *t.X509Thumbprint
		out.X509Thumbprint = &x
	}
	if t.Capabilities != nil {
		c := *t.Capabilities
		out.Capabilities = &c
	}
	if t.ParentScopes != nil {
		out.ParentScopes = append([]string(nil), t.ParentScopes...)
	}
	if t.Configurations != nil {
		out.Configurations = make(map[string]ConfigurationStatus, len(t.Configurations))
		for k, v := range t.Configurations {
			out.Configurations[k] = v
		}
	}
	return &out
}

// DeepCopy returns a copy of t that shares no memory with it.
func (t *Twin) DeepCopy() *Twin {
	out := t.Clone()
	out.Tags = cloneObject(t.Tags)
	out.Properties.Desired = t.Properties.Desired.DeepCopy()
	out.Properties.Reported = t.Properties.Reported.DeepCopy()
	return out
}

// QueryDocument returns the twin as the decoded JSON document the query
// engine evaluates, equal to decoding json.Marshal(t) with UseNumber:
// root fields under their JSON names, timestamps as strings, numbers as
// json.Number, properties with $metadata and $version. Tags and property
// values are shared with t, not copied: treat the document as read-only and
// do not keep it across writes to t.
func (t *Twin) QueryDocument() map[string]any {
	doc := make(map[string]any, 20)
	doc["deviceId"] = t.DeviceID
	if t.ModuleID != "" {
		doc["moduleId"] = t.ModuleID
	}
	doc["etag"] = t.ETag
	if t.DeviceETag != "" {
		doc["deviceEtag"] = t.DeviceETag
	}
	if t.Status != "" {
		doc["status"] = t.Status
	}
	if t.StatusReason != "" {
		doc["statusReason"] = t.StatusReason
	}
	doc["statusUpdateTime"] = t.StatusUpdateTime.String()
	if t.ConnectionState != "" {
		doc["connectionState"] = t.ConnectionState
	}
	doc["lastActivityTime"] = t.LastActivityTime.String()
	doc["cloudToDeviceMessageCount"] = int64Number(t.CloudToDeviceMessageCount)
	if t.AuthenticationType != "" {
		doc["authenticationType"] = t.AuthenticationType
	}
	if t.X509Thumbprint != nil {
		doc["x509Thumbprint"] = map[string]any{
			"primaryThumbprint":   optionalString(t.X509Thumbprint.PrimaryThumbprint),
			"secondaryThumbprint": optionalString(t.X509Thumbprint.SecondaryThumbprint),
		}
	}
	doc["modelId"] = t.ModelID
	doc["version"] = int64Number(t.Version)
	if len(t.Tags) > 0 {
		doc["tags"] = t.Tags
	}
	doc["properties"] = map[string]any{
		"desired":  t.Properties.Desired.queryValue(),
		"reported": t.Properties.Reported.queryValue(),
	}
	if t.Capabilities != nil {
		doc["capabilities"] = map[string]any{"iotEdge": t.Capabilities.IoTEdge}
	}
	if t.DeviceScope != "" {
		doc["deviceScope"] = t.DeviceScope
	}
	if len(t.ParentScopes) > 0 {
		scopes := make([]any, len(t.ParentScopes))
		for i, s := range t.ParentScopes {
			scopes[i] = s
		}
		doc["parentScopes"] = scopes
	}
	if len(t.Configurations) > 0 {
		configs := make(map[string]any, len(t.Configurations))
		for k, v := range t.Configurations {
			configs[k] = map[string]any{"status": v.Status}
		}
		doc["configurations"] = configs
	}
	return doc
}

// queryValue renders the section as a decoded JSON object sharing Values.
func (c *Collection) queryValue() map[string]any {
	out := make(map[string]any, len(c.Values)+2)
	for k, v := range c.Values {
		out[k] = v
	}
	out[keyMetadata] = c.Metadata.toJSONValue()
	out[keyVersion] = int64Number(c.Version)
	return out
}

// int64Number returns n as a json.Number.
func int64Number(n int64) json.Number {
	return json.Number(strconv.FormatInt(n, 10))
}

// optionalString returns *s, or nil (JSON null) for a nil pointer.
func optionalString(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
