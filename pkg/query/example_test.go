package query_test

import (
	"context"
	"fmt"

	"github.com/twinsync/twinsync/pkg/query"
)

func ExampleParse() {
	q, err := query.Parse("select deviceid from DEVICES where Tags.location.plant = 'Redmond43' and is_defined(properties.REPORTED.connectivity)")
	fmt.Println(q, err)

	_, err = query.Parse("SELECT * FROM devices WHERE deviceId = ")
	fmt.Println(err)
	// Output:
	// SELECT deviceId FROM devices WHERE ((tags.location.plant = 'Redmond43') AND IS_DEFINED(properties.reported.connectivity)) <nil>
	// line 1, column 38: expected a value after '='
}

func ExampleExecute() {
	src := query.NewMemSource(query.DefaultIndexedPaths...)
	for i, plant := range []string{"Redmond43", "Plant1", "Redmond43", "Redmond43"} {
		_ = src.Put(map[string]any{
			"deviceId": fmt.Sprintf("dev%d", i),
			"tags":     map[string]any{"location": map[string]any{"plant": plant}},
		})
	}
	q, _ := query.Parse("SELECT deviceId FROM devices WHERE tags.location.plant = 'Redmond43'")
	opts := query.Options{PageSize: 2}
	for {
		page, err := query.Execute(context.Background(), q, src, opts)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(page.ItemType, page.Items, page.Continuation != "")
		if page.Continuation == "" {
			break
		}
		opts.Continuation = page.Continuation
	}
	// Output:
	// Raw [map[deviceId:dev0] map[deviceId:dev2]] true
	// Raw [map[deviceId:dev3]] false
}
