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
	page := &Page{ItemType: q.ItemType(), Items: []map[string]any{}}
	hash := queryHash(q)
	cur := cursor{Version: cursorVersion, Hash: hash}
	if opts.Continuation != "" {
		var err error
		if cur, err = decodeCursor(opts.Continuation, hash); err != nil {
			return nil, err
		}
	}
	if q.From == Jobs {
		return page, nil // the engine keeps no jobs
	}
	limit := pageLimit(q, opts, cur)
	if limit == 0 {
		return page, nil
	}
	if q.HasAggregates() {
		return page, aggregatePage(ctx, q, src, cur, limit, page)
	}
	return page, rowPage(ctx, q, src, cur, limit, page)
}

// pageLimit is how many rows this page may hold: the page size, capped by
// what TOP leaves; -1 means no limit.
func pageLimit(q *Query, opts Options, cur cursor) int64 {
	limit := int64(-1)
	if opts.PageSize > 0 {
		limit = int64(opts.PageSize)
	}
	if q.Top >= 0 {
		left := max(q.Top-cur.Returned, 0)
		if limit < 0 || left < limit {
			limit = left
		}
	}
	return limit
}

// rowPage fills page with twins or projections in key order. After a full
// page it looks for one more match, so that the token is sent only when
// another page really exists.
func rowPage(ctx context.Context, q *Query, src Source, cur cursor, limit int64, page *Page) error {
	var lastKey string
	more := false
	err := iterate(ctx, q, src, cur.Key, func(key string, doc map[string]any, r row) bool {
		if limit >= 0 && int64(len(page.Items)) == limit {
			more = true
			return false
		}
		page.Items = append(page.Items, project(q, doc, r))
		lastKey = key
		return true
	})
	if err != nil {
		return err
	}
	returned := cur.Returned + int64(len(page.Items))
	if more && (q.Top < 0 || returned < q.Top) {
		page.Continuation = encodeCursor(cursor{Version: cursorVersion, Hash: cur.Hash, Key: lastKey, Returned: returned})
	}
	return nil
}

// project builds the row for one twin: the twin itself for SELECT *,
// else an object with one key per defined select item.
func project(q *Query, doc map[string]any, r row) map[string]any {
	if q.Star {
		return doc
	}
	out := make(map[string]any, len(q.Items))
	for i, it := range q.Items {
		if v := eval(it.Expr, r); v != Undefined {
			out[it.Name(i)] = v
		}
	}
	return out
}
