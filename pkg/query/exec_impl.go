package query

import (
	"context"
	"errors"
)

func executeQuery(ctx context.Context, q *Query, src Source, opts Options) (*Page, error) {
	return nil, errors.New("query: Execute is not implemented yet")
}
