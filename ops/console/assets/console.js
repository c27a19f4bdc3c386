// Splitstream admin console. Reads /api/status and /api/dead-letters on this
// origin with the admin's token, which lives in this closure only (never in
// storage or a cookie). Every text from the server goes in with textContent.
(() => {
  'use strict';
  let token = '';
  let timer = null;
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }
  const replace = (node, ...children) => node.replaceChildren(...children);
  const num = (v) => (v === null || v === undefined ? '–' : Number(v).toLocaleString('en'));
  const secs = (v) => (v === null || v === undefined ? '–' : `${Number(v).toFixed(v < 10 ? 2 : 0)} s`);
  const dl = (pairs) => el('dl', {}, ...pairs.flatMap(([k, v, cls]) => [el('dt', {}, k), el('dd', cls ? { class: cls } : {}, v)]));

  async function api(path, init = {}) {
    const res = await fetch(path, {
      ...init,
      headers: { ...(init.headers || {}), Authorization: `Bearer ${token}` },
      cache: 'no-store',
      credentials: 'omit',
    });
    let body = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    if (!res.ok) {
      const err = new Error(body?.error?.message || `HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  function renderRoles(roles) {
    if (!roles.length) return replace($('roles'), el('p', { class: 'muted' }, 'no roles on this listener'));
    replace($('roles'), ...roles.map((r) => el('div', { class: 'role', 'data-role': r.name },
      el('span', { class: r.ready ? 'ok' : 'bad' }, r.ready ? '●' : '● not ready'), ' ', el('strong', {}, r.name), ' ',
      ...Object.keys(r.checks).sort().map((c) => el('span', { class: 'check' }, `${c} `,
        el('span', { class: r.checks[c].startsWith('ok') ? 'ok' : 'bad' }, r.checks[c]))))));
  }

  function renderRelays(relays) {
    if (!relays.length) return replace($('relays'), el('p', { class: 'muted' }, 'no relay in this process'));
    replace($('relays'), ...relays.map((r) => dl([
      ['relay', `${r.name}${r.leader ? ' (leader)' : ' (standing by)'}`],
      ['backlog', `${num(r.backlog)} events`, r.backlog > 0 ? 'warn' : ''],
      ['oldest unpublished', secs(r.oldestAgeSeconds), r.oldestAgeSeconds > 30 ? 'bad' : ''],
      ['horizon held', secs(r.horizonHeldSeconds), r.horizonHeldSeconds > 0 ? 'bad' : ''],
      ['horizon blocker pid', r.horizonHeldSeconds > 0 && r.horizonBlockerPid ? String(r.horizonBlockerPid) : '–'],
    ])));
  }

  function renderLanes(lanes) {
    if (!lanes.length) return replace($('lanes'), el('p', { class: 'muted' }, 'no projector in this process'));
    replace($('lanes'), ...lanes.map((l) => dl([
      ['lane', l.name],
      ['watermark', `tx ${num(l.watermarkTx)} · position ${num(l.watermarkPosition)}`],
      ['lag', `${secs(l.lagSeconds)} · ${num(l.lagPositions)} positions`, l.lagSeconds > 5 ? 'bad' : ''],
      ['held out of order', num(l.held)],
      ['breaker', l.breakerOpen ? 'open' : 'closed', l.breakerOpen ? 'bad' : ''],
      ['last write', l.lastWriteUnix ? new Date(l.lastWriteUnix * 1000).toISOString() : 'none yet'],
    ])));
  }

  function renderSagas(s) {
    if (!s) return replace($('sagas'), el('p', { class: 'muted' }, 'no saga in this process'));
    replace($('sagas'), dl([
      ['open (pending)', num(s.open)],
      ['past deadline', num(s.pastDeadline), s.pastDeadline > 0 ? 'bad' : ''],
      ['started', num(s.started)],
      ['expired (rejected at deadline)', num(s.expiredTotal)],
    ]));
  }

  function renderRebuild(r) {
    if (!r) return replace($('rebuild'), el('p', { class: 'muted' }, 'no rebuild in this process (splitstream rebuild --admin-addr serves its own console)'));
    const bar = el('progress', { max: Math.max(r.total, r.done, 1), value: r.done });
    replace($('rebuild'), dl([
      ['models', r.models.join(', ')],
      ['phase', r.phase, r.phase === 'failed' ? 'bad' : r.phase === 'done' ? 'ok' : ''],
      ['events', `${num(r.done)} of ${num(r.total)}`],
      ['started', r.started],
    ]), bar, r.error ? el('p', { class: 'error' }, r.error) : '');
  }

  function renderDead(docs, actions) {
    const rows = docs.map((d) => {
      const reasons = Object.entries(d.reasons).map(([k, n]) => `${n}× ${k}`).join('\n');
      const cell = el('td', { class: 'actions' });
      if (actions) {
        cell.append(
          el('button', { type: 'button', class: 'secondary', title: 'apply the letters again', 'data-action': 'replay', 'data-kind': d.kind, 'data-id': d.id }, 'Replay'),
          el('button', { type: 'button', class: 'danger', title: 'remove the letters unapplied', 'data-action': 'drop', 'data-kind': d.kind, 'data-id': d.id }, 'Drop'));
      }
      return el('tr', { 'data-doc': `${d.kind}/${d.id}` }, el('td', {}, d.kind), el('td', {}, d.id), el('td', { class: 'num' }, num(d.letters)),
        el('td', {}, d.firstParked), el('td', { class: 'reason' }, reasons), cell);
    });
    replace($('dead'), ...rows);
    $('dead-table').hidden = rows.length === 0;
  }

  async function refresh() {
    const st = await api('/api/status');
    $('version').textContent = `version ${st.version}`;
    $('updated').textContent = `updated ${new Date(st.time).toLocaleTimeString('en-GB')}`;
    renderRoles(st.roles); renderRelays(st.relays); renderLanes(st.lanes); renderSagas(st.sagas); renderRebuild(st.rebuild);
    if (!st.deadLetterActions) {
      $('dead-note').textContent = 'No projector in this process: its dead letters are handled where one runs (or with splitstream dead).';
      $('dead-count').textContent = '–';
      renderDead([], false);
      return;
    }
    const dead = await api('/api/dead-letters?limit=100');
    const letters = dead.documents.reduce((n, d) => n + d.letters, 0);
    $('dead-count').textContent = String(letters);
    $('dead-count').className = letters > 0 ? 'badge bad' : 'badge';
    $('dead-note').textContent = dead.documents.length
      ? `${dead.documents.length} document${dead.documents.length === 1 ? '' : 's'} parked${dead.documents.length >= dead.limit ? ` (the first ${dead.limit} shown)` : ''}. Replay after fixing the cause; drop to give up on them.`
      : 'No dead letters.';
    renderDead(dead.documents, true);
  }

  async function tick() {
    try {
      await refresh();
      $('dead-error').textContent = '';
    } catch (e) {
      if (e.status === 401 || e.status === 403) return logout(e.message);
      $('dead-error').textContent = e.message;
    }
  }

  async function act(button) {
    const { action, kind, id } = button.dataset;
    if (action === 'drop' && !window.confirm(`Drop every dead letter of ${kind} ${id}? They are removed unapplied.`)) return;
    for (const b of document.querySelectorAll('#dead button')) b.disabled = true;
    let message = '';
    try {
      const res = await api(`/api/dead-letters/${action}`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ kind, id }),
      });
      if (action === 'replay' && res.stillDead > 0) message = `${kind} ${id}: ${res.applied} applied, ${res.stillDead} still dead (see the new reason)`;
    } catch (e) {
      message = `${action} ${kind} ${id}: ${e.message}`;
    }
    await tick();
    if (message) $('dead-error').textContent = message;
  }

  async function connect() {
    token = $('token').value.trim().replace(/^Bearer\s+/i, '');
    $('token').value = '';
    $('login-error').textContent = '';
    try {
      await refresh();
    } catch (e) {
      token = '';
      $('login-error').textContent = e.message;
      return;
    }
    $('login').hidden = true;
    $('main').hidden = false;
    clearInterval(timer);
    timer = setInterval(tick, 5000);
  }

  function logout(message) {
    token = '';
    clearInterval(timer);
    $('main').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('connect').addEventListener('click', connect);
    $('token').addEventListener('keydown', (e) => { if (e.key === 'Enter') connect(); });
    $('logout').addEventListener('click', () => logout(''));
    $('dead').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-action]');
      if (b) act(b);
    });
  });
})();
