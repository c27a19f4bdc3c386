package graph_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

type httpAnswer struct {
	status int
	media  string
	body   map[string]json.RawMessage
	code   string // extensions.code of the first error
}

func ask(t *testing.T, h http.Handler, req *http.Request, accept string) httpAnswer {
	t.Helper()
	req.Header.Set("Accept", accept)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	a := httpAnswer{status: rec.Code, media: rec.Header().Get("Content-Type")}
	if err := json.Unmarshal(rec.Body.Bytes(), &a.body); err != nil {
		t.Fatalf("status %d, body %.200s: %v", rec.Code, rec.Body.String(), err)
	}
	var errs []gqlError
	if raw, ok := a.body["errors"]; ok {
		if err := json.Unmarshal(raw, &errs); err != nil || len(errs) == 0 {
			t.Fatalf("errors entry %s: %v", raw, err)
		}
		a.code, _ = errs[0].Extensions["code"].(string)
	}
	return a
}

func postJSON(body string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// GraphQL over HTTP: a document that fails to parse or validate, or whose
// variables cannot be coerced, is answered 200 under application/json and
// 400 under application/graphql-response+json, never with a data entry, and
// with the same extensions.code under both; a request without a document is
// 400 under both. (The graphql-http audit in test/clients checks the same
// from outside; this keeps it without a Node stack.)
func TestHTTPStatusAndMediaTypeOfRequestErrors(t *testing.T) {
	h := readServer(t)
	cases := []struct {
		name, body, code string
		jsonStatus       int
	}{
		{"parse failure", `{"query":"{"}`, "GRAPHQL_PARSE_FAILED", http.StatusOK},
		{"validation failure", `{"query":"{ noSuchField }"}`, "GRAPHQL_VALIDATION_FAILED", http.StatusOK},
		{"variable coercion failure", `{"query":"query ($id: ID!) { product(id: $id) { id } }","variables":{"id":[1]}}`, "GRAPHQL_VALIDATION_FAILED", http.StatusOK},
		{"no document", `{"qeury":"{ __typename }"}`, "GRAPHQL_VALIDATION_FAILED", http.StatusBadRequest},
		{"not a GraphQL request", `{"query":1}`, "BAD_USER_INPUT", http.StatusBadRequest},
	}
	for _, c := range cases {
		for _, accept := range []string{"application/json", "application/graphql-response+json"} {
			t.Run(c.name+" as "+accept, func(t *testing.T) {
				a := ask(t, h, postJSON(c.body), accept)
				want := c.jsonStatus
				if accept == "application/graphql-response+json" {
					want = http.StatusBadRequest
				}
				if a.status != want || a.media != accept {
					t.Errorf("HTTP %d %s, want %d %s", a.status, a.media, want, accept)
				}
				if _, ok := a.body["data"]; ok {
					t.Errorf("a request that failed before execution has a data entry: %s", a.body["data"])
				}
				if a.code != c.code {
					t.Errorf("extensions.code %q, want %q", a.code, c.code)
				}
			})
		}
	}
}

// A query that runs is 200 with data under both media types, by POST and by
// GET; a subscription (or mutation) by GET is 405 with Allow: POST.
func TestHTTPQueriesAndGET(t *testing.T) {
	h := readServer(t)
	get := func(q string) *http.Request {
		return httptest.NewRequest(http.MethodGet, "/graphql?query="+url.QueryEscape(q), nil)
	}
	for _, accept := range []string{"application/json", "application/graphql-response+json"} {
		for name, req := range map[string]*http.Request{
			"POST": postJSON(`{"query":"{ __typename }"}`),
			"GET":  get("{ __typename }"),
		} {
			a := ask(t, h, req, accept)
			if a.status != http.StatusOK || a.media != accept || string(a.body["data"]) != `{"__typename":"Query"}` {
				t.Errorf("%s as %s: HTTP %d %s, body %v", name, accept, a.status, a.media, a.body)
			}
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, get(`subscription { productChanged(id: "x") { id } }`))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != http.MethodPost {
		t.Errorf("a subscription by GET: HTTP %d, Allow %q, want 405 and POST", rec.Code, rec.Header().Get("Allow"))
	}
	a := ask(t, h, get("{ noSuchField }"), "application/json")
	if a.status != http.StatusOK || a.code != "GRAPHQL_VALIDATION_FAILED" || a.body["data"] != nil {
		t.Errorf("a validation failure by GET: HTTP %d, code %q, body %v", a.status, a.code, a.body)
	}
}
