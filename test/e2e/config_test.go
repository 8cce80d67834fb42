package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// kustomization is the part of a kustomization.yaml that names files.
type kustomization struct {
	Resources          []string `json:"resources"`
	Components         []string `json:"components"`
	ConfigMapGenerator []struct {
		Files []string `json:"files"`
	} `json:"configMapGenerator"`
	SecretGenerator []struct {
		Files []string `json:"files"`
	} `json:"secretGenerator"`
}

// TestKustomizationsReferToFiles checks, without a kustomize binary, that
// every file and directory a kustomization under config/ names exists
// (generated secrets of config/hub excepted: make hub-secrets writes them).
func TestKustomizationsReferToFiles(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(repoRoot, "config", "*", "kustomization.yaml"))
	if err != nil || len(paths) < 6 {
		t.Fatalf("kustomizations: %v %v", paths, err)
	}
	for _, path := range paths {
		dir := filepath.Dir(path)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var k kustomization
			if err := yaml.Unmarshal(data, &k); err != nil {
				t.Fatal(err)
			}
			refs := append(append([]string{}, k.Resources...), k.Components...)
			for _, g := range append(k.ConfigMapGenerator, k.SecretGenerator...) {
				for _, f := range g.Files {
					if _, file, ok := strings.Cut(f, "="); ok {
						f = file
					}
					if !strings.HasPrefix(f, "secrets/") {
						refs = append(refs, f)
					}
				}
			}
			if len(refs) == 0 {
				t.Fatal("names no files")
			}
			for _, ref := range refs {
				if _, err := os.Stat(filepath.Join(dir, ref)); err != nil {
					t.Errorf("%s names %s: %v", path, ref, err)
				}
			}
		})
	}
}

// TestRBACBindingsReferToRoles checks that every binding in config/rbac
// binds a role defined there and the manager's ServiceAccount.
func TestRBACBindingsReferToRoles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "config", "rbac", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type object struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		RoleRef struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"roleRef"`
		Subjects []struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"subjects"`
	}
	roles := map[string]bool{}
	var bindings []object
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			var o object
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			switch o.Kind {
			case "Role", "ClusterRole":
				roles[o.Kind+"/"+o.Metadata.Name] = true
			case "RoleBinding", "ClusterRoleBinding":
				bindings = append(bindings, o)
			}
		}
	}
	if len(bindings) < 3 {
		t.Fatalf("found %d bindings, want the manager, leader election and metrics auth bindings", len(bindings))
	}
	for _, b := range bindings {
		if !roles[b.RoleRef.Kind+"/"+b.RoleRef.Name] {
			t.Errorf("%s %s binds %s %s, which config/rbac does not define", b.Kind, b.Metadata.Name, b.RoleRef.Kind, b.RoleRef.Name)
		}
		if len(b.Subjects) != 1 || b.Subjects[0].Kind != "ServiceAccount" || b.Subjects[0].Name != "controller-manager" {
			t.Errorf("%s %s subjects %+v, want the controller-manager ServiceAccount", b.Kind, b.Metadata.Name, b.Subjects)
		}
	}
}

// flagPattern finds --flag names in manifests.
var flagPattern = regexp.MustCompile(`(?m)^\s*-?\s*(?:value:\s*)?--([a-z0-9][a-z0-9-]*)`)

// checkManifestFlags checks that every --flag a manifest passes to a binary
// is one the binary's -help lists.
func checkManifestFlags(t *testing.T, binary string, manifests ...string) {
	t.Helper()
	help, _ := exec.Command(binary, "-help").CombinedOutput() // exits 0 or 2 depending on the flag package's handling
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(help), -1) {
		known[m[1]] = true
	}
	if len(known) == 0 {
		t.Fatalf("%s -help listed no flags:\n%s", binary, help)
	}
	for _, manifest := range manifests {
		data, err := os.ReadFile(filepath.Join(repoRoot, manifest))
		if err != nil {
			t.Fatal(err)
		}
		var used []string
		for _, m := range flagPattern.FindAllStringSubmatch(string(data), -1) {
			used = append(used, m[1])
		}
		if len(used) == 0 {
			t.Errorf("%s passes no flags to %s", manifest, filepath.Base(binary))
		}
		for _, f := range used {
			if !known[f] {
				t.Errorf("%s passes --%s, which %s does not know (it knows %v)", manifest, f, filepath.Base(binary), slices.Sorted(mapsKeys(known)))
			}
		}
	}
}

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
