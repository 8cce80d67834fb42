package iothub

// Tests in this file run against the scripted TLS server of helpers_test.go,
// a stand-in for the parts of IoT Hub's behaviour the embedded hub does not
// produce on demand: exact request bytes, both error body shapes, 5xx,
// Retry-After and stalled answers.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/iothub/sas"
	"github.com/twinsync/twinsync/pkg/twin"
)

const twinJSON = `{"deviceId":"d1","etag":"AAAAAAAAAAI=","version":3,"tags":{"a":1},` +
	`"properties":{"desired":{"x":1,"$metadata":{"$lastUpdated":"2024-01-01T00:00:00Z"},"$version":2},` +
	`"reported":{"$metadata":{"$lastUpdated":"2024-01-01T00:00:00Z"},"$version":1}}}`

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestWireFormat checks each call's request line, headers and body against
// what the official Node service SDK sends (sdk-wire §2).
func TestWireFormat(t *testing.T) {
	deviceJSON := `{"deviceId":"d1","etag":"MQ==","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cA==","secondaryKey":"cw=="}}}`
	tests := []struct {
		name     string
		answer   answer
		call     func(ctx context.Context, c *Client) error
		method   string
		rawPath  string
		query    string
		ifMatch  string
		body     string
		extraHdr map[string]string
	}{
		{
			name: "get twin", answer: answer{body: twinJSON},
			call:   func(ctx context.Context, c *Client) error { _, err := c.GetTwin(ctx, "d1"); return err },
			method: "GET", rawPath: "/twins/d1",
		},
		{
			name: "conditional update, etag quoted", answer: answer{body: twinJSON},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateTwin(ctx, "d1", map[string]any{"tags": map[string]any{"a": 2}}, "AAAAAAAAAAI=")
				return err
			},
			method: "PATCH", rawPath: "/twins/d1", ifMatch: `"AAAAAAAAAAI="`, body: `{"tags":{"a":2}}`,
		},
		{
			name: "already quoted etag kept", answer: answer{body: twinJSON},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateTwin(ctx, "d1", json.RawMessage(`{"properties":{"desired":{"x":null}}}`), `"AAAAAAAAAAI="`)
				return err
			},
			method: "PATCH", rawPath: "/twins/d1", ifMatch: `"AAAAAAAAAAI="`, body: `{"properties":{"desired":{"x":null}}}`,
		},
		{
			name: "unconditional update", answer: answer{body: twinJSON},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateTwin(ctx, "d1", []byte(`{"tags":{"a":2}}`), ETagAny)
				return err
			},
			method: "PATCH", rawPath: "/twins/d1", ifMatch: `"*"`, body: `{"tags":{"a":2}}`,
		},
		{
			name: "replace sends tags and desired values only", answer: answer{body: twinJSON},
			call: func(ctx context.Context, c *Client) error {
				var tw twin.Twin
				if err := json.Unmarshal([]byte(twinJSON), &tw); err != nil {
					return err
				}
				_, err := c.ReplaceTwin(ctx, "d1", &tw, tw.ETag)
				return err
			},
			method: "PUT", rawPath: "/twins/d1", ifMatch: `"AAAAAAAAAAI="`, body: `{"tags":{"a":1},"properties":{"desired":{"x":1}}}`,
		},
		{
			name: "replace of nil clears both sections", answer: answer{body: twinJSON},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ReplaceTwin(ctx, "d1", nil, ETagAny)
				return err
			},
			method: "PUT", rawPath: "/twins/d1", ifMatch: `"*"`, body: `{"tags":{},"properties":{"desired":{}}}`,
		},
		{
			name: "module twin, ids encoded like encodeURIComponent", answer: answer{body: twinJSON},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetModuleTwin(ctx, "d:1@x#", "m/1 $")
				return err
			},
			method: "GET", rawPath: "/twins/d%3A1%40x%23/modules/m%2F1%20%24",
		},
		{
			name: "update module twin", answer: answer{body: twinJSON},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateModuleTwin(ctx, "d1", "m1", map[string]any{"tags": map[string]any{"b": true}}, "e")
				return err
			},
			method: "PATCH", rawPath: "/twins/d1/modules/m1", ifMatch: `"e"`, body: `{"tags":{"b":true}}`,
		},
		{
			name: "replace module twin", answer: answer{body: twinJSON},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ReplaceModuleTwin(ctx, "d1", "m1", &twin.Twin{Tags: map[string]any{"b": 1}}, ETagAny)
				return err
			},
			method: "PUT", rawPath: "/twins/d1/modules/m1", ifMatch: `"*"`, body: `{"tags":{"b":1},"properties":{"desired":{}}}`,
		},
		{
			name: "create device like the Node SDK", answer: answer{body: deviceJSON},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateDevice(ctx, &Device{DeviceID: "d1"})
				return err
			},
			method: "PUT", rawPath: "/devices/d1",
			body: `{"deviceId":"d1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`,
		},
		{
			name: "create module", answer: answer{body: deviceJSON},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateModule(ctx, &Device{DeviceID: "d1", ModuleID: "m1", Status: StatusEnabled})
				return err
			},
			method: "PUT", rawPath: "/devices/d1/modules/m1",
			body: `{"deviceId":"d1","moduleId":"m1","status":"enabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`,
		},
		{
			name: "get device", answer: answer{body: deviceJSON},
			call:   func(ctx context.Context, c *Client) error { _, err := c.GetDevice(ctx, "d1"); return err },
			method: "GET", rawPath: "/devices/d1",
		},
		{
			name: "get module", answer: answer{body: deviceJSON},
			call:   func(ctx context.Context, c *Client) error { _, err := c.GetModule(ctx, "d1", "m1"); return err },
			method: "GET", rawPath: "/devices/d1/modules/m1",
		},
		{
			name: "delete device", answer: answer{status: http.StatusNoContent},
			call:   func(ctx context.Context, c *Client) error { return c.DeleteDevice(ctx, "d1", ETagAny) },
			method: "DELETE", rawPath: "/devices/d1", ifMatch: `"*"`,
		},
		{
			name: "delete module with etag", answer: answer{status: http.StatusNoContent},
			call:   func(ctx context.Context, c *Client) error { return c.DeleteModule(ctx, "d1", "m1", "MQ==") },
			method: "DELETE", rawPath: "/devices/d1/modules/m1", ifMatch: `"MQ=="`,
		},
		{
			name: "list devices", answer: answer{body: "[" + deviceJSON + "]"},
			call: func(ctx context.Context, c *Client) error {
				ds, err := c.ListDevices(ctx, 5000)
				if err == nil && (len(ds) != 1 || ds[0].DeviceID != "d1") {
					return errors.New("list not decoded")
				}
				return err
			},
			method: "GET", rawPath: "/devices", query: "&top=1000",
		},
		{
			name: "query first page", answer: answer{body: "[" + twinJSON + "]", header: map[string]string{"x-ms-item-type": "Twin"}},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Query("SELECT * FROM devices WHERE tags.a = 'x'", WithPageSize(2)).NextPage(ctx)
				return err
			},
			method: "POST", rawPath: "/devices/query", body: `{"query":"SELECT * FROM devices WHERE tags.a = 'x'"}`,
			extraHdr: map[string]string{"x-ms-max-item-count": "2"},
		},
		{
			name: "query resumed page", answer: answer{body: "[]"},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Query("SELECT * FROM devices", WithContinuation("opaque token/1"), WithPageSize(500)).NextPage(ctx)
				return err
			},
			method: "POST", rawPath: "/devices/query", body: `{"query":"SELECT * FROM devices"}`,
			extraHdr: map[string]string{"x-ms-max-item-count": "100", "x-ms-continuation": "opaque token/1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newScriptServer(t, tc.answer)
			c := newScriptClient(t, s, nil, WithUserAgent("twinsync-test/1"))
			if err := tc.call(context.Background(), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			reqs := s.seen()
			if len(reqs) != 1 {
				t.Fatalf("sent %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != tc.method || r.RawPath != tc.rawPath {
				t.Errorf("request %s %s, want %s %s", r.Method, r.RawPath, tc.method, tc.rawPath)
			}
			if want := "api-version=2021-04-12" + tc.query; r.RawQuery != want {
				t.Errorf("query %q, want %q", r.RawQuery, want)
			}
			if got := r.Header.Get("If-Match"); got != tc.ifMatch {
				t.Errorf("If-Match %q, want %q", got, tc.ifMatch)
			}
			if r.Body != tc.body {
				t.Errorf("body %s\nwant %s", r.Body, tc.body)
			}
			wantCT := ""
			if tc.body != "" {
				wantCT = "application/json; charset=utf-8"
			}
			if got := r.Header.Get("Content-Type"); got != wantCT {
				t.Errorf("Content-Type %q, want %q", got, wantCT)
			}
			for k, v := range tc.extraHdr {
				if got := r.Header.Get(k); got != v {
					t.Errorf("%s %q, want %q", k, got, v)
				}
			}
			if !uuidPattern.MatchString(r.Header.Get("Request-Id")) {
				t.Errorf("Request-Id %q is not a UUID v4", r.Header.Get("Request-Id"))
			}
			if got := r.Header.Get("User-Agent"); got != "twinsync-test/1" {
				t.Errorf("User-Agent %q", got)
			}
			tok, err := sas.ParseToken(r.Header.Get("Authorization"))
			if err != nil {
				t.Fatalf("Authorization: %v", err)
			}
			if err := tok.Verify(s.host(), time.Now(), testKey(t)); err != nil || tok.KeyName != "iothubowner" {
				t.Errorf("token does not verify for the hub: %v (skn %q)", err, tok.KeyName)
			}
		})
	}
}

