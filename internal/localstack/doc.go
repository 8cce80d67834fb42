// Package localstack runs twinsync end to end on one machine: a real
// kube-apiserver and etcd (controller-runtime's envtest, with the binaries
// hack/envtest.sh builds), the twinsync CRDs, the embedded hub, the manager
// and the device simulator, each of the last three as its own process
// started from the binaries `make build` writes. It also plays the tutorial
// "Get started with device twins" against that stack, step by step.
//
// `make demo`, `make run` (test/e2e/localstack) and the end-to-end test
// (test/e2e) share it, so the demo a newcomer watches and the test CI runs
// are the same scenario.
//
// # Design choices
//
//   - Processes, not goroutines: the demo and the test exercise the real
//     binaries with their real flags, and a crash of one shows as an exit
//     status instead of taking the others down. Every child runs in its own
//     process group and, on Linux, dies with its parent (Pdeathsig), so an
//     interrupted demo leaves nothing behind.
//   - Loopback only: the hub and the manager's probes listen on free
//     127.0.0.1 ports. The hub's name is 127.0.0.1:<https port>, so its
//     connection strings work without DNS or port 443.
//   - The hub runs in memory: a demo needs no state after it ends.
//   - The manager runs as its ServiceAccount, bound by the roles in
//     config/rbac (role.yaml is generated from the controllers' RBAC
//     markers), not as cluster admin: a permission the markers miss fails
//     the demo and the e2e test, not a cluster install.
//   - The manager finds the hub through the default hub Secret
//     (twinsync-system/twinsync-hub-connection, keys connectionString and
//     ca.crt), the same Secret config/hub creates in a cluster.
//   - The device simulator gets what a pod would mount from the DeviceTwin's
//     provisioning Secret (connectionString, ca.crt) in a private directory.
//     A provisioned connection string names the hub, whose MQTT endpoint is on
//     another loopback port here, so GatewayHostName is added when the
//     Secret has none; IoT Edge clients use the same field.
//   - Waiting is polling with a deadline (the Wait* helpers), never sleeping
//     for a fixed time; every step fails with what it last saw.
package localstack
