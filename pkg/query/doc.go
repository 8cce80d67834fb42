// Package query implements IoT Hub's SQL-like query language for device
// and module twins: a lexer and recursive-descent parser producing an AST,
// an evaluator over decoded JSON documents, and paged execution over a
// pluggable store.
//
// The package does not import pkg/twin: documents are twins as IoT Hub
// serialises them, decoded into map[string]any. Numbers may be float64 or
// json.Number (and Go integer types); the engine converts them to float64
// when it reads them and leaves the documents untouched.
//
// # Using it
//
//	q, err := query.Parse("SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'")
//	page, err := query.Execute(ctx, q, src, query.Options{PageSize: 100, Continuation: tok})
//	// page.Items, page.ItemType (x-ms-item-type), page.Continuation (x-ms-continuation)
//
// A store implements Source (ordered scans from a key) and optionally
// IndexedSource (equality lookups), ExactIndexedSource (exact lookups that
// return the documents too) and ColumnSource (a consistent snapshot with
// per-path value columns). MemSource is the in-memory reference
// implementation of all of them, with exact indexes kept up to date on every
// write; pkg/hub can embed it or copy its pattern.
//
// The planner picks, per query: an index for the most selective
// `path = constant` or `path IN [...]` conjunct of WHERE (every candidate
// is still checked against the whole clause, so an index may return a
// superset; an ExactIndexedSource's answer for that conjunct is trusted);
// else columns when the source keeps one for every path the
// query reads (evaluation then touches contiguous slices instead of each
// twin's nested maps, which is what keeps a GROUP BY over 100,000 twins
// far below the PostgreSQL reference); else a scan of the documents.
//
// # Paging
//
// Twin and projection rows come in ascending key order (deviceId, then
// deviceId/moduleId). The continuation token is opaque: base64url of the
// last key returned, the number of rows returned so far (for TOP) and a
// hash of the query, so a token is refused by another query. A twin that
// does not change between pages is returned exactly once. Aggregate
// results are computed per page request and GROUP BY rows are ordered by
// group value and resumed after the last group returned.
//
// # Semantics
//
// Keywords, function names and system property names (deviceId,
// connectionState, properties.reported, ...) are case-insensitive; paths
// are stored and output in canonical casing. Only Boolean true selects a
// row. A missing property is undefined; comparisons, arithmetic and
// functions over undefined or over operands of different types are
// undefined, and NOT, AND and OR follow three-valued logic (false AND
// undefined is false, true OR undefined is true).
//
// # Errors
//
// Parse returns an *Error with the line and column (in characters) and what
// was expected, e.g. "line 1, column 38: expected a value after '='". It
// also enforces IoT Hub's restrictions: aggregates only as select items,
// GROUP BY only over devices and with a select list of grouped paths and
// aggregates, devices.jobs only with SELECT *, IN and NIN only over a
// bracketed array of constants, keywords as property names only when
// escaped (tags.[[group]]). Unknown functions, such as STARTS_WITH, are
// refused. Execute fails only on a foreign or corrupt continuation token
// (ErrInvalidContinuation), a cancelled context or a store error.
//
// # Choices where IoT Hub's behaviour is not documented (spec [X])
//
//   - Keys below tags and properties match case-sensitively, as twin keys
//     are case-sensitive; only root system names and desired/reported fold.
//   - `tags.x != 'a'` drops twins lacking tags.x (Cosmos DB semantics).
//   - Comparisons are defined only between two primitives of the same type:
//     5 = '5' is undefined, not false. Strings compare ordinally
//     (case-sensitive, by bytes). null = null is true; null has no order.
//     Booleans order false < true.
//   - x NIN [...] is undefined (not true) when x is undefined.
//   - STARTSWITH, ENDSWITH and CONTAINS are case-sensitive; LENGTH counts
//     characters. All of them, and LOWER and UPPER, are undefined on
//     non-strings. Division by zero is undefined.
//   - A projected path without AS is named by its last segment
//     (SELECT properties.reported.connectivity gives {"connectivity":...});
//     other expressions without AS are named $1, $2, ... by position.
//     Undefined values are left out of rows. Duplicate names are an error.
//   - `id` at the root means deviceId, as in the SDK samples' STARTSWITH(id, ...).
//   - COUNT() counts rows; SUM and AVG add the numeric values and ignore
//     others (no numeric value: the key is left out); MIN and MAX skip
//     undefined and order mixed types null < bool < number < string.
//     An aggregate query without GROUP BY always gives one row.
//   - GROUP BY accepts several comma-separated paths and orders groups by
//     their values; a twin lacking the path falls in a group whose key is
//     left out of the row.
//   - x-ms-item-type is Twin for SELECT * over devices and devices.modules,
//     Raw for projections and aggregates, DeviceJob for devices.jobs (which
//     always answers an empty set).
//   - A query longer than 8192 characters is refused with an *Error that
//     wraps ErrQueryTooLong.
package query
