"""The GraphQL explorer (GraphiQL) page, served entirely from vendored assets.

Strawberry's built-in GraphiQL page loads React and GraphiQL from a public CDN.
The explorer is how managers and developers look at the sync server on a
customer site or in a test rig, and it must work there with no internet
access, so the exact same files (graphiql 3.8.3, react 18.2.0,
@graphiql/plugin-explorer 1.0.2) are vendored under ``server/static/graphiql``
(see the README there for where they come from and how to refresh them) and
served by this app itself.  The page references nothing outside the app.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static" / "graphiql"
STATIC_PREFIX = "/static/graphiql"

# Shown in the headers editor until the user pastes a real token.  The page
# drops any header still holding this placeholder, so it never reaches the
# server (the `login` mutation works with the default headers untouched).
TOKEN_PLACEHOLDER = "<paste accessToken from the login mutation>"
DEFAULT_HEADERS = json.dumps({"Authorization": f"Bearer {TOKEN_PLACEHOLDER}"}, indent=2)


def _js(value: str) -> str:
    """A JavaScript string literal that is safe inside an inline <script>."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>fieldsync GraphQL explorer</title>
  <link rel="icon" href="data:,">
  <style>
    body {{ margin: 0; height: 100vh; overflow: hidden; }}
    #graphiql {{ height: 100vh; display: flex; }}
  </style>
  <link rel="stylesheet" href="{static}/graphiql.min.css">
  <link rel="stylesheet" href="{static}/plugin-explorer.css">
  <script src="{static}/react.production.min.js"></script>
  <script src="{static}/react-dom.production.min.js"></script>
  <script src="{static}/graphiql.min.js"></script>
  <script src="{static}/plugin-explorer.umd.js"></script>
</head>
<body>
  <div id="graphiql">Loading the GraphQL explorer…</div>
  <script>
    "use strict";
    const endpoint = new URL({endpoint}, window.location.href);
    const subscriptionUrl = new URL(endpoint);
    subscriptionUrl.protocol = endpoint.protocol === "https:" ? "wss:" : "ws:";
    subscriptionUrl.hash = "";
    const placeholder = {placeholder};

    // Queries/mutations go over HTTP POST; subscriptions over graphql-ws, where
    // GraphiQL sends the headers editor's content as the connection_init payload.
    const baseFetcher = GraphiQL.createFetcher({{
      url: endpoint.href,
      subscriptionUrl: subscriptionUrl.href,
    }});
    function fetcher(params, opts) {{
      const headers = Object.assign({{}}, (opts && opts.headers) || {{}});
      for (const name of Object.keys(headers)) {{
        if (String(headers[name]).includes(placeholder)) delete headers[name];
      }}
      return baseFetcher(params, Object.assign({{}}, opts, {{ headers }}));
    }}

    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{
        fetcher,
        defaultQuery: {default_query},
        defaultHeaders: {default_headers},
        isHeadersEditorEnabled: true,
        shouldPersistHeaders: true,
        defaultEditorToolsVisibility: "headers",
        inputValueDeprecation: true,
        plugins: [GraphiQLPluginExplorer.explorerPlugin()],
      }}),
    );
  </script>
</body>
</html>
"""


def explorer_html(
    default_query: str,
    endpoint: str = "/graphql",
    static_prefix: str = STATIC_PREFIX,
) -> str:
    """The complete explorer page: GraphiQL against ``endpoint``, headers editor open.

    ``default_query`` fills the query editor on a first visit (GraphiQL keeps the
    user's own query in localStorage afterwards).  ``endpoint`` may be relative;
    the subscription URL is the same path over ws:// or wss://.
    """
    return _PAGE.format(
        static=html.escape(static_prefix.rstrip("/"), quote=True),
        endpoint=_js(endpoint),
        placeholder=_js(TOKEN_PLACEHOLDER),
        default_query=_js(default_query),
        default_headers=_js(DEFAULT_HEADERS),
    )


def static_routes() -> list[Mount]:
    """The route serving the vendored assets; mount it next to the GraphQL route."""
    return [
        Mount(STATIC_PREFIX, app=StaticFiles(directory=STATIC_DIR), name="graphiql-static"),
    ]
