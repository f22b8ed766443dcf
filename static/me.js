// "My bleeps": registers the service worker and this phone for push notifications.
(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || '';
  const setup = document.getElementById('push-setup');
  const button = document.getElementById('push-enable');
  const status = document.getElementById('push-status');
  const iosHint = document.getElementById('ios-hint');
  const isIos = /iPhone|iPad|iPod/.test(navigator.userAgent);
  const standalone = window.matchMedia && window.matchMedia('(display-mode: standalone)').matches;

  function say(text) { if (status) status.textContent = text; }

  function keyBytes(base64url) {
    const pad = '='.repeat((4 - (base64url.length % 4)) % 4);
    const raw = atob((base64url + pad).replace(/-/g, '+').replace(/_/g, '/'));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  async function register(reg) {
    const keyRes = await fetch('/api/v1/push/vapid-public-key');
    const { public_key } = await keyRes.json();
    let sub = await reg.pushManager.getSubscription();
    if (!sub) {
      sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(public_key) });
    }
    const res = await fetch('/api/v1/push-subscriptions', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(sub.toJSON ? sub.toJSON() : sub),
    });
    if (!res.ok) throw new Error((await res.json()).error.message);
    say('Notifications are on for this device.');
    if (setup) setup.hidden = true;
  }

  async function start() {
    if (!('serviceWorker' in navigator) || !('PushManager' in window)) {
      if (setup) setup.hidden = false;
      if (button) button.hidden = true;
      if (iosHint) iosHint.hidden = !(isIos && !standalone);
      say('This browser cannot receive notifications: bleeps also come by email.');
      return;
    }
    const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    await navigator.serviceWorker.ready;
    if (Notification.permission === 'granted') {
      try { await register(reg); } catch (e) { say('Could not turn on notifications: ' + e.message); }
      return;
    }
    if (setup) setup.hidden = false;
    if (iosHint) iosHint.hidden = !(isIos && !standalone);
    if (button) button.addEventListener('click', async () => {
      const answer = await Notification.requestPermission();
      if (answer !== 'granted') { say('Notifications are blocked: allow them in the browser settings.'); return; }
      try { await register(reg); } catch (e) { say('Could not turn on notifications: ' + e.message); }
    });
  }
  start().catch((e) => say('Could not set up notifications: ' + e.message));
})();