func TestLocalArgumentErrors(t *testing.T) {
	s := newScriptServer(t, answer{body: twinJSON})
	c := newScriptClient(t, s, nil)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"update with empty etag", func() error { _, err := c.UpdateTwin(ctx, "d1", map[string]any{}, ""); return err }, ErrEmptyETag},
		{"replace with empty etag", func() error { _, err := c.ReplaceTwin(ctx, "d1", nil, ""); return err }, ErrEmptyETag},
		{"module update with empty etag", func() error { _, err := c.UpdateModuleTwin(ctx, "d1", "m", map[string]any{}, ""); return err }, ErrEmptyETag},
		{"delete with empty etag", func() error { return c.DeleteDevice(ctx, "d1", "") }, ErrEmptyETag},
		{"get with empty id", func() error { _, err := c.GetTwin(ctx, ""); return err }, ErrEmptyID},
		{"create with empty id", func() error { _, err := c.CreateDevice(ctx, &Device{}); return err }, ErrEmptyID},
		{"module create without module id", func() error { _, err := c.CreateModule(ctx, &Device{DeviceID: "d"}); return err }, ErrEmptyID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := c.UpdateTwin(ctx, "d1", []byte("{not json"), ETagAny); err == nil {
		t.Error("invalid JSON patch accepted")
	}
	if n := len(s.seen()); n != 0 {
		t.Errorf("%d requests reached the server, want none", n)
	}
}

