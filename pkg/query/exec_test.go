package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// sources returns the fixture behind the three execution paths the engine
// has: indexed lookups (json.Number documents), plain scans (float64
// documents) and an IndexedSource hidden behind a plain Source.
func sources(t *testing.T) map[string]Source {
	return map[string]Source{
		"indexed":       fixtureSource(t, true, append(DefaultIndexedPaths, "properties.reported")...),
		"unindexed":     fixtureSource(t, false),
		"scanOnly":      scanOnly{fixtureSource(t, true, "tags")},
		"lookupOnly":    lookupOnly{fixtureSource(t, false, append(DefaultIndexedPaths, "properties.reported")...)},
		"supersetIndex": supersetIndex{lookupOnly{fixtureSource(t, false, "tags")}},
	}
}

// TestSpecExamples runs every example query of spec §6, plus the forms the
// SDK samples use, over the fixture with several page sizes.
func TestSpecExamples(t *testing.T) {
	tests := []struct {
		query string
		typ   ItemType
		ids   []string // for Twin results
		rows  string   // canonical JSON for Raw results
	}{
		{query: "SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60",
			typ: ItemTwin, ids: []string{"device1"}},
		{query: "SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired','wifi']",
			typ: ItemTwin, ids: []string{"device2", "device3"}},
		{query: "SELECT * FROM devices WHERE is_defined(properties.reported.connectivity)",
			typ: ItemTwin, ids: []string{"device1", "device2", "device3"}},
		{query: "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
			typ: ItemRaw, rows: `[{"numberOfDevices":1},{"numberOfDevices":1,"status":"Pending"},{"numberOfDevices":2,"status":"Success"}]`},
		{query: "SELECT COUNT() as totalNumberOfDevices FROM devices",
			typ: ItemRaw, rows: `[{"totalNumberOfDevices":4}]`},
		{query: "SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
			typ: ItemRaw, rows: `[{"deviceId":"device1","lastActivityTime":"2020-07-17T06:12:26.8402249Z"},{"deviceId":"sensor-4","lastActivityTime":"0001-01-01T00:00:00"}]`},
		{query: "SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning' AND deviceId IN ['device1','device2']",
			typ: ItemTwin, ids: []string{"device1/scanner"}},
		{query: "SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'myDeviceId'",
			typ: ItemDeviceJob, ids: []string{}},
		{query: "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'",
			typ: ItemTwin, ids: []string{"device1", "device3"}},
		{query: "SELECT * FROM devices WHERE STARTSWITH(id, 'device')",
			typ: ItemTwin, ids: []string{"device1", "device2", "device3"}},
		{query: "SELECT * FROM devices WHERE startsWith(devices.deviceId, 'sensor')",
			typ: ItemTwin, ids: []string{"sensor-4"}},
		{query: "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' AND properties.reported.connectivity = 'cellular'",
			typ: ItemTwin, ids: []string{"device1"}},
		{query: "SELECT * FROM devices.modules WHERE moduleId = 'scanner'",
			typ: ItemTwin, ids: []string{"device1/scanner", "device2/scanner", "device9/scanner"}},
		{query: "SELECT deviceId, moduleId FROM devices.modules WHERE devices.modules.properties.reported.status = 'scanning'",
			typ: ItemRaw, rows: `[{"deviceId":"device1","moduleId":"scanner"},{"deviceId":"device9","moduleId":"scanner"}]`},
		{query: "SELECT TOP 2 * FROM devices",
			typ: ItemTwin, ids: []string{"device1", "device2"}},
		{query: "SELECT deviceId, properties.reported.telemetryConfig FROM devices WHERE deviceId = 'device2'",
			typ: ItemRaw, rows: `[{"deviceId":"device2","telemetryConfig":{"sendFrequencyInSecs":30,"status":"Pending"}}]`},
		{query: "SELECT COUNT() AS n, AVG(properties.reported.battery) AS avg, SUM(properties.reported.battery) AS sum, MIN(properties.reported.battery) AS min, MAX(properties.reported.battery) AS max FROM devices",
			typ: ItemRaw, rows: `[{"avg":50,"max":"n/a","min":20,"n":4,"sum":100}]`},
		{query: "SELECT COUNT() AS n, SUM(tags.none) AS s FROM devices WHERE tags.location.plant = 'nowhere'",
			typ: ItemRaw, rows: `[{"n":0}]`},
		{query: "SELECT tags.location.region AS region, COUNT() AS n FROM devices GROUP BY tags.location.region",
			typ: ItemRaw, rows: `[{"n":1},{"n":1,"region":"EU"},{"n":2,"region":"US"}]`},
		{query: "SELECT status, connectionState, COUNT() AS n FROM devices GROUP BY status, connectionState",
			typ: ItemRaw, rows: `[{"connectionState":"Disconnected","n":1,"status":"disabled"},{"connectionState":"Connected","n":1,"status":"enabled"},{"connectionState":"Disconnected","n":2,"status":"enabled"}]`},
		{query: "SELECT deviceId, properties.reported.battery * 2 + 1 AS twice, LENGTH(deviceId) FROM devices WHERE IS_NUMBER(properties.reported.battery)",
			typ: ItemRaw, rows: `[{"$3":7,"deviceId":"device1","twice":161},{"$3":7,"deviceId":"device2","twice":41}]`},
		{query: "SELECT TOP 1 tags.location.region AS region, COUNT() AS n FROM devices GROUP BY tags.location.region",
			typ: ItemRaw, rows: `[{"n":1}]`},
	}
	for name, src := range sources(t) {
		for _, pageSize := range []int{0, 1, 2, 100} {
			for _, tt := range tests {
				t.Run(fmt.Sprintf("%s/page%d/%s", name, pageSize, tt.query), func(t *testing.T) {
					rows, typ := runAll(t, src, tt.query, pageSize)
					if typ != tt.typ {
						t.Errorf("item type = %s, want %s", typ, tt.typ)
					}
					if tt.ids != nil {
						if got := ids(rows); !slices.Equal(got, tt.ids) {
							t.Errorf("ids = %v, want %v", got, tt.ids)
						}
						return
					}
					if got := canonicalJSON(t, rows); got != tt.rows {
						t.Errorf("rows = %s\nwant   %s", got, tt.rows)
					}
				})
			}
		}
	}
}

