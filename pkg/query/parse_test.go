package query

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"select top 5 deviceid, LASTACTIVITYTIME as t from devices where STATUS = 'enabled' and Tags.x <> 0x1F",
			"SELECT TOP 5 deviceId, lastActivityTime AS t FROM devices WHERE ((status = 'enabled') AND (tags.x != 31))"},
		{"SELECT * FROM devices WHERE a = 1 OR b = 2 AND NOT c = 3",
			"SELECT * FROM devices WHERE ((a = 1) OR ((b = 2) AND (NOT (c = 3))))"},
		{"SELECT * FROM devices WHERE a + b * c - -d = 1 % 2 / 3",
			"SELECT * FROM devices WHERE (((a + (b * c)) - (-d)) = ((1 % 2) / 3))"},
		{"SELECT * FROM devices WHERE (a = 1 OR b = 2) AND c = 3",
			"SELECT * FROM devices WHERE (((a = 1) OR (b = 2)) AND (c = 3))"},
		{`SELECT * FROM devices WHERE a = "it's" OR a = '\u0041\n\\' OR a = '\uD83D\uDE00'`,
			`SELECT * FROM devices WHERE (((a = 'it\'s') OR (a = 'A\u000a\\')) OR (a = '😀'))`},
		{"SELECT devices.deviceId FROM devices WHERE devices.tags.x = -1.5e3",
			"SELECT deviceId FROM devices WHERE (tags.x = -1500)"},
		{"SELECT * FROM devices.modules WHERE devices.modules.moduleId = 'm' AND devices.deviceid = 'd'",
			"SELECT * FROM devices.modules WHERE ((moduleId = 'm') AND (deviceId = 'd'))"},
		{"SELECT * FROM devices WHERE tags.[[group]].name = 'x' AND tags.[[a b]] = true",
			"SELECT * FROM devices WHERE ((tags.[[group]].name = 'x') AND (tags.[[a b]] = true))"},
		{"SELECT * FROM devices WHERE properties.REPORTED.x = null AND tags.Location = undefined",
			"SELECT * FROM devices WHERE ((properties.reported.x = null) AND (tags.Location = undefined))"},
		{"SELECT * FROM devices WHERE x in ['a', -2, null, true] and y nin [0x10]",
			"SELECT * FROM devices WHERE ((x IN ['a', -2, null, true]) AND (y NIN [16]))"},
		{"SELECT * FROM devices WHERE is_defined(x) AND StartsWith(id, 'a')",
			"SELECT * FROM devices WHERE (IS_DEFINED(x) AND STARTSWITH(deviceId, 'a'))"},
		{"SELECT x AS [[select]], count() AS n, Max(y) AS m FROM devices GROUP BY x",
			"SELECT x AS [[select]], COUNT() AS n, MAX(y) AS m FROM devices GROUP BY x"},
		{"SELECT *\nFROM devices\r\n\tWHERE NOT NOT x = 1",
			"SELECT * FROM devices WHERE (NOT (NOT (x = 1)))"},
		{"SELECT * FROM devices WHERE devices.devices.x = 1",
			"SELECT * FROM devices WHERE (devices.devices.x = 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			q, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := q.String(); got != tt.want {
				t.Errorf("String() = %s\nwant       %s", got, tt.want)
			}
			assertRoundTrip(t, q)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT * FROM devices WHERE deviceId = ", "line 1, column 38: expected a value after '='"},
		{"", "line 1, column 1: expected SELECT at the start of the query, found end of query"},
		{"SELECT FROM devices", "line 1, column 8: expected '*' or a select item after 'SELECT', found 'FROM'"},
		{"SELECT *", "line 1, column 9: expected FROM after the select list, found end of query"},
		{"SELECT * FROM things", "line 1, column 15: expected devices, devices.modules or devices.jobs after FROM, found 'things'"},
		{"SELECT * FROM devices.twins", "line 1, column 23: expected modules or jobs after 'devices.', found 'twins'"},
		{"SELECT * FROM devices WHERE deviceId IN ('a','b')",
			"line 1, column 38: expected '[' after IN (IN and NIN take a bracketed array such as ['a', 'b'])"},
		{"SELECT * FROM devices WHERE x IN ['a' 'b']", "line 1, column 39: expected ',' or ']' in the array, found a string"},
		{"SELECT * FROM devices WHERE x IN [y]", "line 1, column 35: expected a constant in the array, found 'y'"},
		{"SELECT * FROM devices WHERE x IN []", "line 1, column 34: expected a constant after '['"},
		{"SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'a')", "line 1, column 29: unknown function 'STARTS_WITH'"},
		{"SELECT * FROM devices WHERE tags.group.name = 'x'",
			"line 1, column 34: expected a property name after '.', found keyword 'group' (write [[group]] for a property with that name)"},
		{"SELECT *\nFROM devices\nWHERE x = 'abc", "line 3, column 11: unterminated string: expected closing '"},
		{"SELECT * FROM devices WHERE COUNT() > 1", "line 1, column 29: COUNT is an aggregate and is allowed only in the select list"},
		{"SELECT deviceId, COUNT() AS n FROM devices",
			"line 1, column 8: expected an aggregate: without GROUP BY, a select list with aggregates holds only aggregates"},
		{"SELECT COUNT() + 1 AS n FROM devices", "line 1, column 8: aggregate COUNT must be a select item of its own"},
		{"SELECT MAX(MIN(x)) AS n FROM devices", "line 1, column 12: aggregate MIN cannot be nested in an expression"},
		{"SELECT * FROM devices.modules GROUP BY status", "line 1, column 40: GROUP BY is supported only FROM devices"},
		{"SELECT * FROM devices GROUP BY status",
			"line 1, column 32: expected a select list of grouped paths and aggregates with GROUP BY, found '*'"},
		{"SELECT deviceId, COUNT() AS n FROM devices GROUP BY status",
			"line 1, column 8: expected an aggregate or a GROUP BY path, found deviceId"},
		{"SELECT * FROM devices GROUP status", "line 1, column 29: expected BY after GROUP, found 'status'"},
		{"SELECT COUNT() AS n FROM devices GROUP BY", "line 1, column 40: expected a property path after 'BY'"},
		{"SELECT deviceId FROM devices.jobs", "line 1, column 8: devices.jobs supports only SELECT *"},
		{"SELECT TOP x * FROM devices", "line 1, column 8: expected a whole number after TOP"},
		{"SELECT TOP 1.5 * FROM devices", "line 1, column 8: expected a whole number after TOP"},
		{"SELECT * FROM devices WHERE a = 1 ORDER BY a", "line 1, column 35: expected end of query, found 'ORDER'"},
		{`SELECT * FROM devices WHERE a = 'x\q'`, `line 1, column 35: invalid escape in string: expected one of \' \" \\ \/ \b \f \n \r \t \uXXXX`},
		{`SELECT * FROM devices WHERE a = '\u12'`, `line 1, column 34: invalid \u escape: expected four hexadecimal digits`},
		{"SELECT * FROM devices WHERE a = 12ab", `line 1, column 33: invalid number "12"`},
		{"SELECT * FROM devices WHERE a = 0xZZ", `line 1, column 33: invalid hexadecimal number "0x"`},
		{"SELECT * FROM devices WHERE a = 1e999", `line 1, column 33: invalid number "1e999"`},
		{"SELECT * FROM devices WHERE a = #", "line 1, column 33: unexpected character '#'"},
		{"SELECT * FROM devices WHERE IS_DEFINED(a, b)", "line 1, column 29: IS_DEFINED takes one argument, found two"},
		{"SELECT * FROM devices WHERE STARTSWITH(a)", "line 1, column 29: STARTSWITH takes two arguments, found one"},
		{"SELECT * FROM devices WHERE IS_DEFINED(a b)", "line 1, column 42: expected ',' or ')' in the arguments of IS_DEFINED, found 'b'"},
		{"SELECT a, a FROM devices", "line 1, column 11: duplicate output name 'a': add AS with another name"},
		{"SELECT * FROM devices WHERE tags.[[group", "line 1, column 34: unterminated [[ name: expected ']]'"},
		{"SELECT * FROM devices WHERE tags.[[]] = 1", "line 1, column 34: expected a name inside [[ ]]"},
		{"SELECT * FROM devices WHERE tags.list = [1]", "line 1, column 41: arrays are allowed only after IN or NIN"},
		{"SELECT * FROM devices WHERE (a = 1", "line 1, column 35: expected ')' to close the '(' at line 1, column 29, found end of query"},
		{"SELECT * FROM devices WHERE a = 1 AND", "line 1, column 35: expected a value after 'AND'"},
		{"SELECT * FROM devices WHERE NOT", "line 1, column 29: expected a value after 'NOT'"},
		{"SELECT * FROM devices WHERE x.", "line 1, column 31: expected a property name after '.', found end of query"},
		{"SELECT x AS FROM devices", "line 1, column 13: expected an alias after AS, found keyword 'FROM' (write [[FROM]] for a property with that name)"},
		{"SELECT * FROM devices WHERE a = -", "line 1, column 33: expected a value after '-'"},
		{"SELECT * FROM devices WHERE x IN [-'a']", "line 1, column 35: expected a number after '-'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			q, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse succeeded: %s", q)
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %T is not *Error", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error = %s\nwant    %s", err, tt.want)
			}
		})
	}
}

