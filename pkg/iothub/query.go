package iothub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"strings"

	"github.com/twinsync/twinsync/pkg/twin"
)

// Item types of a query page (the x-ms-item-type header). The hub answers
// "Twin" for SELECT * over devices or devices.modules and "Raw" for
// projections and aggregates; compare case-insensitively.
const (
	ItemTypeTwin = "Twin"
	ItemTypeRaw  = "Raw"
)

// MaxPageSize is the largest page IoT Hub documents (x-ms-max-item-count).
const MaxPageSize = 100

// ErrNoMorePages is returned by NextPage after the last page.
var ErrNoMorePages = errors.New("iothub: no more query pages")

// QueryPager walks the pages of one query. Get one from Client.Query. It is
// not safe for concurrent use.
type QueryPager struct {
	client       *Client
	body         []byte
	pageSize     int
	continuation string
	started      bool
}

// QueryOption configures a query.
type QueryOption func(*QueryPager)

// WithPageSize asks for at most n items per page (x-ms-max-item-count);
// n is capped at MaxPageSize. Without it the hub picks the page size.
func WithPageSize(n int) QueryOption {
	return func(p *QueryPager) { p.pageSize = min(n, MaxPageSize) }
}

// WithContinuation resumes a query at a page whose continuation token an
// earlier page returned.
func WithContinuation(token string) QueryOption {
	return func(p *QueryPager) { p.continuation = token; p.started = token != "" }
}

// Query prepares a query in the IoT Hub query language (POST /devices/query).
// Nothing is sent until NextPage. Each page costs one token of the query
// class, so a query of n pages takes n of the hub's 20/min (S1) queries.
func (c *Client) Query(sql string, opts ...QueryOption) *QueryPager {
	body, _ := json.Marshal(struct {
		Query string `json:"query"`
	}{sql}) // a struct of one string always encodes
	p := &QueryPager{client: c, body: body}
	for _, o := range opts {
		o(p)
	}
	return p
}

// More reports whether NextPage has a page to return: before the first page
// and while the hub sends a continuation token.
func (p *QueryPager) More() bool { return !p.started || p.continuation != "" }

// NextPage fetches the next page, or returns ErrNoMorePages.
func (p *QueryPager) NextPage(ctx context.Context) (*QueryPage, error) {
	if !p.More() {
		return nil, ErrNoMorePages
	}
	r := &request{
		op: opQuery, class: ClassQuery, method: http.MethodPost, path: "/devices/query",
		body: p.body, idempotent: true, header: make(map[string]string, 2),
	}
	if p.pageSize > 0 {
		r.header["x-ms-max-item-count"] = strconv.Itoa(p.pageSize)
	}
	if p.continuation != "" {
		r.header["x-ms-continuation"] = p.continuation
	}
	resp, err := p.client.do(ctx, r)
	if err != nil {
		return nil, err
	}
	page := &QueryPage{
		ItemType:     resp.header.Get("x-ms-item-type"),
		Continuation: resp.header.Get("x-ms-continuation"),
	}
	if err := json.Unmarshal(resp.body, &page.Items); err != nil {
		return nil, fmt.Errorf("iothub: %s: decoding the page: %w", opQuery, err)
	}
	p.started = true
	p.continuation = page.Continuation
	return page, nil
}

// Pages iterates over the remaining pages; it stops after the first error,
// which it yields.
func (p *QueryPager) Pages(ctx context.Context) iter.Seq2[*QueryPage, error] {
	return func(yield func(*QueryPage, error) bool) {
		for p.More() {
			page, err := p.NextPage(ctx)
			if !yield(page, err) || err != nil {
				return
			}
		}
	}
}

// QueryPage is one page of query results.
type QueryPage struct {
	// ItemType is the x-ms-item-type header, ItemTypeTwin or ItemTypeRaw.
	ItemType string
	// Items are the rows as the hub sent them.
	Items []json.RawMessage
	// Continuation resumes the query after this page (WithContinuation);
	// empty on the last page.
	Continuation string
}

// IsTwins reports whether the page holds whole twins.
func (p *QueryPage) IsTwins() bool { return strings.EqualFold(p.ItemType, ItemTypeTwin) }

// Twins decodes the items as twins. It fails for projections and
// aggregates, whose rows are not twins; use Rows for those.
func (p *QueryPage) Twins() ([]*twin.Twin, error) {
	if p.ItemType != "" && !p.IsTwins() {
		return nil, fmt.Errorf("iothub: query page holds %q items, not twins", p.ItemType)
	}
	out := make([]*twin.Twin, len(p.Items))
	for i, raw := range p.Items {
		out[i] = new(twin.Twin)
		if err := json.Unmarshal(raw, out[i]); err != nil {
			return nil, fmt.Errorf("iothub: query item %d: %w", i, err)
		}
	}
	return out, nil
}

// Rows decodes the items as JSON objects, numbers as json.Number.
func (p *QueryPage) Rows() ([]map[string]any, error) {
	out := make([]map[string]any, len(p.Items))
	for i, raw := range p.Items {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&out[i]); err != nil {
			return nil, fmt.Errorf("iothub: query row %d: %w", i, err)
		}
	}
	return out, nil
}
