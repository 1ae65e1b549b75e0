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
  if (body.errors) throw new Error(body.errors.map((e) => e.message).join('; '));
  return Object.values(body.data)[0];
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
  keep(await post(url, LOGIN, { email, password }));
  return session;
}
