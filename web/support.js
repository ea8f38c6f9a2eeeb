// Support console: find a mentor's report job, read what happened, put it right. No build step, and
// ES2017 syntax only (no optional chaining, no ?? and no object spread), like every script of web/.
(function () {
  'use strict';

  var TOKEN_KEY = 'hub:support-token';
  var STATUS_WORDS = { SUBMITTED: 'Waiting', PROCESSING: 'Being made', SUCCESS: 'Ready', FAILED: 'Failed' };
  var ACTION_WORDS = {
    search: 'Searched',
    view: 'Opened a job',
    timeline: 'Read a timeline',
    replay: 'Sent a notification again',
    rerun: 'Ran a report again',
  };

  var state = { token: null, query: null, cursor: null, job: null, pending: null };

  function $(id) {
    return document.getElementById(id);
  }

  /** Builds an element; text is always set as text, never parsed as HTML. */
  function h(tag, attributes) {
    var element = document.createElement(tag);
    var names = Object.keys(attributes || {});
    for (var i = 0; i < names.length; i++) {
      var value = attributes[names[i]];
      if (value !== null && value !== undefined && value !== false) element.setAttribute(names[i], String(value));
    }
    for (var j = 2; j < arguments.length; j++) {
      var child = arguments[j];
      if (child !== null && child !== undefined && child !== false) element.append(child);
    }
    return element;
  }

  var timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

  function when(iso) {
    var date = iso ? new Date(iso) : null;
    return date && !isNaN(date.getTime()) ? timeFormat.format(date) : '';
  }

  // ---- calls -------------------------------------------------------------------------------------

  function ApiError(message, status, code) {
    this.message = message;
    this.status = status;
    this.code = code;
  }

  async function api(path, method) {
    var response;
    try {
      response = await fetch(path, {
        method: method || 'GET',
        headers: { Accept: 'application/json', Authorization: 'Bearer ' + state.token },
        cache: 'no-store',
      });
    } catch (error) {
      throw new ApiError('Cannot reach the report service. Check your connection and try again.', 0, 'NETWORK_ERROR');
    }
    var envelope = null;
    try {
      envelope = await response.json();
    } catch (error) {
      envelope = null;
    }
    var params = (envelope && envelope.params) || {};
    if (!response.ok || params.status === 'failed') {
      if (response.status === 401) signOut(params.errmsg || 'Your session has expired. Please sign in again.');
      throw new ApiError(params.errmsg || 'The report service answered ' + response.status + '.', response.status, params.err);
    }
    return (envelope && envelope.result) || {};
  }

  function say(id, message) {
    var notice = $(id);
    notice.textContent = message || '';
    notice.hidden = !message;
  }

  // ---- sign-in -----------------------------------------------------------------------------------

  function readStored() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (error) {
      return null;
    }
  }

  function store(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (error) {
      // Storage may be disabled: the console still works until the tab closes.
    }
  }

  function claimsOf(token) {
    var part = String(token || '').split('.')[1];
    if (!part) return null;
    try {
      var base64 = part.replace(/-/g, '+').replace(/_/g, '/');
      while (base64.length % 4) base64 += '=';
      var bytes = Uint8Array.from(atob(base64), function (c) { return c.charCodeAt(0); });
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (error) {
      return null;
    }
  }

  /** A token in the fragment never reaches a server log; take it and wipe it from the address bar. */
  function takeTokenFromFragment() {
    var params = new URLSearchParams(location.hash.slice(1));
    var token = params.get('token');
    if (!token) return null;
    history.replaceState(history.state, '', location.pathname + location.search);
    return token;
  }

  function signIn(token) {
    var claims = claimsOf(token);
    if (!claims || !claims.sub) {
      say('signin-message', 'This is not an access token. Paste the whole JWT.');
      return;
    }
    state.token = token;
    store(token);
    $('user-id').textContent = String(claims.sub).split(':').pop();
    $('signin').hidden = true;
    $('session').hidden = false;
    $('console').hidden = false;
    say('signin-message', '');
  }

  function signOut(message) {
    state.token = null;
    store(null);
    $('console').hidden = true;
    $('session').hidden = true;
    $('signin').hidden = false;
    say('signin-message', message);
  }

  // ---- search ------------------------------------------------------------------------------------

  function queryOfForm() {
    var form = new FormData($('search-form'));
    var query = new URLSearchParams();
    form.forEach(function (value, name) {
      var text = String(value).trim();
      if (text) query.set(name, text);
    });
    return query;
  }

  async function search(more) {
    if (!more) {
      state.query = queryOfForm();
      state.cursor = null;
    }
    var query = new URLSearchParams(state.query);
    if (more && state.cursor) query.set('cursor', state.cursor);
    say('search-message', '');
    var result;
    try {
      result = await api('/v1/support/jobs?' + query.toString());
    } catch (error) {
      say('search-message', error.message);
      return;
    }
    state.cursor = result.cursor || null;
    var list = $('results');
    if (!more) list.replaceChildren();
    (result.jobs || []).forEach(function (job) { list.append(resultRow(job)); });
    $('results-panel').hidden = false;
    $('results-empty').hidden = list.children.length > 0;
    $('results-more').hidden = !state.cursor;
    var mentor = $('results-mentor');
    mentor.hidden = !query.get('userId');
    mentor.textContent = query.get('userId')
      ? 'Mentor: ' + (result.mentorName ? result.mentorName + ' (' + query.get('userId') + ')' : query.get('userId'))
      : '';
    if (!more) showRefused(result.refused);
  }

  function resultRow(job) {
    var open = h('button', { type: 'button', class: 'button button--small', 'data-open': job.jobId }, 'Open');
    var batch = [job.courseName, job.batchName || job.batchId].filter(Boolean).join(' · ');
    return h(
      'li',
      { class: 'result', 'data-job-id': job.jobId, 'data-ref': job.ref, 'data-status': job.status },
      h('div', { class: 'result__head' },
        h('span', { class: 'ref' }, job.ref),
        h('span', { class: 'badge badge--' + String(job.status).toLowerCase() }, STATUS_WORDS[job.status] || job.status),
        open),
      h('p', { class: 'result__outcome' }, job.outcome),
      h('p', { class: 'muted' }, (job.mentorName ? job.mentorName + ' · ' : '') + job.userId),
      h('p', { class: 'muted' }, batch),
      h('p', { class: 'muted' }, 'Asked ' + when(job.submittedAt) + (job.completedAt ? ' · ended ' + when(job.completedAt) : ''))
    );
  }

  function showRefused(refused) {
    var panel = $('refused-panel');
    panel.hidden = !refused;
    if (!refused) return;
    $('refused').replaceChildren.apply($('refused'), refused.map(function (click) {
      return h('li', { class: 'result refused', 'data-code': click.code, 'data-batch-id': click.batchId },
        h('p', {}, when(click.at) + ' · ' + (click.batchId || 'no batch named')),
        h('p', { class: 'muted' }, 'Refused (' + click.status + '): ' + click.reason));
    }));
    $('refused-empty').hidden = refused.length > 0;
  }

  // ---- one job -----------------------------------------------------------------------------------

  async function openJob(jobId) {
    var page;
    try {
      page = await api('/v1/support/jobs/' + encodeURIComponent(jobId));
    } catch (error) {
      say('search-message', error.message);
      return;
    }
    state.job = page.job;
    var job = page.job;
    $('job-panel').hidden = false;
    $('job-panel').setAttribute('data-job-id', job.jobId);
    $('job-ref').textContent = job.ref;
    $('job-outcome').textContent = job.outcome;
    $('job-who').textContent = [job.mentorName, job.userId, job.courseName, job.batchName || job.batchId].filter(Boolean).join(' · ');
    var connection = $('job-connection');
    connection.setAttribute('data-connected', String(page.connected));
    connection.setAttribute('data-devices', String(page.devices));
    connection.textContent = page.connected
      ? 'The mentor has the app open now, on ' + page.devices + (page.devices === 1 ? ' device.' : ' devices.')
      : 'The mentor does not have the app open now.';
    $('timeline').replaceChildren.apply($('timeline'), page.timeline.map(function (entry) {
      var reached = entry.delivered === 0
        ? 'Reached no open page.'
        : 'Reached ' + entry.delivered + (entry.delivered === 1 ? ' open page.' : ' open pages.');
      return h('li', { 'data-type': entry.type, 'data-delivered': entry.delivered, 'data-event-id': entry.id },
        h('p', {}, h('time', { datetime: entry.at }, when(entry.at)), ' · ', entry.words),
        h('p', { class: 'muted timeline__delivery' }, reached));
    }));
    hideConfirm();
    say('action-result', '');
    $('job-panel').scrollIntoView({ block: 'nearest' });
  }

  var ACTIONS = {
    replay: {
      question: function (job) { return 'Send mentor ' + (job.mentorName || job.userId) + ' the last notification of ' + job.ref + ' again? A ready report comes with a fresh download link.'; },
      path: 'replay',
      done: function (result) { return 'Sent again (' + result.type + '). The mentor sees it on every open page.'; },
    },
    rerun: {
      question: function (job) { return 'Run the report of ' + (job.batchName || job.batchId) + ' again for mentor ' + (job.mentorName || job.userId) + '? They will be notified as if they had clicked.'; },
      path: 'rerun',
      done: function (result) { return 'Started again: new reference ' + result.ref + '. The mentor is notified when it is ready.'; },
    },
  };

  function askFirst(name) {
    if (!state.job) return;
    state.pending = name;
    $('confirm-text').textContent = ACTIONS[name].question(state.job);
    $('confirm').hidden = false;
    $('confirm-yes').focus();
  }

  function hideConfirm() {
    state.pending = null;
    $('confirm').hidden = true;
  }

  async function confirmAction() {
    var name = state.pending;
    var job = state.job;
    hideConfirm();
    if (!name || !job) return;
    try {
      var result = await api('/v1/support/jobs/' + encodeURIComponent(job.jobId) + '/' + ACTIONS[name].path, 'POST');
      await openJob(job.jobId); // the timeline now shows what was just done
      say('action-result', ACTIONS[name].done(result));
      $('action-result').setAttribute('data-new-job-id', result.jobId || '');
    } catch (error) {
      say('action-result', error.message);
    }
  }

  // ---- audit -------------------------------------------------------------------------------------

  async function loadAudit() {
    var page;
    try {
      page = await api('/v1/support/audit?limit=50');
    } catch (error) {
      say('search-message', error.message);
      return;
    }
    $('audit').replaceChildren.apply($('audit'), page.entries.map(function (entry) {
      var on = [entry.userId && 'mentor ' + entry.userId, entry.jobId && 'job ' + entry.jobId].filter(Boolean).join(', ');
      return h('li', { class: 'result audit-entry', 'data-action': entry.action, 'data-job-id': entry.jobId },
        h('p', {}, when(entry.at) + ' · ' + entry.actor + ' · ' + (ACTION_WORDS[entry.action] || entry.action)),
        on && h('p', { class: 'muted' }, on));
    }));
  }

  // ---- start -------------------------------------------------------------------------------------

  function bind() {
    $('signin-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var token = $('token-input').value.trim();
      $('token-input').value = '';
      signIn(token);
    });
    $('sign-out').addEventListener('click', function () { signOut(); });
    $('search-form').addEventListener('submit', function (event) {
      event.preventDefault();
      search(false);
    });
    $('results-more').addEventListener('click', function () { search(true); });
    $('results').addEventListener('click', function (event) {
      var button = event.target.closest('[data-open]');
      if (button) openJob(button.getAttribute('data-open'));
    });
    $('job-close').addEventListener('click', function () { $('job-panel').hidden = true; });
    $('replay').addEventListener('click', function () { askFirst('replay'); });
    $('rerun').addEventListener('click', function () { askFirst('rerun'); });
    $('confirm-yes').addEventListener('click', confirmAction);
    $('confirm-no').addEventListener('click', hideConfirm);
    $('audit-load').addEventListener('click', loadAudit);
  }

  bind();
  var token = takeTokenFromFragment() || readStored();
  if (token) signIn(token);
  else signOut();
  window.supportConsole = { state: state, openJob: openJob };
})();
