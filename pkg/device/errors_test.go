package device

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckResponse(t *testing.T) {
	tests := []struct {
		name     string
		r        response
		wantNil  bool
		wantIs   []error
		wantText []string
	}{
		{name: "204 empty", r: response{status: 204}, wantNil: true},
		{name: "200 twin", r: response{status: 200, body: []byte(`{"desired":{"$version":1}}`)}, wantNil: true},
		{
			name:     "400 with errorCode",
			r:        response{status: 400, body: []byte(`{"errorCode":400004,"trackingId":"t1","message":"bad key","timestampUtc":"x"}`)},
			wantIs:   []error{ErrInvalid},
			wantText: []string{"400", "400004", "bad key"},
		},
		{
			name:   "errorCode under a 200 status (the Node SDK's rule)",
			r:      response{status: 200, body: []byte(`{"errorCode":429001,"message":"slow down"}`)},
			wantIs: []error{ErrThrottled},
		},
		{name: "429 without body", r: response{status: 429}, wantIs: []error{ErrThrottled}},
		{name: "500 non-JSON body", r: response{status: 500, body: []byte("oops")}, wantIs: []error{ErrServer}},
		{name: "404", r: response{status: 404}, wantIs: []error{ErrNotFound}},
		{name: "401", r: response{status: 401}, wantIs: []error{ErrUnauthorized}},
		{name: "oversized section 403100", r: response{status: 403, body: []byte(`{"errorCode":403100,"message":"'Properties.Reported' size should be less than 32768 bytes."}`)}, wantIs: []error{ErrTooLarge}},
		{name: "413", r: response{status: 413}, wantIs: []error{ErrTooLarge}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkResponse(opReported, tt.r)
			if tt.wantNil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not *Error", err)
			}
			for _, target := range tt.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
			if errors.Is(err, ErrClosed) || (len(tt.wantIs) > 0 && tt.wantIs[0] != ErrUnauthorized && errors.Is(err, ErrUnauthorized)) {
				t.Errorf("error %v matches an unrelated sentinel", err)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}
