package iothub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/twinsync/twinsync/pkg/twin"
)

// Operation names, the values of the operation metrics label.
const (
	opGetTwin           = "GetTwin"
	opUpdateTwin        = "UpdateTwin"
	opReplaceTwin       = "ReplaceTwin"
	opGetModuleTwin     = "GetModuleTwin"
	opUpdateModuleTwin  = "UpdateModuleTwin"
	opReplaceModuleTwin = "ReplaceModuleTwin"
	opCreateDevice      = "CreateDevice"
	opCreateModule      = "CreateModule"
	opGetModule         = "GetModule"
	opDeleteModule      = "DeleteModule"
	opGetDevice         = "GetDevice"
	opDeleteDevice      = "DeleteDevice"
	opListDevices       = "ListDevices"
	opQuery             = "Query"
)

// GetTwin reads a device twin (GET /twins/{id}).
func (c *Client) GetTwin(ctx context.Context, deviceID string) (*twin.Twin, error) {
	path, err := twinPath(deviceID, "")
	if err != nil {
		return nil, err
	}
	return c.twinCall(ctx, &request{op: opGetTwin, class: ClassTwinRead, method: http.MethodGet, path: path, idempotent: true})
}

// GetModuleTwin reads a module twin (GET /twins/{id}/modules/{mid}).
func (c *Client) GetModuleTwin(ctx context.Context, deviceID, moduleID string) (*twin.Twin, error) {
	path, err := twinPath(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	return c.twinCall(ctx, &request{op: opGetModuleTwin, class: ClassTwinRead, method: http.MethodGet, path: path, idempotent: true})
}

// UpdateTwin merges patch into a device twin (PATCH /twins/{id}) and returns
// the whole twin after the write. patch is any JSON-encodable value (a
// []byte or json.RawMessage is sent as is) holding "tags" and/or
// "properties":{"desired":...}; a null value deletes a key. etag is the
// twin etag the patch was computed against (the hub answers 412,
// ErrPreconditionFailed, when the twin changed since) or ETagAny; empty is
// refused with ErrEmptyETag. A PATCH is not retried on 5xx.
func (c *Client) UpdateTwin(ctx context.Context, deviceID string, patch any, etag string) (*twin.Twin, error) {
	return c.writeTwin(ctx, opUpdateTwin, http.MethodPatch, deviceID, "", patch, etag)
}

// UpdateModuleTwin is UpdateTwin for a module twin
// (PATCH /twins/{id}/modules/{mid}).
func (c *Client) UpdateModuleTwin(ctx context.Context, deviceID, moduleID string, patch any, etag string) (*twin.Twin, error) {
	return c.writeTwin(ctx, opUpdateModuleTwin, http.MethodPatch, deviceID, moduleID, patch, etag)
}

// ReplaceTwin replaces the tags and desired properties of a device twin
// with those of t (PUT /twins/{id}); every other field of t is ignored and
// nil sections are sent as empty objects, which clears them. etag works as
// in UpdateTwin. A PUT is idempotent and retried on 5xx.
func (c *Client) ReplaceTwin(ctx context.Context, deviceID string, t *twin.Twin, etag string) (*twin.Twin, error) {
	return c.writeTwin(ctx, opReplaceTwin, http.MethodPut, deviceID, "", replacement(t), etag)
}

// ReplaceModuleTwin is ReplaceTwin for a module twin
// (PUT /twins/{id}/modules/{mid}).
func (c *Client) ReplaceModuleTwin(ctx context.Context, deviceID, moduleID string, t *twin.Twin, etag string) (*twin.Twin, error) {
	return c.writeTwin(ctx, opReplaceModuleTwin, http.MethodPut, deviceID, moduleID, replacement(t), etag)
}

func (c *Client) writeTwin(ctx context.Context, op, method, deviceID, moduleID string, body any, etag string) (*twin.Twin, error) {
	path, err := twinPath(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	match, err := ifMatch(etag)
	if err != nil {
		return nil, err
	}
	data, err := encodeBody(body)
	if err != nil {
		return nil, fmt.Errorf("iothub: %s: encoding the body: %w", op, err)
	}
	return c.twinCall(ctx, &request{
		op: op, class: ClassTwinUpdate, method: method, path: path,
		body: data, ifMatch: match, idempotent: method == http.MethodPut,
	})
}

func (c *Client) twinCall(ctx context.Context, r *request) (*twin.Twin, error) {
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	var t twin.Twin
	if err := json.Unmarshal(resp.body, &t); err != nil {
		return nil, fmt.Errorf("iothub: %s: decoding the twin: %w", r.op, err)
	}
	return &t, nil
}

// twinPath returns /twins/{id} or /twins/{id}/modules/{mid}.
func twinPath(deviceID, moduleID string) (string, error) {
	if deviceID == "" {
		return "", ErrEmptyID
	}
	if moduleID == "" {
		return "/twins/" + escapeID(deviceID), nil
	}
	return "/twins/" + escapeID(deviceID) + "/modules/" + escapeID(moduleID), nil
}

// replacementBody is what a twin PUT carries: tags and desired values only.
type replacementBody struct {
	Tags       map[string]any `json:"tags"`
	Properties struct {
		Desired map[string]any `json:"desired"`
	} `json:"properties"`
}

// replacement extracts the writable sections of t. The hub refuses null in
// a PUT, so absent sections become empty objects.
func replacement(t *twin.Twin) *replacementBody {
	var r replacementBody
	if t != nil {
		r.Tags = t.Tags
		r.Properties.Desired = t.Properties.Desired.Values
	}
	if r.Tags == nil {
		r.Tags = map[string]any{}
	}
	if r.Properties.Desired == nil {
		r.Properties.Desired = map[string]any{}
	}
	return &r
}

// encodeBody marshals v unless it already is JSON text.
func encodeBody(v any) ([]byte, error) {
	switch b := v.(type) {
	case json.RawMessage:
		if !json.Valid(b) {
			return nil, fmt.Errorf("not valid JSON")
		}
		return b, nil
	case []byte:
		if !json.Valid(b) {
			return nil, fmt.Errorf("not valid JSON")
		}
		return b, nil
	case nil:
		return nil, fmt.Errorf("nil body")
	}
	return json.Marshal(v)
}
