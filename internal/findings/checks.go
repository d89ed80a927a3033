package findings

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/model"
)

// linter holds one Check's state.
type linter struct {
	c        *model.Cluster
	declared map[string]bool
	// hasPods: the input holds pods (or workloads). Without any, it says
	// nothing about what selectors match, and the pod checks stay silent.
	hasPods bool
	// knowsNamespaces: the input is a live cluster or declares at least
	// one Namespace, so a namespace or label it lacks is meaningful.
	knowsNamespaces bool
	out             []Finding
}

func (l *linter) add(p *model.Policy, code, field, msg string) {
	r := RuleFor(code)
	l.out = append(l.out, Finding{Code: code, Severity: r.Severity, Kind: "NetworkPolicy",
		Key: p.Key(), Field: field, Message: msg, Fix: r.Fix})
}

// builtinNamespaces are created by Kubernetes itself.
var builtinNamespaces = map[string]bool{"default": true, "kube-system": true, "kube-public": true, "kube-node-lease": true}

// maxListed bounds the names and labels a message lists.
const maxListed = 5

func (l *linter) policy(p *model.Policy) {
	missing := l.namespaceMissing(p)
	selected := l.podsIn([]string{p.Namespace}, &p.PodSelector)
	if l.hasPods && len(selected) == 0 && !missing {
		l.add(p, PolicySelectsNothing, "spec.podSelector", fmt.Sprintf("selects no pod in namespace %s (%s); %s",
			p.Namespace, p.PodSelector, l.podLabels([]string{p.Namespace})))
	}
	for _, dir := range []model.Direction{model.Ingress, model.Egress} {
		name := strings.ToLower(dir.String())
		peersField := "from"
		if dir == model.Egress {
			peersField = "to"
		}
		for i, r := range p.Rules(dir) {
			rf := fmt.Sprintf("spec.%s[%d]", name, i)
			for j, peer := range r.Peers {
				l.peer(p, peer, fmt.Sprintf("%s.%s[%d]", rf, peersField, j))
			}
			l.ports(p, dir, r, rf, selected)
			if p.Affects(dir) {
				l.redundant(p, dir, i)
			}
		}
	}
	l.dns(p, selected)
}

// namespaceMissing: PL012, which it reports; PL001 is then implied.
func (l *linter) namespaceMissing(p *model.Policy) bool {
	ns := p.Namespace
	if len(l.declared) == 0 || l.declared[ns] || builtinNamespaces[ns] {
		return false
	}
	for k := range l.c.Pods {
		if k.Namespace == ns {
			return false
		}
	}
	for k := range l.c.Services {
		if k.Namespace == ns {
			return false
		}
	}
	msg := fmt.Sprintf("namespace %s is not declared in the input", ns)
	if near := closest(ns, l.namespaceNames()); near != "" {
		msg += fmt.Sprintf("; did you mean %s?", near)
	}
	l.add(p, PolicyNamespaceMissing, "metadata.namespace", msg)
	return true
}

// peer checks one from/to entry: PL002 to PL005, PL011.
func (l *linter) peer(p *model.Policy, peer model.Peer, field string) {
	if peer.IPBlock != nil {
		l.ipBlock(p, peer.IPBlock, field+".ipBlock")
		return
	}
	namespaces := []string{p.Namespace}
	if s := peer.NamespaceSelector; s != nil {
		if l.namespaceSelector(p, *s, field+".namespaceSelector") {
			return
		}
		namespaces = l.namespacesMatching(*s)
		if len(namespaces) == 0 {
			return // reported, or nothing to judge by
		}
	}
	if !l.hasPods || len(l.podsIn(namespaces, peer.PodSelector)) > 0 {
		return
	}
	sel := model.Selector{}
	f := field + ".namespaceSelector"
	if peer.PodSelector != nil {
		sel, f = *peer.PodSelector, field+".podSelector"
	}
	l.add(p, PeerPodsMatchNothing, f, fmt.Sprintf("matches no pod (%s) in %s; %s",
		sel, list("namespace", namespaces), l.podLabels(namespaces)))
}

