// End-to-end tests of the pages in a real browser: Debian's Chromium, headless, driven by
// playwright-core, against the real service binary with a SQLite file and a real SMTP server.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { WARD, ROOT, waitFor, startService, launchBrowser, checkPage } = require('./harness.js');

const SHOTS = path.join(ROOT, 'docs/screenshots');

let service, browser, base, demo;
const api = (...args) => service.api(...args);
const signIn = (...args) => service.signIn(...args);
const mails = () => service.mails();

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  service = await startService();
  ({ base, demo } = service);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (service) service.close();
});

test('a stat task raised through the form reaches the phone within 2 s, is acknowledged, and the dashboard shows it', async () => {
  const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  await phone.grantPermissions(['notifications'], { origin: base });
  // Headless Chromium has no push service: the browser's subscribe is replaced by one that
  // returns a subscription as a real one would, so the page's registration runs for real.
  await phone.addInitScript(() => {
    PushManager.prototype.subscribe = async function () {
      const sub = {
        endpoint: 'https://127.0.0.1:9/send/amy-phone',
        keys: { p256dh: 'BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM', auth: 'tBHItJI5svbpez7KI4CCXg' },
      };
      return { ...sub, toJSON: () => sub };
    };
    PushManager.prototype.getSubscription = async () => null;
  });
  const amy = await phone.newPage();
  await signIn(amy, 'amy.patel@example.nhs.uk');
  assert.equal(new URL(amy.url()).pathname, '/me');
  await amy.waitForSelector('#no-tasks');
  await amy.waitForFunction(() => /Notifications are on/.test(document.getElementById('push-status').textContent));
  const devices = await api('GET', '/api/v1/push-subscriptions', demo.tokens['amy.patel@example.nhs.uk']);
  assert.equal(devices.body.devices.length, 1, 'the phone registered itself');
  assert.equal(devices.body.devices[0].endpoint_host, '127.0.0.1:9');

  const desk = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const grace = await desk.newPage();
  await signIn(grace, 'grace.okafor@example.nhs.uk');
  assert.equal(new URL(grace.url()).pathname, '/tasks/new');
  await checkPage(grace, 'the task form');

  // A mistyped NHS number is caught as it is typed, and again by the server; nothing typed is lost.
  await grace.fill('#nhs_number', '999 000 0019');
  await grace.locator('#nhs_number').blur();
  assert.match(await grace.textContent('#nhs_number-error'), /not a valid NHS number/);
  await grace.selectOption('#ward', WARD);
  await grace.selectOption('#category', 'review');
  await grace.check('input[name=priority][value=stat]');
  await grace.fill('#description', 'New chest pain, ECG done, please review');
  const fy1 = await grace.$eval('#assignee', (s) => [...s.options].find((o) => o.textContent.startsWith('Medicine FY1 night')).value);
  await grace.selectOption('#assignee', fy1);
  await Promise.all([grace.waitForNavigation(), grace.click('button.primary')]);
  // The error summary: "There is a problem", focused, a link to each field; each field
  // has its own message, and the NHS number one message only.
  assert.match(await grace.textContent('#error-summary h2'), /There is a problem/);
  assert.equal(await grace.evaluate(() => document.activeElement.id), 'error-summary');
  assert.equal(await grace.locator('#error-summary a').count(), 2);
  assert.match(await grace.textContent('#nhs_number-error'), /check digit/);
  assert.equal(await grace.locator('#nhs_number-group .nhsuk-error-message').count(), 1);
  assert.equal(await grace.getAttribute('#nhs_number', 'aria-invalid'), 'true');
  assert.match(await grace.getAttribute('#nhs_number', 'aria-describedby'), /nhs_number-error/);
  assert.match(await grace.textContent('#bed-error'), /Enter the bed/);
  assert.equal(await grace.getAttribute('#bed', 'aria-invalid'), 'true');
  await checkPage(grace, 'the task form with problems');
  await Promise.all([grace.waitForURL(/#bed$/), grace.click('#error-summary a[href="#bed"]')]);
  assert.equal(await grace.inputValue('#description'), 'New chest pain, ECG done, please review');
  assert.equal(await grace.inputValue('#nhs_number'), '999 000 0019');
  assert.ok(await grace.isChecked('input[name=priority][value=stat]'));
  await grace.screenshot({ path: path.join(SHOTS, 'task-form-errors.png'), fullPage: true });

  await grace.fill('#nhs_number', '999 000 0018');
  await grace.fill('#bed', '12');
  const raisedAt = Date.now();
  await Promise.all([grace.waitForNavigation(), grace.click('button.primary')]);
  assert.equal(new URL(grace.url()).pathname, '/tasks/raised');
  await grace.screenshot({ path: path.join(SHOTS, 'raised-tasks.png'), fullPage: true });
  await checkPage(grace, 'the raised list after raising');

  // The phone shows it without a reload.
  const card = amy.locator('article.task.stat');
  await card.waitFor({ timeout: 2000 });
  const seenAfter = Date.now() - raisedAt;
  assert.ok(seenAfter < 2000, `shown after ${seenAfter} ms`);
  assert.match(await card.textContent(), /review: Ward 5 \(Acute Medicine\), bed 12/);
  await amy.screenshot({ path: path.join(SHOTS, 'my-bleeps-phone.png'), fullPage: true });

  await Promise.all([amy.waitForNavigation(), card.locator('button.ack').click()]);
  assert.match(await amy.locator('article.task.stat .status').textContent(), /Acknowledged/);

  // The coordinator's list follows by itself.
  await grace.waitForFunction(() => /Acknowledged/.test(document.querySelector('tbody tr .status')?.textContent || ''), null, { timeout: 3000 });

  const maria = await desk.newPage();
  await signIn(maria, 'maria.santos@example.nhs.uk');
  assert.equal(new URL(maria.url()).pathname, '/dashboard');
  const row = maria.locator(`#wards tr[data-ward="${WARD}"] td`);
  assert.equal(await row.nth(0).textContent(), '1', 'one stat task open');
  assert.equal(await row.nth(4).textContent(), '0', 'none waiting');
  assert.equal(await row.nth(5).textContent(), '1', 'one acknowledged');
  assert.match(await row.nth(7).textContent(), /1 tasks/);
  await maria.screenshot({ path: path.join(SHOTS, 'dashboard.png'), fullPage: true });

  // Offline is shown plainly.
  await phone.setOffline(true);
  await amy.waitForSelector('#offline', { state: 'visible' });
  await phone.setOffline(false);
  await phone.close();
  await desk.close();
});

test('the service worker shows a push as a bleep, reports it shown, and its Acknowledge button acknowledges through the signed link', async () => {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  await phone.grantPermissions(['notifications'], { origin: base });
  const amy = await phone.newPage();
  await signIn(amy, 'amy.patel@example.nhs.uk');
  const sw = phone.serviceWorkers()[0] || (await phone.waitForEvent('serviceworker'));
  await amy.evaluate(() => navigator.serviceWorker.ready);

  const raised = await api('POST', '/api/v1/tasks', demo.tokens['grace.okafor@example.nhs.uk'], {
    nhs_number: '9990000026', ward: WARD, bed: '4', category: 'bloods', description: 'Gentamicin level', priority: 'stat', assignee: 'Medicine FY1 night',
  });
  assert.equal(raised.status, 201);
  const id = raised.body.id;

  // A push arrives: the worker shows it, held on screen for stat, with an Acknowledge button.
  // The worker's own promise is awaited, so a failure to show says why. A loaded headless
  // Chromium has been seen to drop the very first synthetic push: it is dispatched again
  // (the same tag replaces, so at most one notification results).
  // It carries the receipt the service made for this push and Amy's phone, as a real one does.
  const amyToken = demo.tokens['amy.patel@example.nhs.uk'];
  const device = (await api('GET', '/api/v1/push-subscriptions', amyToken)).body.devices[0].id;
  const rows = await waitFor('the push row', async () => (await api('GET', `/api/v1/tasks/${id}/notifications`, amyToken)).body.notifications.filter((n) => n.channel === 'push' && n.recipient.name === 'Dr Amy Patel'));
  const receipt = service.receipt(rows[0].id, device);
  const push = { task_id: id, priority: 'stat', ward: WARD, bed: '4', category: 'bloods', level: 0, url: '/me', notification_id: rows[0].id, receipt };
  let outcome;
  for (let attempt = 0; attempt < 3 && outcome !== 'shown'; attempt++) {
    outcome = await sw.evaluate(async (p) => {
      const event = new PushEvent('push', { data: JSON.stringify(p) });
      let shown = Promise.resolve();
      event.waitUntil = (promise) => { shown = promise; };
      self.dispatchEvent(event);
      try { await shown; return 'shown'; } catch (e) { return String(e); }
    }, push);
  }
  assert.equal(outcome, 'shown', 'the push handler showed a notification');
  const shown = await waitFor('the notification', () => amy.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    return (await reg.getNotifications()).map((n) => ({ title: n.title, tag: n.tag, sticky: n.requireInteraction, actions: n.actions.map((a) => a.action) }));
  }).then((list) => list.find((n) => n.tag === id)));
  assert.equal(shown.title, `STAT: bloods, ${WARD} bed 4`);
  assert.equal(shown.sticky, true);
  assert.deepEqual(shown.actions, ['ack', 'open']);
  // Having shown it, the worker reported it: the ward can see that Amy has it on screen.
  const seen = await waitFor('the receipt', async () => {
    const t = await api('GET', `/api/v1/tasks/${id}`, demo.tokens['grace.okafor@example.nhs.uk']);
    return t.body.seen_by.find((s) => s.name === 'Dr Amy Patel');
  });
  assert.ok(seen.at, 'seen, with when');

  // The Acknowledge button posts to the link the notification carries (taken here from the email).
  const mail = await waitFor('the email', () => mails().find((m) => m.includes(id)));
  const link = /(http:\/\/127\.0\.0\.1:\d+\/ack\/[A-Za-z0-9_\-.]+)/.exec(mail)[1];
  const ok = await sw.evaluate((url) => handleNotificationClick('ack', { data: { ack_url: url, task_id: 'x' }, close() {} }), link);
  assert.equal(ok, true);
  const task = await api('GET', `/api/v1/tasks/${id}`, demo.tokens['grace.okafor@example.nhs.uk']);
  assert.equal(task.body.status, 'accepted');
  assert.equal(task.body.acknowledged_by.name, 'Dr Amy Patel');
  // Used once: a second press says so instead of acknowledging again.
  const again = await sw.evaluate((url) => handleNotificationClick('ack', { data: { ack_url: url, task_id: 'x' }, close() {} }), link);
  assert.equal(again, false);
  await phone.close();
});

test('the admin page and sign-in page render for their users', async () => {
  const desk = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await desk.newPage();
  await page.goto(base + '/dashboard');
  assert.equal(new URL(page.url()).pathname, '/login', 'pages need a sign-in');
  await page.screenshot({ path: path.join(SHOTS, 'sign-in.png') });
  await page.fill('#email', 'sam.admin@example.nhs.uk');
  await page.fill('#password', 'wrong password');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.match(await page.textContent('.error'), /do not match/);
  await signIn(page, 'sam.admin@example.nhs.uk');
  await page.goto(base + '/admin');
  assert.match(await page.textContent('#roles-h'), /On-call roles/);
  assert.match(await page.textContent('main'), /Medicine FY1 night/);
  await page.screenshot({ path: path.join(SHOTS, 'admin.png'), fullPage: true });
  await desk.close();
});
