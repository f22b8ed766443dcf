// Signing in with the trust's identity provider, in Chromium: a real OpenID provider
// (oidc-provider, tests/support/oidc_provider) shows its own login page; the doctor signs in
// there and lands on "My bleeps"; signing out offers to sign out at the provider too.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { ROOT, freePort, startService, launchBrowser } = require('./harness.js');

const AMY = 'amy.patel@example.nhs.uk';
const PROVIDER_DIR = path.join(ROOT, 'tests/support/oidc_provider');
const CLIENT_SECRET = 'a-client-secret-for-tests-only';

let service, browser, provider, issuer;

// Starts the provider with a client that sends browsers back to `base`.
async function startProvider(base) {
  if (!fs.existsSync(path.join(PROVIDER_DIR, 'node_modules/oidc-provider'))) {
    execFileSync('npm', ['ci', '--silent'], { cwd: PROVIDER_DIR, stdio: 'inherit' });
  }
  const options = {
    client_id: 'bleepless', client_secret: CLIENT_SECRET,
    redirect_uris: [`${base}/login/oidc/callback`], post_logout_redirect_uris: [`${base}/login`],
  };
  provider = spawn('node', ['server.mjs', JSON.stringify(options)], { cwd: PROVIDER_DIR, stdio: ['ignore', 'pipe', 'ignore'] });
  for await (const line of readline.createInterface({ input: provider.stdout })) {
    try { const v = JSON.parse(line); if (v.issuer) return v.issuer; } catch (e) { /* a warning */ }
  }
  throw new Error('the provider did not start');
}

before(async () => {
  const port = await freePort();
  issuer = await startProvider(`http://127.0.0.1:${port}`);
  // The client secret from the environment, as a deployment may give it.
  process.env.BLEEPLESS_OIDC_CLIENT_SECRET = CLIENT_SECRET;
  service = await startService({
    port,
    config: ['[oidc]', 'name = "Test Trust"', `issuer = "${issuer}"`, 'client_id = "bleepless"', 'claim = "email"'],
  });
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (service) service.close();
  if (provider) provider.kill('SIGKILL');
});

test('a doctor signs in on the provider\'s own page and lands on My bleeps', async () => {
  const res = await fetch(`${issuer}/test/accounts`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ 'amy-at-the-trust': { email: AMY, name: 'Dr Amy Patel' } }),
  });
  assert.equal(res.status, 204);
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(service.base + '/login');
  assert.match(await page.textContent('#sign-in-provider'), /Sign in with Test Trust/);
  await Promise.all([page.waitForURL((u) => u.origin === issuer), page.click('#sign-in-provider')]);
  await page.fill('input[name=login]', 'amy-at-the-trust');
  await page.fill('input[name=password]', 'anything');
  await Promise.all([
    page.waitForURL((u) => u.origin === service.base && u.pathname === '/me'),
    page.click('button[type=submit]'),
  ]);
  assert.match(await page.textContent('.who'), /Amy Patel/);

  await Promise.all([page.waitForNavigation(), page.click('form.signout button')]);
  const link = await page.getAttribute('#sign-out-provider', 'href');
  assert.ok(link.startsWith(`${issuer}/session/end`), link);
  await context.close();
});
