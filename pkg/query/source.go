package query

import "context"

// Source is the store a query runs over. pkg/hub implements it over its own
// twin store; MemSource is the in-memory reference implementation.
//
// Documents are twins as IoT Hub serialises them, decoded into
// map[string]any (numbers as float64 or json.Number, both accepted). The
// engine never modifies a document and may hand it back to the caller inside
// a Page, so a Source must replace documents rather than mutate them in
// place (copy on write).
type Source interface {
	// Scan calls yield for every document of collection c whose key sorts
	// after `after` (every document when after is ""), in ascending byte
	// order of keys, until yield returns false. Keys must be unique within
	// a collection and stable for the life of a document: deviceId for
	// device twins and deviceId + "/" + moduleId for module twins (see Key)
	// give the order IoT Hub users expect. The order is what makes paging
	// exact, so it must not depend on document contents.
	Scan(ctx context.Context, c Collection, after string, yield func(key string, doc map[string]any) bool) error
}

// IndexedSource is a Source with equality indexes. The planner uses it for
// `path = constant` and `path IN [...]` conjuncts of a WHERE clause; every
// candidate is still checked against the whole WHERE, so an index may be a
// superset of the exact answer but must never miss a document.
type IndexedSource interface {
	Source
	// Lookup returns the keys of the documents of collection c whose value
	// at path equals v, in ascending order. v is a JSON primitive as the
	// engine sees it: string, float64, bool or nil (null). ok is false when
	// the source keeps no index for path; the planner then scans.
	Lookup(c Collection, path []string, v any) (keys []string, ok bool)
	// Get returns the document with the given key, or false when it is gone.
	Get(c Collection, key string) (doc map[string]any, ok bool)
}

// ExactIndexedSource is an IndexedSource whose indexes are exact and which
// can return the documents with their keys from one consistent view. The
// planner then trusts the index for the conjunct it answers and evaluates
// only the rest of the WHERE clause, touching no document for a query such
// as `WHERE tags.location.plant = 'Redmond43'`.
type ExactIndexedSource interface {
	IndexedSource
	// LookupDocs is Lookup that also returns the documents, parallel to
	// keys. The result must be exactly the documents whose value at path
	// equals v under the engine's comparison rules: same JSON type and
	// equal value (strings byte for byte, numbers as float64).
	LookupDocs(c Collection, path []string, v any) (keys []string, docs []map[string]any, ok bool)
}

// Key returns the sort key a Source should use for a twin: the deviceId, or
// deviceId/moduleId for a module twin. IoT Hub ids never contain '/', so
// keys are unique and module twins sort under their device.
func Key(deviceID, moduleID string) string {
	if moduleID == "" {
		return deviceID
	}
	return deviceID + "/" + moduleID
}

// ColumnSource is a Source that can also hand out a consistent snapshot of
// a collection as columns: the keys in ascending order, the documents, and
// for each requested path the value every document holds there. The
// engine evaluates WHERE, projections, GROUP BY and aggregates on the
// columns, which are contiguous in memory, instead of walking every
// document's nested maps; that is what makes a GROUP BY over 100,000 twins
// fast.
type ColumnSource interface {
	Source
	// Columns calls fn once with the snapshot of collection c: keys, docs
	// and one column per entry of paths, all of the same length and in key
	// order. Column values are normalized JSON values (float64 numbers) or
	// Undefined. The slices are valid only while fn runs and must not be
	// modified. ok is false, and fn is not called, when the source does not
	// keep a column for every path; the engine then scans.
	Columns(ctx context.Context, c Collection, paths [][]string, fn func(keys []string, docs []map[string]any, cols [][]any)) (ok bool, err error)
}
