package dataplane

import (
	"slices"
	"sort"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// The kernel keeps an interval set (`flags interval`, one field) in an
// rbtree of points: a start element, and an end element one past the
// range (none for a range to the last address). It checks overlaps and
// deletes point by point, not range by range, so the model does the
// same, after nft_set_rbtree.c (__nft_rbtree_insert,
// nft_rbtree_deactivate) of the kernels that remember, within a
// transaction, the start element last matched ("start cookie"), and
// TestModelMatchesKernelRandom checks it against the running kernel.
//
// What that gives, each case of modelCases checked on the kernel: the
// same range again is no change ("add range again"); a start inside a
// range, an end inside or past one, are overlaps: EEXIST ("overlapping
// range", "range ending inside a range", "range over a range", "range
// inside a range", "range with the same start, longer", "range with the
// same start, shorter"); ranges may touch ("touching ranges"); a new
// start with the end of a range held passes ("range with the same end,
// earlier start"), but not an existing start with the end of another
// range; a range is deleted only whole, its start and end of one
// interval ("delete part of a range").

// rbtreeTx is what an interval set remembers within one transaction.
type rbtreeTx struct {
	// cookie is the start element last matched (added again, or deleted)
	// whose end should come next; nil when none.
	cookie *modelKey
}

// rbPoint is an element of the tree (modelSet.tree, in the tree's
// order).
type rbPoint struct {
	modelKey
	// dead marks an element deleted in this transaction: the kernel keeps
	// it in the tree, inactive, until the commit.
	dead bool
}

// rbBefore is the tree's order: highest key first, at one key the start
// before the end.
func rbBefore(a, b modelKey) bool {
	if a.key != b.key {
		return a.key > b.key
	}
	return !a.end && b.end
}

func rbCmp(a, b modelKey) int {
	switch {
	case rbBefore(a, b):
		return -1
	case rbBefore(b, a):
		return 1
	}
	return 0
}

// find returns the index of the live element p in the tree, or -1.
func (s *modelSet) find(p modelKey) int {
	i, _ := slices.BinarySearchFunc(s.tree, p, func(q rbPoint, p modelKey) int { return rbCmp(q.modelKey, p) })
	for ; i < len(s.tree) && s.tree[i].modelKey == p; i++ {
		if !s.tree[i].dead {
			return i
		}
	}
	return -1
}

// nextLive returns the first live element after index i, or nil.
func (s *modelSet) nextLive(i int) *modelKey {
	for _, n := range s.tree[i+1:] {
		if !n.dead {
			return &n.modelKey
		}
	}
	return nil
}

// addRanges inserts the elements of one message (kes, in order).
func (s *modelSet) addRanges(kes []nftables.SetElement) error {
	for _, ke := range kes {
		p := modelKey{key: string(ke.Key), end: ke.IntervalEnd}
		if !p.end {
			s.tx.cookie = nil // set again if p is there already
		}
		err := s.insert(p)
		if p.end {
			s.tx.cookie = nil
		}
		switch err {
		case unix.EEXIST: // the same element: no change without NLM_F_EXCL
		case unix.ENOTEMPTY: // a partial overlap, reported as EEXIST
			return unix.EEXIST
		case nil:
			s.elems[p] = ""
			i, _ := slices.BinarySearchFunc(s.tree, p, func(q rbPoint, p modelKey) int { return rbCmp(q.modelKey, p) })
			s.tree = slices.Insert(s.tree, i, rbPoint{modelKey: p})
		}
	}
	return nil
}

// insert reports whether p may go into the tree: nil, EEXIST (it is
// there), or ENOTEMPTY (an overlap).
func (s *modelSet) insert(p modelKey) error {
	// The walk starts at the lowest element above p's key (the top of
	// the tree if none) and goes down: ge ends as the closest element at
	// or above p, le as the closest below (or an end at p's key).
	first := max(sort.Search(len(s.tree), func(i int) bool { return s.tree[i].key <= p.key })-1, 0)
	var le, ge *modelKey
	leAt := -1
walk:
	for i, q := range s.tree[first:] {
		if q.dead {
			continue
		}
		switch {
		case q.key == p.key && q.end:
			le, leAt = &q.modelKey, first+i
			break walk
		case q.key >= p.key:
			ge = &q.modelKey
		default:
			le, leAt = &q.modelKey, first+i
			break walk
		}
	}
	if ge != nil && ge.key == p.key && ge.end == p.end {
		// The same start again: its end should come next. (Newer
		// kernels also reject an open interval's start here when a range
		// with an end starts at the same address; 6.18 does not: "open
		// range from the start of a range held".)
		s.tx.cookie = ge
		return unix.EEXIST
	}
	if le != nil && le.key == p.key && le.end == p.end {
		// The same end again: it must close the start matched last.
		if s.tx.cookie != nil {
			next := s.nextLive(leAt)
			same := next != nil && !next.end && *next == *s.tx.cookie
			s.tx.cookie = nil
			if !same {
				return unix.ENOTEMPTY
			}
		}
		return unix.EEXIST
	}
	switch {
	case le != nil && !le.end && !p.end, // a start inside a range
		le != nil && le.end && p.end, // an end past a range's end
		ge != nil && ge.end && p.end: // an end inside a range
		return unix.ENOTEMPTY
	}
	return nil
}

// delRanges deletes the elements of one message: a start remembers
// itself (unless it is the message's last element), and the end after it
// must be the node right below the end in the tree, else the two belong
// to different intervals and the kernel finds nothing to delete.
func (s *modelSet) delRanges(kes []nftables.SetElement) error {
	for i, ke := range kes {
		p := modelKey{key: string(ke.Key), end: ke.IntervalEnd}
		if !p.end {
			s.tx.cookie = nil
		}
		at := s.find(p)
		if at < 0 {
			return unix.ENOENT // "delete missing element"
		}
		switch {
		case !p.end:
			if i < len(kes)-1 {
				s.tx.cookie = &p
			}
		case s.tx.cookie != nil:
			next := s.tree[min(at+1, len(s.tree)-1)]
			same := at+1 < len(s.tree) && next.dead && next.modelKey == *s.tx.cookie
			s.tx.cookie = nil
			if !same {
				return unix.ENOENT // "delete part of a range"
			}
		}
		delete(s.elems, p)
		s.tree[at].dead = true
	}
	return nil
}
