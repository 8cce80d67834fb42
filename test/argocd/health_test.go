package argocd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// customizations is the directory of Argo CD resource customizations,
// laid out as <group>/<kind>/health.lua like Argo CD's own.
const customizations = "../../config/argocd"

// healthTest is Argo CD's health_test.yaml.
type healthTest struct {
	Tests []struct {
		HealthStatus healthStatus `json:"healthStatus"`
		InputPath    string       `json:"inputPath"`
	} `json:"tests"`
}

// healthStatus is what a health script returns.
type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func TestHealthChecks(t *testing.T) {
	scripts, err := filepath.Glob(filepath.Join(customizations, "*", "*", "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) != 2 {
		t.Fatalf("want health checks for DeviceTwin and TwinQuery, found %v", scripts)
	}
	for _, script := range scripts {
		dir := filepath.Dir(script)
		kind := filepath.Base(dir)
		cases := readHealthTest(t, filepath.Join(dir, "health_test.yaml"))
		if len(cases.Tests) == 0 {
			t.Fatalf("%s: no test cases", dir)
		}
		source, err := os.ReadFile(script)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases.Tests {
			t.Run(kind+"/"+c.InputPath, func(t *testing.T) {
				obj := readObject(t, filepath.Join(dir, c.InputPath))
				got, err := runHealth(string(source), obj)
				if err != nil {
					t.Fatal(err)
				}
				if got != c.HealthStatus {
					t.Errorf("health = %+v, want %+v", got, c.HealthStatus)
				}
			})
		}
	}
}

// TestEveryTestdataFileIsACase keeps testdata and health_test.yaml in step:
// an object nobody checks is a case somebody forgot to write.
func TestEveryTestdataFileIsACase(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(customizations, "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "health.lua")); err != nil {
			continue
		}
		used := map[string]bool{}
		for _, c := range readHealthTest(t, filepath.Join(dir, "health_test.yaml")).Tests {
			used[filepath.Clean(c.InputPath)] = true
		}
		files, _ := filepath.Glob(filepath.Join(dir, "testdata", "*.yaml"))
		for _, f := range files {
			rel, _ := filepath.Rel(dir, f)
			if !used[rel] {
				t.Errorf("%s is not used by %s/health_test.yaml", rel, dir)
			}
		}
	}
}

func readHealthTest(t *testing.T, path string) healthTest {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ht healthTest
	if err := yaml.UnmarshalStrict(data, &ht); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ht
}

func readObject(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var obj map[string]any
	if err := json.Unmarshal(js, &obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return obj
}

// runHealth runs a health script the way Argo CD does: obj is a global and
// the script's top-level return value is the health status table.
func runHealth(script string, obj map[string]any) (healthStatus, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return healthStatus{}, err
	}
	table, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("the script returned %s, not a table", L.Get(-1).Type())
	}
	return healthStatus{
		Status:  lua.LVAsString(table.RawGetString("status")),
		Message: lua.LVAsString(table.RawGetString("message")),
	}, nil
}

// toLua converts a decoded JSON value to Lua: objects and arrays become
// tables (arrays 1-based), numbers LNumber, null nil.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case bool:
		return lua.LBool(v)
	default:
		return lua.LNil
	}
}