// namespaceSelector reports PL005, PL004 or PL003 for s, the most
// specific that applies, and whether it reported one.
func (l *linter) namespaceSelector(p *model.Policy, s model.Selector, field string) bool {
	keys := map[string][]string{} // the keys s requires, with the values it accepts (nil: any)
	for k, v := range s.MatchLabels {
		keys[k] = []string{v}
	}
	for _, r := range s.Exprs {
		switch r.Operator {
		case model.OpIn:
			keys[r.Key] = append(keys[r.Key], r.Values...)
		case model.OpExists:
			if _, ok := keys[r.Key]; !ok {
				keys[r.Key] = nil
			}
		}
	}
	carried := map[string]bool{}
	for _, ns := range l.c.Namespaces {
		for k := range ns.Labels {
			carried[k] = true
		}
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if k != model.NamespaceNameLabel && !carried[k] && looksLikeNameLabel(k) {
			l.add(p, NamespaceNameTypo, field, fmt.Sprintf("label key %q is not %s, which every namespace carries", k, model.NamespaceNameLabel))
			return true
		}
	}
	if l.namespacesMatching(s) != nil {
		return false
	}
	names := l.namespaceNames()
	for _, v := range keys[model.NamespaceNameLabel] {
		if l.c.Namespaces[v] == nil {
			if near := closest(v, names); near != "" {
				l.add(p, NamespaceNameTypo, field, fmt.Sprintf("no namespace is called %q; did you mean %s?", v, near))
				return true
			}
		}
	}
	if !l.knowsNamespaces {
		return false
	}
	for _, k := range sorted {
		if !carried[k] {
			l.add(p, NamespaceLabelUnknown, field, fmt.Sprintf("no namespace carries the label %q; %s", k, declaredList("namespaces carry the keys", mapKeys(carried))))
			return true
		}
	}
	l.add(p, PeerNamespacesNothing, field, fmt.Sprintf("matches no namespace (%s); %s", s, l.namespaceLabels(keys)))
	return true
}

// looksLikeNameLabel reports whether k is a near miss of
// kubernetes.io/metadata.name.
func looksLikeNameLabel(k string) bool {
	if distance(k, model.NamespaceNameLabel) <= 3 {
		return true
	}
	k = strings.ToLower(k)
	return strings.HasPrefix(k, "kubernetes.io/") && strings.Contains(k, "name") ||
		strings.HasPrefix(k, "k8s.io/") && strings.Contains(k, "name") || k == "metadata.name"
}

// ipBlock: PL011. A /0 block means anywhere and is meant to hold pods too.
func (l *linter) ipBlock(p *model.Policy, b *model.IPBlock, field string) {
	if b.CIDR.Bits() == 0 {
		return
	}
	var pods []string
	for _, pod := range l.c.SortedPods() {
		if !pod.HostNetwork && anyIn(pod.IPs, b) {
			pods = append(pods, pod.Key().String())
		}
	}
	if len(pods) > 0 {
		l.add(p, IPBlockHoldsPodIPs, field, fmt.Sprintf("%s contains the addresses of %s", b.CIDR, list("pod", pods)))
	}
}

func anyIn(ips []netip.Addr, b *model.IPBlock) bool {
next:
	for _, ip := range ips {
		if !b.CIDR.Contains(ip) {
			continue
		}
		for _, e := range b.Except {
			if e.Contains(ip) {
				continue next
			}
		}
		return true
	}
	return false
}

// ports checks a rule's named ports and ranges: PL009, PL010. They apply
// to the selected pods for ingress, to the peer pods for egress.
func (l *linter) ports(p *model.Policy, dir model.Direction, r model.Rule, field string, selected []*model.Pod) {
	if !l.hasPods {
		return
	}
	pods := selected
	if dir == model.Egress {
		pods = l.peerPods(p, r)
	}
	if len(pods) == 0 {
		return // PL001 or PL002 says why
	}
	for k, port := range r.Ports {
		f := fmt.Sprintf("%s.ports[%d]", field, k)
		switch {
		case port.Name != "":
			var declared []string
			found := false
			for _, pod := range pods {
				for _, cp := range pod.Ports {
					if cp.Name != "" {
						declared = append(declared, fmt.Sprintf("%s/%s", cp.Name, cp.Protocol))
					}
				}
				if _, ok := pod.NamedPort(port.Name, port.Protocol); ok {
					found = true
				}
			}
			if !found {
				l.add(p, NamedPortUndeclared, f+".port", fmt.Sprintf("no pod it applies to (%s) declares a container port %s/%s; %s",
					list("pod", keys(pods)), port.Name, port.Protocol, declaredList("named ports", declared)))
			}
		case port.EndPort != 0:
			var declared []string
			covered := false
			for _, pod := range pods {
				for _, cp := range pod.Ports {
					if cp.Protocol == port.Protocol {
						declared = append(declared, fmt.Sprint(cp.Port))
						covered = covered || port.Port <= cp.Port && cp.Port <= port.EndPort
					}
				}
			}
			if len(declared) > 0 && !covered {
				l.add(p, EndPortCoversNothing, f+".endPort", fmt.Sprintf("%d-%d/%s covers none of the %s ports its pods declare (%s)",
					port.Port, port.EndPort, port.Protocol, port.Protocol, strings.Join(uniq(declared), ", ")))
			}
		}
	}
}

