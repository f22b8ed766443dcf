// What every browser test file needs: the real service binary on a SQLite file with the
// demo data and a real SMTP server, and Debian's Chromium driven by playwright-core.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const { chromium } = require('playwright-core');
const { startSmtp } = require('./smtp.js');

const ROOT = path.resolve(__dirname, '../..');
const BIN = process.env.BLEEPLESS_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target'), 'debug/bleepless');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WARD = 'Ward 5 (Acute Medicine)';

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function waitFor(what, check, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    try { const v = await check(); if (v) return v; } catch (e) { /* not yet */ }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Starts the service with the demo data. `stop()` kills it as a crash would and `start()`
// runs it again on the same address and database.
// `options.port` fixes the port (a sign-in provider must know it first); `options.config`
// adds lines to the configuration file.
async function startService(options = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bleepless-browser-'));
  const [port, smtpPort] = [options.port || await freePort(), await freePort()];
  const base = `http://127.0.0.1:${port}`;
  const smtp = await startSmtp(smtpPort);
  const config = path.join(dir, 'bleepless.toml');
  // A link secret the tests know, so that they can make the receipt a push would carry.
  const linkSecret = require('node:crypto').randomBytes(24).toString('hex');
  fs.writeFileSync(path.join(dir, 'link-secret'), linkSecret);
  fs.writeFileSync(config, [
    `bind = "127.0.0.1:${port}"`,
    `database_url = "sqlite://${path.join(dir, 'bleepless.db')}"`,
    '[email]', 'host = "127.0.0.1"', `port = ${smtpPort}`, 'security = "plain"', 'from = "Bleepless <bleepless@example.nhs.uk>"',
    // The phone's stand-in subscription points here: allowed by this explicit setting only.
    '[push]', 'allow_endpoints = ["https://127.0.0.1:9"]',
    '[security]', `link_secret_file = "${path.join(dir, 'link-secret')}"`,
    ...(options.config || []), '',
  ].join('\n'));
  const env = { ...process.env, RUST_LOG: 'warn' };
  const out = execFileSync(BIN, ['--config', config, 'demo'], { encoding: 'utf8', env });
  const demo = { password: /the password (\S+)/.exec(out)[1], tokens: {} };
  for (const line of out.split('\n')) {
    const m = /(\S+@example\.nhs\.uk)\s+(blp_\S+)/.exec(line);
    if (m) demo.tokens[m[1]] = m[2];
  }
  let server = null;
  const service = {
    base,
    demo,
    // The receipt the service signs into a push for this outbox row and device (what
    // LinkSigner::seal does for Purpose::Receipt: HMAC-SHA256 over "receipt" and the two
    // UUIDs' bytes, cut to 12 bytes, after the ids; base64url).
    receipt(row, device) {
      const ids = Buffer.concat([row, device].map((u) => Buffer.from(u.replace(/-/g, ''), 'hex')));
      const mac = require('node:crypto').createHmac('sha256', linkSecret).update('receipt').update(ids).digest();
      return Buffer.concat([ids, mac.subarray(0, 12)]).toString('base64url');
    },
    async start() {
      server = spawn(BIN, ['--config', config], { stdio: ['ignore', 'ignore', 'inherit'], env });
      await waitFor('the service', async () => (await fetch(base + '/healthz')).ok);
    },
    async stop(signal = 'SIGKILL') {
      if (!server) return;
      const running = server;
      server = null;
      const gone = new Promise((resolve) => running.once('exit', resolve));
      running.kill(signal);
      await gone;
    },
    // Ends the service at once: its database is thrown away, and a graceful stop was seen
    // to keep the test run waiting some 20 s.
    close() {
      if (server) server.kill('SIGKILL');
      server = null;
      smtp.close();
    },
    // The messages the SMTP server accepted, quoted-printable soft line breaks and the
    // escaped '=' undone.
    mails() {
      return smtp.messages.map((m) => m.replace(/=\r?\n/g, '').replace(/=3D/g, '='));
    },
    async api(method, p, token, body) {
      const res = await fetch(base + p, {
        method,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: res.status, body: await res.json() };
    },
    async signIn(page, email) {
      await page.goto(base + '/login');
      await page.fill('#email', email);
      await page.fill('#password', demo.password);
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    },
  };
  await service.start();
  await waitFor('the SMTP server', () => new Promise((resolve) => {
    const s = net.connect(smtpPort, '127.0.0.1', () => { s.end(); resolve(true); });
    s.on('error', () => resolve(false));
  }));
  return service;
}

function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// axe-core on the page as it is now: every WCAG 2.x A/AA rule, zero violations allowed.
async function axe(page, what) {
  // Through the debugging protocol: the pages' Content-Security-Policy allows no inline script.
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(AXE);
  const found = await page.evaluate(async () => (await window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] },
  })).violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`));
  if (found.length) throw new Error(`axe on ${what}:\n${found.join('\n')}`);
}

// Reflow (WCAG 1.4.10): at 320 CSS px wide the page needs no horizontal scrolling.
async function reflows(page, what) {
  const size = page.viewportSize();
  await page.setViewportSize({ width: 320, height: 640 });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.setViewportSize(size);
  if (wide > 320) throw new Error(`${what} is ${wide} px wide at 320 px`);
}

// Every button, toggle and header link is at least 44 px high and wide enough to hit.
async function tapTargets(page, what) {
  const small = await page.evaluate(() => [...document.querySelectorAll('button, summary, header a, input[type=radio], input[type=submit], .nhsuk-radios__input')]
    .filter((e) => e.offsetParent !== null)
    .map((e) => ({ e, r: e.getBoundingClientRect() }))
    .filter(({ e, r }) => (e.matches('input[type=radio]') ? false : r.height < 44 || r.width < 44))
    .map(({ e, r }) => `${e.tagName.toLowerCase()} "${e.textContent.trim().slice(0, 30)}" ${Math.round(r.width)}x${Math.round(r.height)}`));
  if (small.length) throw new Error(`tap targets under 44 px on ${what}: ${small.join('; ')}`);
}

// Each page state: axe, reflow, and on a phone page its tap targets.
async function checkPage(page, what, { phone = false } = {}) {
  await axe(page, what);
  await reflows(page, what);
  if (phone) await tapTargets(page, what);
}

module.exports = { ROOT, WARD, waitFor, freePort, startService, launchBrowser, axe, reflows, tapTargets, checkPage };