// TestTypedErrors checks the mapping of status, header and both body shapes
// onto the sentinels and the Error fields.
func TestTypedErrors(t *testing.T) {
	shapeB := func(num int, msg string) string {
		inner, _ := json.Marshal(map[string]any{"errorCode": num, "trackingId": "T1", "message": msg, "timestampUtc": "2024-01-01T00:00:00Z"})
		outer, _ := json.Marshal(map[string]string{"Message": string(inner), "ExceptionMessage": ""})
		return string(outer)
	}
	shapeA := func(code, msg string) string {
		b, _ := json.Marshal(map[string]string{"Message": "ErrorCode:" + code + ";" + msg, "ExceptionMessage": "Tracking ID:T1-G:5-TimeStamp:01/01/2024 00:00:00"})
		return string(b)
	}
	tests := []struct {
		name       string
		answer     answer
		want       error
		code       string
		number     int
		message    string
		trackingID string
	}{
		{"404 shape A with header", answer{404, map[string]string{"iothub-errorcode": "DeviceNotFound"}, shapeA("DeviceNotFound", "d1")}, ErrNotFound, "DeviceNotFound", 0, "d1", "T1-G:5-TimeStamp:01/01/2024 00:00:00"},
		{"412 shape A", answer{412, nil, shapeA("PreconditionFailed", "Precondition failed: Invalid ETag")}, ErrPreconditionFailed, "PreconditionFailed", 0, "Precondition failed: Invalid ETag", "T1-G:5-TimeStamp:01/01/2024 00:00:00"},
		{"400 shape B", answer{400, nil, shapeB(400004, "bad key")}, ErrInvalid, "ArgumentInvalid", 400004, "bad key", "T1"},
		{"401 bare shape B", answer{401, nil, `{"errorCode":401002,"message":"no","trackingId":"T2"}`}, ErrUnauthorized, "IotHubUnauthorizedAccess", 401002, "no", "T2"},
		{"403 oversized section", answer{403, map[string]string{"iothub-errorcode": "DeviceModelMaxPropertiesExceeded"}, shapeA("DeviceModelMaxPropertiesExceeded", "'Properties.Desired' size should be less than 32768 bytes.")}, ErrTooLarge, "DeviceModelMaxPropertiesExceeded", 0, "'Properties.Desired' size should be less than 32768 bytes.", "T1-G:5-TimeStamp:01/01/2024 00:00:00"},
		{"403 quota", answer{403, nil, shapeB(403002, "quota")}, ErrQuotaExceeded, "IotHubQuotaExceeded", 403002, "quota", "T1"},
		{"403 access rule", answer{403, nil, shapeA("IotHubUnauthorizedAccess", "Authorization rule 'x' does not allow access")}, ErrUnauthorized, "IotHubUnauthorizedAccess", 0, "Authorization rule 'x' does not allow access", "T1-G:5-TimeStamp:01/01/2024 00:00:00"},
		{"409", answer{409, map[string]string{"iothub-errorcode": "DeviceAlreadyExists"}, shapeA("DeviceAlreadyExists", "exists")}, ErrConflict, "DeviceAlreadyExists", 0, "exists", "T1-G:5-TimeStamp:01/01/2024 00:00:00"},
		{"413", answer{413, nil, shapeB(413001, "big")}, ErrTooLarge, "MessageTooLarge", 413001, "big", "T1"},
		{"header wins over body", answer{404, map[string]string{"iothub-errorcode": "ModuleNotFound"}, shapeA("DeviceNotFound", "x")}, ErrNotFound, "ModuleNotFound", 0, "x", "T1-G:5-TimeStamp:01/01/2024 00:00:00"},
		{"non-JSON body", answer{400, map[string]string{"Content-Type": "text/plain"}, "plain words"}, ErrInvalid, "", 0, "plain words", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newScriptServer(t, tc.answer)
			c := newScriptClient(t, s, newFakeClock(), WithRetry(NoRetry))
			_, err := c.UpdateTwin(context.Background(), "d1", map[string]any{"tags": map[string]any{}}, ETagAny)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want errors.Is %v", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			if e.StatusCode != tc.answer.status || e.Code != tc.code || e.Number != tc.number || e.Message != tc.message || e.TrackingID != tc.trackingID || e.Operation != "UpdateTwin" {
				t.Errorf("got %+v", e)
			}
			for _, other := range []error{ErrNotFound, ErrPreconditionFailed, ErrInvalid, ErrUnauthorized, ErrConflict, ErrTooLarge, ErrQuotaExceeded, ErrThrottled, ErrServer} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("error also matches %v", other)
				}
			}
		})
	}
}

