package query

import "context"

// ItemType is the value of the x-ms-item-type response header.
type ItemType string

// Item types. C# v1 parses the header case-sensitively, hence the casing.
const (
	// ItemTwin marks full twin documents (SELECT * over devices or devices.modules).
	ItemTwin ItemType = "Twin"
	// ItemRaw marks projections and aggregates: plain JSON rows.
	ItemRaw ItemType = "Raw"
	// ItemDeviceJob marks results of FROM devices.jobs.
	ItemDeviceJob ItemType = "DeviceJob"
)

// ItemType tells what the rows of q are.
func (q *Query) ItemType() ItemType {
	switch {
	case q.From == Jobs:
		return ItemDeviceJob
	case q.Star:
		return ItemTwin
	}
	return ItemRaw
}

// Options control one call of Execute.
type Options struct {
	// PageSize is the most rows the page may hold (x-ms-max-item-count);
	// zero or less means no limit.
	PageSize int
	// Continuation is the token of the previous page ("" for the first).
	Continuation string
}

// Page is one page of results.
type Page struct {
	// Items are the rows. For ItemTwin they are the source's documents
	// themselves and must be treated as read-only.
	Items []map[string]any
	// ItemType is the x-ms-item-type of the rows.
	ItemType ItemType
	// Continuation is the opaque token for the next page, "" on the last
	// page (send no x-ms-continuation header then).
	Continuation string
}

// Execute runs q over src and returns one page.
//
// Rows come in ascending key order (groups in ascending order of their
// values), so a twin that does not change between pages is returned exactly
// once. TOP limits the total over all pages.
func Execute(ctx context.Context, q *Query, src Source, opts Options) (*Page, error) {
	return executeQuery(ctx, q, src, opts)
}
