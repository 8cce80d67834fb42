package twin

import (
	"maps"
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
	tags, desired, err := serviceSections(body)
	if err != nil {
		return nil, err
	}
	if err := checkPatch(SectionTags, t.Tags, tags, opts); err != nil {
		return nil, err
	}
	if err := checkPatch(SectionDesired, t.Properties.Desired.Values, desired, opts); err != nil {
		return nil, err
	}

	stamp := NewTime(now)
	d := &t.Properties.Desired
	desiredVersion := d.Version + 1
	var newTags, newDesired map[string]any
	var desiredMD *Metadata
	tagsTouched, desiredTouched := false, false
	if tags != nil {
		tagMerger := merger{stamp: stamp}
		newTags, _, tagsTouched = tagMerger.merge(t.Tags, nil, tags)
	}
	if desired != nil {
		desiredMerger := merger{stamp: stamp, version: desiredVersion}
		newDesired, desiredMD, desiredTouched = desiredMerger.merge(d.Values, &d.Metadata, desired)
	}
	if !tagsTouched && !desiredTouched {
		return nil, nil
	}
	t.Version++
	t.bumpETag()
	if tagsTouched {
		t.Tags = newTags
	}
	if !desiredTouched {
		return nil, nil
	}
	d.Values, d.Metadata, d.Version = newDesired, *desiredMD, desiredVersion
	d.Metadata.LastUpdated, d.Metadata.LastUpdatedVersion = stamp, desiredVersion
	return newNotification(desiredVersion, desired), nil
}

// ReplaceService applies a service PUT (PUT /twins/{id}) body: "tags" and
// "properties.desired", each when present, replace the section whole. A
// null anywhere inside them is an ArgumentInvalid error; $metadata and
// $version inside desired and all other members are ignored. The
// notification carries the full new desired set with every removed key
// (at any depth where old and new are both objects) as null.
//
// Atomicity and counters are as for PatchService; a replaced section
// counts as written even when its content did not change.
func (t *Twin) ReplaceService(body []byte, now time.Time, opts Options) (*DesiredNotification, error) {
	tags, desired, err := serviceSections(body)
	if err != nil {
		return nil, err
	}
	if tags != nil {
		if err := ValidateSection(SectionTags, tags, opts); err != nil {
			return nil, err
		}
	}
	if desired != nil {
		if err := ValidateSection(SectionDesired, desired, opts); err != nil {
			return nil, err
		}
	}
	if tags == nil && desired == nil {
		return nil, nil
	}

	t.Version++
	t.bumpETag()
	if tags != nil {
		t.Tags = tags
	}
	if desired == nil {
		return nil, nil
	}
	stamp := NewTime(now)
	d := &t.Properties.Desired
	version := d.Version + 1
	notification := &DesiredNotification{Version: version, Body: appendReplacement(make([]byte, 0, 256), d.Values, desired, version)}
	d.Values = desired
	d.Metadata = Metadata{LastUpdated: stamp, LastUpdatedVersion: version, Children: metadataFor(desired, stamp, version)}
	d.Version = version
	return notification, nil
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
	r := &t.Properties.Reported
	values, err := decodeObject(patch, SectionReported.Path())
	if err != nil {
		return r.Version, err
	}
	if err := checkPatch(SectionReported, r.Values, values, opts); err != nil {
		return r.Version, err
	}
	stamp := NewTime(now)
	m := merger{stamp: stamp}
	newValues, md, touched := m.merge(r.Values, &r.Metadata, values)
	if !touched {
		return r.Version, nil
	}
	r.Values, r.Metadata = newValues, *md
	r.Metadata.LastUpdated = stamp
	r.Version++
	t.Version++
	return r.Version, nil
}

// serviceSections extracts the writable parts of a service PATCH or PUT
// body: the tags object and the desired object without its $metadata and
// $version. A section that is absent or null is returned as nil.
func serviceSections(body []byte) (tags, desired map[string]any, err error) {
	root, err := decodeObject(body, "")
	if err != nil {
		return nil, nil, err
	}
	if tags, err = sectionObject(root, "tags", SectionTags); err != nil {
		return nil, nil, err
	}
	props, ok := root["properties"].(map[string]any)
	if !ok {
		if root["properties"] != nil {
			return nil, nil, argumentInvalid("properties", "properties must be a JSON object")
		}
		return tags, nil, nil
	}
	if desired, err = sectionObject(props, "desired", SectionDesired); err != nil {
		return nil, nil, err
	}
	_, hasMetadata := desired[keyMetadata]
	_, hasVersion := desired[keyVersion]
	if hasMetadata || hasVersion {
		// SDKs round-trip a fetched twin; the server owns these members.
		stripped := make(map[string]any, len(desired))
		for k, v := range desired {
			if k != keyMetadata && k != keyVersion {
				stripped[k] = v
			}
		}
		desired = stripped
	}
	return tags, desired, nil
}

// sectionObject returns parent[key] as an object; nil when absent or null.
func sectionObject(parent map[string]any, key string, section Section) (map[string]any, error) {
	v := parent[key]
	if v == nil {
		return nil, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, argumentInvalid(section.Path(), "%s must be a JSON object", section.Path())
	}
	return obj, nil
}