// TestRetryAfterHonoured uses the scripted server because the embedded hub's
// 429 carries no Retry-After (real IoT Hub's may not either, spec §7.2).
func TestRetryAfterHonoured(t *testing.T) {
	throttled := func(h map[string]string) answer {
		return answer{429, h, `{"Message":"ErrorCode:ThrottlingException;slow down","ExceptionMessage":""}`}
	}
	clockStart := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"seconds", map[string]string{"Retry-After": "3"}, 3 * time.Second},
		{"http date", map[string]string{"Retry-After": clockStart.Add(7 * time.Second).UTC().Format(http.TimeFormat)}, 7 * time.Second},
		{"milliseconds", map[string]string{"Retry-After-Ms": "250", "Retry-After": "9"}, 250 * time.Millisecond},
		{"x-ms milliseconds", map[string]string{"x-ms-retry-after-ms": "1500"}, 1500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// An HTTP date is absolute, so only the first wait can equal it.
			s := newScriptServer(t, throttled(tc.header), throttled(tc.header), answer{body: twinJSON})
			if strings.Contains(tc.name, "date") {
				s.answers = s.answers[1:]
			}
			clock := newFakeClock()
			c := newScriptClient(t, s, clock)
			// The PATCH is not idempotent, yet a 429 means the hub did not run it.
			tw, err := c.UpdateTwin(context.Background(), "d1", map[string]any{}, ETagAny)
			if err != nil || tw.DeviceID != "d1" {
				t.Fatalf("UpdateTwin = %v, %v", tw, err)
			}
			got := clock.Sleeps()
			for _, d := range got {
				if d != tc.want {
					t.Errorf("waited %v, want %v each time", got, tc.want)
				}
			}
			if n := len(s.seen()); n != len(got)+1 || n < 2 {
				t.Errorf("%d requests after %d waits", n, len(got))
			}
		})
	}
}

