package twin

import (
	"errors"
	"strconv"
	"time"
)

// DesiredNotification is what a connected device subscribed to desired
// updates must receive after a service write: Body is published on Topic(),
// i.e. $iothub/twin/PATCH/properties/desired/?$version=<Version>.
type DesiredNotification struct {
	// Version is the desired $version after the write.
	Version int64
	// Body is the JSON the device gets: the desired patch (PATCH) or the
	// full new desired set with removed keys as null (PUT), plus "$version".
	Body []byte
}

// Topic returns the MQTT topic of the notification.
func (n *DesiredNotification) Topic() string {
	return "$iothub/twin/PATCH/properties/desired/?$version=" + strconv.FormatInt(n.Version, 10)
}

// errNotImplemented marks write paths still being built.
var errNotImplemented = errors.New("twin: not implemented")

// PatchService applies a service PATCH (PATCH /twins/{id}) body: a partial
// twin whose "tags" and "properties.desired" are merged into the twin
// (objects merge recursively, scalars and arrays replace, null deletes, a
// null under a missing parent creates the parent as {}). Every other member
// (read-only root fields, properties.reported, $metadata and $version
// inside desired) is ignored, since SDKs send whole twins.
//
// The write is atomic: the body is validated against the limits of the
// resulting sections first and on error t is unchanged. On success the
// twin version and etag counter advance by one, and desired.$version by one
// if the body touched desired. A body that changes nothing (only deletions
// of absent keys, or no tags/desired at all) leaves t unchanged. The
// returned notification is nil when the device is not to be notified.
func (t *Twin) PatchService(body []byte, now time.Time, opts Options) (*DesiredNotification, error) {
	return nil, errNotImplemented
}

// ReplaceService applies a service PUT (PUT /twins/{id}) body: "tags" and
// "properties.desired", each when present, replace the section whole. A
// null anywhere inside them is an ArgumentInvalid error; $metadata and
// $version inside desired and all other members are ignored. The
// notification carries the full new desired set with every removed key
// (at any depth) as null.
//
// Atomicity and counters are as for PatchService; a replaced section
// counts as written even when its content did not change.
func (t *Twin) ReplaceService(body []byte, now time.Time, opts Options) (*DesiredNotification, error) {
	return nil, errNotImplemented
}

// PatchReported applies a device's reported-properties PATCH (the body of
// $iothub/twin/PATCH/properties/reported/) with the same merge rules as
// PatchService. Keys starting with "$" (including "$version", which SDKs
// echo from a GET) are ArgumentInvalid errors. On success reported.$version
// and the twin version advance by one (the etag does not: it counts service
// writes) and the new reported $version is returned for the response
// topic's "&$version=". A patch that changes nothing returns the current
// version and changes nothing.
func (t *Twin) PatchReported(patch []byte, now time.Time, opts Options) (int64, error) {
	return 0, errNotImplemented
}
