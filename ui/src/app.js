// Secure Messenger — the node page's only script, served at /assets/app.js.
//
// The page works without it: every action is a plain form POST. This script
// only enhances it, using the ids, classes and data-* attributes the server
// renders (see ui/src/node.rs):
//   - local times for every <time datetime>;
//   - live updates from GET /api/events (Server-Sent Events): new messages,
//     delivery status, connection state, unread badges, notifications;
//   - sending without a reload (Enter sends, Shift+Enter adds a line);
//   - copy buttons ([data-copy]) and the notification permission button;
//   - the settings and invite dialogs as real modals (Escape closes them);
//     a copy the clipboard refuses leaves the text selected instead.
//
// It loads nothing else, uses no framework, and never parses HTML: every node
// is built with createElement and textContent, so message text stays text.

'use strict';

(function () {
  // Elements marked .js-only are shown from now on (see app.css).
  document.documentElement.classList.add('js');

  // ---------- small helpers ----------

  /** Creates an element with an optional class and text. */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** The class the server gives a status: lowercase letters, digits, dashes. */
  function statusClass(status) {
    const clean = String(status || '').toLowerCase().replace(/[^a-z0-9-]/g, '');
    return 'status status-' + (clean || 'unknown');
  }

  /** The visual mark the server puts before a status word. */
  function statusMark(status) {
    switch (status) {
      case 'pending': return '🕓';
      case 'sent': return '✓';
      case 'delivered': return '✓✓';
      case 'failed': return '⚠';
      default: return '•';
    }
  }

  /** Fills a status span like the server does: mark, space, word. */
  function fillStatus(span, status, error) {
    span.className = statusClass(status);
    const mark = el('span', 'status-mark', statusMark(status));
    mark.setAttribute('aria-hidden', 'true');
    span.replaceChildren(mark, document.createTextNode(' ' + status));
    if (error) span.title = error; else span.removeAttribute('title');
  }

  /** The first line of a text, at most 80 characters (as the node shortens previews). */
  function previewOf(text) {
    const line = String(text || '').split('\n')[0];
    const chars = Array.from(line);
    return chars.length > 80 ? chars.slice(0, 79).join('') + '…' : line;
  }

  // ---------- local times ----------

  /**
   * Shows a <time datetime> in the browser's time zone and locale: the time alone for
   * today, with the date otherwise. The full date and time is its tooltip.
   */
  function localizeTime(node) {
    const iso = node.getAttribute('datetime');
    if (!iso) return;
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return;
    const today = date.toDateString() === new Date().toDateString();
    node.textContent = today
      ? date.toLocaleTimeString(undefined, { timeStyle: 'short' })
      : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
    node.title = date.toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'long' });
  }

  document.querySelectorAll('time[datetime]').forEach(localizeTime);

  // ---------- the open conversation ----------

  /** The "not forward-secret" mark's explanation (ui/src/node/chat.rs says the same). */
  const NOT_FORWARD_SECRET = 'Sent before a forward-secret session with this contact ' +
    'existed: whoever steals this key later could read it from a recording.';

  const messages = document.getElementById('messages');
  const openIdentity = messages ? messages.dataset.identity : null;
  const openContact = messages ? messages.dataset.contact : null;
  // The identity whose contacts the sidebar lists.
  const contactList = document.getElementById('contact-list');
  const listIdentity = contactList ? contactList.dataset.identity : openIdentity;

  /** The rendered entry with this data-message-id, if any. */
  function findBubble(id) {
    if (!messages || !id) return null;
    for (const item of messages.children) {
      if (item.dataset.messageId === id) return item;
    }
    return null;
  }

  /** Keeps the newest message in view. */
  function scrollToBottom() {
    const scroller = messages && messages.closest('.scroller');
    // With column-reverse the bottom is scrollTop 0 and larger values are
    // clamped to it; in a normal column this is the bottom too.
    if (scroller) scroller.scrollTop = scroller.scrollHeight;
  }

  /**
   * Builds an entry exactly like the server renders it: a gap marker
   * (li.gap) or a bubble (li.msg.in / li.msg.out with text, time and, for
   * outgoing messages, the status).
   */
  function buildEntry(entry) {
    if (entry.kind === 'note') {
      const li = el('li', entry.warning ? 'note note-warning' : 'note');
      li.dataset.messageId = 'note-' + Date.parse(entry.at);
      li.setAttribute('role', 'note');
      const text = el('p', 'note-text');
      const mark = el('span', null, entry.warning ? '⚠ ' : 'ℹ ');
      mark.setAttribute('aria-hidden', 'true');
      text.append(mark, document.createTextNode(entry.text));
      const meta = el('p', 'msg-meta');
      const time = el('time', 'time', entry.at || '');
      if (entry.at) {
        time.setAttribute('datetime', entry.at);
        localizeTime(time);
      }
      meta.append(time);
      li.append(text, meta);
      return li;
    }
    if (entry.kind === 'gap') {
      const missing = Number(entry.missing) || 0;
      const words = missing === 1 ? '1 message is missing here' : missing + ' messages are missing here';
      const li = el('li', 'gap');
      if (entry.id) li.dataset.messageId = entry.id;
      li.setAttribute('role', 'note');
      li.append(el('p', 'gap-text', '⚠ ' + words + ' (expired or lost on the way)'));
      return li;
    }
    const outgoing = entry.direction === 'out';
    const li = el('li', outgoing ? 'msg out' : 'msg in');
    li.dataset.messageId = entry.id;
    li.append(el('span', 'visually-hidden', (outgoing ? 'You' : openContact) + ': '));
    li.append(el('p', 'msg-text', entry.text));
    if (!outgoing && entry.error) {
      const warning = el('p', 'msg-warning', '⚠ ' + entry.error);
      warning.setAttribute('role', 'note');
      li.append(warning);
    }
    const meta = el('p', 'msg-meta');
    const time = el('time', 'time', entry.sent_at || '');
    if (entry.sent_at) {
      time.setAttribute('datetime', entry.sent_at);
      localizeTime(time);
    }
    meta.append(time);
    if (outgoing) {
      const status = el('span');
      fillStatus(status, entry.status || 'pending', entry.error);
      meta.append(status);
    }
    if (entry.forward_secret === false) {
      const mark = el('span', 'not-fs', 'not forward-secret');
      mark.title = NOT_FORWARD_SECRET;
      meta.append(mark);
    }
    li.append(meta);
    return li;
  }

  /** Appends an entry to the open conversation unless it is already shown. */
  function appendEntry(entry) {
    if (!messages || findBubble(entry.id)) return;
    const hint = document.querySelector('.no-messages');
    if (hint) hint.remove();
    messages.append(buildEntry(entry));
    scrollToBottom();
  }

  // ---------- the contact list ----------

  /** The sidebar link of a contact of the listed identity. */
  function contactLink(name) {
    for (const link of document.querySelectorAll('a[data-contact]')) {
      if (link.dataset.contact === name) return link;
    }
    return null;
  }

  /** Sets a contact's unread badge to `count` (none at 0). */
  function setUnread(name, count) {
    const link = contactLink(name);
    if (!link) return;
    let badge = link.querySelector('.unread');
    if (count <= 0) {
      if (badge) badge.remove();
      updateTitle();
      return;
    }
    if (!badge) {
      badge = el('span', 'unread', '0');
      (link.querySelector('.item-row') || link).append(badge);
    }
    badge.textContent = String(count);
    badge.setAttribute('aria-label', count + ' unread');
    updateTitle();
  }

  /** Adds one to a contact's unread badge, creating it when missing. */
  function bumpUnread(name) {
    const link = contactLink(name);
    if (!link) return;
    let badge = link.querySelector('.unread');
    if (!badge) {
      badge = el('span', 'unread', '0');
      (link.querySelector('.item-row') || link).append(badge);
    }
    const count = (parseInt(badge.textContent, 10) || 0) + 1;
    badge.textContent = String(count);
    badge.setAttribute('aria-label', count + ' unread');
    updateTitle();
  }

  /** Shows a contact's last message under its name. */
  function setPreview(name, text) {
    const link = contactLink(name);
    if (!link) return;
    let preview = link.querySelector('.preview');
    if (!preview) {
      preview = el('span', 'preview');
      link.append(preview);
    }
    preview.textContent = previewOf(text);
  }

  // ---------- the tab title and notifications ----------

  // The server's title counts what waits unseen as "(N) "; the script keeps it current.
  const baseTitle = document.title.replace(/^\(\d+\) /, '');
  let unseen = 0;
  // A reload was put off while the tab was in the background.
  let reloadWhenVisible = false;

  /** The title with what waits unseen: other conversations' badges, requests, and what
   * came into the open one while the tab was in the background. */
  function updateTitle() {
    let waiting = unseen;
    document.querySelectorAll('#contact-list .unread').forEach(function (badge) {
      waiting += parseInt(badge.textContent, 10) || 0;
    });
    const requests = document.getElementById('requests-count');
    if (requests) waiting += parseInt(requests.textContent, 10) || 0;
    document.title = waiting > 0 ? '(' + waiting + ') ' + baseTitle : baseTitle;
  }

  document.addEventListener('visibilitychange', function () {
    if (document.hidden) return;
    unseen = 0;
    updateTitle();
    if (reloadWhenVisible) reloadIfIdle();
  });

  /** A desktop notification, if the user allowed them. */
  function notify(title, body, href) {
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      const notification = new Notification(title, { body: body, tag: href });
      notification.onclick = function () {
        window.focus();
        location.href = href;
        notification.close();
      };
    } catch (_) {
      // Some browsers only allow notifications from a service worker.
    }
  }

  // ---------- reloading for changes the page cannot patch ----------

  /** True while the user is typing something a reload would lose. */
  function isBusy() {
    const compose = document.getElementById('compose-text');
    if (compose && compose.value.trim() !== '') return true;
    const active = document.activeElement;
    return !!active && (active.tagName === 'INPUT' || active.tagName === 'TEXTAREA') && !active.readOnly;
  }

  /** Reloads the page now, later when it is visible, or offers a link. */
  function reloadIfIdle(reason) {
    if (document.hidden) {
      reloadWhenVisible = true;
      return;
    }
    reloadWhenVisible = false;
    if (!isBusy()) {
      location.reload();
      return;
    }
    if (document.getElementById('live-note')) return;
    const note = el('p', 'live-note');
    note.id = 'live-note';
    note.setAttribute('role', 'status');
    note.append(document.createTextNode((reason || 'Something changed.') + ' '));
    const link = el('a', null, 'Reload');
    link.href = location.pathname + location.search;
    note.append(link);
    const app = document.querySelector('.app');
    if (app) app.prepend(note);
  }

  // ---------- live events ----------

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch (_) {
      return null;
    }
  }

  /** Tell the node the open conversation has been seen (so it is not counted unread). */
  let readPending = false;
  function markRead() {
    if (!messages || !openIdentity || !openContact || document.hidden) {
      readPending = !!messages;
      return;
    }
    readPending = false;
    const url = '/api/identities/' + encodeURIComponent(openIdentity) + '/contacts/' +
      encodeURIComponent(openContact) + '/read';
    fetch(url, { method: 'POST', credentials: 'same-origin' }).catch(function () {});
  }
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && readPending) markRead();
  });

  function onMessage(data) {
    const incoming = data.kind === 'message' && data.direction === 'in';
    const isOpen = !!messages && data.identity === openIdentity && data.contact === openContact;
    if (isOpen && data.late) {
      // It belongs above entries already shown: the server knows its place.
      reloadIfIdle('A message that came late is now in its place.');
    } else if (isOpen) {
      appendEntry(data);
      if (incoming) markRead();
    } else if (incoming && data.identity === listIdentity) {
      bumpUnread(data.contact);
    }
    if (data.kind === 'message' && data.identity === listIdentity) {
      setPreview(data.contact, data.text);
    }
    if (incoming && document.hidden) {
      unseen += 1;
      updateTitle();
      const previews = document.body.dataset.previews === 'true';
      const href = '/?identity=' + encodeURIComponent(data.identity) +
        '&contact=' + encodeURIComponent(data.contact);
      notify(data.contact, previews ? data.text : 'New message', href);
    }
  }

  function onStatus(data) {
    if (!messages || data.identity !== openIdentity || data.contact !== openContact) return;
    const bubble = findBubble(data.id);
    if (!bubble) return;
    let span = bubble.querySelector('.status');
    if (!span) {
      span = el('span');
      const meta = bubble.querySelector('.msg-meta') || bubble;
      meta.append(span);
    }
    fillStatus(span, data.status, data.error);
  }

  const CONNECTION_LABELS = { online: 'Online', connecting: 'Connecting…', offline: 'Offline' };

  function onConnection(data) {
    const box = document.getElementById('connection');
    if (!box || !data) return;
    const mailbox = data.mailbox || {};
    const state = String(mailbox.state || '');
    const known = Object.prototype.hasOwnProperty.call(CONNECTION_LABELS, state);
    const conn = box.querySelector('.conn');
    if (conn) {
      conn.className = 'conn conn-' + (known ? state : 'unknown');
      const dot = el('span', 'dot');
      dot.setAttribute('aria-hidden', 'true');
      conn.replaceChildren(dot, document.createTextNode(known ? CONNECTION_LABELS[state] : state));
    }
    const outbox = box.querySelector('.outbox');
    const waiting = Number(data.outbox) || 0;
    if (outbox) {
      outbox.textContent = waiting === 0 ? 'All sent' : 'Waiting to send: ' + waiting;
    }
    let lastError = box.querySelector('.last-error');
    if (mailbox.last_error) {
      if (!lastError) {
        lastError = el('span', 'last-error');
        box.append(lastError);
      }
      showError(lastError, String(mailbox.last_error));
    } else if (lastError) {
      lastError.remove();
    }
  }

  /** An error as one short line, the rest behind "Details" (as the server renders it). */
  function showError(box, text) {
    const SHORT = 80;
    const line = el('span', 'last-error-text');
    if (text.length <= SHORT) {
      line.textContent = text;
      box.replaceChildren(line);
      return;
    }
    const cuts = [': ', '. ', '; '].map(function (sep) { return text.indexOf(sep); })
      .filter(function (at) { return at >= 0 && at <= SHORT; });
    line.textContent = cuts.length ? text.slice(0, Math.min.apply(null, cuts)) + '.'
      : text.slice(0, SHORT - 1) + '…';
    const details = el('details', 'error-details');
    details.append(el('summary', null, 'Details'), el('p', null, text));
    box.replaceChildren(line, details);
  }

  function onRequest(data) {
    if (!data || (listIdentity && data.identity !== listIdentity)) return;
    if (document.hidden) {
      unseen += 1;
      updateTitle();
      notify('New message request', 'Someone who is not a contact wrote to you.', '/?identity=' +
        encodeURIComponent(data.identity));
    }
    reloadIfIdle('New message request.');
  }

  // ---------- the node itself ----------

  // The page lives on its node: when the node stops, the event stream breaks. The page
  // then says so, keeps what is typed, and lets no form or link lead to a browser error
  // page; it reconnects by itself and fetches what arrived meanwhile, without a reload.
  let nodeGone = false;

  function showNodeGone(gone) {
    nodeGone = gone;
    document.documentElement.dataset.node = gone ? 'gone' : 'here';
    let banner = document.getElementById('node-gone');
    if (gone && !banner) {
      banner = el('p', 'node-gone', 'The node is not running. What you type stays here; ' +
        'the page reconnects by itself when the node is back.');
      banner.id = 'node-gone';
      banner.setAttribute('role', 'alert');
      const app = document.querySelector('.app');
      if (app) app.prepend(banner);
    } else if (!gone && banner) {
      banner.remove();
    }
    if (gone) {
      const conn = document.querySelector('#connection .conn');
      if (conn) {
        conn.className = 'conn conn-gone';
        const dot = el('span', 'dot');
        dot.setAttribute('aria-hidden', 'true');
        conn.replaceChildren(dot, document.createTextNode('Node not running'));
      }
    }
  }

  // While the node is gone, forms and links would end on a browser error page.
  document.addEventListener('submit', function (event) {
    if (!nodeGone) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    if (event.target instanceof Element && event.target.id === 'compose') {
      showComposeError('The node is not running, so this message was not sent. It stays ' +
        'here: send it again once the node is back.');
      return;
    }
    const banner = document.getElementById('node-gone');
    if (banner) banner.textContent = 'The node is not running, so nothing was sent. What you ' +
      'typed stays here; try again once the page says the node is back.';
  }, true);
  document.addEventListener('click', function (event) {
    if (!nodeGone) return;
    const link = event.target instanceof Element ? event.target.closest('a[href]') : null;
    const inPage = link && link.hash && link.pathname === location.pathname &&
      link.search === location.search;
    if (!link || link.origin !== location.origin || inPage) return;
    event.preventDefault();
  }, true);

  /** What changed while the stream was down: the connection, the open conversation, badges. */
  async function catchUp() {
    const get = async function (url) {
      const response = await fetch(url, { credentials: 'same-origin', headers: { accept: 'application/json' } });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      return response.json();
    };
    try {
      onConnection(await get('/api/status'));
      if (messages && openIdentity && openContact) {
        const page = await get('/api/identities/' + encodeURIComponent(openIdentity) +
          '/contacts/' + encodeURIComponent(openContact) + '/messages?limit=100');
        const entries = (page.messages || []).slice().reverse();
        for (const entry of entries) {
          if (entry.kind !== 'message' || !entry.id) continue;
          if (findBubble(entry.id)) {
            onStatus({ identity: openIdentity, contact: openContact, id: entry.id,
              status: entry.status, error: entry.error });
          } else {
            appendEntry(entry);
          }
        }
        markRead();
      }
      if (listIdentity) {
        const list = await get('/api/identities/' + encodeURIComponent(listIdentity) + '/contacts');
        for (const contact of list.contacts || []) {
          const link = contactLink(contact.key);
          if (!link) continue;
          const open = listIdentity === openIdentity && contact.key === openContact;
          setUnread(contact.key, open ? 0 : Number(contact.unread) || 0);
          if (contact.preview) {
            const preview = link.querySelector('.preview') || link.appendChild(el('span', 'preview'));
            preview.textContent = contact.preview;
          }
        }
      }
    } catch (_) {
      reloadIfIdle('The connection to the node was restored.');
    }
  }

  if ('EventSource' in window) {
    // A readiness mark for people's tools and the browser tests: live updates are flowing.
    const root = document.documentElement;
    root.dataset.stream = 'connecting';
    let lost = false;
    const connect = function () {
      const source = new EventSource('/api/events');
      source.addEventListener('message', function (event) {
        const data = parse(event);
        if (data) onMessage(data);
      });
      source.addEventListener('status', function (event) {
        const data = parse(event);
        if (data) onStatus(data);
      });
      source.addEventListener('connection', function (event) {
        onConnection(parse(event));
      });
      source.addEventListener('request', function (event) {
        onRequest(parse(event));
      });
      // The node dropped events for us (we fell behind): what we show may be stale.
      source.addEventListener('resync', function () {
        reloadIfIdle('The page may be out of date.');
      });
      // The stream broke: the node stopped (or restarts). The browser retries by itself;
      // if it gave up, so do we not: a new stream in a few seconds.
      source.addEventListener('error', function () {
        lost = true;
        root.dataset.stream = 'closed';
        showNodeGone(true);
        if (source.readyState === EventSource.CLOSED) {
          setTimeout(connect, 2000);
        }
      });
      source.addEventListener('open', function () {
        root.dataset.stream = 'open';
        if (lost) {
          lost = false;
          showNodeGone(false);
          catchUp();
        }
      });
    };
    connect();
  }

  // ---------- sending ----------

  const compose = document.getElementById('compose');
  const composeText = document.getElementById('compose-text');
  const composeError = document.getElementById('compose-error');

  function showComposeError(words) {
    if (!composeError) return;
    composeError.textContent = words;
    composeError.hidden = false;
  }

  function clearComposeError() {
    if (!composeError) return;
    composeError.textContent = '';
    composeError.hidden = true;
  }

  if (compose && composeText && openIdentity && openContact) {
    // Enter sends; Shift+Enter adds a line; keys that finish an IME
    // composition (e.g. choosing a Japanese candidate) are left alone. On a
    // touch screen Enter adds a line, as people expect there: Send sends.
    const touch = window.matchMedia && window.matchMedia('(pointer: coarse)').matches;
    const hint = document.getElementById('compose-hint');
    if (touch && hint) hint.textContent = 'Enter adds a line; Send sends';
    document.documentElement.dataset.enter = touch ? 'newline' : 'send';
    composeText.addEventListener('keydown', function (event) {
      if (touch) return;
      if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return;
      event.preventDefault();
      if (typeof compose.requestSubmit === 'function') compose.requestSubmit();
      else compose.dispatchEvent(new Event('submit', { cancelable: true }));
    });

    const url = '/api/identities/' + encodeURIComponent(openIdentity) +
      '/contacts/' + encodeURIComponent(openContact) + '/messages';
    const button = compose.querySelector('button[type="submit"]');
    let sending = false;

    // Over the node's limit (the form's data-max-bytes, in UTF-8 bytes, as the node counts):
    // said while typing, in the node's words (core/service/messages.rs), and Send waits
    // until the text fits. The words change only when the kilobytes do, as the error line
    // is an alert that a screen reader reads again at every change. A draft put back over
    // the limit is said at once.
    const maxBytes = Number(compose.dataset.maxBytes) || 0;
    let tooLong = false;
    function checkLength() {
      if (!maxBytes) return;
      const bytes = new TextEncoder().encode(composeText.value).length;
      const over = bytes > maxBytes;
      const kb = (n) => Math.ceil(n / 1024);
      if (over) {
        const words = 'This message is too long: ' + kb(bytes) + ' KB of ' + kb(maxBytes) + ' KB.';
        if (!composeError || composeError.textContent !== words) showComposeError(words);
      } else if (tooLong) {
        clearComposeError();
      }
      tooLong = over;
      if (button && !sending) button.disabled = over;
    }
    composeText.addEventListener('input', checkLength);
    checkLength();

    compose.addEventListener('submit', async function (event) {
      event.preventDefault();
      const text = composeText.value;
      if (sending || tooLong || text.trim() === '') return;
      sending = true;
      composeText.readOnly = true;
      if (button) button.disabled = true;
      clearComposeError();
      let response;
      try {
        response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify({ text: text }),
          credentials: 'same-origin',
        });
      } catch (_) {
        // No answer: the node is gone. Nothing is posted (a browser error page would lose
        // the text); the text stays, and the page says what happened.
        sending = false;
        composeText.readOnly = false;
        if (button) button.disabled = false;
        showComposeError('The node is not running, so this message was not sent. It stays ' +
          'here: send it again once the node is back.');
        return;
      }
      let body = null;
      try {
        body = await response.json();
      } catch (_) {
        body = null;
      }
      sending = false;
      composeText.readOnly = false;
      if (button) button.disabled = false;
      if (response.status === 201) {
        composeText.value = '';
        if (body && body.id) {
          appendEntry(Object.assign({ direction: 'out' }, body));
          setPreview(openContact, body.text);
        }
      } else {
        showComposeError(body && body.error ? body.error : 'Sending failed (HTTP ' + response.status + ').');
      }
      composeText.focus();
    });
  }

  // ---------- copy buttons ----------

  // When the clipboard is refused (no permission, not a secure context), the
  // text is selected in its box (data-copy-fallback names it) so Ctrl+C copies
  // it, and the status line next to the button says so.
  document.querySelectorAll('[data-copy]').forEach(function (button) {
    const label = button.textContent;
    const status = button.parentElement && button.parentElement.querySelector('.copy-status');
    let timer = 0;
    button.addEventListener('click', async function () {
      let words;
      let copied = false;
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        words = 'Copied';
        copied = true;
      } catch (_) {
        words = 'Copy it by hand';
      }
      button.textContent = words;
      if (!copied) {
        const box = document.getElementById(button.dataset.copyFallback || '');
        if (box) {
          box.focus();
          box.select();
        }
        if (status) {
          status.textContent = box
            ? 'Your browser did not allow copying: the code is selected, press Ctrl+C (⌘C on a Mac).'
            : 'Your browser did not allow copying.';
        }
      } else if (status) {
        status.textContent = 'Copied to the clipboard.';
      }
      clearTimeout(timer);
      timer = setTimeout(function () {
        button.textContent = label;
      }, 2000);
    });
  });

  // ---------- notification permission ----------

  const enable = document.getElementById('enable-notifications');
  if (enable) {
    const showPermission = function () {
      if (!('Notification' in window)) {
        enable.textContent = 'Notifications are not supported here';
        enable.disabled = true;
      } else if (Notification.permission === 'granted') {
        enable.textContent = 'Desktop notifications are on';
        enable.disabled = true;
      } else if (Notification.permission === 'denied') {
        enable.textContent = 'Notifications are blocked in the browser settings';
        enable.disabled = true;
      }
    };
    showPermission();
    enable.addEventListener('click', function () {
      if (!('Notification' in window)) return;
      Promise.resolve(Notification.requestPermission()).then(showPermission, showPermission);
    });
  }

  // ---------- focus ----------

  // A dialog's "Close" comes back with the opener's id as the fragment: focus it again.
  if (location.hash === '#open-settings' || location.hash === '#open-invite') {
    const opener = document.getElementById(location.hash.slice(1));
    if (opener) opener.focus();
  }

  // ---------- the settings and invite dialogs ----------

  // The server renders them open (they work without a script); as a modal the
  // page behind is inert and Escape closes it, by following "Close".
  [['settings', 'close-settings'], ['invite', 'close-invite']].forEach(function (ids) {
    const dialog = document.getElementById(ids[0]);
    const close = document.getElementById(ids[1]);
    if (dialog && typeof dialog.showModal === 'function') {
      dialog.close();
      dialog.showModal();
      dialog.addEventListener('cancel', function (event) {
        event.preventDefault();
        if (close) location.href = close.href;
      });
    }
  });
})();
