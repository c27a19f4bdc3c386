package projector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// errSwapped is a batch that saw the read models' indices change under it:
// a rebuild swapped the aliases between two of its reads, or retired an
// index it was writing back to. The batch starts over from fresh reads.
var errSwapped = errors.New("a rebuild swapped the read models' indices during the batch")

// seenIndex is the index a batch reads a kind from, and one document it
// read there.
type seenIndex struct {
	ref   Ref
	index string
}

// get reads refs for the batch. A rebuild swaps every alias it rebuilt in
// one atomic step, so a batch works on one generation of indices when no
// kind's index changes between its reads: each read carries one document
// of every kind read before and not asked for now, and every answer must
// come from the index that kind was first read from. A batch that read a
// product before a swap and its review after it would otherwise count the
// review in the old index while writing the review into the new one, where
// the rebuild catching up would take it for counted.
func (b *batch) get(ctx context.Context, refs []Ref) ([]Stored, error) {
	asked := map[Kind]bool{}
	for _, r := range refs {
		asked[r.Kind] = true
	}
	all := slices.Clone(refs)
	kinds := make([]Kind, 0, len(b.gen))
	for k := range b.gen {
		if !asked[k] {
			kinds = append(kinds, k)
		}
	}
	slices.SortFunc(kinds, func(a, c Kind) int { return strings.Compare(string(a), string(c)) })
	for _, k := range kinds {
		all = append(all, b.gen[k].ref)
	}
	stored, err := b.p.get(ctx, all)
	if err != nil {
		return nil, err
	}
	if b.gen == nil {
		b.gen = map[Kind]seenIndex{}
	}
	for _, s := range stored {
		if s.Index == "" {
			continue
		}
		g, ok := b.gen[s.Ref.Kind]
		if !ok {
			b.gen[s.Ref.Kind] = seenIndex{ref: s.Ref, index: s.Index}
			continue
		}
		if g.index != s.Index {
			b.p.m.retries.WithLabelValues("swapped").Inc()
			return nil, fmt.Errorf("%w: %s documents read from %s, then from %s", errSwapped, s.Ref.Kind, g.index, s.Index)
		}
	}
	return stored[:len(refs)], nil
}

// retired reports a write of res the store refused because a rebuild
// retired its index.
func retired(res []WriteResult) error {
	for _, r := range res {
		if errors.Is(r.Err, ErrRetired) {
			return fmt.Errorf("%w: %w", errSwapped, r.Err)
		}
	}
	return nil
}
