// The buttons of "My bleeps" (acknowledge, start, complete, decline, reply). Without this
// script they are plain forms. With it, a press is sent with fetch: offline, or while the
// server does not answer, the buttons are disabled and each card says why, a press that
// does not get through says so and never looks sent, and the browser's error page never
// replaces the app. Needs live.js (window.bleeplessConnection).
(function () {
  const list = document.querySelector('[data-fragment]');
  const connection = window.bleeplessConnection;
  if (!list || !connection) return;
  const SAY = {
    offline: 'You are offline: nothing was sent. Try again when connected.',
    failing: 'Bleepless cannot reach the server: nothing can be sent until it answers. Try again when connected.',
    unsure: 'Bleepless did not answer, so this may not have arrived. Check the task once connected, and try again if it has not changed.',
  };
  // The card whose press did not get through: it says so until the server is heard again.
  let unsure = null;

  function note(actions) {
    let p = actions.querySelector(':scope > .send-note');
    if (!p) {
      p = document.createElement('p');
      p.className = 'send-note';
      p.tabIndex = -1;
      actions.prepend(p);
    }
    return p;
  }

  function render() {
    const now = connection.state();
    if (now === 'ok') unsure = null;
    for (const actions of list.querySelectorAll('.task .actions')) {
      const card = actions.closest('.task');
      const text = now === 'ok' ? '' : (now === 'failing' && card.id === unsure ? SAY.unsure : SAY[now]);
      const p = note(actions);
      p.textContent = text;
      p.hidden = !text;
      for (const b of actions.querySelectorAll('button[type=submit]')) b.disabled = !!text;
    }
  }

  async function send(form) {
    const card = form.closest('.task');
    if (!navigator.onLine) { render(); return; }
    for (const b of form.querySelectorAll('button[type=submit]')) b.disabled = true;
    let res;
    try {
      res = await fetch(form.action, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(new FormData(form)),
      });
    } catch (e) {
      unsure = navigator.onLine && card ? card.id : null;
      connection.failed();
      render();
      const p = card && card.querySelector('.send-note');
      if (p) p.focus();
      return;
    }
    // The server answered: show what a plain form would have shown. Done is a redirect
    // to a page (or to the sign-in page); not done is a page that says why.
    if (res.redirected) { location.assign(res.url); return; }
    const html = await res.text();
    document.open();
    document.write(html);
    document.close();
  }

  list.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== 'post') return;
    event.preventDefault();
    send(form);
  });
  document.addEventListener('bleepless:connection', render);
  document.addEventListener('bleepless:refreshed', render);
  render();
})();
