// Package apiconv converts Kubernetes API objects (core/v1 Pod, Namespace,
// Service and Node, networking/v1 NetworkPolicy, and the workloads whose
// pod templates stand for their pods: Deployment, ReplicaSet, StatefulSet,
// DaemonSet, Job, CronJob, ReplicationController) into the cluster state
// of internal/model, validating on the way in as strictly as the API
// server (v1.37) does for the fields palisade reads. Cluster-wide policy
// (policy.networking.k8s.io AdminNetworkPolicy, BaselineAdminNetworkPolicy,
// ClusterNetworkPolicy) is validated as its CRDs' schema and CEL rules do
// and converted to model.ClusterPolicy (cluster_policy.go).
//
// Both sources of cluster state go through this package: manifest files
// (internal/manifest) and the Kubernetes API (internal/kube). It never
// mutates its input and never applies API defaulting to it; defaults that
// matter (protocol TCP, effective policyTypes, targetPort = port) are applied
// to the model value instead.
//
// apiconv imports model and the Kubernetes API types and validation helpers
// only: no client, no I/O.
package apiconv

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/palisade-net/palisade/internal/model"
)

// DefaultNamespace is the namespace of a namespaced object that names none,
// as kubectl does without -n.
const DefaultNamespace = "default"

// Error reports every field error of one invalid API object. Callers detect
// it with errors.As.
type Error struct {
	// Kind is the object's kind, e.g. "NetworkPolicy".
	Kind string
	// Key names the object; Namespace is empty for cluster-scoped kinds
	// (Namespace, Node).
	Key model.Key
	// Errs holds every field error found, in field order; never empty.
	Errs field.ErrorList
}

// Object returns "Kind namespace/name", or "Kind name" for a cluster-scoped
// object.
func (e *Error) Object() string {
	return Describe(e.Kind, e.Key)
}

// Error returns one line per field error, each starting with the object,
// e.g. "NetworkPolicy default/web: spec.ingress[0].ports[1].endPort:
// Invalid value: 79: must be greater than or equal to port (80)".
func (e *Error) Error() string {
	obj := e.Object()
	if len(e.Errs) == 0 {
		return obj + ": invalid"
	}
	var b strings.Builder
	for i, fe := range e.Errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(obj)
		b.WriteString(": ")
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Describe renders a kind and key as "Kind namespace/name", "Kind name"
// when the key has no namespace, or "Kind" when it has no name either.
func Describe(kind string, key model.Key) string {
	if key.Name == "" && key.Namespace == "" {
		return kind
	}
	if key.Namespace == "" {
		return kind + " " + key.Name
	}
	return kind + " " + key.Namespace + "/" + key.Name
}

// objectErrors builds the error for an object, or returns nil when errs is
// empty.
func objectErrors(kind string, key model.Key, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return &Error{Kind: kind, Key: key, Errs: errs}
}

// nameFunc validates a metadata.name, returning messages; prefix is always
// false here (it is for generateName), matching apimachinery's signature.
type nameFunc func(name string, prefix bool) []string

// validateMeta checks metadata.name with nameFn, metadata.namespace (when
// namespaced) as a DNS-1123 label, and metadata.labels, as the API server's
// ValidateObjectMeta does. The namespace passed is already defaulted.
func validateMeta(name, namespace string, namespaced bool, labels map[string]string, nameFn nameFunc) field.ErrorList {
	var errs field.ErrorList
	meta := field.NewPath("metadata")
	if name == "" {
		errs = append(errs, field.Required(meta.Child("name"), "name is required"))
	} else {
		for _, msg := range nameFn(name, false) {
			errs = append(errs, field.Invalid(meta.Child("name"), name, msg))
		}
	}
	if namespaced {
		for _, msg := range validation.IsDNS1123Label(namespace) {
			errs = append(errs, field.Invalid(meta.Child("namespace"), namespace, msg))
		}
	}
	errs = append(errs, validateLabels(labels, meta.Child("labels"))...)
	return errs
}

// validateLabels is metav1validation.ValidateLabels with a deterministic
// error order (sorted keys).
func validateLabels(labels map[string]string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, k := range sortedKeys(labels) {
		errs = append(errs, metav1validation.ValidateLabelName(k, path)...)
		for _, msg := range validation.IsValidLabelValue(labels[k]) {
			errs = append(errs, field.Invalid(path, labels[k], msg))
		}
	}
	return errs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// copyLabels returns a copy of m, nil when m is empty.
func copyLabels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// defaultNS returns ns, or DefaultNamespace when ns is empty.
func defaultNS(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}

// parseIP validates an IP address field as the API server does with
// StrictIPCIDRValidation (beta and on by default since v1.36): no leading
// zeros, no IPv4-mapped IPv6; non-canonical IPv6 spellings are accepted.
// It returns the address only when there are no errors.
func parseIP(path *field.Path, s string) (netip.Addr, field.ErrorList) {
	if errs := validation.IsValidIPForLegacyField(path, s, true, nil); len(errs) > 0 {
		return netip.Addr{}, errs
	}
	ip, err := netip.ParseAddr(s)
	if err != nil { // not reached: the rules above are stricter than ParseAddr
		return netip.Addr{}, field.ErrorList{field.Invalid(path, s, err.Error())}
	}
	return ip, nil
}

// parseCIDR validates a CIDR field as the API server does with
// StrictIPCIDRValidation: no leading zeros, no IPv4-mapped IPv6, and no bits
// set beyond the prefix length ("10.0.0.1/24" is rejected). It returns the
// prefix only when there are no errors.
func parseCIDR(path *field.Path, s string) (netip.Prefix, field.ErrorList) {
	if errs := validation.IsValidCIDRForLegacyField(path, s, true, nil); len(errs) > 0 {
		return netip.Prefix{}, errs
	}
	p, err := netip.ParsePrefix(s)
	if err != nil { // not reached: the rules above are stricter than ParsePrefix
		return netip.Prefix{}, field.ErrorList{field.Invalid(path, s, err.Error())}
	}
	return p.Masked(), nil
}

// dualStack reports an error unless ips hold at most one address per family.
func dualStack(path *field.Path, ips []netip.Addr, value any) field.ErrorList {
	var v4, v6 int
	for _, ip := range ips {
		if ip.Is4() {
			v4++
		} else {
			v6++
		}
	}
	if v4 > 1 || v6 > 1 {
		return field.ErrorList{field.Invalid(path, value, "may specify no more than one IP for each IP family")}
	}
	return nil
}

// protocol converts an API protocol; empty means TCP, as the API defaults it.
func protocol(path *field.Path, p string) (model.Protocol, field.ErrorList) {
	switch p {
	case "", "TCP":
		return model.TCP, nil
	case "UDP":
		return model.UDP, nil
	case "SCTP":
		return model.SCTP, nil
	}
	return 0, field.ErrorList{field.NotSupported(path, p, []string{"TCP", "UDP", "SCTP"})}
}

// portNum validates a port number 1-65535.
func portNum(path *field.Path, n int32) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsValidPortNum(int(n)) {
		errs = append(errs, field.Invalid(path, n, msg))
	}
	return errs
}

// portName validates an IANA_SVC_NAME.
func portName(path *field.Path, name string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsValidPortName(name) {
		errs = append(errs, field.Invalid(path, name, msg))
	}
	return errs
}

// nilInput returns the error for a nil object: a programming error, reported
// rather than panicking.
func nilInput(kind string) error {
	return fmt.Errorf("apiconv: nil %s", kind)
}
