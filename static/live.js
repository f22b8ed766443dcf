// Keeps a server-rendered part of the page fresh: when the server says something changed
// (Server-Sent Events), fetch the part again. Also shows when the device is offline.
(function () {
  const offline = document.getElementById('offline');
  function showOnline() { if (offline) offline.hidden = navigator.onLine; }
  window.addEventListener('online', showOnline);
  window.addEventListener('offline', showOnline);
  showOnline();

  const target = document.querySelector('[data-fragment]');
  if (!target) return;
  let busy = false, again = false;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const res = await fetch(target.dataset.fragment, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
      if (res.status === 401 || res.redirected) { location.reload(); return; }
      if (res.ok) {
        const html = await res.text();
        // Keep what someone is typing: skip a refresh while a form inside has focus.
        const active = document.activeElement;
        if (active && target.contains(active) && active.matches('input, textarea, select')) { again = true; }
        else { target.innerHTML = html; document.dispatchEvent(new CustomEvent('bleepless:refreshed')); }
      }
    } catch (e) { /* offline: the banner says so */ }
    busy = false;
    if (again) { again = false; setTimeout(refresh, 1000); }
  }
  window.bleeplessRefresh = refresh;
  function connect() {
    const es = new EventSource('/events');
    es.addEventListener('change', refresh);
    // Lost the stream: fetch the part at once, which catches up on what changed meanwhile
    // and, if the session has ended (idle timeout, sign-out elsewhere), reloads to the
    // sign-in page instead of showing a stale list.
    es.onerror = () => { es.close(); refresh(); setTimeout(connect, 3000); };
  }
  connect();
})();
