package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/twinsync/twinsync/pkg/iothub"
)

// StatusByteBudget bounds the bytes of deviceIds and rows a TwinQuery keeps
// in its status, far below etcd's 1.5 MiB object limit so that the object,
// its managed fields and a watch event stay cheap for every watcher.
const StatusByteBudget = 256 << 10

// twinQueryResult is one refresh's outcome, as it goes into status.
type twinQueryResult struct {
	Count     int64
	DeviceIDs []string
	Rows      []apiextensionsv1.JSON
	Truncated bool
	// Pages is how many query pages the refresh took (its budget cost).
	Pages int
}

// sameAs reports whether r holds the result status already shows.
func (r *twinQueryResult) sameAs(count int64, ids []string, rows []apiextensionsv1.JSON, truncated bool) bool {
	return r.Count == count && r.Truncated == truncated && slices.Equal(r.DeviceIDs, ids) &&
		slices.EqualFunc(r.Rows, rows, func(a, b apiextensionsv1.JSON) bool { return bytes.Equal(a.Raw, b.Raw) })
}

// tqTwinKey is the part of a twin the status keeps.
type tqTwinKey struct {
	DeviceID string `json:"deviceId"`
	ModuleID string `json:"moduleId"`
}

// tqResultBuilder collects rows into a twinQueryResult within maxResults and the
// byte budget.
type tqResultBuilder struct {
	maxResults int64
	budget     int
	used       int
	res        twinQueryResult
}

// full reports whether the hub has returned maxResults rows, so no further
// page is needed.
func (b *tqResultBuilder) full() bool { return b.res.Count >= b.maxResults }

// add takes one page. Twin pages give ids ("deviceId" or
// "deviceId/moduleId"), other pages give JSON rows; every item is counted.
func (b *tqResultBuilder) add(page *iothub.QueryPage, star bool) error {
	b.res.Pages++
	twins := page.IsTwins() || (page.ItemType == "" && star)
	for i, raw := range page.Items {
		b.res.Count++
		if b.res.Truncated {
			continue // counted; the kept rows stay a prefix in the hub's order
		}
		if twins {
			var k tqTwinKey
			if err := json.Unmarshal(raw, &k); err != nil {
				return fmt.Errorf("decoding twin %d of the page: %w", i, err)
			}
			id := k.DeviceID
			if k.ModuleID != "" {
				id += "/" + k.ModuleID
			}
			b.keep(len(id)+3, func() { b.res.DeviceIDs = append(b.res.DeviceIDs, id) })
			continue
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			return fmt.Errorf("decoding row %d of the page: %w", i, err)
		}
		row := compact.Bytes()
		b.keep(len(row)+1, func() { b.res.Rows = append(b.res.Rows, apiextensionsv1.JSON{Raw: row}) })
	}
	return nil
}

// keep appends an item of size bytes (as it will be serialised) unless
// maxResults or the byte budget is reached, which marks the result
// truncated.
func (b *tqResultBuilder) keep(size int, appendItem func()) {
	kept := int64(len(b.res.DeviceIDs) + len(b.res.Rows))
	if b.res.Truncated || kept >= b.maxResults || b.used+size > b.budget {
		b.res.Truncated = true
		return
	}
	b.used += size
	appendItem()
}

// runTwinQuery pages through sql on c until the hub has returned maxResults
// rows or has no more, keeping what fits in maxResults and budget bytes.
// A query cut short because more pages remained is truncated; its count
// covers the rows read.
func runTwinQuery(ctx context.Context, c *iothub.Client, sql string, star bool, maxResults int64, budget int) (*twinQueryResult, error) {
	b := &tqResultBuilder{maxResults: maxResults, budget: budget}
	pager := c.Query(sql, iothub.WithPageSize(iothub.MaxPageSize))
	for pager.More() && !b.full() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return &b.res, err
		}
		if err := b.add(page, star); err != nil {
			return &b.res, err
		}
	}
	if pager.More() {
		b.res.Truncated = true
	}
	return &b.res, nil
}