// checkPatch validates a merge patch for section and checks that the
// section it produces stays within its size limit. As in IoT Hub, only a
// write that grows the section can exceed the limit, so the full size is
// computed only then.
func checkPatch(section Section, values, patch map[string]any, opts Options) error {
	if patch == nil {
		return nil
	}
	if err := ValidatePatch(section, patch, opts); err != nil {
		return err
	}
	if delta := sizeDelta(values, patch); delta > 0 {
		if Size(values)+delta > section.MaxSize() {
			return sizeExceeded(section, section.MaxSize())
		}
	}
	return nil
}

// sizeDelta returns how much merging patch into values changes Size.
func sizeDelta(values, patch map[string]any) int {
	delta := 0
	for k, pv := range patch {
		old, exists := values[k]
		if p, ok := pv.(map[string]any); ok {
			if o, ok := old.(map[string]any); ok {
				delta += sizeDelta(o, p) // merged in place: the key stays
				continue
			}
		}
		if exists {
			delta -= textSize(k) + valueSize(old)
		}
		switch p := pv.(type) {
		case nil:
		case map[string]any:
			delta += textSize(k) + sizeDelta(nil, p)
		default:
			delta += textSize(k) + valueSize(pv)
		}
	}
	return delta
}

// merger applies validated merge patches copy-on-write: it never modifies
// a map of the twin it reads from, but returns new maps (and metadata
// nodes) along the paths the patch changes, sharing everything else. That
// is what lets Clone share value trees and the query document share values
// with a stored twin.
type merger struct {
	stamp Time
	// version is the desired $version written into $lastUpdatedVersion;
	// 0 in reported metadata.
	version int64
}

// merge returns values and md with patch applied, and whether anything
// changed; on no change it returns values and md themselves. md is nil for
// tags, which have no metadata. Every key the patch writes, and every
// object on the way to one, gets $lastUpdated = stamp (and, in desired,
// $lastUpdatedVersion). A patch value is stored as is, so the caller must
// not modify the patch afterwards.
func (m *merger) merge(values map[string]any, md *Metadata, patch map[string]any) (map[string]any, *Metadata, bool) {
	out, outMD := values, md
	touched := false
	// own copies the map and node before their first change.
	own := func() {
		if touched {
			return
		}
		touched = true
		// maps.Clone copies the hash table wholesale, much faster than
		// re-inserting every member.
		if out = maps.Clone(values); out == nil {
			out = make(map[string]any, len(patch))
		}
		if md != nil {
			node := *md
			if node.Children = maps.Clone(md.Children); node.Children == nil {
				node.Children = make(map[string]*Metadata, len(patch))
			}
			outMD = &node
		}
	}
	for k, pv := range patch {
		old, exists := values[k]
		switch p := pv.(type) {
		case nil:
			if exists {
				own()
				delete(out, k)
				if outMD != nil {
					delete(outMD.Children, k)
				}
			}
		case map[string]any:
			oldObject, isObject := old.(map[string]any)
			var oldNode *Metadata
			if md != nil {
				if oldNode = md.Children[k]; oldNode == nil || !isObject {
					oldNode = &Metadata{} // a new object starts a new subtree
				}
			}
			object, node, changed := m.merge(oldObject, oldNode, p)
			if !changed && isObject {
				continue
			}
			own()
			if object == nil {
				object = map[string]any{}
			}
			out[k] = object
			if outMD != nil {
				node.LastUpdated, node.LastUpdatedVersion = m.stamp, m.version
				outMD.Children[k] = node
			}
		default:
			own()
			out[k] = pv
			if outMD != nil {
				outMD.Children[k] = &Metadata{LastUpdated: m.stamp, LastUpdatedVersion: m.version}
			}
		}
	}
	return out, outMD, touched
}

// metadataFor builds the metadata children for freshly written values.
func metadataFor(values map[string]any, stamp Time, version int64) map[string]*Metadata {
	if len(values) == 0 {
		return nil
	}
	out := make(map[string]*Metadata, len(values))
	for k, v := range values {
		node := &Metadata{LastUpdated: stamp, LastUpdatedVersion: version}
		if obj, ok := v.(map[string]any); ok {
			node.Children = metadataFor(obj, stamp, version)
		}
		out[k] = node
	}
	return out
}

// newNotification renders the desired notification of a PATCH: the patch
// as sent plus "$version".
func newNotification(version int64, patch map[string]any) *DesiredNotification {
	body := appendObject(make([]byte, 0, 128), patch, func(b []byte, first bool) []byte {
		return appendVersion(b, first, version)
	})
	return &DesiredNotification{Version: version, Body: body}
}

// appendVersion appends the "$version" member.
func appendVersion(b []byte, first bool, version int64) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, `"$version":`...)
	return strconv.AppendInt(b, version, 10)
}

// appendReplacement renders the desired notification of a PUT: the new set,
// with null for every key of old missing from it, plus "$version".
func appendReplacement(b []byte, old, replacement map[string]any, version int64) []byte {
	return appendObject(b, removalsAsNull(old, replacement), func(b []byte, first bool) []byte {
		return appendVersion(b, first, version)
	})
}

// removalsAsNull returns replacement with a null member for every key of
// old it lacks; where both hold objects it recurses, so a device merging
// the result ends with exactly replacement. replacement is not modified.
func removalsAsNull(old, replacement map[string]any) map[string]any {
	out := make(map[string]any, len(replacement)+len(old))
	for k, v := range replacement {
		out[k] = v
		if nv, ok := v.(map[string]any); ok {
			if ov, ok := old[k].(map[string]any); ok {
				out[k] = removalsAsNull(ov, nv)
			}
		}
	}
	for k := range old {
		if _, kept := replacement[k]; !kept {
			out[k] = nil
		}
	}
	return out
}