// peerPods returns the pods a rule's peers may be: every pod when the
// rule has no peers or an ipBlock (which may hold pod addresses).
func (l *linter) peerPods(p *model.Policy, r model.Rule) []*model.Pod {
	if len(r.Peers) == 0 {
		return l.c.SortedPods()
	}
	seen := map[model.Key]bool{}
	var out []*model.Pod
	for _, peer := range r.Peers {
		if peer.IPBlock != nil {
			return l.c.SortedPods()
		}
		namespaces := []string{p.Namespace}
		if peer.NamespaceSelector != nil {
			namespaces = l.namespacesMatching(*peer.NamespaceSelector)
		}
		for _, pod := range l.podsIn(namespaces, peer.PodSelector) {
			if !seen[pod.Key()] {
				seen[pod.Key()] = true
				out = append(out, pod)
			}
		}
	}
	return out
}

// dns: PL007 and PL008, for a policy that isolates pods for egress and
// whose own rules allow no DNS, when some pod it selects can reach DNS
// through no policy at all.
func (l *linter) dns(p *model.Policy, selected []*model.Pod) {
	if !p.Egress || l.anyRuleAllowsDNS(p) {
		return
	}
	var blocked []string
	if l.hasPods {
		if len(selected) == 0 {
			return // PL001
		}
		for _, pod := range selected {
			if !l.podReachesDNS(pod) {
				blocked = append(blocked, pod.Key().String())
			}
		}
		if len(blocked) == 0 {
			return
		}
	} else {
		// No pods to go by: other policies count when they select at
		// least the same pods (an equal or empty podSelector).
		for _, q := range l.c.SortedPolicies() {
			if q.Namespace == p.Namespace && q.Egress && (q.PodSelector.Empty() || q.PodSelector.String() == p.PodSelector.String()) && l.anyRuleAllowsDNS(q) {
				return
			}
		}
	}
	who := fmt.Sprintf("the pods it selects (%s)", p.PodSelector)
	if len(blocked) > 0 {
		who = list("pod", blocked)
	}
	if len(p.EgressRules) == 0 {
		l.add(p, DefaultDenyBlocksDNS, "spec.policyTypes", fmt.Sprintf(
			"denies all egress of %s, DNS included: no policy allows 53/UDP, so name resolution fails", who))
		return
	}
	l.add(p, EgressAllowsNoDNS, "spec.egress", fmt.Sprintf(
		"no egress rule allows DNS (53/UDP to kube-system, an ipBlock or anywhere), nor does another policy for %s", who))
}

// podReachesDNS: some policy that isolates pod for egress allows it DNS
// (the caller knows one does isolate it).
func (l *linter) podReachesDNS(pod *model.Pod) bool {
	for _, q := range l.c.SortedPolicies() {
		if q.Egress && q.Namespace == pod.Namespace && q.PodSelector.Matches(pod.Labels) && l.anyRuleAllowsDNS(q) {
			return true
		}
	}
	return false
}

func (l *linter) anyRuleAllowsDNS(p *model.Policy) bool {
	for _, r := range p.EgressRules {
		if portsAllowDNS(r.Ports) && l.peersAllowDNS(p, r.Peers) {
			return true
		}
	}
	return false
}

