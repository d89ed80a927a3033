package main

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/palisade-net/palisade/internal/dataplane"
)

// summary of repeated measurements.
type summary struct {
	N                  int
	Median, Min, Max   float64
	P25, P75, P50, P99 float64
}

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	q := func(p float64) float64 {
		// nearest rank
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{N: len(s), Median: med, Min: s[0], Max: s[len(s)-1], P25: q(0.25), P75: q(0.75), P50: q(0.50), P99: q(0.99)}
}

// iqrPct is the interquartile range as a percentage of the median.
func (s summary) iqrPct() float64 {
	if s.Median == 0 {
		return 0
	}
	return 100 * (s.P75 - s.P25) / s.Median
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// rsInfo describes the size of a compiled ruleset.
type rsInfo struct {
	Chains, Rules, Sets, Elems int
	PeerElems, PeerAddrs       int // elements of peer sets; addresses they cover (v4+v6)
	DistinctPeerIPs            int // distinct single addresses in peer sets
	Policies                   int // distinct policies with rules in the table
	DispatchElems              int
}

func describe(rs *dataplane.Ruleset) rsInfo {
	var in rsInfo
	pols := map[string]bool{}
	for _, c := range rs.Chains {
		in.Rules += len(c.Rules)
		for _, r := range c.Rules {
			if r.Comment != "" {
				if i := strings.LastIndex(r.Comment, " "); i > 0 {
					pols[r.Comment[:i]] = true
				}
			}
		}
	}
	in.Chains, in.Sets, in.Policies = len(rs.Chains), len(rs.Sets), len(pols)
	ips := map[netip.Addr]bool{}
	for _, s := range rs.Sets {
		in.Elems += len(s.Elems)
		switch s.Kind {
		case dataplane.KindPeers:
			in.PeerElems += len(s.Elems)
			for _, e := range s.Elems {
				if !e.End.IsValid() || e.End == e.Addr {
					ips[e.Addr] = true
					in.PeerAddrs++
				} else {
					in.PeerAddrs += 2 // a range (ipBlock): counted as its two bounds
				}
			}
		case dataplane.KindDispatch:
			in.DispatchElems += len(s.Elems)
		}
	}
	in.DistinctPeerIPs = len(ips)
	return in
}

func (in rsInfo) String() string {
	return fmt.Sprintf("%d policies, %d chains, %d rules, %d sets, %d elements (%d in peer sets, %d distinct peer IPs; %d dispatch entries)",
		in.Policies, in.Chains, in.Rules, in.Sets, in.Elems, in.PeerElems, in.DistinctPeerIPs, in.DispatchElems)
}
