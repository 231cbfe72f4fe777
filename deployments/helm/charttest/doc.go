// Package charttest checks the Helm chart in deployments/helm/gpudra by
// running the real helm binary (built from Go modules by hack/helm/build.sh)
// and decoding every rendered object strictly into its Kubernetes API type,
// so a misspelt field fails here rather than at install time. It has no code
// of its own beyond its tests.
package charttest
