package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/ops"
)

// RoleStatus is one role and its readiness, check by check.
type RoleStatus struct {
	Name   string            `json:"name"`
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

// Status is what GET /api/status answers.
type Status struct {
	Version   string         `json:"version"`
	Time      time.Time      `json:"time"`
	Roles     []RoleStatus   `json:"roles"`
	Relays    []Relay        `json:"relays"`
	Lanes     []Lane         `json:"lanes"`
	Sagas     *Sagas         `json:"sagas"`
	Dead      *float64       `json:"deadLetters"` // as the projector last counted; null without one
	Rebuild   *RebuildStatus `json:"rebuild"`
	DeadTools bool           `json:"deadLetterActions"` // replay and drop are available here
}

func (c *Console) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	st := Status{Version: c.cfg.Version, Time: time.Now().UTC(), Roles: []RoleStatus{}, DeadTools: c.cfg.DeadLetters != nil}
	// Every check once, all at the same time: roles share some (Postgres),
	// and one slow check must not use up the others' time.
	var all []ops.Check
	named := map[string]bool{}
	for _, role := range c.cfg.Roles {
		for _, ch := range role.Checks {
			if !named[ch.Name] {
				named[ch.Name] = true
				all = append(all, ch)
			}
		}
	}
	results := ops.Ready(ctx, all)
	for _, role := range c.cfg.Roles {
		rs := RoleStatus{Name: role.Name, Ready: true, Checks: make(map[string]string, len(role.Checks))}
		for _, ch := range role.Checks {
			v := results[ch.Name]
			rs.Checks[ch.Name] = v
			if v != "ok" && !strings.HasPrefix(v, "ok: ") {
				rs.Ready = false
			}
		}
		st.Roles = append(st.Roles, rs)
	}
	m, err := gather(c.cfg.Gatherer)
	if err != nil {
		c.internal(w, r, "reading the metrics", err)
		return
	}
	st.Relays, st.Lanes, st.Sagas = relays(m), lanes(m), sagas(m)
	if v, ok := m.one("splitstream_projector_dead_letters"); ok {
		st.Dead = &v
	}
	if c.cfg.Rebuilds != nil {
		if rb, ok := c.cfg.Rebuilds.Rebuild(); ok {
			st.Rebuild = &rb
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func (c *Console) deadList(w http.ResponseWriter, r *http.Request) {
	if c.cfg.DeadLetters == nil {
		apiError(w, http.StatusNotFound, splitstream.ENotFound, "no projector runs in this process: dead letters are handled where one does")
		return
	}
	limit, err := pageSize(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, splitstream.EInvalid, err.Error())
		return
	}
	docs, err := c.cfg.DeadLetters.Documents(r.Context(), limit)
	if err != nil {
		c.internal(w, r, "listing dead letters", err)
		return
	}
	if docs == nil {
		docs = []DeadDocument{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"documents": docs, "limit": limit})
}

func (c *Console) deadReplay(w http.ResponseWriter, r *http.Request) {
	d, ok := c.deadInput(w, r)
	if !ok {
		return
	}
	applied, still, err := c.cfg.DeadLetters.Replay(r.Context(), d)
	if err != nil {
		c.internal(w, r, "replaying dead letters", err)
		return
	}
	c.cfg.Log.InfoContext(r.Context(), "console: dead letters replayed", "kind", d.Kind, "id", d.ID, "applied", applied, "still", still,
		"by", callerOf(r))
	writeJSON(w, http.StatusOK, map[string]any{"applied": applied, "stillDead": still})
}

func (c *Console) deadDrop(w http.ResponseWriter, r *http.Request) {
	d, ok := c.deadInput(w, r)
	if !ok {
		return
	}
	n, err := c.cfg.DeadLetters.Drop(r.Context(), d)
	if err != nil {
		c.internal(w, r, "dropping dead letters", err)
		return
	}
	c.cfg.Log.InfoContext(r.Context(), "console: dead letters dropped", "kind", d.Kind, "id", d.ID, "dropped", n, "by", callerOf(r))
	writeJSON(w, http.StatusOK, map[string]any{"dropped": n})
}

// deadInput reads {"kind": ..., "id": ...}: a JSON body of at most 4 KiB,
// sent as application/json, with a kind and an id within their limits.
func (c *Console) deadInput(w http.ResponseWriter, r *http.Request) (Doc, bool) {
	if c.cfg.DeadLetters == nil {
		apiError(w, http.StatusNotFound, splitstream.ENotFound, "no projector runs in this process: dead letters are handled where one does")
		return Doc{}, false
	}
	d, err := readDoc(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, splitstream.EInvalid, err.Error())
		return Doc{}, false
	}
	return d, true
}

func readDoc(r *http.Request) (Doc, error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return Doc{}, errors.New("the body must be application/json")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return Doc{}, errors.New("cannot read the body")
	}
	if len(body) > maxBodyBytes {
		return Doc{}, fmt.Errorf("the body is over %d bytes", maxBodyBytes)
	}
	var d Doc
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil || dec.Decode(&struct{}{}) != io.EOF {
		return Doc{}, errors.New(`the body must be {"kind": "...", "id": "..."}`)
	}
	switch {
	case d.Kind == "" || d.ID == "":
		return Doc{}, errors.New("kind and id are both needed")
	case len(d.Kind) > MaxKindBytes || len(d.ID) > MaxIDBytes:
		return Doc{}, fmt.Errorf("kind is at most %d bytes and id at most %d", MaxKindBytes, MaxIDBytes)
	case !utf8.ValidString(d.Kind) || !utf8.ValidString(d.ID) || strings.ContainsAny(d.Kind+d.ID, "\x00\r\n"):
		return Doc{}, errors.New("kind and id must be text on one line")
	}
	return d, nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