// portsAllowDNS: 53/UDP, by number, range, any UDP port, or a named port
// whose name says dns (CoreDNS's is "dns").
func portsAllowDNS(ports []model.Port) bool {
	if len(ports) == 0 {
		return true
	}
	for _, pt := range ports {
		if pt.Protocol != model.UDP {
			continue
		}
		end := pt.EndPort
		if end == 0 {
			end = pt.Port
		}
		if pt.Name == "" && (pt.Port == 0 || pt.Port <= 53 && 53 <= end) || strings.Contains(strings.ToLower(pt.Name), "dns") {
			return true
		}
	}
	return false
}

// peersAllowDNS: no peers (anywhere), an ipBlock (a resolver outside the
// cluster, or node-local), a selector reaching kube-system, or pods of
// the input that serve 53/UDP.
func (l *linter) peersAllowDNS(p *model.Policy, peers []model.Peer) bool {
	if len(peers) == 0 {
		return true
	}
	ks := l.c.Namespaces["kube-system"]
	ksLabels := map[string]string{model.NamespaceNameLabel: "kube-system"}
	if ks != nil {
		ksLabels = ks.Labels
	}
	for _, peer := range peers {
		if peer.IPBlock != nil {
			return true
		}
		namespaces := []string{p.Namespace}
		if s := peer.NamespaceSelector; s != nil {
			if s.Matches(ksLabels) {
				return true
			}
			namespaces = l.namespacesMatching(*s)
		} else if p.Namespace == "kube-system" {
			return true
		}
		for _, pod := range l.podsIn(namespaces, peer.PodSelector) {
			for _, cp := range pod.Ports {
				if cp.Port == 53 && cp.Protocol == model.UDP {
					return true
				}
			}
		}
	}
	return false
}

// redundant: PL006, rule i of p for dir, when another rule for the same
// pods (of p, or of a policy of the namespace whose podSelector is equal
// or empty) covers its peers and ports. Of two rules that cover each
// other, the later (by policy, then index) is reported.
func (l *linter) redundant(p *model.Policy, dir model.Direction, i int) {
	b := p.Rules(dir)[i]
	for _, q := range l.c.SortedPolicies() {
		if q.Namespace != p.Namespace || !q.Affects(dir) {
			continue
		}
		if q != p && !q.PodSelector.Empty() && q.PodSelector.String() != p.PodSelector.String() {
			continue
		}
		for j, a := range q.Rules(dir) {
			if q == p && j == i || !ruleCovers(a, b) {
				continue
			}
			aFirst := q.Key().Less(p.Key()) || q == p && j < i
			sameSet := q == p || q.PodSelector.String() == p.PodSelector.String()
			if ruleCovers(b, a) && sameSet && !aFirst {
				continue // they cover each other: the other one is reported
			}
			l.add(p, RedundantRule, fmt.Sprintf("spec.%s[%d]", strings.ToLower(dir.String()), i),
				fmt.Sprintf("allows nothing more than %s %s[%d] already does for these pods", q.Key(), strings.ToLower(dir.String()), j))
			return
		}
	}
}

// ruleCovers reports whether rule a allows every peer and port of b.
func ruleCovers(a, b model.Rule) bool {
	return portsCover(a.Ports, b.Ports) && peersCover(a.Peers, b.Peers)
}

func portsCover(a, b []model.Port) bool {
	return listCovers(a, b, portCovers)
}

func portCovers(a, b model.Port) bool {
	if a.Protocol != b.Protocol {
		return false
	}
	return a.Name == "" && a.Port == 0 ||
		b.Name != "" && a.Name == b.Name ||
		b.Name == "" && b.Port != 0 && a.Name == "" && a.Port <= b.Port && portEnd(b) <= portEnd(a)
}

// listCovers: an empty a allows everything; otherwise every element of
// a non-empty b is covered by some element of a.
func listCovers[T any](a, b []T, covers func(a, b T) bool) bool {
	if len(a) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
next:
	for _, y := range b {
		for _, x := range a {
			if covers(x, y) {
				continue next
			}
		}
		return false
	}
	return true
}

func portEnd(p model.Port) uint16 {
	if p.EndPort != 0 {
		return p.EndPort
	}
	return p.Port
}

func peersCover(a, b []model.Peer) bool {
	return listCovers(a, b, peerCovers)
}

