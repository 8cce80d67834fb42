package query

import (
	"encoding/json"
	"testing"
)

// TestTruthTable pins the results of operators and functions over
// undefined, null and mixed types.
func TestTruthTable(t *testing.T) {
	doc := map[string]any{"tags": map[string]any{
		"nul": nil,
		"obj": map[string]any{"a": 1.0},
		"arr": []any{1.0},
		"num": json.Number("5"),
		"int": 7,
	}}
	U := Undefined
	tests := []struct {
		expr string
		want any
	}{
		{"tags.missing = 1", U}, {"tags.missing != 1", U}, {"tags.missing = undefined", U},
		{"undefined = undefined", U}, {"tags.missing = null", U},
		{"null = null", true}, {"null != null", false}, {"null < null", U}, {"tags.nul = null", true},
		{"1 = '1'", U}, {"1 != '1'", U}, {"true = 1", U}, {"null = false", U},
		{"1 = 1.0", true}, {"false < true", true}, {"true >= true", true},
		{"'a' < 'b'", true}, {"'B' < 'a'", true}, {"'a' = 'A'", false},
		{"tags.obj = tags.obj", U}, {"tags.arr = tags.arr", U}, {"tags.obj != null", U},
		{"true AND tags.missing", U}, {"false AND tags.missing", false}, {"tags.missing AND false", false},
		{"true AND true", true}, {"'a' AND true", U}, {"null AND false", false},
		{"true OR tags.missing", true}, {"tags.missing OR true", true}, {"false OR tags.missing", U},
		{"false OR false", false}, {"null OR true", true}, {"1 OR false", U},
		{"NOT tags.missing", U}, {"NOT null", U}, {"NOT 'a'", U}, {"NOT false", true},
		{"IS_DEFINED(tags.missing)", false}, {"IS_DEFINED(tags.nul)", true}, {"IS_NULL(tags.missing)", false},
		{"IS_PRIMITIVE(tags.nul)", true}, {"IS_PRIMITIVE(tags.obj)", false}, {"IS_OBJECT(tags.arr)", false},
		{"1 + '1'", U}, {"tags.missing + 1", U}, {"null + 1", U}, {"7 % 4", 3.0}, {"1 / 0", U}, {"-tags.missing", U},
		{"tags.missing IN [1]", U}, {"tags.missing NIN [1]", U}, {"null IN [null]", true},
		{"1 IN ['1']", false}, {"1 NIN ['1']", true}, {"tags.obj IN [1]", U}, {"1 IN [undefined]", false},
		{"LOWER(1)", U}, {"LOWER(tags.missing)", U}, {"LENGTH('héllo')", 5.0}, {"STARTSWITH('abc', 1)", U},
		{"STARTSWITH('abc', 'ab')", true}, {"STARTSWITH('abc', 'AB')", false},
		{"tags.num = 5", true}, {"tags.num + 1", 6.0}, {"tags.int = 7", true}, {"IS_NUMBER(tags.num)", true},
		{"tags.obj", map[string]any{"a": 1.0}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			q, err := Parse("SELECT * FROM devices WHERE " + tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			got := Eval(q.Where, doc)
			if canonical(got) != canonical(tt.want) {
				t.Errorf("%s = %v, want %v", tt.expr, got, tt.want)
			}
			if q.Matches(doc) != (got == true) {
				t.Errorf("Matches = %v although the clause is %v", q.Matches(doc), got)
			}
		})
	}
}

func canonical(v any) string {
	if v == Undefined {
		return "undefined"
	}
	b, _ := json.Marshal(v)
	return string(b)
}
