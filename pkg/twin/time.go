package twin

import (
	"bytes"
	"fmt"
	"time"
)

// timeLayout is how the hub writes timestamps: UTC with exactly seven
// fractional digits (100 ns ticks, the .NET DateTime resolution) and a Z.
const timeLayout = "2006-01-02T15:04:05.0000000Z"

// zeroTimeText is how the hub writes a timestamp that was never set.
const zeroTimeText = "0001-01-01T00:00:00Z"

// parseLayouts are tried in order when decoding. Real payloads mix RFC 3339
// with and without a zone and with 0 to 7 fractional digits; a timestamp
// without a zone (e.g. "0001-01-01T00:00:00") is UTC.
var parseLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
}

// Time is a twin timestamp. It marshals as the hub does (UTC, seven
// fractional digits, trailing Z; the zero value as "0001-01-01T00:00:00Z")
// and unmarshals the older and looser forms real hubs and SDKs produce:
// any number of fractional digits, with or without a zone, and null.
type Time struct {
	time.Time
}

// NewTime returns t in UTC truncated to the hub's 100 ns resolution, so that
// a value survives a JSON round trip unchanged.
func NewTime(t time.Time) Time {
	if t.IsZero() {
		return Time{}
	}
	return Time{t.UTC().Truncate(100 * time.Nanosecond)}
}

// String returns the hub's text form of t.
func (t Time) String() string {
	if t.IsZero() {
		return zeroTimeText
	}
	return string(appendTimeText(nil, t.UTC()))
}

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	return t.appendJSON(make([]byte, 0, len(timeLayout)+2)), nil
}

// appendJSON appends t as a quoted JSON string.
func (t Time) appendJSON(b []byte) []byte {
	b = append(b, '"')
	if t.IsZero() {
		b = append(b, zeroTimeText...)
	} else {
		b = appendTimeText(b, t.UTC())
	}
	return append(b, '"')
}

// appendTimeText appends u (in UTC) in timeLayout. Hand-written because
// every $metadata node carries a timestamp and time.AppendFormat, which
// interprets the layout each time, dominated rendering a twin.
func appendTimeText(b []byte, u time.Time) []byte {
	year, month, day := u.Date()
	hour, minute, second := u.Clock()
	if year < 0 || year > 9999 {
		return u.AppendFormat(b, timeLayout)
	}
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, second, 2)
	b = append(b, '.')
	b = appendDigits(b, u.Nanosecond()/100, 7)
	return append(b, 'Z')
}

// appendDigits appends n (≥ 0) zero-padded to width digits.
func appendDigits(b []byte, n, width int) []byte {
	var buf [8]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, buf[:width]...)
}

// UnmarshalJSON implements json.Unmarshaler. null and "" decode to the zero
// time.
func (t *Time) UnmarshalJSON(data []byte) error {
	if bytes.Equal(data, []byte("null")) {
		*t = Time{}
		return nil
	}
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return fmt.Errorf("twin: timestamp %s is not a JSON string", data)
	}
	parsed, err := ParseTime(string(data[1 : len(data)-1]))
	if err != nil {
		return err
	}
	*t = parsed
	return nil
}

// ParseTime parses a hub timestamp in any of the forms real payloads use.
// An empty string is the zero time.
func ParseTime(s string) (Time, error) {
	if s == "" {
		return Time{}, nil
	}
	for _, layout := range parseLayouts {
		if parsed, err := time.Parse(layout, s); err == nil {
			return NewTime(parsed), nil
		}
	}
	return Time{}, fmt.Errorf("twin: cannot parse timestamp %q", s)
}