func TestBackoffWithoutRetryAfter(t *testing.T) {
	s := newScriptServer(t,
		answer{status: 429}, answer{status: 429}, answer{status: 429}, answer{status: 429},
		answer{body: twinJSON})
	clock := newFakeClock()
	c := newScriptClient(t, s, clock, WithRetry(RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: 400 * time.Millisecond, MaxAttempts: 10}))
	if _, err := c.GetTwin(context.Background(), "d1"); err != nil {
		t.Fatal(err)
	}
	sleeps := clock.Sleeps()
	caps := []time.Duration{100, 200, 400, 400}
	if len(sleeps) != len(caps) {
		t.Fatalf("waited %v, want %d waits", sleeps, len(caps))
	}
	for i, d := range sleeps {
		hi := caps[i] * time.Millisecond
		if d < hi/2 || d > hi {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, d, hi/2, hi)
		}
	}
}

func TestRetryBounds(t *testing.T) {
	always := answer{429, map[string]string{"Retry-After": "30"}, ""}
	tests := []struct {
		name     string
		policy   RetryPolicy
		timeout  time.Duration
		requests int
	}{
		{"total retry time", RetryPolicy{MaxElapsed: time.Minute, MaxAttempts: 100}, 0, 3},
		{"attempts", RetryPolicy{MaxElapsed: time.Hour, MaxAttempts: 4}, 0, 4},
		{"context deadline before the wait ends", RetryPolicy{MaxElapsed: time.Hour, MaxAttempts: 100}, 10 * time.Second, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newScriptServer(t, always)
			clock := newFakeClock()
			c := newScriptClient(t, s, clock, WithRetry(tc.policy))
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, clock.Now().Add(tc.timeout))
				defer cancel()
			}
			_, err := c.GetTwin(ctx, "d1")
			if !errors.Is(err, ErrThrottled) {
				t.Fatalf("error %v, want ErrThrottled", err)
			}
			var e *Error
			if errors.As(err, &e) && e.RetryAfter != 30*time.Second {
				t.Errorf("RetryAfter = %v, want 30s", e.RetryAfter)
			}
			if n := len(s.seen()); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
		})
	}
}

func TestServerErrorsRetriedOnlyWhenIdempotent(t *testing.T) {
	fail := answer{503, map[string]string{"iothub-errorcode": "ServiceUnavailable"}, ""}
	tests := []struct {
		name     string
		call     func(c *Client) error
		requests int
		wantErr  error
	}{
		{"get twin retried", func(c *Client) error { _, err := c.GetTwin(context.Background(), "d1"); return err }, 2, nil},
		{"query retried", func(c *Client) error {
			_, err := c.Query("SELECT * FROM devices").NextPage(context.Background())
			return err
		}, 2, nil},
		{"replace retried", func(c *Client) error { _, err := c.ReplaceTwin(context.Background(), "d1", nil, ETagAny); return err }, 2, nil},
		{"patch not retried", func(c *Client) error {
			_, err := c.UpdateTwin(context.Background(), "d1", map[string]any{}, ETagAny)
			return err
		}, 1, ErrServer},
		{"create not retried", func(c *Client) error {
			_, err := c.CreateDevice(context.Background(), &Device{DeviceID: "d1"})
			return err
		}, 1, ErrServer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newScriptServer(t, fail, answer{body: "[" + twinJSON + "]"})
			if tc.requests == 2 && !strings.Contains(tc.name, "query") {
				s.answers[1] = answer{body: twinJSON}
			}
			c := newScriptClient(t, s, newFakeClock())
			if err := tc.call(c); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if n := len(s.seen()); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
		})
	}
}

