// Package twin is the one model of an Azure IoT Hub device or module twin
// shared by the embedded hub (pkg/hub), the service client (pkg/iothub) and
// the operator (controllers): the document and its JSON forms, the writes
// with IoT Hub's $metadata/$version/etag bookkeeping, the limits validator
// and the diff the operator patches with.
//
// # Document
//
// Twin holds the root fields, Tags and Properties (Desired and Reported,
// each a Collection of values, a $metadata tree and a $version).
// json.Marshal of a Twin (or, faster, AppendJSON) gives the service (REST)
// JSON; DeviceView the MQTT GET body; QueryDocument the decoded document
// the query engine walks.
// Timestamps (Time) are written as UTC with seven fractional digits and a
// Z, and read in every older form (no zone, fewer digits, null).
//
// Tags, property values and $metadata trees are immutable once they are in
// a Twin: the write methods copy the maps along the paths they change
// (copy-on-write) instead of modifying them. So Clone, which the hub's store
// calls on every write, copies only the root, and a QueryDocument taken
// before a write stays valid after it. DeepCopy is there for code that
// wants to modify maps in place.
//
// Bodies are decoded by a small JSON parser of this package rather than
// encoding/json, because decoding dominated the write path; a fuzz test
// checks that it accepts and produces exactly what encoding/json does.
//
// Values are canonical decoded JSON: map[string]any, []any, string, bool
// and json.Number. Numbers stay json.Number from decoding to storage so
// integers are range-checked exactly (±2^52) and a client's literal (1.0)
// reaches the device unchanged. Use EqualValues to compare numerically.
//
// # Counters
//
// The twin etag is the standard base64 of an 8-byte big-endian counter
// (ETagFromCounter). Each effective service write (PatchService,
// ReplaceService) adds one to the etag counter and to Version, and one to
// desired.$version when it touched desired; each effective reported patch
// adds one to reported.$version and to Version and leaves the etag alone.
// New gives version 2, etag counter 1 and both $version 1.
//
// # Choices where the spec marks a fact as inferred [X]
//
//   - A write that changes nothing (a patch that only deletes absent keys,
//     an empty patch, a body with neither tags nor desired) bumps no
//     counter, touches no $lastUpdated and sends no notification.
//   - Arrays are replaced whole by a patch; array elements get no
//     $metadata nodes; an object inside an array counts one nesting level.
//   - A nested null under a missing parent creates the parent as {} in
//     desired and tags too, not only in reported.
//   - Service writes ignore properties.reported, read-only root fields and
//     $metadata/$version inside desired (SDKs send whole twins); a body's
//     deviceId is not compared with the URL's (the hub does that if it
//     wants to).
//   - A tag-only write does not bump desired.$version and notifies nobody.
//   - In a PUT, "tags": null or "desired": null leaves that section as it
//     is; a null inside a section is ArgumentInvalid. Every key of a
//     replaced desired section gets the write's $lastUpdated and
//     $lastUpdatedVersion. The notification sets removed keys to null at
//     every depth where the old and new values are both objects, so a
//     device that merges the patch ends with exactly the new set.
//   - Only metadata nodes along the written paths change; the section
//     root's $lastUpdated (and in desired its $lastUpdatedVersion, as real
//     twins show) changes on every effective write, deletions included.
//   - Size is counted as the docs describe; arrays count the sum of their
//     elements. A section may be exactly at its limit; one byte more is
//     DeviceModelMaxPropertiesExceeded (403100, HTTP 403) with the text
//     "'Properties.Desired' size should be less than 32768 bytes." As the
//     docs word it, only a write that grows a section is refused for size.
//   - Depth: a key at path length 10 may hold an object, a key at 11 only
//     a non-object (edgeHub's rule and the docs' example).
//   - Only integer literals are range-checked (as IoT Hub's JSON.NET
//     parser types them); 1e20 and 5283920058631410000.0 are floats and
//     pass. Callers validating Go float64 values (decoded without
//     UseNumber) get integral floats checked as integers.
//   - A body that is not one JSON object is ArgumentInvalid.
//   - Key, depth, value, integer, type and array violations are all
//     ArgumentInvalid (400004, HTTP 400) with edgeHub's wording (it copies
//     IoT Hub's limits) and the offending path. Keys may not contain
//     control characters, '.', '$' or a space ('#' is allowed, unlike
//     edgeHub) and may not be empty.
//   - Timestamps are always written with seven fractional digits, except
//     the zero time, written "0001-01-01T00:00:00Z".
//   - An empty Tags map is omitted from the JSON, as on a new real twin.
//
// # Diff
//
// Diff manages keys by leaf path ("a.b" for {"a":{"b":1}}), so an object
// that shares a parent key with another writer never clobbers its
// siblings; see Diff for the ownership modes.
//
// # Performance
//
// A service PATCH on a 4 KB twin, the hub's hottest path, is measured by
// BenchmarkPatchService; figures and the command are in
// docs/benchmarks.md.
package twin
