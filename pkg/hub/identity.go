package hub

import (
	"encoding/json"
	"strconv"
	"sync/atomic"

	"github.com/twinsync/twinsync/pkg/query"
	"github.com/twinsync/twinsync/pkg/twin"
)

// identity is one stored record: a device or module registry entry, its
// twin and the counters the hub owns. Records are immutable once stored;
// change a copy made by clone.
type identity struct {
	Device Device     `json:"device"`
	Twin   *twin.Twin `json:"twin"`
	// DeviceEtagCounter backs Device.Etag (base64 of a decimal counter).
	DeviceEtagCounter uint64 `json:"deviceEtagCounter"`

	// doc caches the twin as a query document; built on first use, since
	// most writes are never queried before the next write replaces them.
	doc atomic.Pointer[map[string]any]
	// json caches the twin's REST JSON, built on first use.
	json atomic.Pointer[[]byte]
}

// key is the record's store key and query sort key.
func (r *identity) key() string { return query.Key(r.Device.DeviceID, r.Device.ModuleID) }

// isModule reports whether the record is a module identity.
func (r *identity) isModule() bool { return r.Device.ModuleID != "" }

// afterLoad rebuilds derived state after decoding from the store.
func (r *identity) afterLoad() { r.refresh() }

// clone returns a deep copy whose twin and device may be changed freely.
func (r *identity) clone() *identity {
	c := &identity{Device: r.Device, Twin: r.Twin.Clone(), DeviceEtagCounter: r.DeviceEtagCounter}
	if r.Device.Capabilities != nil {
		caps := *r.Device.Capabilities
		c.Device.Capabilities = &caps
	}
	if r.Device.StatusReason != nil {
		reason := *r.Device.StatusReason
		c.Device.StatusReason = &reason
	}
	return c
}

// refresh copies the identity's root fields into the twin (they are the
// same facts shown in two places) and rebuilds the query document.
func (r *identity) refresh() {
	t, d := r.Twin, &r.Device
	t.DeviceID, t.ModuleID = d.DeviceID, d.ModuleID
	t.DeviceETag = d.Etag
	t.Status = d.Status
	t.StatusReason = ""
	if d.StatusReason != nil {
		t.StatusReason = *d.StatusReason
	}
	t.StatusUpdateTime = parseTimeOrZero(d.StatusUpdatedTime)
	t.ConnectionState = d.ConnectionState
	t.LastActivityTime = parseTimeOrZero(d.LastActivityTime)
	t.CloudToDeviceMessageCount = d.CloudToDeviceMessageCount
	t.AuthenticationType = d.Authentication.Type
	if d.Capabilities != nil {
		t.Capabilities = &twin.Capabilities{IoTEdge: d.Capabilities.IotEdge}
	} else {
		t.Capabilities = nil
	}
	t.DeviceScope, t.ParentScopes = d.DeviceScope, d.ParentScopes
	r.doc.Store(nil)
	r.json.Store(nil)
}

// twinJSON returns the twin's REST JSON, shared by GET, PATCH/PUT
// responses and query pages.
func (r *identity) twinJSON() rawJSON {
	if b := r.json.Load(); b != nil {
		return *b
	}
	// AppendJSON writes directly; json.Marshal would re-scan its output.
	b := r.Twin.AppendJSON(make([]byte, 0, 1024))
	r.json.Store(&b)
	return b
}

// document returns the twin as the query engine's document. It shares
// values with the twin, which is immutable once the record is stored.
func (r *identity) document() map[string]any {
	if d := r.doc.Load(); d != nil {
		return *d
	}
	d := r.Twin.QueryDocument()
	r.doc.Store(&d)
	return d
}

func parseTimeOrZero(s string) twin.Time {
	t, err := twin.ParseTime(s)
	if err != nil {
		return twin.Time{}
	}
	return t
}

// marshalRecord encodes the record for the store, reusing the cached twin
// JSON (which the response to the write then reuses too). It decodes with
// encoding/json into identity.
func (r *identity) marshalRecord() ([]byte, error) {
	device, err := json.Marshal(&r.Device)
	if err != nil {
		return nil, err
	}
	tw := r.twinJSON()
	b := make([]byte, 0, len(device)+len(tw)+64)
	b = append(b, `{"device":`...)
	b = append(b, device...)
	b = append(b, `,"twin":`...)
	b = append(b, tw...)
	b = append(b, `,"deviceEtagCounter":`...)
	b = strconv.AppendUint(b, r.DeviceEtagCounter, 10)
	return append(b, '}'), nil
}
