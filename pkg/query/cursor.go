package query

import (
	"encoding/base64"
	"encoding/json"
	"hash/fnv"
)

// cursor is what a continuation token carries.
type cursor struct {
	Version int    `json:"v"`
	Hash    uint64 `json:"h"`
	// Key is the key of the last twin returned (twin and projection rows).
	Key string `json:"k,omitempty"`
	// Group is the tagged value tuple of the last group returned.
	Group []taggedValue `json:"g,omitempty"`
	// Returned counts the rows returned by earlier pages, for TOP.
	Returned int64 `json:"n,omitempty"`
}

// taggedValue encodes a value that may be undefined, which JSON cannot say.
type taggedValue struct {
	Defined bool `json:"d"`
	Value   any  `json:"x,omitempty"`
}

const cursorVersion = 1

func queryHash(q *Query) uint64 {
	h := fnv.New64a()
	h.Write([]byte(q.String()))
	return h.Sum64()
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c) // cursor holds only JSON-safe values
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(token string, hash uint64) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Version != cursorVersion || c.Hash != hash || c.Returned < 0 {
		return cursor{}, ErrInvalidContinuation
	}
	return c, nil
}
