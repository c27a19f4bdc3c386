package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// CodeNotInList is the extensions.code of a document refused in
// persisted-only mode (Apollo's name for it).
const CodeNotInList = "PERSISTED_QUERY_NOT_IN_LIST"

// maxPersistedFileBytes bounds the allow-list file.
const maxPersistedFileBytes = 16 << 20

// AllowList is persisted-only mode: the operations a deployment allows, by
// the SHA-256 of their text. A request runs one by its hash alone (the APQ
// extension's sha256Hash) or sends a listed document whole; anything else
// is refused before it is parsed.
type AllowList struct {
	docs map[string]string // hex sha256 -> document
}

var (
	_ graphql.HandlerExtension          = (*AllowList)(nil)
	_ graphql.OperationParameterMutator = (*AllowList)(nil)
)

// LoadAllowList reads path: an Apollo persisted query manifest
// ({"format":"apollo-persisted-query-manifest","operations":[{"id","body"}]})
// or an object of hash to document. Each hash must be its document's.
func LoadAllowList(path string) (*AllowList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("persisted operations: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("persisted operations: %w", err)
	}
	if st.Size() > maxPersistedFileBytes {
		return nil, fmt.Errorf("persisted operations: %s is larger than %d bytes", path, maxPersistedFileBytes)
	}
	var raw json.RawMessage
	if err := json.NewDecoder(f).Decode(&raw); err != nil {
		return nil, fmt.Errorf("persisted operations: %s is not JSON: %w", path, err)
	}
	return ParseAllowList(raw)
}

// ParseAllowList reads the contents of an allow-list file.
func ParseAllowList(raw []byte) (*AllowList, error) {
	var manifest struct {
		Format     string `json:"format"`
		Operations []struct {
			ID   string `json:"id"`
			Body string `json:"body"`
		} `json:"operations"`
	}
	docs := map[string]string{}
	if err := json.Unmarshal(raw, &manifest); err == nil && manifest.Format != "" {
		for _, op := range manifest.Operations {
			docs[op.ID] = op.Body
		}
	} else if err := json.Unmarshal(raw, &docs); err != nil {
		return nil, fmt.Errorf("persisted operations: neither an Apollo manifest nor an object of hash to document: %w", err)
	}
	for h, doc := range docs {
		if hashOf(doc) != h {
			return nil, fmt.Errorf("persisted operations: %q is not the SHA-256 of its document", h)
		}
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("persisted operations: the list is empty")
	}
	return &AllowList{docs: docs}, nil
}

// Len is how many operations are allowed.
func (a *AllowList) Len() int { return len(a.docs) }

// ExtensionName names the extension for gqlgen.
func (*AllowList) ExtensionName() string { return "PersistedOnly" }

// Validate accepts every schema.
func (*AllowList) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters fills in a listed document from its hash and
// refuses any other.
func (a *AllowList) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	if p.Query != "" {
		if _, ok := a.docs[hashOf(p.Query)]; ok {
			return nil
		}
		return notInList()
	}
	pq, _ := p.Extensions["persistedQuery"].(map[string]any)
	h, _ := pq["sha256Hash"].(string)
	if h == "" {
		return nil // no document at all: gqlgen says so
	}
	doc, ok := a.docs[h]
	if !ok {
		return notInList()
	}
	p.Query = doc
	return nil
}

func notInList() *gqlerror.Error {
	return &gqlerror.Error{
		Message:    "this server runs persisted operations only, and this document is not one of them",
		Extensions: map[string]any{"code": CodeNotInList},
	}
}

func hashOf(doc string) string {
	sum := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(sum[:])
}
