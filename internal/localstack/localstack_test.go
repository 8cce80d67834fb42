package localstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
)

func TestPoll(t *testing.T) {
	cases := []struct {
		name     string
		doneAt   int // call number at which check reports done; 0 never
		wantErr  string
		maxCalls int
	}{
		{name: "done at once", doneAt: 1, maxCalls: 1},
		{name: "done later", doneAt: 3, maxCalls: 3},
		{name: "never", doneAt: 0, wantErr: "timed out after 500ms waiting for the thing; last seen: state 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			err := Poll(context.Background(), 500*time.Millisecond, "the thing", func(context.Context) (bool, string) {
				calls++
				if c.doneAt > 0 && calls >= c.doneAt {
					return true, ""
				}
				if calls > 3 {
					return false, "" // an empty state keeps the last one
				}
				return false, "state " + string(rune('0'+calls))
			})
			if c.wantErr == "" {
				if err != nil || calls != c.maxCalls {
					t.Fatalf("err %v after %d calls, want nil after %d", err, calls, c.maxCalls)
				}
				return
			}
			if err == nil || err.Error() != c.wantErr {
				t.Fatalf("err %v, want %q", err, c.wantErr)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	table := &metav1.Table{
		ColumnDefinitions: []metav1.TableColumnDefinition{
			{Name: "Name"}, {Name: "Count"}, {Name: "Query", Priority: 1}, {Name: "Ready"},
		},
		Rows: []metav1.TableRow{
			{Cells: []any{"redmond43", float64(1), "SELECT *", "True"}},
			{Cells: []any{"empty", nil, "SELECT *", "False"}},
		},
	}
	var out strings.Builder
	writeTable(&out, table, "twinquery.iot.twinsync.io")
	want := "NAME                                COUNT    READY\n" +
		"twinquery.iot.twinsync.io/redmond43 1        True\n" +
		"twinquery.iot.twinsync.io/empty     <none>   False\n"
	got := out.String()
	// Compare cell by cell: tabwriter's padding is not the point here.
	if fields(got) != fields(want) {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(got, "SELECT") {
		t.Error("a priority-1 column was printed; kubectl hides those without -o wide")
	}
}

func fields(s string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

func TestSingular(t *testing.T) {
	for plural, want := range map[string]string{"devicetwins": "devicetwin", "twinqueries": "twinquery"} {
		if got := singular(plural); got != want {
			t.Errorf("singular(%q) = %q, want %q", plural, got, want)
		}
	}
}

// TestSamplesAreTheTutorial checks that config/samples declares what
// PlayTutorial waits for.
func TestSamplesAreTheTutorial(t *testing.T) {
	files, err := filepath.Glob("../../config/samples/iot_*.yaml")
	if err != nil || len(files) != 3 {
		t.Fatalf("samples: %v %v", files, err)
	}
	names := map[string]string{}
	for _, f := range files {
		objs, err := readObjects(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			names[o.GetKind()+"/"+o.GetName()] = f
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, newTyped(t, o.GetKind())); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
	for _, want := range []string{"DeviceTwin/" + DeviceTwinName, "TwinQuery/" + PlantQuery, "TwinQuery/" + CellularQuery} {
		if names[want] == "" {
			t.Errorf("config/samples lacks %s (have %v)", want, names)
		}
	}
}

func newTyped(t *testing.T, kind string) any {
	t.Helper()
	obj, err := Scheme().New(iotv1alpha1.GroupVersion.WithKind(kind))
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestProcessStop(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	p, err := startProcess("sleeper", filepath.Join(t.TempDir(), "log"), nil, nil, sleep, "60")
	if err != nil {
		t.Fatal(err)
	}
	if exited, _ := p.Exited(); exited {
		t.Fatal("exited at once")
	}
	start := time.Now()
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if exited, _ := p.Exited(); !exited || time.Since(start) > stopGrace {
		t.Fatalf("not stopped by SIGTERM within %s", stopGrace)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestProcessOutput(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	var lines []string
	logPath := filepath.Join(t.TempDir(), "log")
	p, err := startProcess("printer", logPath, func(l string) { lines = append(lines, l) },
		[]string{"GREETING=hello"}, sh, "-c", "echo $GREETING; echo world >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var exitErr *exec.ExitError
	if err := p.Wait(ctx); !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Fatalf("Wait: %v, want exit status 3", err)
	}
	if strings.Join(lines, ",") != "hello,world" {
		t.Errorf("lines %q, want stdout and stderr lines", lines)
	}
	logged, err := os.ReadFile(logPath)
	if err != nil || string(logged) != "hello\nworld\n" {
		t.Errorf("log %q (%v)", logged, err)
	}
}

// TestWaitProcessFailsFastOnExit checks that a child dying during start is
// reported at once, with its last words, rather than after the timeout.
func TestWaitProcessFailsFastOnExit(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	p, err := startProcess("crasher", filepath.Join(t.TempDir(), "log"), nil, nil, sh, "-c", "echo panic: boom; exit 2")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = (&Stack{}).waitProcess(context.Background(), p, "it to listen", func(context.Context) (bool, string) {
		return false, "not listening"
	})
	if err == nil || !strings.Contains(err.Error(), "panic: boom") || !strings.Contains(err.Error(), "exit status 2") {
		t.Fatalf("err = %v, want the exit status and the log's end", err)
	}
	if time.Since(start) > startTimeout/2 {
		t.Errorf("took %s: waited for the timeout instead of failing at the exit", time.Since(start))
	}
}

func TestRetryPortClash(t *testing.T) {
	clash := errors.New("hub exited: listen tcp 127.0.0.1:1234: bind: address already in use")
	cases := []struct {
		name      string
		errs      []error // returned by successive attempts
		wantCalls int
		wantErr   error
	}{
		{"first try", []error{nil}, 1, nil},
		{"clash then success", []error{clash, nil}, 2, nil},
		{"other error is not retried", []error{errors.New("bad flag")}, 1, errors.New("bad flag")},
		{"clash every time", []error{clash, clash, clash, nil}, portClashAttempts, clash},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			err := retryPortClash(func() error {
				calls++
				return c.errs[calls-1]
			})
			if calls != c.wantCalls || fmt.Sprint(err) != fmt.Sprint(c.wantErr) {
				t.Errorf("calls %d err %v, want %d %v", calls, err, c.wantCalls, c.wantErr)
			}
		})
	}
}
