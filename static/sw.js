// Bleepless service worker: shows every push as a notification (a silent push gets the
// subscription revoked on iOS), and acknowledges from the notification's button without
// opening the app, through the single-use signed link the push carries.

self.addEventListener('install', (event) => { self.skipWaiting(); });
self.addEventListener('activate', (event) => { event.waitUntil(self.clients.claim()); });

function bleepTitle(p) {
  const level = p.level > 0 ? ' (escalated)' : '';
  return `${String(p.priority || 'task').toUpperCase()}${level}: ${p.category || 'task'}, ${p.ward || ''} bed ${p.bed || ''}`;
}

// Shows one bleep. A stat bleep stays on screen until acted on. Delivery is at least once:
// a repeat of a notification already shown (same notification id) replaces it silently.
async function showBleep(p) {
  const shown = await self.registration.getNotifications({ tag: p.task_id });
  const repeat = !!p.notification_id && shown.some((n) => n.data && n.data.notification_id === p.notification_id);
  return self.registration.showNotification(bleepTitle(p), {
    body: 'Acknowledge from here, or tap to open.',
    tag: p.task_id,
    renotify: !repeat,
    silent: repeat,
    requireInteraction: p.priority === 'stat',
    data: p,
    actions: [
      { action: 'ack', title: 'Acknowledge' },
      { action: 'open', title: 'Open' },
    ],
  });
}

function readPush(event) {
  try {
    return event.data.json();
  } catch (e) {
    return { priority: 'asap', category: 'task', ward: '', bed: '', level: 0, task_id: 'bleepless', url: '/me' };
  }
}

// Tells the server this push is on screen, with the receipt the push carried (signed for
// this push and this device: no session needed). Best effort: a lost receipt means a text
// message may follow, never that a bleep is lost.
async function reportShown(p) {
  if (!p.receipt) return;
  try {
    await fetch('/api/v1/receipts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      credentials: 'omit',
      body: JSON.stringify({ receipt: p.receipt }),
    });
  } catch (e) { /* offline: the server falls back to a text message */ }
}

// A notice about no one task: a bleep handed to this person, or taken from them.
function showNotice(p) {
  return self.registration.showNotification(p.title || 'Bleepless', {
    body: p.body || '',
    tag: 'notice-' + (p.notification_id || ''),
    data: p,
  });
}

async function onPush(p) {
  if (p.notice) return showNotice(p);
  await showBleep(p);
  await reportShown(p);
}

self.addEventListener('push', (event) => { event.waitUntil(onPush(readPush(event))); });

// What a tap on the notification (or one of its buttons) does. Kept as a named function so
// that tests can call it directly.
async function handleNotificationClick(action, notification) {
  const p = (notification && notification.data) || {};
  if (notification && notification.close) notification.close();
  if (action === 'ack' && p.ack_url) {
    try {
      const res = await fetch(p.ack_url, { method: 'POST', headers: { Accept: 'application/json' }, credentials: 'omit' });
      const body = await res.json().catch(() => ({}));
      const message = res.ok ? 'You have acknowledged it; the ward can see.' : ((body.error && body.error.message) || 'It could not be acknowledged.');
      await self.registration.showNotification(res.ok ? 'Acknowledged' : 'Not acknowledged', { body: message, tag: p.task_id, data: p });
      return res.ok;
    } catch (e) {
      await self.registration.showNotification('Not acknowledged', { body: 'No connection: open Bleepless to acknowledge.', tag: p.task_id, data: p });
      return false;
    }
  }
  const url = p.url || '/me';
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const w of windows) {
    if ('focus' in w) {
      if (w.navigate) { try { await w.navigate(url); } catch (e) { /* another origin */ } }
      return w.focus();
    }
  }
  return self.clients.openWindow(url);
}

self.addEventListener('notificationclick', (event) => {
  event.waitUntil(handleNotificationClick(event.action, event.notification));
});

// When a page cannot be reached (offline, or the server is down), the app shows its own
// offline page, kept from when the worker was installed, never the browser's error page.
// Only that page and the files it uses are kept: nothing that shows a patient is cached.
const OFFLINE_CACHE = 'bleepless-offline-v2';
const OFFLINE_PAGE = '/offline';
const OFFLINE_FILES = [OFFLINE_PAGE, '/static/vendor/nhsuk-frontend-10.6.1.min.css', '/static/app.css', '/static/icon.svg'];

async function keepOfflinePage() {
  try {
    const cache = await caches.open(OFFLINE_CACHE);
    await cache.addAll(OFFLINE_FILES);
  } catch (e) {
    // Not fatal: notifications matter more than the offline page. Tried again on activate.
  }
}

async function dropOldCaches() {
  for (const name of await caches.keys()) {
    if (name.startsWith('bleepless-') && name !== OFFLINE_CACHE) await caches.delete(name);
  }
  const cache = await caches.open(OFFLINE_CACHE);
  if (!(await cache.match(OFFLINE_PAGE))) await keepOfflinePage();
}

// From the network while it answers, as before; when that fails, what was kept: `kept` is
// the offline page for a page, the request itself for the offline page's own files.
async function networkOr(request, kept) {
  try {
    return await fetch(request);
  } catch (e) {
    const copy = await caches.match(kept, { cacheName: OFFLINE_CACHE });
    if (copy) return copy;
    throw e;
  }
}

function offlineFallback(event) {
  const request = event.request;
  if (request.mode === 'navigate') {
    event.respondWith(networkOr(request, OFFLINE_PAGE));
    return;
  }
  const url = new URL(request.url);
  if (request.method === 'GET' && url.origin === self.location.origin && OFFLINE_FILES.includes(url.pathname)) {
    event.respondWith(networkOr(request, request));
  }
}

self.addEventListener('install', (event) => { event.waitUntil(keepOfflinePage()); });
self.addEventListener('activate', (event) => { event.waitUntil(dropOldCaches()); });
self.addEventListener('fetch', offlineFallback);
