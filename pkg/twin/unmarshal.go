package twin

import (
	"encoding/json"
	"fmt"
	"strings"
)

// twinFields is Twin without its methods, for encoding/json's struct codec
// (the tests compare the hand-written codecs with it).
type twinFields Twin

// twinMembers lists the JSON members of a twin, for matching member names
// case-insensitively as encoding/json does.
var twinMembers = []string{
	"deviceId", "moduleId", "etag", "deviceEtag", "status", "statusReason",
	"statusUpdateTime", "connectionState", "lastActivityTime",
	"cloudToDeviceMessageCount", "authenticationType", "x509Thumbprint",
	"modelId", "version", "tags", "properties", "capabilities", "deviceScope",
	"parentScopes", "configurations",
}

// UnmarshalJSON implements json.Unmarshaler. Numbers in tags and property
// values decode as json.Number (see the package doc). Member names match
// case-insensitively and unknown members are ignored, as with
// encoding/json; it is written by hand because the hub decodes every
// stored twin when it starts and encoding/json's reflection was an order
// of magnitude slower.
func (t *Twin) UnmarshalJSON(data []byte) error {
	v, err := parseJSON(data)
	if err != nil {
		return fmt.Errorf("twin: %w", err)
	}
	if v == nil {
		return nil // like encoding/json: null leaves the value alone
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("twin: a twin must be a JSON object")
	}
	d := twinDecoder{obj: canonicalMembers(obj)}
	out := Twin{
		DeviceID:                  d.string("deviceId"),
		ModuleID:                  d.string("moduleId"),
		ETag:                      d.string("etag"),
		DeviceETag:                d.string("deviceEtag"),
		Status:                    d.string("status"),
		StatusReason:              d.string("statusReason"),
		StatusUpdateTime:          d.time("statusUpdateTime"),
		ConnectionState:           d.string("connectionState"),
		LastActivityTime:          d.time("lastActivityTime"),
		CloudToDeviceMessageCount: d.int64("cloudToDeviceMessageCount"),
		AuthenticationType:        d.string("authenticationType"),
		X509Thumbprint:            d.thumbprint("x509Thumbprint"),
		ModelID:                   d.string("modelId"),
		Version:                   d.int64("version"),
		Tags:                      d.object("tags"),
		Capabilities:              d.capabilities("capabilities"),
		DeviceScope:               d.string("deviceScope"),
		ParentScopes:              d.strings("parentScopes"),
		Configurations:            d.configurations("configurations"),
	}
	if props := d.object("properties"); props != nil {
		pd := twinDecoder{obj: props}
		out.Properties.Desired = pd.collection("desired")
		out.Properties.Reported = pd.collection("reported")
		d.err = firstError(d.err, pd.err)
	}
	if d.err != nil {
		return d.err
	}
	*t = out
	return nil
}

// canonicalMembers renames members that match a twin member only
// case-insensitively, unless the exact name is present too.
func canonicalMembers(obj map[string]any) map[string]any {
	for k, v := range obj {
		for _, name := range twinMembers {
			if k == name || !strings.EqualFold(k, name) {
				continue
			}
			if _, exact := obj[name]; !exact {
				obj[name] = v
			}
			delete(obj, k)
		}
	}
	return obj
}

// twinDecoder reads typed members from a decoded object and remembers the
// first type error.
type twinDecoder struct {
	obj map[string]any
	err error
}

// fail records a type error for member name.
func (d *twinDecoder) fail(name string, v any, want string) {
	if d.err == nil {
		d.err = fmt.Errorf("twin: member %q is %T, want %s", name, v, want)
	}
}

// string reads a string member; null or absent is "".
func (d *twinDecoder) string(name string) string {
	switch v := d.obj[name].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		d.fail(name, v, "a string")
		return ""
	}
}

// time reads a timestamp member in any form ParseTime accepts.
func (d *twinDecoder) time(name string) Time {
	s := d.string(name)
	t, err := ParseTime(s)
	if err != nil && d.err == nil {
		d.err = err
	}
	return t
}

// int64 reads an integer member; null or absent is 0.
func (d *twinDecoder) int64(name string) int64 {
	switch v := d.obj[name].(type) {
	case nil:
		return 0
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			d.fail(name, v, "an integer")
		}
		return n
	default:
		d.fail(name, v, "a number")
		return 0
	}
}

// object reads an object member; null or absent is nil.
func (d *twinDecoder) object(name string) map[string]any {
	switch v := d.obj[name].(type) {
	case nil:
		return nil
	case map[string]any:
		return v
	default:
		d.fail(name, v, "an object")
		return nil
	}
}

// thumbprint reads the x509Thumbprint member.
func (d *twinDecoder) thumbprint(name string) *X509Thumbprint {
	obj := d.object(name)
	if obj == nil {
		return nil
	}
	td := twinDecoder{obj: obj}
	x := &X509Thumbprint{
		PrimaryThumbprint:   td.optionalString("primaryThumbprint"),
		SecondaryThumbprint: td.optionalString("secondaryThumbprint"),
	}
	d.err = firstError(d.err, td.err)
	return x
}

// optionalString reads a string member that may be null.
func (d *twinDecoder) optionalString(name string) *string {
	if d.obj[name] == nil {
		return nil
	}
	s := d.string(name)
	return &s
}

// capabilities reads the capabilities member.
func (d *twinDecoder) capabilities(name string) *Capabilities {
	obj := d.object(name)
	if obj == nil {
		return nil
	}
	c := &Capabilities{}
	switch v := obj["iotEdge"].(type) {
	case nil:
	case bool:
		c.IoTEdge = v
	default:
		d.fail(name+".iotEdge", v, "a boolean")
	}
	return c
}

// strings reads an array-of-strings member.
func (d *twinDecoder) strings(name string) []string {
	switch v := d.obj[name].(type) {
	case nil:
		return nil
	case []any:
		out := make([]string, len(v))
		for i, elem := range v {
			s, ok := elem.(string)
			if !ok {
				d.fail(name, elem, "an array of strings")
			}
			out[i] = s
		}
		return out
	default:
		d.fail(name, v, "an array")
		return nil
	}
}

// configurations reads the configurations member.
func (d *twinDecoder) configurations(name string) map[string]ConfigurationStatus {
	obj := d.object(name)
	if obj == nil {
		return nil
	}
	out := make(map[string]ConfigurationStatus, len(obj))
	for k, v := range obj {
		entry, ok := v.(map[string]any)
		if !ok {
			d.fail(name+"."+k, v, "an object")
			continue
		}
		cd := twinDecoder{obj: entry}
		out[k] = ConfigurationStatus{Status: cd.string("status")}
		d.err = firstError(d.err, cd.err)
	}
	return out
}

// collection reads a property section member.
func (d *twinDecoder) collection(name string) Collection {
	obj := d.object(name)
	if obj == nil {
		return Collection{}
	}
	c, err := collectionFromJSON(obj)
	if err != nil && d.err == nil {
		d.err = err
	}
	return c
}

// firstError returns a if it is not nil, else b.
func firstError(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
