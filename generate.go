package splitstream

// The write schema's config lives at the top (gqlgen.yml); the read
// schema's beside its package (graph/read/gqlgen.yml).
//go:generate go tool gqlgen generate --config gqlgen.yml
