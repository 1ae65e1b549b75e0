// Sign in to fieldsync and keep the access token fresh (tokens live 15 minutes by
// default; each refresh token works once). Shared by the two examples.

const LOGIN = `mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    __typename ... on LoginSuccess { accessToken refreshToken expiresIn }
    ... on AuthError { code message } } }`;
const REFRESH = `mutation Refresh($token: String!) {
  refreshToken(token: $token) {
    __typename ... on LoginSuccess { accessToken refreshToken expiresIn }
    ... on AuthError { code message } } }`;

async function post(url, query, variables) {
  const res = await fetch(url, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors) {
    const error = new Error(body.errors.map((e) => e.message).join('; '));
    // UNAVAILABLE (HTTP 503, or 200 with the error): the database was busy; try again.
    const seconds = Number(res.headers.get('retry-after'));  // absent, or a date: 1 s
    error.retryAfter = body.errors.some((e) => e.extensions?.retryable)
      ? (Number.isFinite(seconds) && seconds > 0 ? seconds : 1) : null;
    throw error;
  }
  return Object.values(body.data)[0];
}

// A login changes nothing that a second one would not, so it is retried when the server
// says "retry" (up to 5 tries). Refreshes are not: a refresh token works once, and a
// retry after a lost answer would present a used token.
async function login(url, email, password) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await post(url, LOGIN, { email, password });
    } catch (error) {
      if (error.retryAfter == null || attempt === 5) throw error;
      await new Promise((resolve) => setTimeout(resolve, error.retryAfter * 1000 * attempt));
    }
  }
}

/**
 * `session.token` is always the current access token; `onRefresh(fn)` is called with
 * each new one (hand it to RxDB's `replicationState.setHeaders`).
 */
export async function signIn(url, email, password) {
  const listeners = [];
  const session = {
    token: null,
    onRefresh(fn) { listeners.push(fn); },
    stop() { clearTimeout(session.timer); },
  };
  function keep(result) {
    if (result.__typename !== 'LoginSuccess') throw new Error(`${result.code}: ${result.message}`);
    session.token = result.accessToken;
    clearTimeout(session.timer);
    session.timer = setTimeout(async () => {
      keep(await post(url, REFRESH, { token: result.refreshToken }));
      for (const fn of listeners) fn(session.token);
    }, result.expiresIn * 800); // at 80 % of the lifetime
    session.timer.unref?.();
  }
  keep(await login(url, email, password));
  return session;
}
