// Package differential holds the randomized differential test of
// Palisade's policy engine against kube-network-policies' evaluation
// (issue 14). It is a module of its own so that the main module does not
// depend on kube-network-policies.
package differential
