package postgres

// NextSQL is the relay's batch query, so that a test can EXPLAIN the very
// statement Next runs rather than a copy of it.
const NextSQL = nextSQL
