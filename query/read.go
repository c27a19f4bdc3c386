package query

import (
	"context"
	"fmt"
)

// Doc is one document read from the index.
type Doc struct {
	ID string
	// Value is the document, a pointer to its kind's Type.
	Value any
	// Rev orders the writes of the document in the index (primary term,
	// then sequence number); a product changed by a review keeps its
	// version but gets a new Rev.
	Rev int64
}

// get reads one document of k for op, as the caller may see it: nil when
// there is none, it does not exist (Kind.Exists) or the caller may not
// read it (Kind.Owner: another customer's order reads as absent). Its
// references are filled.
func get[T any](ctx context.Context, s *Service, k *Kind, op, id string, token *string) (*T, error) {
	if err := s.opts.permit(ctx, op); err != nil {
		return nil, err
	}
	if err := checkID("id", id); err != nil {
		return nil, err
	}
	if err := s.Consistent(ctx, token); err != nil {
		return nil, err
	}
	d, err := s.getDoc(ctx, k, id, token)
	if err != nil || d == nil || !k.exists(d.Value) {
		return nil, err
	}
	if k.Owner != nil && !s.opts.sees(ctx, op, k.Owner(d.Value)) {
		return nil, nil
	}
	if err := FillRefs(ctx, s.index, k, d.Value); err != nil {
		return nil, err
	}
	return d.Value.(*T), nil
}

// getDoc reads one document by id. A consistentWith read goes past the
// cache (Cache.Fresh): the watermark it waited for may have been read from
// the checkpoint before this instance saw the notice that would have
// dropped the cached revision.
func (s *Service) getDoc(ctx context.Context, k *Kind, id string, token *string) (*Doc, error) {
	if c, ok := s.index.(*Cache); ok && token != nil && *token != "" {
		return c.Fresh(ctx, k, id)
	}
	return s.index.Get(ctx, k, id)
}

// FillRefs shows in each of docs (documents of k) the current titles of
// the documents they refer to (Kind.Refs), with one multi-get of the
// titles alone per kind referred to.
func FillRefs(ctx context.Context, index Index, k *Kind, docs ...any) error {
	for _, ref := range k.Refs {
		to, ok := KindNamed(ref.To)
		if !ok || to.Title == nil {
			return fmt.Errorf("%s refers to %s, which has no title", k.Name, ref.To)
		}
		var ids []string
		seen := map[string]bool{}
		for _, d := range docs {
			if id := ref.ID(d); id != "" && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			continue
		}
		got, err := index.GetMany(ctx, to, ids, to.Title.Field)
		if err != nil {
			return fmt.Errorf("%s titles of %d %s: %w", to.Name, len(docs), k.Name, err)
		}
		titles := make(map[string]string, len(got))
		for _, g := range got {
			titles[g.ID] = to.Title.Of(g.Value)
		}
		for _, d := range docs {
			ref.Set(d, titles[ref.ID(d)])
		}
	}
	return nil
}

// pointers returns pointers to the items, for FillRefs.
func pointers[T any](items []T) []any {
	out := make([]any, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}
