// The phone when things fail, in a real browser against the real service: offline, a press
// on "My bleeps" says plainly that nothing was sent and the app stays on screen; a page
// that cannot be reached is the service worker's offline page, never the browser's error
// page; a page that has not heard from the server for 30 s says so, and stops saying so
// when the server answers again. The 30 s pass on the page's clock, not the wall's.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { WARD, startService, launchBrowser } = require('./harness.js');

const AMY = 'amy.patel@example.nhs.uk';
const GRACE = 'grace.okafor@example.nhs.uk';
const BANNER = 'Bleepless cannot reach the server — check with switchboard';

let service, browser;

before(async () => {
  service = await startService();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (service) service.close();
});

async function raise(bed) {
  const res = await service.api('POST', '/api/v1/tasks', service.demo.tokens[GRACE], {
    nhs_number: '9990000026', ward: WARD, bed, category: 'bloods', description: 'Gentamicin level', priority: 'stat', assignee: 'Medicine FY1 night',
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id;
}

async function statusOf(id) {
  return (await service.api('GET', `/api/v1/tasks/${id}`, service.demo.tokens[GRACE])).body.status;
}

// Still the app: not the browser's error page, not another page.
async function assertStillMyBleeps(page) {
  assert.ok(!page.url().startsWith('chrome-error:'), `the browser's error page: ${page.url()}`);
  assert.equal(new URL(page.url()).pathname, '/me');
  assert.equal(await page.textContent('h1'), 'My bleeps');
}

async function newPhone() {
  const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  const page = await phone.newPage();
  return { phone, page };
}

test('offline, Acknowledge on /me says nothing was sent, nothing is sent, and a reload shows the offline page', async () => {
  const id = await raise('7');
  const { phone, page: amy } = await newPhone();
  await service.signIn(amy, AMY);
  await amy.evaluate(() => navigator.serviceWorker.ready);
  const card = amy.locator(`#task-${id}`);
  const ack = card.locator('button.ack');
  const note = card.locator('.send-note');
  await ack.waitFor();
  assert.equal(await note.isVisible(), false, 'nothing to say while connected');

  // A press that does not get through, on a phone that believes it is online.
  await amy.route('**/me/tasks/*/acknowledge', (route) => route.abort('internetdisconnected'));
  await ack.click();
  await note.waitFor({ state: 'visible' });
  assert.match(await note.textContent(), /did not answer, so this may not have arrived/);
  assert.ok(await ack.isDisabled(), 'no second press while the server is not heard');
  await assertStillMyBleeps(amy);
  assert.equal(await statusOf(id), 'requested');
  await amy.unroute('**/me/tasks/*/acknowledge');
  // The server is heard again (the stream, or the next keep-alive) and the button comes back.
  await amy.evaluate(() => window.bleeplessRefresh());
  await amy.waitForFunction((sel) => !document.querySelector(sel).disabled, `#task-${id} button.ack`);
  assert.equal(await note.isVisible(), false);

  // Offline: every button says so and is disabled; a submit that still happens (the
  // keyboard, say) sends nothing and leaves the app on screen.
  await phone.setOffline(true);
  await amy.waitForSelector('#offline', { state: 'visible' });
  await note.waitFor({ state: 'visible' });
  assert.equal(await note.textContent(), 'You are offline: nothing was sent. Try again when connected.');
  for (const button of await card.locator('button[type=submit]').all()) {
    assert.ok(await button.isDisabled(), `${await button.textContent()} is disabled offline`);
  }
  await card.locator('form[action$="/acknowledge"]').evaluate((form) => form.requestSubmit());
  await assertStillMyBleeps(amy);
  assert.equal(await statusOf(id), 'requested', 'nothing reached the server');

  // Reloading offline: the service worker's offline page, at the same address.
  const reloaded = await amy.reload();
  assert.ok(reloaded.fromServiceWorker(), 'served by the service worker');
  assert.ok(!amy.url().startsWith('chrome-error:'), `the browser's error page: ${amy.url()}`);
  assert.equal(await amy.textContent('h1'), 'Bleepless cannot reach the server');
  assert.match(await amy.textContent('main'), /Check with switchboard/);
  assert.doesNotMatch(await amy.textContent('body'), /999|Gentamicin|bed 7/, 'no patient data kept');
  const background = await amy.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(background, 'rgb(240, 244, 245)', 'styled like the other pages, from the kept style sheet');

  // Connected again, the same button works.
  await phone.setOffline(false);
  await amy.goto(service.base + '/me');
  await Promise.all([amy.waitForNavigation(), ack.click()]);
  assert.match(await card.locator('.status').textContent(), /Acknowledged/);
  assert.equal(await statusOf(id), 'accepted');
  await phone.close();
});

test('the page says it cannot reach the server after 30 s without a word from it, and stops when it answers', async () => {
  const id = await raise('8');
  const { phone, page: amy } = await newPhone();
  await phone.clock.install();
  await service.signIn(amy, AMY);
  const banner = amy.locator('#unreachable');
  const ack = amy.locator(`#task-${id} button.ack`);
  await ack.waitFor();
  assert.equal(await banner.isVisible(), false);

  // The server goes away: the page notices at once (its stream breaks) but says nothing
  // about the server until 30 s have passed without a word.
  await service.stop();
  await amy.waitForFunction((sel) => document.querySelector(sel).disabled, `#task-${id} button.ack`);
  await phone.clock.fastForward(20000);
  assert.equal(await banner.isVisible(), false, 'not yet after 20 s');
  await phone.clock.fastForward(11000);
  await banner.waitFor({ state: 'visible' });
  assert.equal(await banner.textContent(), BANNER);
  assert.equal(await banner.getAttribute('role'), 'alert');
  const width = await banner.evaluate((b) => b.getBoundingClientRect().width);
  assert.equal(width, 360, 'full width');
  await assertStillMyBleeps(amy);

  // Back: the page tries again by itself, hears it, and the banner goes.
  await service.start();
  await phone.clock.fastForward(5000);
  await banner.waitFor({ state: 'hidden', timeout: 10000 });
  await amy.waitForFunction((sel) => !document.querySelector(sel).disabled, `#task-${id} button.ack`);
  await phone.close();
});