func TestContextCancellation(t *testing.T) {
	s := newScriptServer(t)
	arrived := make(chan struct{}, 1)
	s.handler = func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done() // never answers
	}
	c := newScriptClient(t, s, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.GetTwin(ctx, "d1"); errc <- err }()
	<-arrived
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("call did not return after cancel")
	}
	if n := len(s.seen()); n != 1 {
		t.Errorf("%d requests, want 1 (no retry after cancel)", n)
	}
}

func TestTLSTrust(t *testing.T) {
	s := newScriptServer(t, answer{body: twinJSON})
	tests := []struct {
		name string
		opts []Option
		ok   bool
	}{
		{"system roots refuse the test CA", nil, false},
		{"root CA pool", []Option{WithRootCAs(rootsOf(s))}, true},
		{"tls.Config", []Option{WithTLSConfig(s.Client().Transport.(*http.Transport).TLSClientConfig)}, true},
		{"http.Client", []Option{WithHTTPClient(s.Client())}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]Option{WithLimits(NoLimits), WithRetry(NoRetry)}, tc.opts...)
			c, err := NewFromConnectionString(s.serviceCS(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetTwin(context.Background(), "d1")
			if (err == nil) != tc.ok {
				t.Errorf("GetTwin error %v, want ok=%v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), scriptKeyB64[:12]) {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
}

// TestTokenRenewal drives the token source's clock: requests reuse one
// token until 15 minutes before it expires, then carry a fresh one that the
// server still verifies.
func TestTokenRenewal(t *testing.T) {
	s := newScriptServer(t, answer{body: twinJSON})
	clock := newFakeClock()
	clock.now = time.Now()
	src := sas.NewKeySource(s.host(), "iothubowner", testKey(t))
	src.Now = clock.Now
	c, err := New(s.host(), src, WithRootCAs(rootsOf(s)), WithLimits(NoLimits))
	if err != nil {
		t.Fatal(err)
	}
	steps := []time.Duration{0, 10 * time.Minute, 34 * time.Minute, time.Minute, 0}
	wantNew := []bool{true, false, false, true, false}
	for i, d := range steps {
		clock.mu.Lock()
		clock.now = clock.now.Add(d)
		clock.mu.Unlock()
		if _, err := c.GetTwin(context.Background(), "d1"); err != nil {
			t.Fatal(err)
		}
		reqs := s.seen()
		tok, err := sas.ParseToken(reqs[i].Header.Get("Authorization"))
		if err != nil {
			t.Fatal(err)
		}
		if err := tok.Verify(s.host(), clock.Now(), testKey(t)); err != nil {
			t.Errorf("step %d: token does not verify: %v", i, err)
		}
		renewed := i == 0 || reqs[i].Header.Get("Authorization") != reqs[i-1].Header.Get("Authorization")
		if renewed != wantNew[i] {
			t.Errorf("step %d: renewed = %v, want %v", i, renewed, wantNew[i])
		}
	}
	// An expired fixed token is refused before any request goes out.
	stale, err := sas.NewStaticSource(sas.Sign(s.host(), "iothubowner", testKey(t), time.Now().Add(-time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := New(s.host(), stale, WithRootCAs(rootsOf(s)), WithLimits(NoLimits))
	if err != nil {
		t.Fatal(err)
	}
	before := len(s.seen())
	if _, err := c2.GetTwin(context.Background(), "d1"); !errors.Is(err, sas.ErrExpired) {
		t.Errorf("error %v, want sas.ErrExpired", err)
	}
	if len(s.seen()) != before {
		t.Error("a request was sent with an expired token")
	}
}

func TestNewFromConnectionStringRefusesDeviceStrings(t *testing.T) {
	tests := []struct{ name, cs string }{
		{"device", "HostName=h;DeviceId=d;SharedAccessKey=" + scriptKeyB64},
		{"malformed", "HostName=h;SharedAccessKeyName=p"},
	}
	for _, tc := range tests {
		if _, err := NewFromConnectionString(tc.cs); err == nil {
			t.Errorf("%s: accepted", tc.name)
		} else if strings.Contains(err.Error(), scriptKeyB64[:12]) {
			t.Errorf("%s: error leaks the key: %v", tc.name, err)
		}
	}
}
