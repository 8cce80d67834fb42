package localstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// managerServiceAccount is the manager's identity in config/rbac.
const managerServiceAccount = "controller-manager"

// rbacFiles are the parts of config/rbac the manager itself is bound by:
// the generated role and the leader election role, with their bindings.
var rbacFiles = []string{
	"service_account.yaml",
	"role.yaml",
	"role_binding.yaml",
	"leader_election_role.yaml",
	"leader_election_role_binding.yaml",
}

// installManagerRBAC creates the manager's ServiceAccount, roles and
// bindings from dir as config/default would (namespace SystemNamespace;
// names without the prefix, which changes nothing about what they grant)
// and returns a kubeconfig for the ServiceAccount's user name, so that the
// manager runs with exactly the permissions a cluster would give it.
func (s *Stack) installManagerRBAC(ctx context.Context, dir string) ([]byte, error) {
	for _, file := range rbacFiles {
		objs, err := readObjects(filepath.Join(dir, file))
		if err != nil {
			return nil, err
		}
		for _, obj := range objs {
			if obj.GetNamespace() != "" || obj.GetKind() == "Role" || obj.GetKind() == "RoleBinding" || obj.GetKind() == "ServiceAccount" {
				obj.SetNamespace(SystemNamespace)
			}
			if subjects, ok := obj.Object["subjects"].([]any); ok {
				for _, sub := range subjects {
					if m, ok := sub.(map[string]any); ok && m["kind"] == "ServiceAccount" {
						m["namespace"] = SystemNamespace
					}
				}
			}
			if err := s.Client.Create(ctx, obj); err != nil {
				return nil, fmt.Errorf("create %s %s from %s: %w", obj.GetKind(), obj.GetName(), file, err)
			}
		}
	}
	// A client certificate whose common name is the ServiceAccount's user
	// name is authorized exactly as the ServiceAccount.
	user, err := s.env.AddUser(envtest.User{
		Name:   "system:serviceaccount:" + SystemNamespace + ":" + managerServiceAccount,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + SystemNamespace, "system:authenticated"},
	}, s.RESTConfig)
	if err != nil {
		return nil, err
	}
	return user.KubeConfig()
}

// writeManagerKubeconfig writes the manager's kubeconfig: the
// ServiceAccount's when rbacDir is set, else the admin's.
func (s *Stack) writeManagerKubeconfig(ctx context.Context, rbacDir string) (string, error) {
	if rbacDir == "" {
		return s.Kubeconfig, nil
	}
	kubeconfig, err := s.installManagerRBAC(ctx, rbacDir)
	if err != nil {
		return "", fmt.Errorf("install the manager's RBAC from %s: %w", rbacDir, err)
	}
	path := filepath.Join(s.opts.WorkDir, "manager.kubeconfig")
	return path, os.WriteFile(path, kubeconfig, 0o600)
}