// peerCovers is a syntactic test, true only when a allows every address
// b does whatever the cluster holds.
func peerCovers(a, b model.Peer) bool {
	if a.IPBlock != nil || b.IPBlock != nil {
		if a.IPBlock == nil || b.IPBlock == nil {
			return false
		}
		if len(a.IPBlock.Except) == 0 {
			return a.IPBlock.CIDR.Bits() <= b.IPBlock.CIDR.Bits() && a.IPBlock.CIDR.Contains(b.IPBlock.CIDR.Addr())
		}
		return peerText(a) == peerText(b)
	}
	aPodsAll := a.PodSelector == nil || a.PodSelector.Empty()
	switch {
	case a.NamespaceSelector != nil && a.NamespaceSelector.Empty() && aPodsAll:
		return true // every pod of every namespace
	case a.NamespaceSelector == nil && aPodsAll:
		return b.NamespaceSelector == nil // every pod of the policy's namespace
	}
	return peerText(a) == peerText(b)
}

// peerText is a canonical rendering: equal text, equal peer.
func peerText(p model.Peer) string {
	if b := p.IPBlock; b != nil {
		ex := make([]string, len(b.Except))
		for i, e := range b.Except {
			ex[i] = e.String()
		}
		sort.Strings(ex)
		return "ip:" + b.CIDR.String() + " except " + strings.Join(ex, ",")
	}
	s := "ns:-"
	if p.NamespaceSelector != nil {
		s = "ns:" + p.NamespaceSelector.String()
	}
	switch {
	case p.PodSelector != nil:
		s += " pod:" + p.PodSelector.String()
	case p.NamespaceSelector != nil:
		s += " pod:<all>" // a namespaceSelector alone means every pod
	}
	return s
}

// podsIn returns the pods of namespaces that sel matches (nil: all).
func (l *linter) podsIn(namespaces []string, sel *model.Selector) []*model.Pod {
	in := map[string]bool{}
	for _, ns := range namespaces {
		in[ns] = true
	}
	var out []*model.Pod
	for _, pod := range l.c.SortedPods() {
		if in[pod.Namespace] && (sel == nil || sel.Matches(pod.Labels)) {
			out = append(out, pod)
		}
	}
	return out
}

// namespacesMatching returns the sorted names of the namespaces s matches.
func (l *linter) namespacesMatching(s model.Selector) []string {
	var out []string
	for _, name := range l.namespaceNames() {
		if s.Matches(l.c.Namespaces[name].Labels) {
			out = append(out, name)
		}
	}
	return out
}

func (l *linter) namespaceNames() []string {
	out := make([]string, 0, len(l.c.Namespaces))
	for name := range l.c.Namespaces {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// podLabels says which labels the pods of namespaces carry.
func (l *linter) podLabels(namespaces []string) string {
	var labels []string
	n := 0
	for _, pod := range l.podsIn(namespaces, nil) {
		n++
		for k, v := range pod.Labels {
			labels = append(labels, k+"="+v)
		}
	}
	if n == 0 {
		return "the input has no pod there"
	}
	return declaredList("pods there carry", labels)
}

// namespaceLabels says which values the namespaces give the keys a
// selector requires.
func (l *linter) namespaceLabels(keys map[string][]string) string {
	var labels []string
	for _, ns := range l.c.Namespaces {
		for k, v := range ns.Labels {
			if _, ok := keys[k]; ok {
				labels = append(labels, k+"="+v)
			}
		}
	}
	return declaredList("namespaces carry", labels)
}

func mapKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// declaredList renders "WHAT a, b, c and N more", or "WHAT none".
func declaredList(what string, items []string) string {
	items = uniq(items)
	if len(items) == 0 {
		return what + ": none"
	}
	more := ""
	if len(items) > maxListed+1 {
		more = fmt.Sprintf(" and %d more", len(items)-maxListed)
		items = items[:maxListed]
	}
	return what + ": " + strings.Join(items, ", ") + more
}

// list renders "pod a/b" or "pods a/b, a/c".
func list(noun string, items []string) string {
	if len(items) == 1 {
		return noun + " " + items[0]
	}
	more := ""
	if len(items) > maxListed+1 {
		more = fmt.Sprintf(" and %d more", len(items)-maxListed)
		items = items[:maxListed]
	}
	return noun + "s " + strings.Join(items, ", ") + more
}

func uniq(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func keys(pods []*model.Pod) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = p.Key().String()
	}
	return out
}

// closest returns the name of names within edit distance 2 of s (and
// not s itself), the nearest first, or "".
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := distance(s, n); d > 0 && d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
