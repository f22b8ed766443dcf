// The bleep changing hands, in a real browser against the real service: Amy and Ben each
// have "My bleeps" open on their phones; an admin hands the bleep from Amy to Ben, and
// without a reload Amy's page stops offering the task's buttons and says she holds no
// bleep, while Ben's says he now holds it, lists what he inherits, and offers the task.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { WARD, startService, launchBrowser, waitFor } = require('./harness.js');

const AMY = 'amy.patel@example.nhs.uk';
const BEN = 'ben.hughes@example.nhs.uk';
const GRACE = 'grace.okafor@example.nhs.uk';
const SAM = 'sam.admin@example.nhs.uk';

let service, browser;

before(async () => {
  service = await startService();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (service) service.close();
});

async function phoneOf(email) {
  const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  const page = await phone.newPage();
  await service.signIn(page, email);
  assert.equal(new URL(page.url()).pathname, '/me');
  // A reload would lose this.
  await page.evaluate(() => { window.sameDocument = true; });
  return { phone, page };
}

test('both doctors\' open pages follow a hand-over without a reload', async () => {
  const raised = await service.api('POST', '/api/v1/tasks', service.demo.tokens[GRACE], {
    nhs_number: '9990000018', ward: WARD, bed: '12', category: 'cannula', description: 'Tissued cannula', priority: 'asap', assignee: 'Medicine FY1 night',
  });
  assert.equal(raised.status, 201, JSON.stringify(raised.body));
  const id = raised.body.id;
  const amy = await phoneOf(AMY);
  const ben = await phoneOf(BEN);
  assert.match(await amy.page.textContent('#holds'), /You hold: Medicine FY1 night\./);
  await amy.page.locator(`#task-${id} button.ack`).waitFor();
  assert.equal(await ben.page.locator(`#task-${id}`).count(), 0);

  const roles = await service.api('GET', '/api/v1/roles', service.demo.tokens[SAM]);
  const fy1 = roles.body.roles.find((r) => r.name === 'Medicine FY1 night');
  const staff = await service.api('GET', '/api/v1/staff', service.demo.tokens[SAM]);
  const benId = staff.body.staff.find((s) => s.email === BEN).id;
  const handed = await service.api('POST', `/api/v1/roles/${fy1.id}/hand-over`, service.demo.tokens[SAM], { to: benId });
  assert.equal(handed.status, 200, JSON.stringify(handed.body));

  // Amy's page: no bleep, and no button on a task that is no longer hers.
  await waitFor('Amy\'s page to follow', async () => /You hold no bleep right now\./.test(await amy.page.textContent('#holds')));
  await amy.page.locator(`#task-${id}`).waitFor({ state: 'detached' });
  assert.equal(await amy.page.locator('button.ack').count(), 0);
  assert.ok(await amy.page.locator('text=Take Medicine FY1 night').isVisible(), 'Amy may take it back');
  // Ben's page: he holds it, is told what he inherits, and may acknowledge the task.
  await waitFor('Ben\'s page to follow', async () => /You hold: Medicine FY1 day, Medicine FY1 night\./.test(await ben.page.textContent('#holds')));
  const notice = ben.page.locator(`#handover-${fy1.id} h3`);
  assert.equal(await notice.textContent(), 'You now hold Medicine FY1 night');
  assert.ok(await ben.page.locator(`#handover-${fy1.id} a[href="#task-${id}"]`).isVisible());
  await ben.page.locator(`#task-${id} button.ack`).waitFor();
  for (const p of [amy.page, ben.page]) {
    assert.equal(await p.evaluate(() => window.sameDocument), true, 'the page was not reloaded');
  }
  // Ben confirms; the notice goes and the task stays.
  await Promise.all([ben.page.waitForNavigation(), ben.page.click(`#handover-${fy1.id} button[type=submit]`)]);
  assert.equal(await ben.page.locator(`#handover-${fy1.id}`).count(), 0);
  await ben.page.locator(`#task-${id} button.ack`).waitFor();
  await amy.phone.close();
  await ben.phone.close();
});
