// Package nodetest runs the official Azure IoT Node SDKs from Go tests: it
// installs the packages pinned in a directory's package-lock.json and gives
// scripts a clean environment.
//
// The interop tests are the proof that the official SDKs work against the
// hub and that pkg/iothub speaks like them, so a missing Node or npm fails
// the test rather than skipping it. Set TWINSYNC_SKIP_NODE_INTEROP=1 to skip
// them on a machine without Node.
package nodetest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SkipEnv is the variable that, set to 1, skips the Node interop tests.
const SkipEnv = "TWINSYNC_SKIP_NODE_INTEROP"

// Require makes sure node is installed and the packages pinned in
// dir/package-lock.json are installed in dir/node_modules (running npm ci
// once when they are not). It fails the test when either is impossible.
func Require(t testing.TB, dir string) {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s=1", SkipEnv)
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed; the interop tests need Node.js and npm (or set %s=1 to skip them)", tool, SkipEnv)
		}
	}
	// npm ci writes node_modules/.package-lock.json last; its presence
	// means a complete install of the pinned tree.
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

// Env returns the process environment with the named variables removed,
// then the given NAME=value pairs added.
func Env(remove []string, add ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		drop := false
		for _, name := range remove {
			if strings.HasPrefix(kv, name+"=") {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return append(out, add...)
}
