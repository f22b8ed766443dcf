// A real OpenID provider for Bleepless's sign-in tests: panva's certified `oidc-provider`,
// with one client (PKCE required), the development login form (any password; the login
// names the account) and accounts whose claims a test sets. Test-only controls under
// /test/: set accounts, rotate the signing key, give claims only from userinfo, and have the next ID token re-signed with
// the provider's own key but with a wrong audience, a wrong nonce or a past expiry.
//
// Usage: node server.mjs '<json options>'   options: { client_id, client_secret,
// redirect_uris: [...], post_logout_redirect_uris: [...] }
// Prints one line, {"issuer": "http://127.0.0.1:<port>"}, once it listens.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';
import { SignJWT, importJWK, decodeJwt, decodeProtectedHeader } from 'jose';

const options = JSON.parse(process.argv[2] || '{}');
const accounts = new Map();
let tamper = null;
// Claims in the ID token itself (as Entra ID does), or only from userinfo (as CIS2 gives uid).
let claimsInIdToken = true;

function newKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };
}

let key = newKey();
let issuer;
let provider;

function build() {
  const p = new Provider(issuer, {
    clients: [{
      client_id: options.client_id || 'bleepless',
      client_secret: options.client_secret || 'a-client-secret-for-tests-only',
      redirect_uris: options.redirect_uris || [],
      post_logout_redirect_uris: options.post_logout_redirect_uris || [],
      response_types: ['code'],
      grant_types: ['authorization_code'],
    }],
    jwks: { keys: [key] },
    pkce: { required: () => true },
    cookies: { keys: ['bleepless-test-provider-cookie-key'] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'roles'],
      nhsperson: ['uid'],
    },
    // The claims in the ID token itself, as Entra ID puts them there.
    conformIdTokenClaims: !claimsInIdToken,
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    // No consent page: every scope the client asks for is granted.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        const found = await ctx.oidc.provider.Grant.find(grantId);
        if (found) return found;
      }
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid email profile nhsperson');
      grant.addOIDCClaims(['email', 'email_verified', 'name', 'preferred_username', 'roles', 'uid']);
      await grant.save();
      return grant;
    },
    async findAccount(ctx, id) {
      return { accountId: id, claims: async () => ({ sub: id, ...(accounts.get(id) || {}) }) };
    },
  });
  p.on('server_error', (ctx, err) => console.error('provider error', err));
  return p;
}

// Re-signs an ID token with the current key, some claims overridden.
async function tampered(idToken, changes) {
  const claims = { ...decodeJwt(idToken), ...changes };
  const { kid } = decodeProtectedHeader(idToken);
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .sign(await importJWK(key, 'RS256'));
}

function body(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => resolve(data ? JSON.parse(data) : {}));
  });
}

async function control(req, res) {
  const path = req.url.split('?')[0];
  if (path === '/test/accounts') {
    for (const [id, claims] of Object.entries(await body(req))) accounts.set(id, claims);
  } else if (path === '/test/rotate') {
    key = newKey();
    provider = build();
  } else if (path === '/test/claims-from-userinfo') {
    claimsInIdToken = false;
    provider = build();
  } else if (path === '/test/tamper') {
    tamper = await body(req);
  } else {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(204).end();
}

// The token endpoint's answer, with its ID token re-signed when a test asked for it.
function tamperToken(req, res) {
  const changes = tamper;
  tamper = null;
  const chunks = [];
  const { write, end, setHeader } = res;
  res.setHeader = function (name, value) {
    if (String(name).toLowerCase() === 'content-length') return this;
    return setHeader.call(this, name, value);
  };
  res.write = function (chunk) { chunks.push(Buffer.from(chunk)); return true; };
  res.end = function (chunk) {
    if (chunk) chunks.push(Buffer.from(chunk));
    const text = Buffer.concat(chunks).toString();
    (async () => {
      let out = text;
      try {
        const json = JSON.parse(text);
        if (json.id_token) json.id_token = await tampered(json.id_token, changes);
        out = JSON.stringify(json);
      } catch (e) { /* not JSON: as it was */ }
      write.call(res, out);
      end.call(res);
    })();
    return res;
  };
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/test/')) {
    control(req, res).catch((e) => { console.error(e); res.writeHead(500).end(); });
    return;
  }
  if (tamper && req.method === 'POST' && req.url.startsWith('/token')) tamperToken(req, res);
  provider.callback()(req, res);
});

server.listen(0, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  provider = build();
  console.log(JSON.stringify({ issuer }));
});