// TestGotchas covers the semantic traps of spec §6 and §8 that a query
// engine must reproduce.
func TestGotchas(t *testing.T) {
	tests := []struct {
		name  string
		where string
		ids   []string
	}{
		{"keyword group escaped", "tags.[[group]].name = 'alpha'", []string{"device1"}},
		{"keywords and system names case-insensitive", "Tags.location.plant = 'Redmond43' aNd STATUS = 'enabled'", []string{"device1"}},
		{"properties sections case-insensitive", "Properties.Reported.connectivity = 'wifi'", []string{"device2"}},
		{"keys below tags case-sensitive", "tags.Location.plant = 'Redmond43'", []string{}},
		{"string comparison case-sensitive", "tags.owner = 'team1'", []string{"device2"}},
		{"!= drops twins lacking the property", "tags.location.region != 'US'", []string{"device3"}},
		{"<> is !=", "tags.location.region <> 'US'", []string{"device3"}},
		{"NOT of undefined is not true", "NOT (tags.location.region = 'US')", []string{"device3"}},
		{"number never equals string", "tags.serial = 5", []string{"device3"}},
		{"string never equals number", "tags.serial = '5'", []string{"sensor-4"}},
		{"mixed types never order", "properties.reported.battery > 50", []string{"device1"}},
		{"string ordering", "properties.reported.battery >= 'a'", []string{"device3"}},
		{"null equals null", "tags.flag = null", []string{"device3"}},
		{"IS_DEFINED true for null", "IS_DEFINED(tags.flag)", []string{"device3"}},
		{"IS_NULL", "is_null(tags.flag)", []string{"device3"}},
		{"only true matches: a string is not true", "tags.owner", []string{}},
		{"only true matches: bool literal", "true", []string{"device1", "device2", "device3", "sensor-4"}},
		{"IN over numbers and strings", "tags.serial IN [5, 'x']", []string{"device3"}},
		{"NIN drops undefined", "tags.location.region NIN ['US']", []string{"device3"}},
		{"hex numbers", "properties.reported.battery = 0x50", []string{"device1"}},
		{"arithmetic precedence", "properties.reported.battery * 2 + 10 = 170", []string{"device1"}},
		{"modulo", "properties.reported.battery % 3 = 2", []string{"device1", "device2"}},
		{"division by zero is undefined", "properties.reported.battery / 0 > 0 OR deviceId = 'device2'", []string{"device2"}},
		{"unary minus", "-properties.reported.battery < -50", []string{"device1"}},
		{"string escapes", `tags.owner = "Team\u0031"`, []string{"device1"}},
		{"LOWER", "LOWER(tags.owner) = 'team1'", []string{"device1", "device2"}},
		{"UPPER", "upper(tags.owner) = 'TEAM1'", []string{"device1", "device2"}},
		{"ENDSWITH", "ENDSWITH(deviceId, '-4')", []string{"sensor-4"}},
		{"CONTAINS", "CONTAINS(deviceId, 'ice')", []string{"device1", "device2", "device3"}},
		{"LENGTH", "LENGTH(deviceId) = 8", []string{"sensor-4"}},
		{"IS_STRING", "IS_STRING(properties.reported.battery)", []string{"device3"}},
		{"IS_OBJECT", "IS_OBJECT(tags.location)", []string{"device1", "device2", "device3"}},
		{"IS_ARRAY", "IS_ARRAY(tags.list)", []string{"sensor-4"}},
		{"IS_PRIMITIVE", "IS_PRIMITIVE(tags.serial)", []string{"device3", "sensor-4"}},
		{"IS_BOOL of a comparison", "IS_BOOL(tags.location.region = 'US')", []string{"device1", "device2", "device3"}},
		{"IS_NUMBER with json.Number or float64", "IS_NUMBER(tags.serial)", []string{"device3"}},
		{"arrays never compare", "tags.list IN [1]", []string{}},
		{"OR with undefined", "tags.nothing = 1 OR tags.serial = 5", []string{"device3"}},
		{"metadata is queryable", "properties.desired.$version = 2", []string{"device1"}},
	}
	for name, src := range sources(t) {
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				rows, _ := runAll(t, src, "SELECT * FROM devices WHERE "+tt.where, 0)
				if got := ids(rows); !slices.Equal(got, tt.ids) {
					t.Errorf("WHERE %s: ids = %v, want %v", tt.where, got, tt.ids)
				}
			})
		}
	}
}

