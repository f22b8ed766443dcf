// Keeps a server-rendered part of the page fresh: when the server says something changed
// (Server-Sent Events), fetch the part again. Also says when the device is offline, and
// when the page has not heard from the server for a while (the stream sends a keep-alive
// event every 10 s, so an idle page still hears it).
(function () {
  const SILENCE_MS = 30000;
  const offline = document.getElementById('offline');
  const unreachable = document.getElementById('unreachable');
  // Only a page with a live part listens to the stream, so only it can tell silence.
  const target = document.querySelector('[data-fragment]');
  let lastHeard = Date.now();
  let failing = false;

  // The page's connection: 'offline' (the device says so), 'failing' (the last request
  // did not reach the server and nothing has been heard since) or 'ok'. Told to the other
  // scripts of the page as a 'bleepless:connection' event.
  function state() { return !navigator.onLine ? 'offline' : failing ? 'failing' : 'ok'; }
  let told = null;
  function show() {
    if (offline) offline.hidden = navigator.onLine;
    if (unreachable) unreachable.hidden = !target || Date.now() - lastHeard <= SILENCE_MS;
    const now = state();
    if (now !== told) {
      told = now;
      document.dispatchEvent(new CustomEvent('bleepless:connection', { detail: { state: now } }));
    }
  }
  function heard() { lastHeard = Date.now(); failing = false; show(); }
  function failed() { failing = true; show(); }
  window.bleeplessConnection = { state, heard, failed };

  // Any answer from the server counts as hearing from it (an error from a proxy in front
  // of it does not); a request that does not get through counts as a failure.
  const fetchFromNetwork = window.fetch.bind(window);
  window.fetch = async function (...args) {
    let res;
    try { res = await fetchFromNetwork(...args); } catch (e) { failed(); throw e; }
    if (res.status < 500) heard();
    return res;
  };
  window.addEventListener('online', show);
  window.addEventListener('offline', show);
  setInterval(show, 1000);
  show();
  if (!target) return;

  // Keep what someone chose or typed and left (an outcome picked, a reason half-written):
  // a refresh must not put a field back to its default, or "Could not be done" would be
  // sent as the first choice, "Done". Fields are known by their id, or card and name.
  const fieldKey = (f) => f.id || `${f.closest('[id]')?.id}|${f.form?.getAttribute('action')}|${f.name}|${f.type === 'radio' ? f.value : ''}`;
  function choices() {
    const kept = new Map();
    for (const f of target.querySelectorAll('input, select, textarea')) {
      if (!f.name || f.type === 'hidden') continue;
      if (f.type === 'checkbox' || f.type === 'radio') {
        if (f.checked !== f.defaultChecked) kept.set(fieldKey(f), { checked: f.checked });
      } else if (f.tagName === 'SELECT') {
        if ([...f.options].some((o) => o.selected !== o.defaultSelected)) kept.set(fieldKey(f), { value: f.value });
      } else if (f.value !== f.defaultValue) {
        kept.set(fieldKey(f), { value: f.value });
      }
    }
    return kept;
  }
  function restore(kept) {
    if (!kept.size) return;
    for (const f of target.querySelectorAll('input, select, textarea')) {
      const was = kept.get(fieldKey(f));
      if (!was) continue;
      if ('checked' in was) f.checked = was.checked;
      else if (f.tagName !== 'SELECT' || [...f.options].some((o) => o.value === was.value)) f.value = was.value;
    }
  }

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
        else {
          // Keep open what someone opened (Complete, Decline, Thread): a refresh must not shut it.
          const key = (d) => `${d.closest('[id]')?.id}|${d.querySelector('summary')?.textContent.trim().split(' ')[0]}`;
          const open = new Set([...target.querySelectorAll('details[open]')].map(key));
          const chosen = choices();
          target.innerHTML = html;
          for (const d of target.querySelectorAll('details')) if (open.has(key(d))) d.open = true;
          restore(chosen);
          document.dispatchEvent(new CustomEvent('bleepless:refreshed'));
        }
      }
    } catch (e) { /* offline, or the server is down: the banners say so */ }
    busy = false;
    if (again) { again = false; setTimeout(refresh, 1000); }
  }
  window.bleeplessRefresh = refresh;

  let stream = null, retry = null;
  function connect() {
    clearTimeout(retry);
    if (stream) stream.close();
    const es = new EventSource('/events');
    stream = es;
    es.addEventListener('open', heard);
    es.addEventListener('alive', heard);
    es.addEventListener('change', () => { heard(); refresh(); });
    // Lost the stream: fetch the part at once, which catches up on what changed meanwhile
    // and, if the session has ended (idle timeout, sign-out elsewhere), reloads to the
    // sign-in page instead of showing a stale list.
    es.onerror = () => {
      es.close();
      if (stream !== es) return;
      refresh();
      retry = setTimeout(connect, 3000);
    };
  }
  // A stream that has gone quiet without closing (a connection cut somewhere on the way)
  // is replaced: the keep-alive would have come within 10 s.
  setInterval(() => { if (Date.now() - lastHeard > 25000) connect(); }, 5000);
  connect();
})();
