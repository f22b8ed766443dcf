// The ward's workflow in a real browser (issue 17): the task page with its thread,
// reassign and cancel, a decline the raiser sees at once, completing with a code alone;
// every page state checked with axe-core, for reflow at 320 px and, on the phone, for
// tap targets of at least 44 px.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { ROOT, startService, launchBrowser, checkPage } = require('./harness.js');

const SHOTS = path.join(ROOT, 'docs/screenshots');
let service, browser, base, demo;
const token = (who) => demo.tokens[`${who}@example.nhs.uk`];

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

async function raise(over = {}) {
  const roles = await service.api('GET', '/api/v1/roles', token('grace.okafor'));
  const fy1 = roles.body.roles.find((r) => r.name === 'Medicine FY1 night');
  const res = await service.api('POST', '/api/v1/tasks', token('grace.okafor'), {
    nhs_number: '9990000018', ward: 'Ward 5 (Acute Medicine)', bed: '7', category: 'bloods',
    description: 'Repeat potassium, last 6.1', priority: 'urgent', assignee: fy1.id, ...over,
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return { task: res.body, fy1 };
}

test('the coordinator follows a task on its page, replies, reassigns after confirming, and sees the decline at once', async () => {
  const { task, fy1 } = await raise();
  const desk = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const grace = await desk.newPage();
  await service.signIn(grace, 'grace.okafor@example.nhs.uk');
  await grace.goto(base + '/tasks/raised');
  await checkPage(grace, 'the raised list');
  await Promise.all([grace.waitForNavigation(), grace.click(`a[href="/tasks/${task.id}"]`)]);
  assert.match(await grace.textContent('#details'), /Repeat potassium/);
  const holders = fy1.held_by.map((p) => p.name);
  assert.ok(holders.length > 0, 'the demo FY1 bleep is held');
  assert.match(await grace.textContent('#who'), new RegExp(`bleeped ${holders[0]}`));
  assert.match(await grace.textContent('#timeline'), /Task raised/);
  await checkPage(grace, 'the task page');

  await grace.fill('#reply', 'Please also check magnesium');
  await Promise.all([grace.waitForNavigation(), grace.click('#thread button[type=submit]')]);
  assert.match(await grace.textContent('#thread'), /Please also check magnesium/);

  // Cancelling needs a reason: the problem is said beside the form.
  await Promise.all([grace.waitForNavigation(), grace.click('#cancel-form button')]);
  assert.match(await grace.textContent('#cancel-error'), /Give a reason/);
  await checkPage(grace, 'the task page with a problem');

  // Reassigning asks first.
  await grace.selectOption('#assignee', { label: 'Dr Ben Hughes' });
  await Promise.all([grace.waitForNavigation(), grace.click('#reassign-form button')]);
  assert.match(await grace.textContent('#confirm'), /Reassign this task to Dr Ben Hughes\?/);
  await checkPage(grace, 'the confirmation');
  await grace.screenshot({ path: path.join(SHOTS, 'task-confirm.png'), fullPage: true });
  await Promise.all([grace.waitForNavigation(), grace.click('#confirm-yes')]);
  assert.match(await grace.textContent('#who'), /Dr Ben Hughes/);
  await grace.screenshot({ path: path.join(SHOTS, 'task-page.png'), fullPage: true });

  // Ben declines on his phone; the coordinator's list shows why without a reload.
  await grace.goto(base + '/tasks/raised');
  const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  const ben = await phone.newPage();
  await service.signIn(ben, 'ben.hughes@example.nhs.uk');
  await ben.goto(base + '/me');
  const card = ben.locator(`#task-${task.id}`);
  await card.waitFor();
  await checkPage(ben, 'my bleeps', { phone: true });
  await card.locator('summary', { hasText: 'Decline' }).click();
  await checkPage(ben, 'my bleeps, decline open', { phone: true });
  await card.locator('textarea[name=reason]').fill('In resus with a stat call');
  await Promise.all([ben.waitForNavigation(), card.locator('button.danger').click()]);
  await grace.waitForFunction(() => /Declined: In resus with a stat call/.test(document.querySelector('main').textContent), null, { timeout: 5000 });
  await checkPage(grace, 'the raised list with a decline');
  await grace.goto(`${base}/tasks/${task.id}`);
  assert.match(await grace.textContent('#reason'), /In resus with a stat call/);
  await phone.close();
  await desk.close();
});

test('a clinician completes with an outcome code alone; "could not be done" asks why', async () => {
  const amy = (await service.api('GET', '/api/v1/me', token('amy.patel'))).body.staff;
  const { task } = await raise({ assignee: amy.id, description: 'Cannula for IV fluids' });
  const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  const page = await phone.newPage();
  await service.signIn(page, 'amy.patel@example.nhs.uk');
  await page.goto(base + '/me');
  const card = page.locator(`#task-${task.id}`);
  await card.waitFor();
  await Promise.all([page.waitForNavigation(), card.locator('button.ack').click()]);
  await card.locator('summary', { hasText: 'Complete' }).click();
  await checkPage(page, 'my bleeps, complete open', { phone: true });
  await card.locator('select[name=outcome_code]').selectOption('unable');
  // The list refreshes under the doctor's thumb (another change came in): what they chose stays.
  await page.evaluate(() => new Promise((done) => {
    document.activeElement?.blur();
    document.addEventListener('bleepless:refreshed', done, { once: true });
    window.bleeplessRefresh();
  }));
  assert.equal(await card.locator('select[name=outcome_code]').inputValue(), 'unable');
  // Not done: the page that says why is written in place (the press went by fetch).
  await card.locator('button.primary').click();
  await page.waitForFunction(() => /needs a few words/.test(document.body.textContent));
  await checkPage(page, 'the outcome problem', { phone: true });
  await page.goto(base + '/me');
  await card.locator('summary', { hasText: 'Complete' }).click();
  await card.locator('select[name=outcome_code]').selectOption('done');
  await Promise.all([page.waitForNavigation(), card.locator('button.primary').click()]);
  const done = await service.api('GET', `/api/v1/tasks/${task.id}`, token('grace.okafor'));
  assert.equal(done.body.status, 'completed');
  assert.equal(done.body.outcome.code, 'done');
  await phone.close();
});

test('the wall dashboard puts what needs action first, each holder\'s workload, and failures grouped by cause', async () => {
  await raise({ priority: 'stat', description: 'Chest pain, ECG done' });
  const wall = await browser.newContext({ viewport: { width: 1700, height: 1000 } });
  const maria = await wall.newPage();
  await service.signIn(maria, 'maria.santos@example.nhs.uk');
  await maria.goto(base + '/dashboard');
  const first = await maria.$eval('#dashboard section h2', (h) => h.textContent);
  assert.match(first, /Escalated and overdue/);
  assert.match(await maria.textContent('#workload'), /Medicine FY1 night/);
  const size = await maria.$eval('#dashboard', (d) => parseFloat(getComputedStyle(d).fontSize));
  assert.ok(size >= 24, `type on the wall is ${size} px`);
  // A holder without a phone: one line naming the people, not a row per delivery.
  await maria.waitForFunction(() => /no phone registered/.test(document.querySelector('#failed')?.textContent || ''), null, { timeout: 15000 });
  assert.doesNotMatch(await maria.textContent('#failed'), /level \d+ · [0-9a-f]{8}/);
  await checkPage(maria, 'the dashboard');
  await maria.screenshot({ path: path.join(SHOTS, 'dashboard-wall.png') });
  await wall.close();
});

test('the admin hands a bleep only to someone allowed to hold it, after confirming', async () => {
  const desk = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const sam = await desk.newPage();
  await sam.goto(base + '/login');
  await checkPage(sam, 'the sign-in page');
  await service.signIn(sam, 'sam.admin@example.nhs.uk');
  await sam.goto(base + '/admin/rota');
  await checkPage(sam, 'the rota page');
  await sam.goto(base + '/offline');
  await checkPage(sam, 'the offline page');
  await sam.goto(base + '/admin');
  await checkPage(sam, 'the admin page');
  const form = sam.locator('form[action="/admin/hand-over"]').first();
  const offered = await form.locator('option').allTextContents();
  assert.ok(offered.length > 0);
  assert.ok(!offered.includes('Sister Grace Okafor') && !offered.includes('Maria Santos'), offered.join(', '));
  await Promise.all([sam.waitForNavigation(), form.locator('button').click()]);
  assert.match(await sam.textContent('h1'), /^Hand .+ over to .+\?/);
  await checkPage(sam, 'the hand-over confirmation');
  await Promise.all([sam.waitForNavigation(), sam.click('#confirm-yes')]);
  assert.match(await sam.textContent('main'), /The bleep was handed over/);
  assert.equal(new URL(sam.url()).search, '?done=handed-over');
  await desk.close();
});