func TestParseLength(t *testing.T) {
	base := "SELECT * FROM devices WHERE tags.x = '"
	fill := func(total int) string { return base + strings.Repeat("é", total-len([]rune(base))-1) + "'" }
	if _, err := Parse(fill(MaxQueryLength)); err != nil {
		t.Errorf("query of exactly %d characters refused: %v", MaxQueryLength, err)
	}
	_, err := Parse(fill(MaxQueryLength + 1))
	if !errors.Is(err, ErrQueryTooLong) {
		t.Errorf("query of %d characters: err = %v, want ErrQueryTooLong", MaxQueryLength+1, err)
	}
}

// TestQueryProperties pins x-ms-item-type with its exact casing: C# v1
// parses it case-sensitively and fails twin queries unless it reads "Twin"
// (spec §8.4).
func TestQueryProperties(t *testing.T) {
	tests := []struct {
		in         string
		typ        ItemType
		aggregates bool
	}{
		{"SELECT * FROM devices", "Twin", false},
		{"SELECT * FROM devices.modules", "Twin", false},
		{"SELECT * FROM devices.jobs", "DeviceJob", false},
		{"SELECT deviceId FROM devices", "Raw", false},
		{"SELECT COUNT() AS n FROM devices", "Raw", true},
	}
	for _, tt := range tests {
		q, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		if q.ItemType() != tt.typ || q.HasAggregates() != tt.aggregates {
			t.Errorf("%s: ItemType %s, HasAggregates %v; want %s, %v", tt.in, q.ItemType(), q.HasAggregates(), tt.typ, tt.aggregates)
		}
	}
}