func TestPagingAcrossChanges(t *testing.T) {
	src := NewMemSource("tags")
	put := func(id, plant string) {
		t.Helper()
		if err := src.Put(map[string]any{"deviceId": id, "tags": map[string]any{"plant": plant}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		put(fmt.Sprintf("d%02d", i), "A")
	}
	for _, text := range []string{"SELECT * FROM devices WHERE tags.plant = 'A'", "SELECT deviceId FROM devices WHERE STARTSWITH(tags.plant, 'A')"} {
		t.Run(text, func(t *testing.T) {
			q, err := Parse(text)
			if err != nil {
				t.Fatal(err)
			}
			page, err := Execute(context.Background(), q, src, Options{PageSize: 4})
			if err != nil || page.Continuation == "" {
				t.Fatalf("first page: %v, token %q", err, page.Continuation)
			}
			got := ids(page.Items)
			// Between pages: a returned twin is rewritten, one ahead is deleted, one
			// ahead is rewritten with the same value and a new twin sorts before the cursor.
			put("d01", "A")
			src.Delete("d06", "")
			put("d07", "A")
			put("d00a", "A")
			defer func() { src.Delete("d00a", ""); put("d06", "A") }()
			for page.Continuation != "" {
				if page, err = Execute(context.Background(), q, src, Options{PageSize: 4, Continuation: page.Continuation}); err != nil {
					t.Fatal(err)
				}
				got = append(got, ids(page.Items)...)
			}
			want := []string{"d00", "d01", "d02", "d03", "d04", "d05", "d07", "d08", "d09"}
			if !slices.Equal(got, want) {
				t.Errorf("ids = %v, want %v", got, want)
			}
		})
	}
}

func TestContinuation(t *testing.T) {
	src := fixtureSource(t, false, "tags")
	ctx := context.Background()
	q, _ := Parse("SELECT * FROM devices")
	other, _ := Parse("SELECT * FROM devices WHERE status = 'enabled'")
	first, err := Execute(ctx, q, src, Options{PageSize: 2})
	if err != nil || first.Continuation == "" {
		t.Fatalf("first page: %v %q", err, first.Continuation)
	}
	tests := []struct {
		name    string
		q       *Query
		token   string
		wantErr error
	}{
		{"garbage", q, "not a token!", ErrInvalidContinuation},
		{"base64 of junk", q, "eyJ2IjoyfQ", ErrInvalidContinuation},
		{"token of another query", other, first.Continuation, ErrInvalidContinuation},
		{"own token", q, first.Continuation, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Execute(ctx, tt.q, src, Options{PageSize: 2, Continuation: tt.token})
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	t.Run("no token when the page holds the last match", func(t *testing.T) {
		page, err := Execute(ctx, q, src, Options{PageSize: 4})
		if err != nil || len(page.Items) != 4 || page.Continuation != "" {
			t.Errorf("page of %d rows, token %q, err %v; want 4 rows and no token", len(page.Items), page.Continuation, err)
		}
	})
	t.Run("TOP ends paging", func(t *testing.T) {
		top, _ := Parse("SELECT TOP 3 * FROM devices")
		p1, _ := Execute(ctx, top, src, Options{PageSize: 2})
		p2, err := Execute(ctx, top, src, Options{PageSize: 2, Continuation: p1.Continuation})
		if err != nil || len(p1.Items) != 2 || len(p2.Items) != 1 || p2.Continuation != "" {
			t.Errorf("pages of %d and %d rows, last token %q, err %v", len(p1.Items), len(p2.Items), p2.Continuation, err)
		}
	})
	t.Run("TOP 0", func(t *testing.T) {
		top, _ := Parse("SELECT TOP 0 * FROM devices")
		p, err := Execute(ctx, top, src, Options{})
		if err != nil || len(p.Items) != 0 || p.Continuation != "" {
			t.Errorf("%d rows, token %q, err %v", len(p.Items), p.Continuation, err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := Execute(cctx, q, src, Options{}); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}
