// Package examples embeds the example manifests, so that `palisade demo`
// runs the seed walkthrough from any directory.
package examples

import "embed"

// Seed holds the seed article's manifests: seed/sample-app.yaml,
// seed/frontend-policy.yaml and seed/default-deny-all.yaml.
//
//go:embed seed/*.yaml
var Seed embed.FS
