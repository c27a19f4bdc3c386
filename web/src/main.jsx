// The Splitstream playground: GraphiQL, bundled by build.mjs into
// graph/playground/ and served by graph.Playground. Nothing here is loaded
// from another host.
//
// The page carries its configuration as JSON in
//   <script type="application/json" id="playground-config">
//     {"title": "...", "endpoint": "/graphql", "subscriptionEndpoint": "/graphql" | "",
//      "tabs": [{"name": "...", "query": "...", "variables": "..."}],
//      "hint": "one line of plain text under the results" (optional),
//      "headers": "JSON text for the headers editor" (optional; development mode)}
//   </script>
// (see graph/playground.go, which writes it).
import 'graphiql/style.css';
import './playground.css';

import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { createClient } from 'graphql-ws';

function readConfig() {
  const el = document.getElementById('playground-config');
  let cfg = {};
  try {
    cfg = JSON.parse((el && el.textContent) || '{}') || {};
  } catch (err) {
    console.error('playground: bad config JSON', err);
  }
  return {
    title: typeof cfg.title === 'string' && cfg.title ? cfg.title : 'GraphiQL',
    endpoint: typeof cfg.endpoint === 'string' && cfg.endpoint ? cfg.endpoint : '/graphql',
    subscriptionEndpoint:
      typeof cfg.subscriptionEndpoint === 'string' ? cfg.subscriptionEndpoint : '',
    tabs: Array.isArray(cfg.tabs) ? cfg.tabs : [],
    hint: typeof cfg.hint === 'string' ? cfg.hint : '',
    headers: typeof cfg.headers === 'string' ? cfg.headers : '',
  };
}

// sameOrigin resolves path against the page and refuses anything that would
// leave this origin: the playground talks to the service that served it.
function sameOrigin(path) {
  const u = new URL(path, window.location.href);
  if (u.origin !== window.location.origin) {
    throw new Error(`playground: endpoint ${path} is not on this origin`);
  }
  return u;
}

// wsURL is the WebSocket address of path on this host: ws: for http pages,
// wss: for https pages.
function wsURL(path) {
  const u = sameOrigin(path);
  u.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

// A tab's name, when given, becomes a comment on the query's first line so the
// reader sees what the example does (GraphiQL titles tabs by operation name).
function toTab(t) {
  let query = typeof t.query === 'string' ? t.query : '';
  const name = typeof t.name === 'string' ? t.name.trim() : '';
  if (name && !query.trimStart().startsWith('#')) {
    query = `# ${name}\n${query}`;
  }
  const tab = { query };
  if (typeof t.variables === 'string' && t.variables.trim() !== '') {
    tab.variables = t.variables;
  }
  return tab;
}

function makeFetcher(cfg) {
  const url = sameOrigin(cfg.endpoint).href;
  if (!cfg.subscriptionEndpoint) {
    return createGraphiQLFetcher({ url });
  }
  // The headers of the latest request, so that the WebSocket's connection_init
  // payload carries the same headers (an Authorization token, say) as HTTP.
  let lastHeaders = {};
  const wsClient = createClient({
    url: wsURL(cfg.subscriptionEndpoint),
    lazy: true,
    retryAttempts: 3,
    connectionParams: () => lastHeaders,
  });
  const base = createGraphiQLFetcher({ url, wsClient });
  return (params, opts) => {
    if (opts && opts.headers && typeof opts.headers === 'object') {
      lastHeaders = { ...opts.headers };
    }
    return base(params, opts);
  };
}

// hasSavedTabs reports whether GraphiQL has tabs of its own in this origin's
// localStorage (it then ignores defaultTabs and restores those).
function hasSavedTabs() {
  try {
    return window.localStorage.getItem('graphiql:tabState') !== null;
  } catch {
    return false;
  }
}

function main() {
  const cfg = readConfig();
  const fetcher = makeFetcher(cfg);
  const tabs = cfg.tabs.map(toTab).filter((t) => t.query !== '');
  // GraphiQL 4 opens the first of defaultTabs with its query but an empty
  // variables editor; on a first visit, hand it the first tab's editors too.
  const first = tabs.length > 0 && !hasSavedTabs() ? tabs[0] : null;
  const root = document.getElementById('graphiql');
  createRoot(root).render(
    <GraphiQL
      fetcher={fetcher}
      defaultTabs={tabs.length > 0 ? tabs : undefined}
      defaultQuery={tabs.length > 0 ? tabs[0].query : '{\n  __typename\n}\n'}
      query={first ? first.query : undefined}
      variables={first ? first.variables || '' : undefined}
      isHeadersEditorEnabled={true}
      shouldPersistHeaders={false}
      defaultHeaders={cfg.headers || undefined}
      defaultEditorToolsVisibility="variables"
    >
      <GraphiQL.Logo>{cfg.title}</GraphiQL.Logo>
      {cfg.hint ? (
        <GraphiQL.Footer>
          <p className="splitstream-hint">{cfg.hint}</p>
        </GraphiQL.Footer>
      ) : null}
    </GraphiQL>,
  );
}

main();
